"""The bench's parent process: start (or find) the cluster, drive the worker processes through their phases,
collect their ticks into the tables, and clean everything up whatever happens.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Protocol

from chatcluster.common.config import DEFAULT_HTTP_PORT, auto_shards
from chatcluster.common.control import fetch_status
from chatcluster.spawn import SpawnedCluster, SpawnError

from .kpi import Aggregator
from .profile import Profile, auto_procs
from .report import transport_label
from .schedule import NS
from .server import Endpoint, StatusSampler, endpoints_from_run_file, probe_endpoints, server_window
from .tls import CertificateError, make_self_signed
from .worker import WorkerSpec, raise_nofile, worker_main

START_DELAY_S = 1.0       # between "all joined" and the common start: every join notification has arrived by then
SETUP_STALL_S = 60.0      # no setup progress for this long: give up


class RunAborted(Exception):
    """The run could not be carried out (setup refused, a worker died, the cluster did not start)."""


class Display(Protocol):
    def setup(self, phase: str, done: int, total: int) -> None: ...
    def started(self, profile: Profile, procs: int, host: str, port: int, via: str = "TCP") -> None: ...
    def tick(self, tick: dict) -> None: ...
    def row(self, row: dict, server: dict) -> None: ...
    def note(self, text: str, style: str = "") -> None: ...
    def close(self) -> None: ...


@dataclass
class BenchOptions:
    profile: Profile
    host: str = "127.0.0.1"
    port: int = 7777
    spawn: bool = False
    shards: int = field(default_factory=auto_shards)
    gateways: int = 1
    spawn_args: tuple[str, ...] = ()
    data_dir: str | None = None
    procs: int | None = None        # None: auto
    login_concurrency: int = 64
    transport: str = "tcp"          # tcp, ws or ws-json (report.TRANSPORTS)
    tls: bool = False
    ca: str | None = None           # with tls and without spawn: the CAs to trust (None: the system's)
    http_port: int = DEFAULT_HTTP_PORT  # where ws and ws-json connect (path /ws); --port stays the client port
    extra: dict = field(default_factory=dict)

    @property
    def websocket(self) -> bool:
        return self.transport != "tcp"


# ---------------------------------------------------------------------------- the workers

class Hub:
    """The parent's end of the worker pipes.

    A worker exits once it has sent its final figures, so from then on its
    pipe is at end-of-file: that is the end of its work, not a death, and
    the hub stops listening to it.
    """

    def __init__(self, conns: list[Connection], procs: list[multiprocessing.process.BaseProcess]) -> None:
        self.conns = conns
        self.procs = procs
        self._index = {id(c): k for k, c in enumerate(conns)}
        self.finished: set[int] = set()

    def broadcast(self, *msg: object) -> None:
        for conn in self.conns:
            conn.send(msg)

    def recv(self, timeout: float) -> list[tuple]:
        """Messages waiting now (or within timeout); raises RunAborted on a worker's error or death."""
        out = []
        listening = [c for k, c in enumerate(self.conns) if k not in self.finished]
        for conn in wait(listening, timeout):
            k = self._index[id(conn)]
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                self.procs[k].join(1.0)
                raise RunAborted(f"load-generator worker {k} exited (exit code {self.procs[k].exitcode})") from None
            if msg[0] == "error":
                raise RunAborted(msg[2])
            if msg[0] == "final":
                self.finished.add(k)
            out.append(msg)
        return out

    def stop(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("finish",))
        deadline = time.monotonic() + 5.0
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.terminate()
                proc.join(2.0)
        for conn in self.conns:
            conn.close()


def start_workers(opts: BenchOptions, host: str, port: int, procs: int, ca: str | None = None) -> Hub:
    """The load-generator processes, connecting to host:port (the HTTP port for WebSocket transports)."""
    ctx = multiprocessing.get_context("spawn")
    conns, processes = [], []
    for k in range(procs):
        parent_end, child_end = ctx.Pipe()
        spec = WorkerSpec(index=k, procs=procs, host=host, port=port, profile=opts.profile,
                          login_concurrency=opts.login_concurrency, transport=opts.transport, tls=opts.tls, ca=ca)
        proc = ctx.Process(target=worker_main, args=(child_end, spec), name=f"bench-worker-{k}", daemon=True)
        proc.start()
        child_end.close()
        conns.append(parent_end)
        processes.append(proc)
    return Hub(conns, processes)


