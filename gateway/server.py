"""The gateway process: asyncio transports and ZeroMQ links around a GatewayCore.

Only loop-agnostic asyncio APIs are used (Protocol callbacks, call_soon,
run_in_executor, create_server), so the same code runs on uvloop, the stock
selector loop and Windows' IOCP ProactorEventLoop; ZeroMQ joins whichever
loop through common/zmqbridge.py. Everything that blocks (password hashing,
database queries) runs in a thread pool.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import ssl
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from chatcluster.common import logs, procutil
from chatcluster.common.config import ClusterConfig
from chatcluster.common.control import ControlServer, Snapshot
from chatcluster.common.counters import Counters
from chatcluster.common.errors import StartupError
from chatcluster.common.histogram import LOOP_SECONDS, WAIT_SECONDS, Histogram
from chatcluster.common.storage import CPU, DB, Database, drive_steps, login_steps, token_login_steps
from chatcluster.common.tokens import TokenKey
from chatcluster.common.zmqbridge import Links, open_links
from chatcluster.gateway import outlets
from chatcluster.gateway.api import ApiDoor, Call, Response, load_api_key
from chatcluster.gateway.core import GatewayCore
from chatcluster.gateway.operations import account_step
from chatcluster.gateway.outlets import Writer
from chatcluster.gateway.output import (
    Account,
    AllocateRoom,
    Answered,
    Close,
    Effect,
    Login,
    PauseReading,
    ResumeReading,
    TokenLogin,
)
from chatcluster.gateway.session import Session, State
from chatcluster.gateway.websocket import ChatSink, WebEndpoint

CLOSED = State.CLOSED
IN_ROOM = State.IN_ROOM

log = logging.getLogger("chatcluster.gateway")

DRAIN_SECONDS = 2.0  # on shutdown, how long clients get to read their SHUTTING_DOWN
LAG_PROBE = 0.02     # seconds between loop-lag samples
ANSWERS_EVERY = 64   # sessions written between two looks at what the shards sent meanwhile
HANDSHAKE_SECONDS = 10.0  # a TLS handshake that takes longer is dropped



def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop to run on: uvloop where it exists, IOCP on Windows, or the stock loop."""
    if name == "auto":
        name = "asyncio" if sys.platform == "win32" else "uvloop"
        if name == "uvloop":
            try:
                import uvloop  # noqa: F401
            except ImportError:
                name = "asyncio"
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "asyncio":
        # On Windows this is the ProactorEventLoop (IOCP), elsewhere the selector loop.
        return asyncio.new_event_loop
    raise ValueError(f"unknown event loop {name!r}; use auto, uvloop or asyncio")


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """uvloop, or asyncio's loop class (SelectorEventLoop / ProactorEventLoop)."""
    module = type(loop).__module__.split(".")[0]
    return "uvloop" if module == "uvloop" else type(loop).__name__.lstrip("_").replace("Unix", "")


