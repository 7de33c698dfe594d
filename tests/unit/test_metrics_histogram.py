"""The cheap histogram (common/histogram.py) and the places that record into it.

Each recording site is checked for what it counts (a pool's waits, a thread
pool's jobs, GC pauses), and the histogram itself for being much cheaper than
prometheus_client's on the loop: that is the reason it exists.
"""

from __future__ import annotations

import gc
import threading
import timeit

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client import Histogram as ClientHistogram
from waiting import wait_for

from chatcluster.common.histogram import LOOP_SECONDS, WAIT_SECONDS, Histogram
from chatcluster.common.procutil import GcWatch
from chatcluster.common.storage.pool import ConnectionPool
from chatcluster.gateway.server import OffloadTimer
from chatcluster.shards.worker import BATCH_ENVELOPES


def test_an_observation_lands_in_the_first_bucket_whose_bound_is_not_below_it():
    h = Histogram((0.001, 0.01, 0.1))
    for value in (0.0, 0.001, 0.0011, 0.01, 0.5, 7.0):
        h.observe(value)
    assert h.counts == [2, 2, 0, 2]  # le=0.001 (0 and exactly 0.001), le=0.01, le=0.1, +Inf
    assert h.count == 6 and h.sum == pytest.approx(7.5121)
    assert h.as_dict() == {"le": [0.001, 0.01, 0.1], "counts": [2, 2, 0, 2], "sum": h.sum}
    h.as_dict()["counts"][0] = 99
    assert h.counts[0] == 2, "as_dict hands out a copy: a reader never sees the counts move under it"


@pytest.mark.parametrize("bounds", [(), (0.1, 0.1), (0.2, 0.1)])
def test_bounds_must_increase(bounds):
    with pytest.raises(ValueError):
        Histogram(bounds)


@pytest.mark.parametrize("bounds", [LOOP_SECONDS, WAIT_SECONDS, BATCH_ENVELOPES])
def test_the_bucket_sets_span_what_they_measure(bounds):
    assert list(bounds) == sorted(set(bounds))
    assert len(bounds) <= 20  # each bucket is a series per process in Prometheus


def test_a_pool_counts_every_acquisition_and_how_long_the_waiting_ones_waited():
    now = [0.0]
    pool = ConnectionPool(object, size=1, is_disconnect=lambda e: False, acquire_timeout=5, clock=lambda: now[0])
    with pool.connection():
        pass  # no wait
    holder = pool.connection()
    holder.__enter__()
    got = threading.Event()

    def second() -> None:
        with pool.connection():
            got.set()

    thread = threading.Thread(target=second)
    thread.start()
    wait_for(lambda: pool.waiting == 1, what="the second caller to wait")
    now[0] = 0.03  # the holder keeps it 30 ms
    holder.__exit__(None, None, None)
    thread.join(5)
    assert got.is_set()
    hist = pool.stats()["acquire_wait_seconds"]
    assert sum(hist["counts"]) == pool.acquires == 3
    assert hist["counts"][0] == 2  # the two that did not wait, as 0
    assert hist["counts"][WAIT_SECONDS.index(0.05)] == 1 and hist["sum"] == pytest.approx(0.03)


def test_a_thread_pool_timer_counts_every_job_from_many_threads():
    timer = OffloadTimer()

    def work() -> None:
        for _ in range(2000):
            timer.record(0.0002, 0.004)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    figures = timer.as_dict()
    assert figures["jobs"] == 8000
    assert sum(figures["queue_wait_seconds"]["counts"]) == sum(figures["run_seconds"]["counts"]) == 8000
    assert figures["queue_wait_seconds"]["counts"][WAIT_SECONDS.index(0.00025)] == 8000
    assert figures["run_seconds"]["counts"][WAIT_SECONDS.index(0.005)] == 8000


def test_gc_pauses_while_serving_go_into_the_histogram():
    watch = GcWatch()
    try:
        gc.collect()  # start-up: not a pause of a serving process
        assert sum(watch.as_dict()["pause_seconds"]["counts"]) == 0
        watch.serving()
        gc.collect()
        gc.collect()
        figures = watch.as_dict()
        assert sum(figures["pause_seconds"]["counts"]) == figures["pauses"] == 2
        assert figures["pause_seconds"]["sum"] * 1000 == pytest.approx(figures["pause_total_ms"])
    finally:
        gc.callbacks.remove(watch._callback)


def test_observe_costs_a_fraction_of_prometheus_clients():
    """Recorded on the event loop once per pass: it must stay far below prometheus_client's lock and loop."""
    ours = Histogram(LOOP_SECONDS)
    theirs = ClientHistogram("pass_seconds", "a pass", buckets=LOOP_SECONDS, registry=CollectorRegistry())
    n = 20_000
    ours_s = min(timeit.repeat(lambda: ours.observe(0.0007), number=n, repeat=7))
    theirs_s = min(timeit.repeat(lambda: theirs.observe(0.0007), number=n, repeat=7))
    assert ours_s < theirs_s / 2, f"ours {ours_s / n * 1e9:.0f} ns vs prometheus_client {theirs_s / n * 1e9:.0f} ns"
