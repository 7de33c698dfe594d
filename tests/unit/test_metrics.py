"""/metrics: the definition table follows Prometheus' conventions, and what it exports from a /status is right.

Names, types and HELP texts are checked here against the table itself; promtool
(Debian's `prometheus` package) lints the exposition of a status in which every
defined metric has a value, conditional ones (writer thread, chat log) included.
The same check on real processes is tests/e2e/test_metrics_live.py.
"""

from __future__ import annotations

import re

import pytest
from promcheck import promtool_problems
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chatcluster.common.histogram import Histogram
from chatcluster.common.metrics import (
    COUNTER,
    HISTOGRAM,
    INFO,
    LEFT_OUT,
    METRICS,
    SnapshotCollector,
    exported_names,
    lookup,
    unexplained,
)

UNIT_ABBREVIATIONS = {"s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"}


def histogram(*values: float) -> dict:
    h = Histogram()
    for v in values:
        h.observe(v)
    return h.as_dict()


def set_path(data: dict, path: str, value: object) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        key = "0" if part.startswith("{") else part
        node = node.setdefault(key, {})
    node[parts[-1]] = value


def full_status(role: str) -> dict:
    """A /status of `role` in which every metric of the table has a value (the e2e tests use real ones)."""
    data: dict = {"role": role, "id": 3}
    for d in METRICS:
        if role not in d.roles:
            continue
        if d.kind == INFO:
            for label, path in d.source.items():  # type: ignore[union-attr]
                set_path(data, path, f"{label}-text")
            continue
        for _, path in d.sources():
            if d.convert is not None:
                value: object = "up"
            elif d.kind == HISTOGRAM:
                value = histogram(0.0001, 0.003, 0.2)
            else:
                value = 7
            set_path(data, path, value)
    return data


def exposition(data: dict) -> bytes:
    class Snap:
        pass

    snap = Snap()
    snap.data = data
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))  # type: ignore[arg-type]
    return generate_latest(registry)


def parsed(data: dict) -> dict:
    return {f.name: f for f in text_string_to_metric_families(exposition(data).decode())}


# ---- the table ---------------------------------------------------------------------------------
def test_names_are_unique_snake_case_and_in_base_units():
    names = [d.name for d in METRICS]
    assert len(names) == len(set(names)), "one place per metric"
    for d in METRICS:
        assert re.fullmatch(r"chatcluster(_[a-z0-9]+)+", d.name), d.name
        tokens = set(d.name.split("_"))
        assert not tokens & UNIT_ABBREVIATIONS, f"{d.name}: abbreviated unit"
        assert not tokens & {"milliseconds", "microseconds", "minutes", "kilobytes", "megabytes"}, d.name
        assert d.name.endswith("_total") == (d.kind == COUNTER), f"{d.name}: `_total` is for counters, and only them"
        assert d.kind != INFO or d.name.endswith("_info"), d.name
        if d.kind == HISTOGRAM:
            assert not re.search(r"_(bucket|sum|count)$", d.name), d.name
        assert d.roles and set(d.roles) <= {"gateway", "shard"}, d.name


def test_ids_are_labels_not_names():
    for d in METRICS:
        assert not re.search(r"_\d+(_|$)", d.name), f"{d.name}: an id in a name"
        for label in d.label_names:
            assert re.fullmatch(r"[a-z][a-z0-9_]*", label) and label not in ("role", "id", "le"), (d.name, label)
    by_name = {d.name: d for d in METRICS}
    assert by_name["chatcluster_gateway_shard_silence_seconds"].label_names == ["shard"]
    assert by_name["chatcluster_shard_gateway_silence_seconds"].label_names == ["gateway"]
    assert by_name["chatcluster_db_pool_acquire_wait_seconds"].label_names == ["pool"]


def test_every_help_says_what_is_counted():
    for d in METRICS:
        words = d.help.rstrip(".").split()
        assert len(words) >= 3 and d.help.endswith("."), f"{d.name}: {d.help!r}"
        assert d.name not in d.help and d.name.removeprefix("chatcluster_") not in d.help, \
            f"{d.name}: the HELP repeats the name"
        assert d.help[0].isupper() or d.help[0].isdigit(), d.name


