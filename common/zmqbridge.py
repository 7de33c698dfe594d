"""ZeroMQ DEALER links from an asyncio process to its peers, on any event loop.

Two ways to join ZeroMQ to asyncio, picked with `--zmq-bridge`:

- `reader` (the default wherever the loop has add_reader: uvloop, the
  selector loop): each socket's ZMQ_FD goes to loop.add_reader. That fd is
  edge-triggered and only says "look at ZMQ_EVENTS", so every wake-up drains
  the socket until it would block, and every send is followed by another
  look, because a send can consume the notification of a message that
  arrived meanwhile. No extra thread, no extra copy.
- `thread` (the default on Windows, where asyncio's IOCP ProactorEventLoop
  has no add_reader): one I/O thread owns the sockets. The loop hands it
  outgoing messages through an inproc PUSH/PULL pipe (ZeroMQ sockets are
  not thread-safe, so only that thread touches the DEALERs), and it hands
  incoming messages back with call_soon_threadsafe, in batches.

Both keep a bounded backlog per peer when ZeroMQ pushes back (its high-water
mark is reached), count it, and never drop a message silently.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import zmq

from chatcluster.common.counters import Counters

log = logging.getLogger("chatcluster.zmq")

HWM = 100_000          # messages (each a batch of envelopes) queued per peer inside ZeroMQ
BACKLOG_LIMIT = 100_000  # messages held by us once ZeroMQ refuses more
DRAIN_BUDGET = 256     # messages read per wake-up before yielding to the loop


class LinkStats(Counters):
    __slots__ = ("sent", "received", "bytes_sent", "bytes_received", "backpressure", "backlog", "backlog_peak",
                 "dropped")


def dealer(context: zmq.Context, identity: bytes, endpoint: str) -> zmq.Socket:
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.setsockopt(zmq.RECONNECT_IVL, 100)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
    sock.connect(endpoint)
    return sock


class Links:
    """DEALER links to peers 0..n-1; on_message(peer, data) runs on the loop for each message."""

    mode = "?"

    def __init__(self, loop: asyncio.AbstractEventLoop, identity: bytes, endpoints: list[str],
                 on_message: Callable[[int, bytes], None]) -> None:
        self.loop = loop
        self.identity = identity
        self.endpoints = endpoints
        self.on_message = on_message
        self.stats = LinkStats()
        self.context = zmq.Context.instance()

    def send(self, peer: int, data: bytes) -> None:
        raise NotImplementedError

    def take_arrived(self) -> None:
        """Handle, right now, what the peers have sent that is already here (nothing if this mode cannot)."""

    def close(self) -> None:
        raise NotImplementedError


class SendQueue:
    """Sends to ZeroMQ peers without blocking; holds messages in order while a peer pushes back.

    `send(key, data)` must raise zmq.Again when ZeroMQ's high-water mark is
    reached. Held messages go out, in order and before anything newer, on
    retry(). Past `limit` held messages for one peer a message is dropped:
    counted, logged, never silent.
    """

    def __init__(self, send: Callable[[Any, bytes], None], stats: LinkStats, limit: int = BACKLOG_LIMIT) -> None:
        self._send = send
        self.stats = stats
        self.limit = limit
        self.held: dict[Any, deque[bytes]] = {}

    def send(self, key: Any, data: bytes) -> None:
        if key in self.held:
            self._hold(key, data)
            return
        try:
            self._send(key, data)
        except zmq.Again:
            self.stats.backpressure += 1
            self._hold(key, data)
            return
        self.stats.sent += 1
        self.stats.bytes_sent += len(data)

    def _hold(self, key: Any, data: bytes) -> None:
        queue = self.held.setdefault(key, deque())
        if len(queue) >= self.limit:
            self.stats.dropped += 1
            log.error(" backlog to %r over %d messages; message dropped (counted)", key, self.limit)
            return
        queue.append(data)
        self.stats.backlog += 1
        self.stats.backlog_peak = max(self.stats.backlog_peak, self.stats.backlog)

    def retry(self) -> bool:
        """Send what is held; True when nothing is left."""
        for key in list(self.held):
            queue = self.held[key]
            while queue:
                try:
                    self._send(key, queue[0])
                except zmq.Again:
                    break
                data = queue.popleft()
                self.stats.backlog -= 1
                self.stats.sent += 1
                self.stats.bytes_sent += len(data)
            if not queue:
                del self.held[key]
        return not self.held


class ReaderLinks(Links):
    mode = "reader"

    def __init__(self, loop, identity, endpoints, on_message) -> None:
        super().__init__(loop, identity, endpoints, on_message)
        self.sockets = [dealer(self.context, identity, ep) for ep in endpoints]
        self.queue = SendQueue(lambda peer, data: self.sockets[peer].send(data, zmq.NOBLOCK), self.stats)
        self._drain_scheduled = [False] * len(endpoints)
        self._retry_handle: asyncio.TimerHandle | None = None
        for peer, sock in enumerate(self.sockets):
            loop.add_reader(sock.getsockopt(zmq.FD), self._drain, peer)
            loop.call_soon(self._drain, peer)  # the fd only signals changes; look once now

    def send(self, peer: int, data: bytes) -> None:
        self.queue.send(peer, data)
        if self.queue.held and self._retry_handle is None:
            self._retry_handle = self.loop.call_later(0.005, self._retry)
        if not self._drain_scheduled[peer]:  # a send can swallow the fd's edge: look again
            self._drain_scheduled[peer] = True
            self.loop.call_soon(self._drain, peer)

    def take_arrived(self) -> None:
        for peer in range(len(self.sockets)):
            self._drain(peer)

    def _retry(self) -> None:
        self._retry_handle = None
        if not self.queue.retry():
            self._retry_handle = self.loop.call_later(0.005, self._retry)

    def _drain(self, peer: int) -> None:
        self._drain_scheduled[peer] = False
        sock = self.sockets[peer]
        on_message = self.on_message
        stats = self.stats
        for _ in range(DRAIN_BUDGET):
            if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                return
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            stats.received += 1
            stats.bytes_received += len(data)
            on_message(peer, data)
        # Budget spent with more waiting: let client I/O run, then continue.
        self._drain_scheduled[peer] = True
        self.loop.call_soon(self._drain, peer)

    def close(self) -> None:
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        for sock in self.sockets:
            with suppress(zmq.ZMQError, ValueError, OSError):
                self.loop.remove_reader(sock.getsockopt(zmq.FD))
            sock.close()


class ThreadLinks(Links):
    mode = "thread"

    def __init__(self, loop, identity, endpoints, on_message) -> None:
        super().__init__(loop, identity, endpoints, on_message)
        address = f"inproc://links-{id(self)}"
        self._pull = self.context.socket(zmq.PULL)
        self._pull.bind(address)
        self._push = self.context.socket(zmq.PUSH)  # used on the loop thread only
        self._push.setsockopt(zmq.SNDHWM, 0)        # unbounded: the I/O thread applies the bound
        self._push.connect(address)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zmq-links", daemon=True)
        self._thread.start()

    def send(self, peer: int, data: bytes) -> None:
        self._push.send_multipart([peer.to_bytes(2, "little"), data], copy=False)

    def _dispatch(self, batch: list[tuple[int, bytes]]) -> None:
        for peer, data in batch:
            self.on_message(peer, data)

    def _run(self) -> None:
        sockets = [dealer(self.context, self.identity, ep) for ep in self.endpoints]
        queue = SendQueue(lambda peer, data: sockets[peer].send(data, zmq.NOBLOCK), self.stats)
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        for sock in sockets:
            poller.register(sock, zmq.POLLIN)
        stats = self.stats
        try:
            while not self._stop.is_set():
                events = dict(poller.poll(5 if queue.held else 100))
                if queue.held:
                    queue.retry()
                if self._pull in events:
                    for _ in range(DRAIN_BUDGET):
                        try:
                            peer_bytes, data = self._pull.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        queue.send(int.from_bytes(peer_bytes, "little"), data)
                batch: list[tuple[int, bytes]] = []
                for peer, sock in enumerate(sockets):
                    if sock not in events:
                        continue
                    for _ in range(DRAIN_BUDGET):
                        try:
                            data = sock.recv(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        stats.received += 1
                        stats.bytes_received += len(data)
                        batch.append((peer, data))
                if batch:
                    try:
                        self.loop.call_soon_threadsafe(self._dispatch, batch)
                    except RuntimeError:  # the loop is closed: we are shutting down
                        return
        finally:
            for sock in sockets:
                sock.close()
            self._pull.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._push.close()


def open_links(loop: asyncio.AbstractEventLoop, mode: str, identity: bytes, endpoints: list[str],
               on_message: Callable[[int, bytes], None]) -> Links:
    """Links in the requested mode; `auto` takes `reader` where the loop allows it."""
    if mode == "auto":
        mode = "reader" if supports_add_reader(loop) else "thread"
    if mode == "reader":
        return ReaderLinks(loop, identity, endpoints, on_message)
    if mode == "thread":
        return ThreadLinks(loop, identity, endpoints, on_message)
    raise ValueError(f"unknown zmq bridge mode {mode!r}")


def supports_add_reader(loop: asyncio.AbstractEventLoop) -> bool:
    """False for asyncio's ProactorEventLoop (Windows IOCP), which has no readiness API."""
    probe_r, probe_w = socket.socketpair()
    try:
        loop.add_reader(probe_r.fileno(), lambda: None)
    except NotImplementedError:
        return False
    else:
        loop.remove_reader(probe_r.fileno())
        return True
    finally:
        probe_r.close()
        probe_w.close()
