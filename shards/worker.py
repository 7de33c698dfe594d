"""A shard process: a ZeroMQ ROUTER in front of a Shard (shards/shard.py).

No asyncio here: a shard has one socket to serve, so a plain receive loop is
the shortest path. Each wake-up drains the socket (up to a budget), feeds
every batch to the Shard, and sends what it produced as one message per
gateway. A wake-up has a fixed cost (ZeroMQ's I/O thread, the scheduler) that
dwarfs the Python per chat, so the loop makes as few ZeroMQ calls as it can:
plain recv()/send() of the parts, no exception to find the socket empty.
ROUTER_MANDATORY makes an unroutable or full peer an error we count and
hold, instead of the silent drop ZeroMQ does by default.
"""

from __future__ import annotations

import logging
import os
import secrets
import time

import zmq

from chatcluster.common import logs, procutil
from chatcluster.common.config import ClusterConfig
from chatcluster.common.control import ControlServer, Snapshot
from chatcluster.common.counters import Counters
from chatcluster.common.errors import StartupError
from chatcluster.common.histogram import LOOP_SECONDS, Histogram
from chatcluster.common.storage import Database
from chatcluster.common.zmqbridge import HWM, LinkStats, SendQueue
from chatcluster.shards.chatlog import ChatLog, RotatingLines
from chatcluster.shards.rooms import Outbox, check_limits
from chatcluster.shards.shard import Shard
from chatcluster.shards.store import Reader

log = logging.getLogger("chatcluster.shard")

DRAIN_BUDGET = 512
STATUS_ROOM_IDS = 1000  # room ids listed in /status (enough to see who owns what)
BATCH_ENVELOPES = tuple(float(2 ** k) for k in range(15))  # envelopes per wake-up: 1 .. 16384



class WorkerStats(Counters):
    # wakeups: waits that ended with a message (envelopes / wakeups is what a wake-up carries);
    # foreign: ZeroMQ messages that are not [identity, batch], nothing of ours
    __slots__ = ("zmq_in", "wakeups", "envelopes", "foreign", "unroutable")