def _setup_phase(hub: Hub, phase: str, total: int, ui: Display) -> list[object]:
    """Wait until every worker reports `phase` done; returns their results in worker order."""
    procs = len(hub.conns)
    done = [0] * procs
    ready: dict[int, object] = {}
    last_progress = time.monotonic()
    ui.setup(phase, 0, total)
    while len(ready) < procs:
        for msg in hub.recv(0.25):
            kind, k = msg[0], msg[1]
            if kind == "progress" and msg[2] == phase:
                if msg[3] != done[k]:
                    last_progress = time.monotonic()
                done[k] = msg[3]
            elif kind == "ready" and msg[2] == phase:
                ready[k] = msg[3]
                last_progress = time.monotonic()
        ui.setup(phase, sum(done), total)
        if time.monotonic() - last_progress > SETUP_STALL_S:
            raise RunAborted(f"SETUP TIMEOUT: no {phase} progress for {SETUP_STALL_S:.0f} s "
                             f"({sum(done)}/{total} done)")
    return [ready[k] for k in range(procs)]


# ---------------------------------------------------------------------------- the run

def run_bench(opts: BenchOptions, ui: Display) -> dict:
    """Carry out one bench run and return every figure (see kpi.Aggregator.finish); raises RunAborted."""
    p = opts.profile
    p.validate()
    raise_nofile()  # the workers and a spawned cluster inherit it
    cluster: SpawnedCluster | None = None
    sampler: StatusSampler | None = None
    hub: Hub | None = None
    fetch = functools.partial(fetch_status, timeout=0.5)
    try:
        host, port, http_port, ca = opts.host, opts.port, opts.http_port, opts.ca
        if opts.spawn:
            data_dir = Path(tempfile.mkdtemp(prefix="chatbench-"))
            spawn_args = opts.spawn_args
            if opts.tls:  # a throwaway certificate for this host, trusted by this run only
                try:
                    cert, key = make_self_signed(data_dir / "tls", host)
                except CertificateError as exc:
                    raise RunAborted(str(exc)) from None
                spawn_args += ("--tls-cert", str(cert), "--tls-key", str(key))
                ca = str(cert)
            ui.note(f"starting a cluster: {opts.gateways} gateway(s), {opts.shards} shards"
                    f"{', TLS' if opts.tls else ''} ...")
            try:
                cluster = SpawnedCluster.start(data_dir, *spawn_args, shards=opts.shards, gateways=opts.gateways,
                                               host=host, tied=True)
            except SpawnError as exc:
                raise RunAborted(str(exc)) from None
            port, http_port = cluster.port, cluster.http_port
            endpoints: list[Endpoint] = endpoints_from_run_file(cluster.data_dir)
        elif opts.data_dir:
            endpoints = endpoints_from_run_file(opts.data_dir)
        else:
            endpoints = probe_endpoints(host, port, fetch)
        if not endpoints:
            ui.note("no status endpoints found (pass --data-dir): the server table will be empty", "yellow")
        sampler = StatusSampler(endpoints, fetch)
        sampler.start()

        procs = opts.procs or auto_procs(p, os.cpu_count() or 1)
        procs = max(1, min(procs, p.clients))
        target = http_port if opts.websocket else port
        ui.started(p, procs, host, target, transport_label(opts.transport, opts.tls))
        hub = start_workers(opts, host, target, procs, ca)
        t_setup = time.monotonic()
        _setup_phase(hub, "login", p.clients, ui)
        hub.broadcast("create")
        created = _setup_phase(hub, "create", p.rooms, ui)
        rooms: dict[int, int] = {}
        for part in created:
            rooms.update(part)  # type: ignore[arg-type]
        room_ids = [rooms[r] for r in range(p.rooms)]
        hub.broadcast("join", room_ids)
        _setup_phase(hub, "join", p.clients - p.rooms, ui)
        setup_s = time.monotonic() - t_setup

        t0_ns = time.monotonic_ns() + int(START_DELAY_S * NS)
        hub.broadcast("start", t0_ns)
        agg = Aggregator(p, procs)
        t0 = t0_ns / NS
        while not agg.done:
            for msg in hub.recv(0.25):
                if msg[0] != "tick":
                    continue
                for tick in agg.add_tick(msg[1], msg[2]):
                    ui.tick(tick)
                for row in agg.take_new_rows():
                    end_k = p.warmup + row["sec"]
                    ui.row(row, server_window(list(sampler.samples), t0 + end_k - row["seconds"], t0 + end_k))

        # grace: until every measured copy is in, or the grace period is over
        deadline = t0_ns + int((p.send_seconds + p.grace) * NS)
        drains: dict[int, dict] = {}
        ended_early = False
        while time.monotonic_ns() < deadline:
            for msg in hub.recv(0.05):
                if msg[0] == "drain":
                    drains[msg[1]] = msg[2]
            if len(drains) == procs:
                in_flight = sum(d["in_flight"] for d in drains.values())
                expected = sum(d["expected"] for d in drains.values())
                delivered = sum(d["delivered"] for d in drains.values())
                if in_flight == 0 and delivered >= expected:
                    ended_early = True
                    break
        grace_used = max(0.0, (time.monotonic_ns() - t0_ns) / NS - p.send_seconds)
        hub.broadcast("finish")
        finals: dict[int, dict] = {}
        finish_deadline = time.monotonic() + 30.0
        while len(finals) < procs:
            if time.monotonic() > finish_deadline:
                raise RunAborted("the workers did not send their final figures")
            for msg in hub.recv(0.25):
                if msg[0] == "final":
                    finals[msg[1]] = msg[2]
        sampler.stop()
        samples = list(sampler.samples)
        last_sample = sampler.sample_once()  # after the workers' last figures: what the shards hold at the end
        server_total = server_window(samples, t0 + p.warmup, t0 + p.send_seconds)
        result = agg.finish(finals, server_total.get("gw_writes_s"))
        result["server"] = {
            "endpoints": [{"role": r, "host": h, "port": pt} for r, h, pt in endpoints],
            "rows": [{"sec": row["sec"], **server_window(samples, t0 + p.warmup + row["sec"] - row["seconds"],
                                                         t0 + p.warmup + row["sec"])} for row in result["rows"]],
            "total": server_total,
            # each shard's `history` from its /status once the workers have sent their last figures
            "history": [shard.get("history") for shard in last_sample.shards],
        }
        result["run"] = {
            "host": host, "port": port, "transport": opts.transport, "tls": opts.tls,
            "via": transport_label(opts.transport, opts.tls),
            "http_port": http_port if opts.websocket else None,
            "spawned": bool(cluster), "shards": opts.shards if cluster else None,
            "gateways": opts.gateways if cluster else None,
            "setup_s": round(setup_s, 3), "grace_used_s": round(grace_used, 3), "grace_ended_early": ended_early,
            "members_mismatch": sum(f.get("members_mismatch", 0) for f in finals.values()),
            "churn": p.churn,
            "reconnecting_at_end": sum(f.get("reconnecting_at_end", 0) for f in finals.values()),
            "loadgen_parent_cpu_s": round(time.process_time(), 3),
            "loadgen_loop": next((f.get("loop") for f in finals.values()), None),
            "cpus": os.cpu_count(),
        }
        if result["run"]["reconnecting_at_end"]:  # dropped and never back in the room: it missed the end
            result["failures"]["reconnecting_at_end"] = result["run"]["reconnecting_at_end"]
            result["ok"] = False
        return result
    except RunAborted:
        if cluster is not None:
            tail = "\n".join(cluster.log().splitlines()[-15:])
            ui.note(f"last lines of the spawned cluster's log:\n{tail}", "dim")
        raise
    finally:
        if hub is not None:
            hub.stop()
        if sampler is not None:
            sampler.stop()
        if cluster is not None:
            code = cluster.stop()
            cluster.remove()
            if code not in (0, None, -signal.SIGTERM):
                ui.note(f"the spawned cluster exited with status {code}", "yellow")
