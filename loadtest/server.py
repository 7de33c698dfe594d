"""The server's side of a run: its queues and buffers, read from the cluster's /status endpoints.

The seed's second KPI table (job enq/s, exec/s, q-peak, send buffers, memory
pool) came from counters inside the server; ours come from each process's
control endpoint, sampled once a second by a thread of the bench's parent
process. The status format grows over time, so every figure is read
defensively: a missing field is shown as "-", never a crash.

What each column is, in this cluster:
  job enq/s   chat requests the gateway took in and queued to the shards (gateway `chats_in`)
  job exec/s  envelopes the shards executed (shard `envelopes`; `chats` when absent)
  q-peak      the most envelopes a shard handled in one wake-up (shard `jobs_peak`, reset each second)
  zmq backlog messages held back by ZeroMQ backpressure (max over processes of `zmq.backlog`)
  sendbuf     bytes queued in the gateway's client transports (`send_buffer_bytes`): mean and peak
  db pool     connections in use (peak) / pool size, and waits for a connection
  chat-log    the shards' chat-log write backlog (`chatlog.backlog`), when the server has one
  loop lag    the gateway's event-loop lag (`loop_lag_ms`, the worst in each second), when reported
  GC ms       time all processes spent paused in Python's garbage collector (`gc.pause_total_ms`)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from chatcluster.common.config import RUN_FILE, ClusterConfig

Endpoint = tuple[str, str, int]  # (role, host, port)


@dataclass
class Sample:
    t: float                                  # time.monotonic() when the sample was taken
    gateways: list[dict] = field(default_factory=list)
    shards: list[dict] = field(default_factory=list)
    unreachable: int = 0


def dig(d: object, *path: str) -> float | None:
    """The number at d[path[0]][path[1]]..., or None if any step is missing or it is not a number."""
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    if isinstance(d, bool) or not isinstance(d, int | float):
        return None
    return d


def total(rows: list[dict], *path: str) -> float | None:
    """Sum over processes of a figure; None when no process reports it."""
    values = [v for v in (dig(r, *path) for r in rows) if v is not None]
    return sum(values) if values else None


def _max(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _key(row: dict) -> tuple:
    return row.get("role"), row.get("id"), row.get("pid")


def _rate(prev: Sample | None, last: Sample | None, rows: Callable[[Sample], list[dict]], *path: str) -> float | None:
    """Sum over processes of each one's rate of a counter.

    Each process publishes its status about once a second, so a sample can be
    up to a second old: the rate uses the process's own clock (`uptime_s` at
    publish time) where it has one, and our sampling times otherwise.
    """
    if prev is None or last is None:
        return None
    before = {_key(r): r for r in rows(prev)}
    rates = []
    for row in rows(last):
        old = before.get(_key(row))
        if old is None:
            continue
        a, b = dig(old, *path), dig(row, *path)
        if a is None or b is None:
            continue
        t_a, t_b = dig(old, "uptime_s"), dig(row, "uptime_s")
        dt = (t_b - t_a) if t_a is not None and t_b is not None else (last.t - prev.t)
        if dt > 0:
            rates.append(max(0.0, (b - a) / dt))
        elif b == a:
            rates.append(0.0)
    return sum(rates) if rates else None


def _delta(prev: Sample | None, last: Sample | None, pick: Callable[[Sample], float | None]) -> float | None:
    if prev is None or last is None:
        return None
    a, b = pick(prev), pick(last)
    return None if a is None or b is None else b - a


def _gateways(s: Sample) -> list[dict]:
    return s.gateways


def _shards(s: Sample) -> list[dict]:
    return s.shards


def _has(samples: list[Sample], name: str) -> bool:
    return any(dig(r, name) is not None for s in samples for r in s.shards)


def server_row(prev: Sample | None, samples: list[Sample]) -> dict:
    """The queue-and-buffer figures over the samples of one interval; prev is the sample before it (for rates)."""
    last = samples[-1] if samples else None
    return {
        "job_enq_s": _rate(prev, last, _gateways, "chats_in"),
        "job_exec_s": _rate(prev, last, _shards, "envelopes") if _has(samples, "envelopes")
        else _rate(prev, last, _shards, "chats"),
        "q_peak": _max([_max([dig(r, "jobs_peak") for r in s.shards]) for s in samples]),
        "zmq_backlog_max": _max([_max([dig(r, "zmq", "backlog") for r in s.gateways + s.shards])
                                 for s in samples]),
        "zmq_dropped": _delta(prev, last, lambda s: total(s.gateways + s.shards, "zmq", "dropped")),
        "sendbuf_inuse_bytes": _mean([total(s.gateways, "send_buffer_bytes") for s in samples]),
        "sendbuf_peak_bytes": _max([total(s.gateways, "send_buffer_bytes") for s in samples]),
        "db_in_use_peak": _max([total(s.gateways, "db_pool", "in_use") for s in samples]),
        "db_pool_size": total(last.gateways, "db_pool", "size") if last else None,
        "db_waits": _delta(prev, last, lambda s: total(s.gateways, "db_pool", "waits")),
        "chatlog_backlog_peak": _max([total(s.shards, "chatlog", "backlog") for s in samples]),
        "loop_lag_ms_peak": _max([_max([dig(r, "loop_lag_ms") for r in s.gateways]) for s in samples]),
        "gw_writes_s": _rate(prev, last, _gateways, "writes"),
        "gw_deliveries_s": _rate(prev, last, _gateways, "deliveries"),
        "slow_consumers": _delta(prev, last, lambda s: total(s.gateways, "slow_consumers")),
        "gc_pause_ms": _delta(prev, last, lambda s: total(s.gateways + s.shards, "gc", "pause_total_ms")),
        "cpu_percent": _mean([total(s.gateways + s.shards, "cpu_percent") for s in samples]),
        "rss_bytes": total(last.gateways + last.shards, "rss_bytes") if last else None,
        "unreachable": max((s.unreachable for s in samples), default=None),
        "samples": len(samples),
    }


def server_window(samples: list[Sample], t_from: float, t_to: float) -> dict:
    """server_row over the samples taken in (t_from, t_to], with the last one at or before t_from as the base."""
    prev = None
    inside = []
    for s in samples:
        if s.t <= t_from:
            prev = s
        elif s.t <= t_to:
            inside.append(s)
    return server_row(prev, inside)


# ---------------------------------------------------------------------------- I/O: where and how to ask

def endpoints_from_run_file(data_dir: str | Path) -> list[Endpoint]:
    """Every process's control endpoint, as `chatctl up` wrote them to <data-dir>/run/cluster.json."""
    config = ClusterConfig.load(Path(data_dir) / RUN_FILE)
    return ([("gateway", g.control_host, g.control_port) for g in config.gateways]
            + [("shard", s.control_host, s.control_port) for s in config.shards])


