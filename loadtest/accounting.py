"""What a load-generator process counts, and the latency histograms (sans-I/O).

Every correctness claim of a bench run is a counter here that was observed,
not assumed: lost own copies, seq gaps, reorders, duplicates, deliveries
against the fan-out expected when the message was sent. Latencies go into
HDR histograms, which keep ~0.1 % resolution over 1 us .. 60 s in fixed
memory and merge exactly across processes and intervals; percentiles come
from them, never from sorting samples.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

# ---------------------------------------------------------------------------- counters

#: Throughput counters: rates are their differences over time.
RATE_FIELDS = (
    "io_r",          # data_received calls (recv syscalls that returned data)
    "io_s",          # transport.write calls
    "bytes_r",
    "bytes_s",
    "frames_r",      # every frame received
    "app_in",        # C_ROOM_CHAT_REQ sent
    "deliveries",    # S_ROOM_CHAT_NTF received, the sender's own copy included
)
#: Accounting of the measured window (by the message's id, whenever it arrives).
MEASURE_FIELDS = (
    "measured_sent",  # measured messages sent
    "expected",       # sum over measured messages sent of the room's member count at send time
    "delivered",      # S_ROOM_CHAT_NTF of measured messages received, over all receivers
    "own_received",   # own copies matched (all windows)
    "latencies",      # latencies recorded (measured own copies)
)
#: Correctness: all must be zero in a good run.
ERROR_FIELDS = (
    "lost",           # measured messages whose own copy never came back (filled in at the end)
    "gaps",           # seq jumps s -> s+k add k-1
    "reorders",       # seq lower than the last one seen
    "duplicates",     # the same seq again, or a second own copy of one client_msg_id
    "unknown_own",    # an own copy with a client_msg_id this client never sent
    "wrong_room",     # a chat notification for a room the receiver is not in
    "errors",         # S_ERROR frames received
    "dead",           # connections closed during the run
    "undecodable",    # frames that would not parse (protobuf) or framing errors
    "unsent",         # scheduled messages not sent because the connection was gone
)
#: Churn (--churn RATE): connections the bench drops on purpose, and what the resumes brought back.
CHURN_FIELDS = (
    "drops",             # connections the bench dropped on purpose
    "resumes",           # resuming joins answered (S_JOIN_ROOM_RES to resume = true)
    "resumes_recovered",      # ... with recovered = true
    "resumes_not_recovered",  # ... with recovered = false
    "resumes_in_window_not_recovered",  # ... false although the same epoch and oldest_seq <= since+1: a failure
    "resume_retries",    # resumes answered S_ERROR UNAVAILABLE (a shard restoring the room) and tried again
    "relogin_retries",   # logins after a drop refused (server busy) or failed, and tried again
    "missed",            # seq holes after a resume that it did not fill (recovered = false: head_seq - since_seq)
    "replayed",          # messages a recovered resume brought (head_seq - since_seq), counted in deliveries too
    "lost_at_drop",      # messages that went down with a dropped connection, never written: a resend must bring them
    "resent",            # own messages sent again, same idempotency key, after a resume's replay was complete
    "resend_echoes",     # own copies of a resent key whose original was already seen (not duplicates)
    "own_recovered",     # own copies that came by a replay or after a resend (not timed)
    "skipped_offline",   # sends due while the client was reconnecting: not sent (not an error)
    "expected_all",      # measured messages x the room's bench clients: under churn, live + replayed must match
)
#: Schedule keeping: is the load generator itself the bottleneck?
LAG_FIELDS = (
    "lag_sum_us",     # sum over sends of (send time - due time)
    "late",           # sends more than LATE_US after their due time
)
LATE_US = 10_000

ALL_FIELDS = RATE_FIELDS + MEASURE_FIELDS + ERROR_FIELDS + LAG_FIELDS + ("warmup_lost",) + CHURN_FIELDS


class Counters:
    """Plain integer counters of one load-generator process, updated in place on the hot path."""

    __slots__ = ALL_FIELDS + ("lag_max_us",)

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ALL_FIELDS}


def add_counts(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Field-wise sum (over the load-generator processes)."""
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total


def sub_counts(later: dict[str, int], earlier: dict[str, int]) -> dict[str, int]:
    """Field-wise difference (the activity between two snapshots)."""
    return {k: v - earlier.get(k, 0) for k, v in later.items()}


def every_resume_in_window(counts: dict[str, int]) -> bool:
    """No resume said recovered = false for a reason of its own (another epoch, a position older than memory)."""
    return counts.get("resumes_not_recovered", 0) == counts.get("resumes_in_window_not_recovered", 0)


