"""A histogram cheap enough to record on the event loop: one bucket index increment per observation.

Waits, pass times and latencies are distributions; an average or a maximum in a
gauge cannot be added up across processes or turned into a percentile, a
Prometheus histogram (cumulative `_bucket{le=...}`, `_sum`, `_count`) can:
`histogram_quantile(0.99, sum by (le) (rate(..._bucket[1m])))` over every
gateway at once.

prometheus_client's own Histogram does the same bookkeeping, but behind a lock
and a Python loop over the bounds on every observe(), plus the label lookups:
several times the cost of this one (see tests/unit/test_metrics_histogram.py and
the README's Status section for the figures). Here observe() is a C bisect and
two additions, and nothing else: no lock. It is meant to be written by one
thread; where several threads record into one (a thread pool's timer, a
connection pool), the caller already holds a lock of its own and observes under
it. Readers (the once-a-second /status publication) copy the counts as they are:
a copy taken while a thread adds one more observation is at most that one
observation behind, which a scrape a second later has anyway.

The counts are per bucket, not cumulative (an observation touches one cell);
common/metrics.py makes them cumulative when /metrics is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

#: Seconds, for time on the event loop or a shard's loop: 20 µs (a loop pass with little to do) to 10 s.
LOOP_SECONDS = (0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                0.25, 0.5, 1.0, 2.5, 10.0)
#: Seconds, for waits on threads and round trips to a database or a hash: 100 µs to 30 s (the query timeout).
WAIT_SECONDS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Counts of observations per bucket (`bounds` are the buckets' upper limits, inclusive) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LOOP_SECONDS) -> None:
        if list(bounds) != sorted(set(bounds)) or not bounds:
            raise ValueError("histogram bounds must be increasing")
        self.bounds = tuple(float(b) for b in bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation; a value equal to a bound is in that bound's bucket (`le`)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def as_dict(self) -> dict[str, Any]:
        """What /status carries: the bounds, the per-bucket counts (the last is +Inf) and the sum."""
        return {"le": list(self.bounds), "counts": list(self.counts), "sum": self.sum}