def test_waits_pass_times_and_latencies_are_histograms():
    histograms = {d.name for d in METRICS if d.kind == HISTOGRAM}
    assert {
        "chatcluster_gateway_flush_duration_seconds", "chatcluster_gateway_loop_lag_seconds",
        "chatcluster_gateway_login_duration_seconds", "chatcluster_gateway_thread_pool_queue_wait_seconds",
        "chatcluster_gateway_thread_pool_run_seconds", "chatcluster_db_pool_acquire_wait_seconds",
        "chatcluster_shard_batch_duration_seconds", "chatcluster_chatlog_db_write_duration_seconds",
        "chatcluster_gc_pause_seconds",
    } <= histograms
    # ...and no average or maximum of a time is exported as a gauge any more; milliseconds become seconds.
    for d in METRICS:
        for _, path in d.sources():
            assert not re.search(r"_(avg|max)(_ms)?$", path), f"{d.name} from {path}"
            assert not path.endswith("_ms") or d.scale == 0.001, f"{d.name} from {path}"


def test_left_out_figures_say_why():
    exported_paths = {path for d in METRICS if d.kind != INFO for _, path in d.sources()}
    for key, why in LEFT_OUT.items():
        role, _, path = key.rpartition(":")
        assert why and role in ("", "gateway", "shard"), key
        assert key not in exported_paths, f"{key}: either exported or left out, not both"


def test_a_figure_nobody_named_is_unexplained():
    for role in ("gateway", "shard"):
        assert unexplained(full_status(role)) == []
    data = {"role": "shard", "id": 0, "chats": 1, "new_figure": 2, "zmq_in": 3, "zmq": {"bytes_received": 0},
            "history": {"new_counter": 4, "messages": 5}, "gateways": [{"gateway": "gw0", "silent_s": 1, "x": 2}],
            "gc": {"pause_seconds": histogram(0.1), "pause_max_ms": 3.0}, "endpoint": "tcp://x", "chatlog": None,
            "msgs_in_per_s": 1.0}
    assert unexplained(data) == ["new_figure", "history.new_counter", "gateways.*.x"]
    # what a shard may leave out, a gateway exports
    assert unexplained({"role": "gateway", "zmq": {"bytes_received": 1}, "zmq_in": 2}) == ["zmq_in"]


# ---- what a status turns into ---------------------------------------------------------------
def test_every_metric_of_a_full_status_passes_promtool():
    for role in ("gateway", "shard"):
        text = exposition(full_status(role))
        assert promtool_problems(text) == "", f"{role}:\n{promtool_problems(text)}"
        names = {f.name for f in text_string_to_metric_families(text.decode())}
        expected = {d.name.removesuffix("_total") for d in METRICS if role in d.roles}
        assert names == expected, f"{role}: missing {expected - names}, unexpected {names - expected}"


def test_histogram_buckets_are_cumulative_with_sum_and_count():
    data = {"role": "gateway", "id": 0, "flush_seconds": histogram(0.00001, 0.00002, 0.003, 0.003, 99.0)}
    family = parsed(data)["chatcluster_gateway_flush_duration_seconds"]
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name.endswith("_bucket")}
    assert buckets["2e-05"] == 2  # 20 µs is in its own bucket (le: less or equal)
    assert buckets["0.0025"] == 2 and buckets["0.005"] == 4 and buckets["10.0"] == 4 and buckets["+Inf"] == 5
    values = list(buckets.values())
    assert values == sorted(values)
    (count,) = [s.value for s in family.samples if s.name.endswith("_count")]
    (total,) = [s.value for s in family.samples if s.name.endswith("_sum")]
    assert count == 5 and total == pytest.approx(99.00601)
    assert all(s.labels["role"] == "gateway" and s.labels["id"] == "0" for s in family.samples)


