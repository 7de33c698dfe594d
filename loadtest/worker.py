"""A load-generator process: the asyncio adapter around BenchClient (one process, a share of the clients).

The parent starts P of these (multiprocessing, spawn context) and steps them
through the same phases over a pipe: log in -> create rooms -> join -> start
at a common monotonic time -> send ticks every second -> drain -> final.
Each process handles the clients i with i % P == k, on uvloop when
available, with asyncio Protocols (no streams: one callback per read, no
extra buffering; protocols.py), over raw TCP or WebSocket, with or without TLS.

With --churn, each process also drops connections of its clients at random
(a Poisson process of churn/P per second, from the start until CHURN_STOP_S
before the last send; half of the drops take the client's next message down
with them, unwritten, so that only a resend can bring it), and reconnects each: a new connection, a login, a
resuming join (retried with back-off while a shard answers UNAVAILABLE).
What the resume means is BenchClient's to judge (core.py); the sends due
while a client is away are skipped (`skipped_offline`).

Pipe messages (tuples, pickled by multiprocessing):
  parent -> worker: ("create",) ("join", [room ids]) ("start", t0_ns) ("finish",)
  worker -> parent: ("progress", k, phase, done) ("ready", k, phase, data) ("tick", k, report)
                    ("drain", k, figures) ("final", k, report) ("error", k, text)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

from chatcluster.common.frames import MsgId
from chatcluster.proto import chat_pb2

from .accounting import LATE_US, Counters, encode_histogram, new_histogram
from .core import BenchClient
from .profile import PayloadMix, Profile, TextPool, clients_of
from .protocols import BenchProtocol, SetupError, WsBenchProtocol
from .schedule import NS, SendSchedule, draw_phase
from .tls import client_context

monotonic_ns = time.monotonic_ns
EARLY_NS = 500_000          # a send due within 0.5 ms is sent now rather than re-arming a timer
DRAIN_PERIOD = 0.1
CHURN_STOP_S = 2.0          # no drop in the last seconds of sending: every client is back before the end
RECONNECT_FIRST = 0.05      # back-off of a reconnection (connect, login, resume): first wait, doubling ...
RECONNECT_MAX = 1.0         # ... up to this
RECONNECT_FOR = 20.0        # a client not back in its room after this long is given up (counted dead)
LOSE_SHARE = 0.5            # drops that take the client's next message down with them (it must be resent)


class Retry(Exception):
    """A step of a reconnection failed in a way worth another try."""


class GiveUp(Exception):
    """The resume was refused for good (the room is gone, say): the client is out of the run."""


@dataclass
class WorkerSpec:
    index: int
    procs: int
    host: str
    port: int
    profile: Profile
    login_concurrency: int = 64
    connect_timeout: float = 10.0
    reply_timeout: float = 60.0
    transport: str = "tcp"          # tcp, ws (binary frames) or ws-json; ws connects to `port` as the HTTP port
    tls: bool = False
    ca: str | None = None           # with tls: the CAs to trust (None: the system's)


def _describe_refusal(kind: int, msg: object) -> str:
    if kind == MsgId.S_ERROR:
        code = msg.code  # type: ignore[attr-defined]
        name = chat_pb2.ErrorCode.Name(code) if code in chat_pb2.ErrorCode.values() else str(code)
        return f"S_ERROR {name} {msg.message}"  # type: ignore[attr-defined]
    return f"{MsgId(kind).name} success=false {getattr(msg, 'message', '')!r}"


class Worker:
    def __init__(self, conn: Connection, spec: WorkerSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.profile = spec.profile
        self.counters = Counters()
        self.hist = new_histogram()
        self.errors: list[str] = []
        self.closing = False
        self.indices = list(clients_of(spec.index, spec.procs, self.profile.clients))
        sizes = self.profile.room_sizes()
        self.clients = [BenchClient(i, self.profile.name(i), self.counters, self.hist, self.profile.clients,
                                    None, self.errors, json=spec.transport == "ws-json",
                                    churn=self.profile.churn > 0, room_size=sizes[self.profile.room_of(i)])
                        for i in self.indices]
        self.offline = [False] * len(self.clients)  # dropped (--churn) and not back in the room yet
        self.scheds: list[SendSchedule | None] = [None] * len(self.clients)
        self.reconnects: set[asyncio.Task] = set()
        self.ssl = client_context(spec.ca) if spec.tls else None
        self.protos: list[BenchProtocol | None] = [None] * len(self.clients)
        self.commands: asyncio.Queue = asyncio.Queue()
        self.rng = random.Random(f"{self.profile.seed}/{spec.index}")
        self.mix = PayloadMix.parse(self.profile.mix)
        self.pool = TextPool(self.rng)
        self.done_count = 0

    # ---- pipe ---------------------------------------------------------------------
    def send(self, *msg: object) -> None:
        self.conn.send(msg)

    def _on_pipe(self) -> None:
        try:
            msg = self.conn.recv()
        except (EOFError, OSError):
            msg = ("abort",)
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        self.commands.put_nowait(msg)

    async def command(self, expected: str) -> tuple:
        msg = await self.commands.get()
        if msg[0] != expected:
            raise SetupError(f"worker {self.spec.index}: expected {expected!r} from the parent, got {msg[0]!r}")
        return msg

    async def _progress(self, phase: str) -> None:
        while True:
            self.send("progress", self.spec.index, phase, self.done_count)
            await asyncio.sleep(0.25)

    async def _run_phase(self, phase: str, steps: list) -> None:
        self.done_count = 0
        reporter = asyncio.create_task(self._progress(phase))
        try:
            await asyncio.gather(*steps)
        finally:
            reporter.cancel()
        self.send("progress", self.spec.index, phase, self.done_count)

    # ---- setup ----------------------------------------------------------------------
    async def _connect(self, slot: int) -> BenchProtocol:
        """A new connection for the client in this slot (made its protocol), opened; SetupError if not."""
        loop = asyncio.get_running_loop()
        client = self.clients[slot]
        spec = self.spec
        if spec.transport == "tcp":
            def factory() -> BenchProtocol:
                return BenchProtocol(client, self)
        else:
            def factory() -> BenchProtocol:
                return WsBenchProtocol(client, self, spec.host, spec.port)
        tls = {"ssl": self.ssl, "server_hostname": spec.host} if self.ssl is not None else {}
        try:
            _, proto = await asyncio.wait_for(
                loop.create_connection(factory, spec.host, spec.port, **tls), spec.connect_timeout)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            raise SetupError(f"{client.name}: cannot connect to {spec.host}:{spec.port}"
                             f"{' (TLS)' if tls else ''}: {exc}") from None
        self.protos[slot] = proto
        await proto.opened(spec.connect_timeout)
        return proto

    async def _login(self, slot: int, sem: asyncio.Semaphore) -> None:
        client = self.clients[slot]
        spec = self.spec
        async with sem:
            proto = await self._connect(slot)
            kind, msg = await proto.request(client.login_frame(self.profile.password), spec.reply_timeout)
            if kind != MsgId.S_LOGIN_RES or not msg.success:
                raise SetupError(f"{client.name}: login refused: {_describe_refusal(kind, msg)}")
        self.done_count += 1

    async def _create(self, slot: int, sem: asyncio.Semaphore, out: dict[int, int]) -> None:
        client = self.clients[slot]
        room = self.profile.room_of(client.index)
        async with sem:
            kind, msg = await self.protos[slot].request(  # type: ignore[union-attr]
                client.create_frame(self.profile.room_name(room)), self.spec.reply_timeout)
        if kind != MsgId.S_CREATE_ROOM_RES or not msg.success:
            raise SetupError(f"{client.name}: create room refused: {_describe_refusal(kind, msg)}")
        out[room] = msg.room.room_id
        self.done_count += 1

    async def _join(self, slot: int, sem: asyncio.Semaphore, room_ids: list[int]) -> None:
        client = self.clients[slot]
        room_id = room_ids[self.profile.room_of(client.index)]
        async with sem:
            kind, msg = await self.protos[slot].request(  # type: ignore[union-attr]
                client.join_frame(room_id), self.spec.reply_timeout)
        if kind != MsgId.S_JOIN_ROOM_RES or not msg.success:
            raise SetupError(f"{client.name}: join room {room_id} refused: {_describe_refusal(kind, msg)}")
        self.done_count += 1

    # ---- the measured part ----------------------------------------------------------
    def _arm(self, slot: int, sched: SendSchedule) -> None:
        due = sched.next_due_ns()
        if due is None:
            return
        delay = (due - monotonic_ns()) / NS
        asyncio.get_running_loop().call_later(max(0.0, delay), self._fire, slot, sched)

    def _fire(self, slot: int, sched: SendSchedule) -> None:
        now = monotonic_ns()
        client = self.clients[slot]
        proto = self.protos[slot]
        c = self.counters
        rng, mix, pool = self.rng, self.mix, self.pool
        from_schedule = self.profile.latency_from == "schedule"
        offline = self.offline[slot]
        for n in sched.take_due(now + EARLY_NS):
            if offline:
                c.skipped_offline += 1
                continue
            if proto is None or not proto.alive:
                c.unsent += 1
                continue
            due = sched.due_ns(n)
            text = pool.text(rng, mix.sample(rng))
            frame = client.chat_frame(n, sched.measured(n), text, due if from_schedule else monotonic_ns())
            proto.write(frame)
            lag_us = (now - due) // 1000
            if lag_us > 0:
                c.lag_sum_us += lag_us
                if lag_us > LATE_US:
                    c.late += 1
                if lag_us > c.lag_max_us:
                    c.lag_max_us = lag_us
        self._arm(slot, sched)

    def _tick_report(self, k: int) -> dict:
        c = self.counters
        t = os.times()
        report = {"k": k, "counts": c.as_dict(), "hist": encode_histogram(self.hist), "lag_max_us": c.lag_max_us,
                  "cpu_s": t.user + t.system, "cpu_user_s": t.user, "cpu_sys_s": t.system}
        self.hist.reset()
        c.lag_max_us = 0
        return report

    async def _ticks(self, t0_ns: int) -> None:
        last = self.profile.warmup + self.profile.duration
        for k in range(last + 1):
            delay = (t0_ns + k * NS - monotonic_ns()) / NS
            if delay > 0:
                await asyncio.sleep(delay)
            self.send("tick", self.spec.index, self._tick_report(k))

    def _in_flight(self) -> int:
        """Measured messages whose own copy is still awaited, and clients still on their way back (churn)."""
        return sum(client.measured_in_flight() for client in self.clients) + sum(self.offline)

    async def _drain(self) -> None:
        churn = self.profile.churn > 0
        while True:
            c = self.counters
            self.send("drain", self.spec.index,
                      {"in_flight": self._in_flight(), "expected": c.expected_all if churn else c.expected,
                       "delivered": c.delivered})
            await asyncio.sleep(DRAIN_PERIOD)

    # ---- churn --------------------------------------------------------------------------
    async def _churn(self, t0_ns: int) -> None:
        """Drop a random connected client's connection at random times (Poisson, churn/P per second)."""
        p = self.profile
        rate = p.churn / self.spec.procs
        end_ns = t0_ns + int((p.send_seconds - CHURN_STOP_S) * NS)
        rng = random.Random(f"{p.seed}/churn/{self.spec.index}")
        at = t0_ns
        while True:
            at += int(rng.expovariate(rate) * NS)
            if at >= end_ns:
                return
            delay = (at - monotonic_ns()) / NS
            if delay > 0:
                await asyncio.sleep(delay)
            online = [s for s, away in enumerate(self.offline)
                      if not away and (proto := self.protos[s]) is not None and proto.alive]
            if online:
                self._drop(rng.choice(online), rng.random() < LOSE_SHARE)

    def _drop(self, slot: int, lose_next: bool = False) -> None:
        """Drop the connection; with lose_next, the client's next message goes down with it, never written."""
        proto = self.protos[slot]
        assert proto is not None
        client = self.clients[slot]
        sched = self.scheds[slot]
        self.offline[slot] = True
        c = self.counters
        c.drops += 1
        if lose_next and sched is not None and (due := sched.next_due_ns()) is not None:
            for n in sched.take_due(due):  # sent as far as the client knows: only a resend can bring it
                client.chat_frame(n, sched.measured(n), self.pool.text(self.rng, self.mix.sample(self.rng)),
                                  monotonic_ns())
                c.lost_at_drop += 1
        client.dropped()
        proto.drop()
        task = asyncio.create_task(self._reconnect(slot))
        self.reconnects.add(task)
        task.add_done_callback(self.reconnects.discard)

    async def _reconnect(self, slot: int) -> None:
        """A new connection, a login and a resume for a dropped client, with back-off; given up after a while."""
        client = self.clients[slot]
        spec = self.spec
        c = self.counters
        delay = RECONNECT_FIRST
        deadline = time.monotonic() + RECONNECT_FOR
        while not self.closing:
            proto: BenchProtocol | None = None
            try:
                proto = await self._connect(slot)
                kind, msg = await proto.request(client.login_frame(self.profile.password), spec.reply_timeout)
                if kind != MsgId.S_LOGIN_RES or not msg.success:
                    raise Retry(f"login after a drop refused: {_describe_refusal(kind, msg)}")
                while True:
                    kind, msg = await proto.request(client.resume_frame(), spec.reply_timeout)
                    if kind == MsgId.S_JOIN_ROOM_RES and msg.success:
                        self.offline[slot] = False
                        return
                    if kind == MsgId.S_ERROR and msg.code == chat_pb2.UNAVAILABLE and time.monotonic() < deadline:
                        await asyncio.sleep(delay)  # a shard restoring the room: try again on this connection
                        delay = min(2 * delay, RECONNECT_MAX)
                        continue
                    raise GiveUp(f"resume refused: {_describe_refusal(kind, msg)}")
            except (Retry, SetupError) as exc:  # SetupError: cannot connect, no answer, connection closed
                why = str(exc)
            except GiveUp as exc:
                client._sample_error(f"{client.name}: {exc}")
                break
            c.relogin_retries += 1
            client.dropped()  # a half-made connection: forget what it was in the middle of
            if proto is not None and proto.alive:
                proto.drop()
            if time.monotonic() + delay > deadline:
                client._sample_error(f"{client.name}: not back after a drop: {why}")
                break
            await asyncio.sleep(delay)
            delay = min(2 * delay, RECONNECT_MAX)
        else:
            return
        # Given up: the client is out of the run; its later sends count as unsent, its connection as dead.
        c.dead += 1
        self.offline[slot] = False
        proto = self.protos[slot]
        if proto is not None and proto.alive:
            proto.drop()

    # ---- the whole run -----------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.conn.fileno(), self._on_pipe)
        p, spec = self.profile, self.spec
        per_proc = max(1, spec.login_concurrency // spec.procs)
        sem = asyncio.Semaphore(per_proc)
        slots = range(len(self.clients))
        try:
            await self._run_phase("login", [self._login(s, sem) for s in slots])
            self.send("ready", spec.index, "login", None)

            await self.command("create")
            rooms: dict[int, int] = {}
            await self._run_phase("create", [self._create(s, sem, rooms) for s in slots
                                             if p.is_creator(self.clients[s].index)])
            self.send("ready", spec.index, "create", rooms)

            _, room_ids = await self.command("join")
            await self._run_phase("join", [self._join(s, sem, room_ids) for s in slots
                                           if not p.is_creator(self.clients[s].index)])
            self.send("ready", spec.index, "join", None)

            _, t0_ns = await self.command("start")
        except SetupError as exc:
            self.send("error", spec.index, str(exc))
            return

        sizes = p.room_sizes()
        for slot in slots:
            sched = self.scheds[slot] = SendSchedule(t0_ns, p.rps, draw_phase(self.rng, p.rps), p.warmup, p.duration)
            self._arm(slot, sched)
        ticks = asyncio.create_task(self._ticks(t0_ns))
        churn = asyncio.create_task(self._churn(t0_ns)) if p.churn > 0 else None
        finish = asyncio.create_task(self.command("finish"))
        done, _ = await asyncio.wait({ticks, finish}, return_when=asyncio.FIRST_COMPLETED)
        if finish in done:  # the parent gave up early (Ctrl-C or another worker failed)
            ticks.cancel()
        else:
            drain = asyncio.create_task(self._drain())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(finish), p.grace + 30.0)
            drain.cancel()
        if churn is not None:
            churn.cancel()
        away = sum(self.offline)
        for task in list(self.reconnects):
            task.cancel()
        members_mismatch = sum(1 for client in self.clients
                               if client.members != sizes[p.room_of(client.index)])
        for client in self.clients:
            client.settle()
        self.send("final", spec.index, {"counts": self.counters.as_dict(), "hist": encode_histogram(self.hist),
                                        "errors_sample": self.errors, "members_mismatch": members_mismatch,
                                        "reconnecting_at_end": away,
                                        "cpu_s": time.process_time(), "loop": type(loop).__module__})
        self.closing = True
        for proto in self.protos:
            if proto is not None:
                proto.finish()
        await asyncio.sleep(0)


def raise_nofile() -> None:
    """Soft limit on open files up to the hard limit: a process holds a socket per client."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Process entry point (importable, so the spawn context can start it).

    Ctrl-C is the parent's to handle: it stops the workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile()
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:  # pragma: no cover - Windows, or uvloop not installed
        runner = asyncio.run
    profile_dir = os.environ.get("CHATBENCH_PROFILE")  # a cProfile of each worker, to find what a delivery costs
    try:
        if profile_dir:
            import cProfile

            cProfile.runctx("runner(Worker(conn, spec).run())", globals(), {"runner": runner, "conn": conn,
                            "spec": spec}, os.path.join(profile_dir, f"worker-{spec.index}.prof"))
        else:
            runner(Worker(conn, spec).run())
    except KeyboardInterrupt:
        pass
    except BaseException:
        with contextlib.suppress(OSError, ValueError):
            conn.send(("error", spec.index, f"worker {spec.index} crashed:\n{traceback.format_exc()}"))
        os._exit(1)
    finally:
        conn.close()