def probe_endpoints(host: str, port: int, fetch: Callable[[tuple[str, int]], dict],
                    max_shards: int = 256) -> list[Endpoint]:
    """Without a run file: `chatctl up`'s default layout (gateway control on port+1, shard k on port+2+k)."""
    found: list[Endpoint] = []
    try:
        if fetch((host, port + 1)).get("role") != "gateway":
            return []
    except (OSError, ValueError):
        return []
    found.append(("gateway", host, port + 1))
    for k in range(max_shards):
        try:
            if fetch((host, port + 2 + k)).get("role") != "shard":
                break
        except (OSError, ValueError):
            break
        found.append(("shard", host, port + 2 + k))
    return found


class StatusSampler(threading.Thread):
    """Polls every endpoint once a period (a daemon thread: it must never hold the bench up)."""

    def __init__(self, endpoints: list[Endpoint], fetch: Callable[[tuple[str, int]], dict],
                 period: float = 1.0) -> None:
        super().__init__(name="status-sampler", daemon=True)
        self.endpoints = endpoints
        self.fetch = fetch
        self.period = period
        self.samples: list[Sample] = []
        self._stop_event = threading.Event()

    def sample_once(self) -> Sample:
        sample = Sample(time.monotonic())
        for role, host, port in self.endpoints:
            try:
                row = self.fetch((host, port))
            except (OSError, ValueError):
                sample.unreachable += 1
                continue
            (sample.gateways if row.get("role", role) == "gateway" else sample.shards).append(row)
        sample.t = (sample.t + time.monotonic()) / 2
        return sample

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._stop_event.is_set():
            self.samples.append(self.sample_once())
            next_at += self.period
            self._stop_event.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=5)
