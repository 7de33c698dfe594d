"""GC pauses are counted per process; the start-up collection is not a pause of a serving process."""

from __future__ import annotations

import gc

import pytest

from chatcluster.common.procutil import GcWatch


@pytest.fixture
def watch():
    w = GcWatch()
    yield w
    gc.callbacks.remove(w._callback)


def test_collections_before_serving_are_start_up_not_pauses(watch):
    garbage = [[] for _ in range(20_000)]
    for item in garbage:
        item.append(item)  # cycles: only the collector frees them
    del garbage, item
    gc.collect()
    figures = watch.as_dict()
    assert figures["collections"] >= 1 and figures["gen2"] >= 1
    assert figures["pauses"] == 0 and figures["pause_max_ms"] == 0
    assert figures["start_up_ms"] > 0


def test_collections_while_serving_are_pauses(watch):
    watch.serving()
    gc.collect()
    gc.collect(0)
    figures = watch.as_dict()
    assert figures["pauses"] == 2
    assert figures["pause_total_ms"] >= figures["pause_max_ms"] > 0
    assert figures["start_up_ms"] == 0
