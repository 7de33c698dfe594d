"""Prometheus metrics of a process: the same figures as its /status, on the same control port.

The main loop already publishes a snapshot of its figures once a second (see
common/control.py); this collector turns that snapshot into Prometheus metrics
when /metrics is scraped, so an operator's existing Prometheus and Grafana see
exactly what `chatctl status` shows, with no second bookkeeping on the hot path.

Names are `chatcluster_<figure>` with the nesting joined by `_` (db_pool.in_use
-> chatcluster_db_pool_in_use), labelled with the process's role and id.
Monotonic figures are counters (`_total`); everything else is a gauge. Rates
(`*_per_s`) are left out: Prometheus computes rates from the counters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from chatcluster.common.control import Snapshot

#: Figures that only ever grow (since the process started).
COUNTERS = frozenset({
    # gateway
    "accepted", "closed", "logins", "login_failures", "logins_refused_busy", "replaced", "protocol_errors",
    "bad_requests", "chats_in", "bcast_in", "deliveries", "frames_out", "errors_sent", "slow_consumers",
    "timeouts", "shard_errors", "undone", "writes", "bytes_out", "mid_pass_answers",
    # shard
    "chats", "refused", "rooms_created", "rooms_closed", "zmq_in", "envelopes", "bad_batches", "bad_envelopes",
    "wakeups", "zmq_unroutable",
    # nested
    "zmq_sent", "zmq_received", "zmq_bytes_sent", "zmq_bytes_received", "zmq_backpressure", "zmq_dropped",
    "db_pool_acquires", "db_pool_waits", "db_pool_queries", "db_pool_errors", "db_pool_reconnects",
    "chatlog_accepted", "chatlog_file_lines", "chatlog_db_rows", "chatlog_db_batches", "chatlog_db_errors",
    "chatlog_db_dropped", "chatlog_db_pool_acquires", "chatlog_db_pool_waits", "chatlog_db_pool_queries",
    "chatlog_db_pool_errors", "chatlog_db_pool_reconnects", "db_threads_jobs", "hash_threads_jobs",
    "gc_collections", "gc_gen2", "gc_pauses", "gc_pause_total_ms",
    "history_expired", "history_evicted", "history_evictions", "history_resumes", "history_resumes_recovered",
    "history_replayed", "history_resent", "history_pages", "history_pages_from_db", "history_restores_kept",
    "history_restores_lost", "history_db_reads", "history_db_read_failures",
    "writer_sends", "writer_calls", "writer_bytes", "writer_would_block", "writer_failed", "writer_close_timeouts",
})
SKIP = frozenset({"id", "pid", "room_ids"})


def flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(name, value) of every numeric figure, nested names joined by '_'."""
    for key, value in data.items():
        if key in SKIP or key.endswith("_per_s"):
            continue
        name = f"{prefix}{key}"
        if isinstance(value, int | float):  # bool is an int: 0 or 1
            yield name, float(value)
        elif isinstance(value, dict):
            yield from flatten(value, name + "_")


class SnapshotCollector:
    """A prometheus_client collector over a process's Snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        data = self.snapshot.data
        labels = {"role": str(data.get("role", "?")), "id": str(data.get("id", "?"))}
        for name, value in flatten(data):
            if name in COUNTERS:
                family = CounterMetricFamily(f"chatcluster_{name}", f"{name} since the process started",
                                             labels=list(labels))
            else:
                family = GaugeMetricFamily(f"chatcluster_{name}", name, labels=list(labels))
            family.add_metric(list(labels.values()), value)
            yield family


def metrics_route(snapshot: Snapshot):
    """A ControlServer route serving /metrics in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    ProcessCollector(registry=registry)  # process_cpu_seconds_total, process_resident_memory_bytes, fds

    def route() -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)

    return route