class ShardWorker:
    def __init__(self, config: ClusterConfig, shard_id: int) -> None:
        self.config = config
        # After a wake-up the shard looks for more work no sooner than this: whatever arrives meanwhile
        # is handled in one go. A wake-up costs far more than the chats it carries (ZeroMQ's I/O thread
        # and the scheduler, twice), so this bounds wake-ups per second; it adds at most this much
        # latency, and only when messages come closer together than this.
        self.wake_gap = config.limits.shard_wake_gap
        self.spec = config.shard(shard_id)
        self.shard_id = shard_id
        check_limits(config.limits)
        self.chatlog: ChatLog | None = None
        self.reader: Reader | None = None
        if config.chat_log:
            # No schema work here: the supervisor migrated it. Connections open on first use, so a
            # database that is down does not stop the shard; the chat log holds the rows instead.
            db = Database(config.db_url, pool_size=1, scrypt_n=config.scrypt_n)
            self.chatlog = ChatLog(db, RotatingLines(config.chat_log_file(shard_id)), config.limits.chat_log_backlog)
            # History older than memory, and a restarted room's recent messages, are read on threads of
            # their own with connections of their own: the writer and the loop never wait for them.
            self.reader = Reader(Database(config.db_url, pool_size=2, scrypt_n=config.scrypt_n))
        # A new incarnation tells gateways this is a new process: its rooms start empty.
        self.shard = Shard(
            shard_id, secrets.randbits(63) | 1, config.limits,
            on_chat=self.chatlog.append if self.chatlog else None,
            on_room_closed=self.chatlog.room_closed if self.chatlog else None,
            can_read=self.reader is not None,
        )
        self.book = self.shard.book
        self.outbox = Outbox()
        self.router: zmq.Socket | None = None
        self.links = LinkStats()
        self.queue = SendQueue(self._send_to_gateway, self.links)
        self.stopping = False
        self.snapshot = Snapshot()
        self.figures = procutil.ProcessFigures()
        self.stats = WorkerStats()  # ZeroMQ out: self.links
        self.jobs_peak = 0
        # Distributions for /metrics, one bucket increment per wake-up (common/histogram.py).
        self.batch_seconds = Histogram(LOOP_SECONDS)
        self.batch_envelopes = Histogram(BATCH_ENVELOPES)

    def stop(self) -> None:
        self.stopping = True

    # ---- main loop ----------------------------------------------------------
    def run(self) -> None:
        context = zmq.Context.instance()
        router = self.router = context.socket(zmq.ROUTER)
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted gateway takes its identity back at once
        router.setsockopt(zmq.SNDHWM, HWM)
        router.setsockopt(zmq.RCVHWM, HWM)
        router.setsockopt(zmq.LINGER, 2000)
        bind = self.spec.bind_endpoint
        if bind.startswith("ipc://"):
            os.makedirs(os.path.dirname(bind[len("ipc://"):]), exist_ok=True)
        try:
            router.bind(bind)
        except zmq.ZMQError as exc:
            router.close()
            raise StartupError(f"cannot bind {bind}: {exc}") from exc
        try:
            control = ControlServer(self.spec.control_bind_host, self.spec.control_port, self.snapshot).start()
        except OSError as exc:
            router.close()
            raise StartupError(f"cannot open the control port {self.spec.control_bind_host}:"
                               f"{self.spec.control_port}: {exc.strerror or exc}") from exc
        self._publish()
        log.info(" shard %d serving on %s (control http://%s:%d, pid %d)", self.shard_id, bind,
                 self.spec.control_bind_host, control.port, os.getpid())
        procutil.tune_runtime(self.figures.gc)
        next_status = last_turn = time.monotonic() + 1.0
        wait_ms = 0
        try:
            while not self.stopping:
                # A blocking receive with a timeout is the wait: a zmq.Poller costs more Python and more
                # poll() calls per wake-up than handling the batch it woke up for.
                reader = self.reader
                want = 5 if self.queue.held or (reader is not None and reader.busy) else 200
                if want != wait_ms:
                    wait_ms = want
                    router.setsockopt(zmq.RCVTIMEO, wait_ms)
                try:
                    gateway = router.recv()  # a ROUTER's first part: who sent it
                except zmq.Again:
                    gateway = None
                now = time.monotonic()
                if now - last_turn > 1.0:  # this process was stopped or frozen: peers keep their grace
                    self.shard.peers.grace(now)
                last_turn = now
                if gateway is not None:
                    self._drain(router, gateway, now)
                if reader is not None and reader.done:
                    self._reads_done(reader)
                if self.queue.held:
                    self.queue.retry()
                if now >= next_status:
                    next_status = now + 1.0
                    self._expire_gateways()
                    self._publish()
                if gateway is not None and self.wake_gap:
                    rest = now + self.wake_gap - time.monotonic()
                    if rest > 0:
                        time.sleep(rest)
        finally:
            self.queue.retry()
            log.info(" shard %d stopping: %d rooms, %d members, %d chats served", self.shard_id,
                     len(self.book.rooms), self.book.members, self.book.chats)
            if self.chatlog is not None:
                flushed = self.chatlog.close()
                stats = self.chatlog.stats()
                log.info(" shard %d chat log %s: %d accepted, %d in the database, %d dropped past the bound",
                         self.shard_id, "flushed" if flushed else "NOT fully flushed", stats["accepted"],
                         stats["db_rows"], stats["db_dropped"])
                self.chatlog.db.close()
            if self.reader is not None:
                self.reader.close()
            control.close()
            router.close()

    def _drain(self, router: zmq.Socket, gateway: bytes, now: float) -> None:
        """Handle the message whose first part (`gateway`) the wait received, and whatever else is queued.

        ZeroMQ hands over a message's parts together, so once its first part
        is here the rest is too; a ROUTER message has at least two.
        """
        started = time.perf_counter()
        shard, outbox, peers = self.shard, self.outbox, self.shard.peers
        recv, getsockopt = router.recv, router.getsockopt
        handled = 0
        self.stats.wakeups += 1
        for _ in range(DRAIN_BUDGET):
            data = recv(zmq.NOBLOCK)
            if getsockopt(zmq.RCVMORE):  # not [identity, batch]: nothing of ours
                while getsockopt(zmq.RCVMORE):
                    recv(zmq.NOBLOCK)
                self.stats.foreign += 1
            else:
                self.stats.zmq_in += 1
                peers.seen(gateway, now)
                handled += shard.receive(gateway, data, outbox, now)
            if not getsockopt(zmq.EVENTS) & zmq.POLLIN:
                break
            gateway = recv(zmq.NOBLOCK)
        self.stats.envelopes += handled
        self.jobs_peak = max(self.jobs_peak, handled)
        self._send_out()
        self.batch_seconds.observe(time.perf_counter() - started)
        self.batch_envelopes.observe(handled)

    def _reads_done(self, reader: Reader) -> None:
        """Take in the chat log's answers: the pages and restores that waited for them go out now."""
        for token, result in reader.take():
            self.book.read_done(token, result, self.outbox)
        self._send_out()

    def _send_out(self) -> None:
        """What the shard produced: its envelopes to the gateways, its reads to the reader."""
        for gateway, data in self.outbox.take():
            self.queue.send(gateway, data)
        if self.book.reads:
            reads = self.book.take_reads()
            if self.reader is not None:
                for read in reads:
                    self.reader.submit(read)

    def _expire_gateways(self) -> None:
        self.shard.expire(time.monotonic(), self.outbox)
        self._send_out()

    def _send_to_gateway(self, gateway: bytes, data: bytes) -> None:
        router = self.router
        try:
            # The first part picks the peer and raises if it is unroutable or full; then the rest cannot fail.
            router.send(gateway, zmq.SNDMORE | zmq.NOBLOCK)
            router.send(data, zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise  # zmq.Again included: the queue holds the message
            # The gateway is gone (it will come back, or the heartbeat timeout drops its members).
            self.stats.unroutable += 1

    # ---- figures ------------------------------------------------------------
    def _publish(self) -> None:
        book = self.book
        rates = self.figures.rates.per_second({
            "msgs_in": book.chats, "deliveries": book.deliveries, "zmq_in": self.stats.zmq_in,
            "zmq_out": self.links.sent, "envelopes": self.stats.envelopes, "wakeups": self.stats.wakeups,
        })
        self.snapshot.publish({
            "role": "shard",
            "id": self.shard_id,
            **self.figures.read(),
            "endpoint": self.spec.endpoint,
            "incarnation": self.shard.incarnation,
            "gateways": self.shard.peers.as_list(time.monotonic()),
            "gateway_restarts": self.shard.peers.restarts,
            "gateway_timeouts": self.shard.peers.timeouts,
            "players_present": len(self.shard.presence.holders),
            "kicks": self.shard.presence.kicks,
            "rooms_rebuilt": book.rebuilt,
            "rooms": len(book.rooms),
            "members": book.members,
            "room_ids": sorted(book.rooms)[:STATUS_ROOM_IDS],
            "chats": book.chats,
            "deliveries": book.deliveries,
            "refused": book.refused,
            "rooms_created": book.rooms_created,
            "rooms_closed": book.rooms_closed,
            "zmq_in": self.stats.zmq_in,
            "wakeups": self.stats.wakeups,
            "zmq": {**self.links.as_dict(), "received": self.stats.zmq_in},  # the shard counts its receives
            "envelopes": self.stats.envelopes,
            "jobs_peak": self.jobs_peak,
            "batch_seconds": self.batch_seconds.as_dict(),
            "batch_envelopes": self.batch_envelopes.as_dict(),
            "bad_batches": self.shard.bad_batches + self.stats.foreign,
            "bad_envelopes": self.shard.bad_envelopes,
            "zmq_unroutable": self.stats.unroutable,
            "chatlog": self.chatlog.stats() if self.chatlog is not None else None,
            "history": {**book.figures(),
                        "db_reads": self.reader.reads if self.reader is not None else 0,
                        "db_read_failures": self.reader.failures if self.reader is not None else 0},
            **rates,
        })
        self.jobs_peak = 0


def run_shard(config: ClusterConfig, shard_id: int) -> int:
    logs.setup(f"shard{shard_id}", config.verbose, config.log_file(f"shard-{shard_id}"))
    worker = ShardWorker(config, shard_id)
    procutil.on_stop_signals(worker.stop)
    try:
        worker.run()
    except StartupError as exc:
        log.error(" shard %d: %s", shard_id, exc)
        return 2
    return 0