class OffloadTimer:
    """Work handed to a thread pool: how long it queued for a thread, how long it ran (from any thread).

    The pool's threads record concurrently, hence the lock (the histograms have none of their own).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs = 0
        self.queued_total = 0.0
        self.queued_max = 0.0
        self.run_total = 0.0
        self.queued = Histogram(WAIT_SECONDS)
        self.ran = Histogram(WAIT_SECONDS)

    def record(self, queued: float, ran: float) -> None:
        with self._lock:
            self.jobs += 1
            self.queued_total += queued
            self.queued_max = max(self.queued_max, queued)
            self.run_total += ran
            self.queued.observe(queued)
            self.ran.observe(ran)

    def as_dict(self) -> dict[str, object]:
        jobs = self.jobs or 1
        return {"jobs": self.jobs, "queue_wait_avg_ms": self.queued_total / jobs * 1000,
                "queue_wait_max_ms": self.queued_max * 1000, "run_avg_ms": self.run_total / jobs * 1000,
                "queue_wait_seconds": self.queued.as_dict(), "run_seconds": self.ran.as_dict()}


def open_writer(mode: str, loop: asyncio.AbstractEventLoop) -> Writer | None:
    """The writer thread (--writer thread), or None: the loop writes (auto, loop).

    auto is the loop: on the 2-core machine the figures come from, the writer
    thread lost at the seed profile and below (docs/PERFORMANCE.md).
    """
    if mode in ("auto", "loop"):
        return None
    if not outlets.available():
        raise StartupError("--writer thread needs the compiled gateway/_sendmany.c (pip install -e . with a C "
                           "compiler) and Linux's epoll and eventfd; use --writer loop")
    return Writer(loop.call_soon_threadsafe)


class ClientProtocol(asyncio.Protocol):
    """One client connection; hands everything to the core."""

    __slots__ = ("server", "session", "transport")

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        server = self.server
        server.connections += 1
        limit = server.config.limits.write_buffer
        # Above `limit` unsent bytes, pause_writing fires: the client is not reading.
        transport.set_write_buffer_limits(high=limit, low=limit // 2)
        peer = transport.get_extra_info("peername")
        self.session = server.core.open_session(transport, f"{peer[0]}:{peer[1]}" if peer else "?")
        server.poke()

    def data_received(self, data: bytes) -> None:
        server = self.server
        server.core.on_data(self.session, data)
        if not server.flush_scheduled:
            server.poke()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections -= 1
        self.server.core.connection_lost(self.session)
        self.server.poke()

    def pause_writing(self) -> None:
        session = self.session
        if session is not None and session.transport is not None:
            self.server.core.on_slow_consumer(session, session.transport.get_write_buffer_size())
            self.server.poke()

    def resume_writing(self) -> None:
        pass


class WriteStats(Counters):
    __slots__ = ("writes", "bytes_out", "mid_pass_answers")  # mid_pass: write phases that took in shard answers


class GatewayServer:
    """Runs a GatewayCore on a real loop: feeds it sockets, shard links and thread pools, and carries out
    what it asks, once per loop pass (flush)."""

    def __init__(self, config: ClusterConfig, gateway_id: int, loop: asyncio.AbstractEventLoop, db: Database,
                 db_executor: ThreadPoolExecutor, cpu_executor: ThreadPoolExecutor, node: str = "") -> None:
        self.config = config
        self.spec = config.gateway(gateway_id)
        self.gateway_id = gateway_id
        self.loop = loop
        self.db = db
        self.db_executor = db_executor    # one thread per pooled connection
        self.cpu_executor = cpu_executor  # password hashing: one thread per core
        node = node or f"gw{gateway_id}"  # the ZeroMQ identity shards know this gateway by
        self.node = node
        self.token_key = token_key(config)
        self.core = GatewayCore(config.shard_ids, config.limits, registration_open=config.registration == "open",
                                auth=config.auth if self.token_key is not None else "password", node=node)
        self.links: Links = open_links(loop, config.zmq_bridge, node.encode(),
                                       [s.endpoint for s in config.shards], self._on_shard_batch)
        self.writer = open_writer(config.writer, loop)
        self.flush_scheduled = False
        self.connections = 0  # transports not yet closed (a closing one still drains its buffer)
        self.stats = WriteStats()
        self.offload_timers = {DB: OffloadTimer(), CPU: OffloadTimer()}
        self.lag_max_ms = 0.0     # since start
        self.lag_window_ms = 0.0  # since the last published figures
        # Distributions for /metrics, recorded on the loop (one bucket increment each; common/histogram.py).
        self.flush_seconds = Histogram(LOOP_SECONDS)
        self.lag_seconds = Histogram(LOOP_SECONDS)
        self.login_seconds = Histogram(WAIT_SECONDS)
        self.send_buffer_peak = 0
        self.send_buffer_peak_sessions = 0
        self.snapshot = Snapshot()
        self.figures = procutil.ProcessFigures()
        self.write_limit = config.limits.write_buffer  # unsent bytes a session may hold before it is dropped
        self.web = WebEndpoint(ChatSink(self.core, self.poke, self._opened, self._closed), config.limits,
                               config.allow_origins)
        self.api = self._api_door(config)
        self.api_waiting: dict[int, Future[Response]] = {}  # operator API calls the loop has not answered yet
        self._api_ids = itertools.count(1)

    def _api_door(self, config: ClusterConfig) -> ApiDoor | None:
        """The operator API (gateway/api.py), or None where no key is configured: then it is off."""
        try:
            key = load_api_key(config)
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        return ApiDoor(key, config.limits, self.submit_api) if key is not None else None

    def submit_api(self, call: Call) -> Future[Response]:
        """From the HTTP thread: hand an API call to the loop, which alone touches the core; the Future is
        answered there (an Answered effect), RuntimeError if the loop is closed."""
        future: Future[Response] = Future()
        self.loop.call_soon_threadsafe(self._api_call, call, future)
        return future

    def _api_call(self, call: Call, future: Future[Response]) -> None:
        call_id = next(self._api_ids)
        self.api_waiting[call_id] = future
        self.core.on_api_call(call_id, call)
        self.poke()

    def _opened(self) -> None:
        self.connections += 1

    def _closed(self) -> None:
        self.connections -= 1

    @property
    def writer_mode(self) -> str:
        return "thread" if self.writer is not None else "loop"

    # ---- inputs that do not come from a client socket -------------------------------
    def _on_shard_batch(self, shard: int, data: bytes) -> None:
        self.core.on_shard_batch(shard, data)
        if not self.flush_scheduled:
            self.poke()

    def poke(self) -> None:
        """After any input: if the core has output, carry it out at the end of this loop pass."""
        if not self.flush_scheduled and self.core.has_output:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    # ---- the once-per-pass flush ------------------------------------------------------
    def flush(self) -> None:
        """Carry out everything the core queued: envelopes, then writes, then effects (closes last)."""
        started = time.perf_counter()
        self.flush_scheduled = False
        output = self.core.take_output()
        for shard, data in output.envelopes:
            self.links.send(shard, data)
        if output.writes:
            self._write(output.writes)
            self.web.json_cache.new_pass()
        for effect in output.effects:
            self._carry_out(effect)
        self.poke()  # what came in meanwhile (mid-pass answers, effects) goes out next pass
        self.flush_seconds.observe(time.perf_counter() - started)

    def _write(self, sessions: list[Session]) -> None:
        """One write per session; meanwhile, what the shards answered reaches the sessions not yet written."""
        writes = written = 0
        writer = self.writer
        pushed = False
        take_arrived = self.links.take_arrived if writer is None else None
        links = self.links.stats
        for n, session in enumerate(sessions):  # the hot loop
            if take_arrived is not None and n and not n % ANSWERS_EVERY:
                # A long write phase outlasts a shard's round trip: answers that came meanwhile go out now.
                before = links.received
                take_arrived()
                if links.received != before:
                    self.stats.mid_pass_answers += 1
            if not session.out:
                continue  # written already, earlier in this pass (see gateway/output.py)
            transport = session.transport
            if session.state is CLOSED and transport.is_closing():
                session.out.clear()
                continue
            data = session.take_out()
            written += len(data)
            outlet = session.outlet
            if outlet is None and writer is not None and session.state is IN_ROOM:
                outlet = self._open_outlet(session, transport)
            if outlet is not None:
                writer.push(outlet, data)
                pushed = True
                if outlet.queued > self.write_limit:
                    self.core.on_slow_consumer(session, outlet.queued)
            else:
                writes += 1
                transport.write(data)
        if pushed:
            writer.wake()
        self.stats.writes += writes
        self.stats.bytes_out += written

    def _carry_out(self, effect: Effect) -> None:
        if type(effect) is Close:
            self._close(effect.session, effect.abort)
        elif type(effect) is PauseReading:
            if not effect.session.transport.is_closing():
                effect.session.transport.pause_reading()
        elif type(effect) is ResumeReading:
            if not effect.session.transport.is_closing():
                effect.session.transport.resume_reading()
        elif type(effect) is Login:
            steps = login_steps(self.db, effect.name, effect.password, self.core.registration_open)
            drive_steps(steps, self._run_step, self._login_answer(effect.request))
        elif type(effect) is TokenLogin:
            steps = token_login_steps(self.db, self.token_key, effect.token)
            drive_steps(steps, self._run_step, self._login_answer(effect.request))
        elif type(effect) is AllocateRoom:
            request = effect.request
            future = self._offload(DB, self.db.allocate_room, effect.name, effect.creator_id)
            future.add_done_callback(lambda f: self._answer(self.core.on_room_allocated, request, _outcome(f)))
        elif type(effect) is Answered:
            future = self.api_waiting.pop(effect.call, None)
            if future is not None and not future.done():  # done: the HTTP thread gave up (504)
                future.set_result(effect.response)
        elif type(effect) is Account:
            request = effect.request
            future = self._offload(DB, account_step, self.db, effect)
            future.add_done_callback(lambda f: self._answer(self.core.on_account_done, request, _outcome(f)))
        else:
            raise TypeError(f"unknown effect {effect!r}")

    def _login_answer(self, request: int) -> Callable[[object], None]:
        """What a login's outcome is handed to (on the loop): the core, and the login's duration to its histogram."""
        started = time.perf_counter()

        def answer(result: object) -> None:
            self.login_seconds.observe(time.perf_counter() - started)
            self._answer(self.core.on_login_done, request, result)

        return answer

    def _answer(self, method: Callable[[int, object], None], request: int, result: object) -> None:
        method(request, result)
        self.poke()

    def _run_step(self, kind: str, fn: Callable, args: tuple, resume: Callable[[object], None]) -> None:
        """A login step on the DB or the CPU pool; its outcome resumes the steps on the loop."""
        self._offload(kind, fn, *args).add_done_callback(lambda f: resume(_outcome(f)))

    def _offload(self, kind: str, fn: Callable, *args: object) -> asyncio.Future:
        """Run fn on the DB or CPU thread pool, timing how long it queued for a thread and how long it ran."""
        timer = self.offload_timers[kind]
        submitted = time.perf_counter()

        def timed() -> object:
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                timer.record(started - submitted, time.perf_counter() - started)

        return self.loop.run_in_executor(self.db_executor if kind == DB else self.cpu_executor, timed)

    def _close(self, session: Session, abort: bool) -> None:
        transport = session.transport
        outlet = session.outlet
        if outlet is not None:
            # The writer sends what is queued, then closes its copy of the socket; only then does the
            # client see the close, so the frames queued before it (SHUTTING_DOWN, say) arrive first.
            session.outlet = None
            if session.out and not abort:
                self.writer.push(outlet, session.take_out())
            self.writer.close(outlet, abort)
        elif session.out and not abort:
            self.stats.writes += 1
            data = session.take_out()
            self.stats.bytes_out += len(data)
            transport.write(data)
        session.out.clear()
        if abort:
            transport.abort()
        else:
            transport.close()

    def _open_outlet(self, session: Session, transport: asyncio.Transport) -> outlets.Outlet | None:
        """Hand a session's writes to the writer thread, once everything written so far is in the kernel.

        From then on every byte for it goes through its outlet, so nothing overtakes
        what the transport still held. Sessions in the lobby stay on the transport:
        an idle connection costs no second fd.
        """
        if transport.get_write_buffer_size():
            return None
        sock = transport.get_extra_info("socket")
        if sock is None:
            return None

        def failed(why: str) -> None:
            if not session.closed:
                log.debug("%ssend failed: %s", logs.ctx(session.id, session.player_id, session.room_id), why)
                self.core.connection_lost(session)
                self.poke()

        outlet = session.outlet = self.writer.open(sock.fileno(), failed)
        return outlet

    # ---- figures ----------------------------------------------------------------
    def publish(self) -> None:
        st = self.core.stats
        writes = self.stats.writes + (self.writer.sends if self.writer is not None else 0)
        rates = self.figures.rates.per_second({
            "msgs_in": st.chats_in, "deliveries": st.deliveries, "writes": writes,
            "zmq_in": self.links.stats.received, "zmq_out": self.links.stats.sent, "frames_in": st.frames_in,
        })
        lag_window, self.lag_window_ms = self.lag_window_ms, 0.0
        # Unsent bytes in the transports: what clients have not read yet (sampled once a second).
        buffered = [b for s in self.core.sessions.values() if (b := _unsent(s))]
        self.send_buffer_peak = max(self.send_buffer_peak, sum(buffered))
        self.send_buffer_peak_sessions = max(self.send_buffer_peak_sessions, len(buffered))
        self.snapshot.publish({
            "role": "gateway",
            "id": self.gateway_id,
            "node": self.node,
            **self.figures.read(),
            "listen": f"{self.spec.host}:{self.spec.port}",
            "loop": loop_name(self.loop),
            "writer_mode": self.writer_mode,
            "zmq_bridge": self.links.mode,
            **self.core.figures(),
            **self.stats.as_dict(),
            "writes": writes,
            "writer": self.writer.stats() if self.writer is not None else None,
            "send_buffer_bytes": sum(buffered),
            "send_buffer_sessions": len(buffered),
            "send_buffer_peak_bytes": self.send_buffer_peak,
            "send_buffer_peak_sessions": self.send_buffer_peak_sessions,
            "db_pool": self.db.pool.stats(),
            "db_threads": self.offload_timers[DB].as_dict(),
            "hash_threads": self.offload_timers[CPU].as_dict(),
            "loop_lag_ms": lag_window,
            "loop_lag_max_ms": self.lag_max_ms,
            "loop_lag_seconds": self.lag_seconds.as_dict(),
            "flush_seconds": self.flush_seconds.as_dict(),
            "login_seconds": self.login_seconds.as_dict(),
            "zmq": self.links.stats.as_dict(),
            "http_listen": f"{self.spec.host}:{self.spec.http_port}" if self.spec.http_port else "",
            "tls": self.config.tls,
            "websocket": self.web.figures(),
            "api": self.api.figures() if self.api is not None else {"enabled": False},
            **rates,
        })

    async def ticker(self) -> None:
        """Timeouts four times a second, figures once a second, and the loop's own lag in between.

        Lag is how late a 20 ms sleep wakes up: what any callback on this loop
        waited beyond its turn (a blocking call on the loop shows up here).
        """
        next_tick = next_publish = 0.0
        while True:
            expected = time.monotonic() + LAG_PROBE
            await asyncio.sleep(LAG_PROBE)
            now = time.monotonic()
            late = max(0.0, now - expected)
            self.lag_seconds.observe(late)
            lag = late * 1000
            self.lag_max_ms = max(self.lag_max_ms, lag)
            self.lag_window_ms = max(self.lag_window_ms, lag)
            if now >= next_tick:
                self.web.tick(now)
                self.core.tick()
                self.poke()
                next_tick = now + 0.25
            if now >= next_publish:
                self.publish()
                next_publish = now + 1.0


def _unsent(session: Session) -> int:
    """Bytes accepted for a session that the kernel has not taken yet (writer thread or transport)."""
    if session.outlet is not None:
        return session.outlet.queued
    return session.transport.get_write_buffer_size() if session.transport is not None else 0


def _outcome(future: asyncio.Future) -> object:
    exc = future.exception()
    return exc if exc is not None else future.result()


async def serve(config: ClusterConfig, gateway_id: int, node: str = "") -> None:
    loop = asyncio.get_running_loop()
    spec = config.gateway(gateway_id)
    tls = tls_context(config)
    db_executor = ThreadPoolExecutor(max_workers=config.db_pool_size, thread_name_prefix="db")
    cpu_executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="hash")
    # No schema work (the supervisor did it) and no connection yet: a database that is down when the
    # gateway (re)starts makes logins fail with a clear message, not the gateway.
    db = Database(config.db_url, config.db_pool_size, config.scrypt_n)
    try:
        server = GatewayServer(config, gateway_id, loop, db, db_executor, cpu_executor, node)
    except StartupError:
        db_executor.shutdown(wait=False)
        cpu_executor.shutdown(wait=False)
        raise
    server.core.start()  # the first heartbeat goes out before any client traffic
    server.flush()
    stop = asyncio.Event()
    _install_stop(loop, stop.set)
    same_port = [g for g in config.gateways if (g.host, g.port) == (spec.host, spec.port)]
    try:
        listener = await loop.create_server(
            lambda: ClientProtocol(server), spec.host, spec.port, backlog=4096,
            reuse_port=len(same_port) > 1 or None, ssl=tls, ssl_handshake_timeout=HANDSHAKE_SECONDS if tls else None,
        )
    except OSError as exc:
        raise StartupError(f"cannot listen for clients on {spec.host}:{spec.port}: {exc.strerror or exc}") from exc
    listeners = [listener]
    if spec.http_port:
        same_http = [g for g in config.gateways if (g.host, g.http_port) == (spec.host, spec.http_port)]
        try:
            listeners.append(await loop.create_server(
                server.web.protocol, spec.host, spec.http_port, backlog=4096,
                reuse_port=len(same_http) > 1 or None, ssl=tls,
                ssl_handshake_timeout=HANDSHAKE_SECONDS if tls else None,
            ))
        except OSError as exc:
            listener.close()
            raise StartupError(f"cannot listen for HTTP and WebSocket on {spec.host}:{spec.http_port}: "
                               f"{exc.strerror or exc}") from exc
    try:
        control = ControlServer(spec.control_bind_host, spec.control_port, server.snapshot,
                                api=server.api.serve if server.api is not None else None).start()
    except OSError as exc:
        for each in listeners:
            each.close()
        raise StartupError(f"cannot open the control port {spec.control_bind_host}:{spec.control_port}: "
                           f"{exc.strerror or exc}") from exc
    server.publish()
    procutil.tune_runtime(server.figures.gc)
    ticker = loop.create_task(server.ticker())
    scheme = "https" if tls else "http"
    web = f"web page {scheme}://{spec.host}:{spec.http_port}/, " if spec.http_port else "no HTTP port, "
    log.info(" gateway %d listening on %s:%d%s (%sloop: %s, zmq bridge: %s, writer: %s, %d shards, "
             "control http://%s:%d%s, pid %d)", gateway_id, spec.host, spec.port, " with TLS" if tls else "", web,
             loop_name(loop), server.links.mode, server.writer_mode, len(config.shards),
             spec.control_host, control.port, " with the operator API" if server.api is not None else "",
             os.getpid())
    try:
        await stop.wait()
    finally:
        log.info(" gateway %d shutting down: %d sessions", gateway_id, len(server.core.sessions))
        for each in listeners:
            each.close()
        server.core.shutdown()
        server.flush()
        deadline = time.monotonic() + DRAIN_SECONDS
        while server.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        ticker.cancel()
        if server.writer is not None:
            server.writer.stop()
        server.links.close()
        control.close()
        db_executor.shutdown(wait=False, cancel_futures=True)
        cpu_executor.shutdown(wait=False, cancel_futures=True)
        db.close()


def token_key(config: ClusterConfig) -> TokenKey | None:
    """The key token logins are checked with, read once at start; None where token login is off."""
    if not config.auth_tokens:
        return None
    try:
        return TokenKey.from_file(config.token_key_file, config.token_alg, config.limits.token_leeway)
    except (OSError, ValueError) as exc:
        raise StartupError(f"cannot use the token key {config.token_key_file} ({config.token_alg}): "
                           f"{getattr(exc, 'strerror', None) or exc}") from exc


def tls_context(config: ClusterConfig) -> ssl.SSLContext | None:
    """The server side of TLS for the client and HTTP ports, or None without a certificate."""
    if not config.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load the TLS certificate {config.tls_cert} and key {config.tls_key}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from exc
    return context


def _install_stop(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> None:
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
    except (NotImplementedError, AttributeError):  # Windows loops
        procutil.on_stop_signals(lambda: loop.call_soon_threadsafe(stop))


def run_gateway(config: ClusterConfig, gateway_id: int, node: str = "") -> int:
    """Run one gateway. node: its identity towards the shards (default gw<id>); replicas that share one
    config entry (a Kubernetes Deployment) each pass their own, e.g. gw-<pod name>."""
    tag = node or (f"gw{gateway_id}" if len(config.gateways) > 1 else "gw")
    logs.setup(tag, config.verbose, config.log_file(f"gateway-{node or gateway_id}"))
    try:
        with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
            runner.run(serve(config, gateway_id, node))
    except StartupError as exc:
        log.error(" gateway %d: %s", gateway_id, exc)
        return 2
    return 0