def test_ids_from_the_status_become_labels():
    data = {
        "role": "gateway", "id": 1,
        "shards": {"0": {"state": "up", "silent_s": 0.5, "downs": 0, "restarts": 1},
                   "4": {"state": "down", "silent_s": 7.25, "downs": 2, "restarts": 0}},
        "db_threads": {"run_seconds": histogram(0.01)}, "hash_threads": {"run_seconds": histogram(0.02, 0.03)},
    }
    got = parsed(data)
    up = {s.labels["shard"]: s.value for s in got["chatcluster_gateway_shard_up"].samples}
    assert up == {"0": 1.0, "4": 0.0}
    silence = {s.labels["shard"]: s.value for s in got["chatcluster_gateway_shard_silence_seconds"].samples}
    assert silence == {"0": 0.5, "4": 7.25}
    downs = {s.labels["shard"]: s.value for s in got["chatcluster_gateway_shard_downs"].samples}
    assert downs == {"0": 0, "4": 2}
    counts = {s.labels["pool"]: s.value for s in got["chatcluster_gateway_thread_pool_run_seconds"].samples
              if s.name.endswith("_count")}
    assert counts == {"db": 1, "hash": 2}

    shard = parsed({"role": "shard", "id": 2, "gateways": [{"gateway": "gw0", "silent_s": 1.5},
                                                          {"gateway": "gw-pod-a", "silent_s": 0.25}]})
    silence = {s.labels["gateway"]: s.value for s in shard["chatcluster_shard_gateway_silence_seconds"].samples}
    assert silence == {"gw0": 1.5, "gw-pod-a": 0.25}


def test_what_a_process_does_not_have_is_not_exported():
    data = {"role": "gateway", "id": 0, "sessions": 5, "writer": None, "chatlog": None, "rooms": 2}
    got = parsed(data)
    assert got["chatcluster_gateway_sessions"].samples[0].value == 5
    assert not [n for n in got if "writer" in n or "chatlog" in n]
    assert "chatcluster_shard_rooms" not in got  # a shard's figure of the same key is not read from a gateway
    assert got["chatcluster_gateway_rooms"].samples[0].value == 2


def test_units_are_converted_and_texts_are_info_labels():
    data = {"role": "gateway", "id": 0, "gc": {"start_up_ms": 12.5}, "node": "gw0", "loop": "uvloop",
            "writer_mode": "loop", "zmq_bridge": "reader", "tls": True}
    got = parsed(data)
    assert got["chatcluster_gc_start_up_pause_seconds"].samples[0].value == pytest.approx(0.0125)
    (info,) = got["chatcluster_gateway_info"].samples
    assert info.value == 1 and info.labels == {"role": "gateway", "id": "0", "node": "gw0", "loop": "uvloop",
                                               "writer": "loop", "zmq_bridge": "reader", "tls": "true"}
    (process,) = got["chatcluster_process_info"].samples
    assert process.labels == {"role": "gateway", "id": "0"}


def test_lookup_walks_dicts_and_lists():
    data = {"a": {"x": {"b": 1}, "y": {"b": 2}}, "l": [{"k": "p", "v": 3}, {"v": 4}], "n": None}
    assert sorted((lab["i"], v) for lab, v in lookup(data, "a.{i}.b")) == [("x", 1), ("y", 2)]
    assert list(lookup(data, "l.{k}.v")) == [({"k": "p"}, 3)]  # an item without the label's field is skipped
    assert list(lookup(data, "n.b")) == [] and list(lookup(data, "missing")) == []


def test_exported_names_include_the_series_of_histograms():
    names = exported_names()
    assert {"chatcluster_gateway_flush_duration_seconds_bucket", "chatcluster_gateway_flush_duration_seconds_sum",
            "chatcluster_gateway_flush_duration_seconds_count", "chatcluster_gateway_sessions",
            "chatcluster_shard_chats_total", "process_cpu_seconds_total", "process_resident_memory_bytes",
            "python_gc_collections_total"} <= names
    assert "chatcluster_gateway_sessions_bucket" not in names