def correctness_failures(counts: dict[str, int], churn: bool = False) -> dict[str, int]:
    """Every correctness counter that is not zero, plus deliveries that differ from the expected fan-out.

    Without churn every member stays in its room, so the deliveries of the
    measured messages must equal, exactly, their count times the member count
    each sender saw when it sent. Under churn that count moves with the
    leave and join notices and races the server's own view, so the exact
    check is another: every bench client of a room must end up with every
    message of the room once, live or replayed by a resume (deliveries ==
    measured x the room's bench clients, `expected_all`), on top of each
    client's seq running without a hole or a repeat across its connections.
    A resume that said recovered = false with the same epoch and oldest_seq
    <= since_seq + 1 is a failure; one that did for a reason of its own
    excuses the misses and missing deliveries (they are still reported).
    """
    bad = {k: counts.get(k, 0) for k in ERROR_FIELDS if counts.get(k, 0)}
    if churn:
        if counts.get("resumes_in_window_not_recovered", 0):
            bad["resumes_in_window_not_recovered"] = counts["resumes_in_window_not_recovered"]
        if not every_resume_in_window(counts):
            return bad
        if counts.get("missed", 0):
            bad["missed"] = counts["missed"]
        missing = counts.get("expected_all", 0) - counts.get("delivered", 0)
    else:
        missing = counts.get("expected", 0) - counts.get("delivered", 0)
    if missing > 0:
        bad["missing_deliveries"] = missing
    elif missing < 0:
        bad["extra_deliveries"] = -missing
    return bad


class SeqCheck:
    """One receiver's view of its room's `seq`: it must go 1, 2, 3 ... with no gap, repeat or step back.

    The bench creates its rooms and every member joins before anyone sends,
    so each receiver must see seq 1 first (baseline 0).
    """

    __slots__ = ("last",)

    def __init__(self, baseline: int = 0) -> None:
        self.last = baseline

    def see(self, seq: int, counters: Counters) -> None:
        last = self.last
        if seq == last + 1:
            self.last = seq
        elif seq > last:
            counters.gaps += seq - last - 1
            self.last = seq
        elif seq == last:
            counters.duplicates += 1
        else:
            counters.reorders += 1

    def see_resumed(self, seq: int, counters: Counters) -> None:
        """The same check after a resume: a hole now is a message the resume did not bring (`missed`)."""
        last = self.last
        if seq > last + 1:
            counters.missed += seq - last - 1
            self.last = seq
        else:
            self.see(seq, counters)


# ---------------------------------------------------------------------------- latency

LAT_LOW_US = 1
LAT_HIGH_US = 60_000_000   # 60 s: anything slower is clamped (and is a failure by any measure)
LAT_DIGITS = 3             # significant digits: 0.1 % resolution

BUCKETS_US = ((100, "<=100us"), (500, "<=500us"), (1_000, "<=1ms"), (5_000, "<=5ms"), (50_000, "<=50ms"))
OVER_LABEL = ">50ms"
PERCENTILES = ((50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9"))


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LAT_LOW_US, LAT_HIGH_US, LAT_DIGITS)


def record_us(hist: HdrHistogram, value_us: int) -> None:
    """Record one latency, clamped into the histogram's range (the hdrh package drops out-of-range values)."""
    if value_us < LAT_LOW_US:
        value_us = LAT_LOW_US
    elif value_us > LAT_HIGH_US:
        value_us = LAT_HIGH_US
    hist.record_value(value_us)


def encode_histogram(hist: HdrHistogram) -> str:
    """Compressed, base64 text (HdrHistogram's standard encoding): what processes send each other."""
    if hist.get_total_count() == 0:
        return ""
    encoded = hist.encode()
    return encoded.decode("ascii") if isinstance(encoded, bytes) else encoded


def decode_histogram(text: str) -> HdrHistogram:
    if not text:
        return new_histogram()
    base64.b64decode(text, validate=True)  # fail clearly on garbage rather than deep inside hdrh
    return HdrHistogram.decode(text)


def merge_histograms(encoded: Iterable[str]) -> HdrHistogram:
    total = new_histogram()
    for text in encoded:
        if text:
            total.add(decode_histogram(text))
    return total


def latency_summary(hist: HdrHistogram) -> dict[str, float | int | None]:
    """count, min, avg, p50, p90, p99, p99.9, max in microseconds (None when there is no sample)."""
    count = hist.get_total_count()
    if count == 0:
        return {"count": 0, "min": None, "avg": None, **{label: None for _, label in PERCENTILES}, "max": None}
    out: dict[str, float | int | None] = {"count": count, "min": hist.get_min_value(),
                                          "avg": round(hist.get_mean_value(), 1)}
    for pct, label in PERCENTILES:
        out[label] = hist.get_value_at_percentile(pct)
    out["max"] = hist.get_max_value()
    return out


def latency_buckets(hist: HdrHistogram) -> dict[str, int]:
    """How many latencies fell in each of the seed's bins (<=100us, <=500us, <=1ms, <=5ms, <=50ms, >50ms).

    The bins are disjoint, like the seed's. A histogram bucket is placed by its
    lowest equivalent value, so a bin edge is exact to the histogram's 0.1 %.
    """
    counts = {label: 0 for _, label in BUCKETS_US}
    counts[OVER_LABEL] = 0
    if hist.get_total_count() == 0:
        return counts
    for item in hist.get_recorded_iterator():
        value = hist.get_lowest_equivalent_value(item.value_iterated_to)
        n = item.count_at_value_iterated_to
        for limit, label in BUCKETS_US:
            if value <= limit:
                counts[label] += n
                break
        else:
            counts[OVER_LABEL] += n
    return counts
