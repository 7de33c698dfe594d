"""Client writes from a writer thread, so the kernel's send work leaves the event loop.

At the seed load most of the gateway loop's time is inside `transport.write`:
a loopback send is expensive kernel work (the receiver's TCP processing runs
on the sending CPU), and a pass writes every session of every busy room. A
chat then waits for the pass that read it, the shard, and the whole next
pass's writes (docs/PERFORMANCE.md has the figures). With a Writer, the loop
thread only appends each session's coalesced bytes to a queue; the writer
thread takes everything queued, sends it in one `send_many` call that holds
no GIL (gateway/_sendmany.c), and the loop goes on reading and routing on the
other core meanwhile. While the writer is busy, the next passes' bytes pile up
per session and go out as one send: coalescing adapts to the load by itself.

Who owns what (no locks: every field has one writing thread):
- the loop thread calls Outlet.push / Outlet.close and reads Outlet.queued;
- the writer thread owns the socket writes, its leftovers and `sent`.
Each Outlet writes to its own dup() of the connection's fd: when uvloop closes
its fd (the peer went away), the socket stays alive until the writer closes
its copy, so a send can never reach a new connection that was handed the same
fd number.

Only sessions in a room get an Outlet (see GatewayServer.flush): an idle,
logged-in connection costs no extra fd.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

try:
    from chatcluster.gateway._sendmany import send_many
except ImportError:  # not built (no compiler, Windows): the gateway writes from its loop
    send_many = None

CLOSE, ABORT = b"<close>", b"<abort>"  # markers in the queue: identity-compared, never sent
CLOSE_GRACE = 5.0  # seconds a closing outlet may wait for a client that does not read


def available() -> bool:
    return send_many is not None and hasattr(os, "eventfd") and hasattr(select, "epoll")


class Outlet:
    """One connection's writes through the Writer."""

    __slots__ = ("fd", "pushed", "sent", "leftover", "parts", "blocked", "closing", "dead", "close_by",
                 "on_failed")

    def __init__(self, fd: int, on_failed: Callable[[str], None]) -> None:
        self.fd = fd                  # our dup of the connection's socket
        self.pushed = 0               # bytes the loop queued (loop thread)
        self.sent = 0                 # bytes the kernel took (writer thread)
        self.leftover: bytes = b""    # what a partial send left (writer thread)
        self.parts: list[bytes] = []  # taken from the queue, not yet sent (writer thread)
        self.blocked = False          # the socket buffer is full; waiting for EPOLLOUT
        self.closing = False
        self.dead = False             # the socket failed or was closed: nothing more goes out
        self.close_by = 0.0
        self.on_failed = on_failed    # called on the loop thread when a send fails for good

    @property
    def queued(self) -> int:
        """Bytes accepted but not yet in the kernel: the slow-consumer figure."""
        return self.pushed - self.sent


class Writer:
    """The writer thread: sends every queued buffer, many sockets per GIL-free call."""

    def __init__(self, loop_call: Callable[..., None]) -> None:
        if not available():
            raise RuntimeError("the writer thread needs gateway/_sendmany.c built, eventfd and epoll")
        self._loop_call = loop_call   # loop.call_soon_threadsafe
        self._queue: deque[tuple[Outlet, bytes]] = deque()
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll = select.epoll()
        self._epoll.register(self._wake, select.EPOLLIN)
        self._blocked: dict[int, Outlet] = {}   # fd -> outlet waiting for EPOLLOUT
        self._closing: list[Outlet] = []
        self._asleep = False
        self._stop = False
        # figures (written by the writer thread, read by anyone)
        self.sends = 0
        self.calls = 0
        self.bytes = 0
        self.would_block = 0
        self.failed = 0
        self.close_timeouts = 0
        self.batch_peak = 0
        self._thread = threading.Thread(target=self._run, name="writer", daemon=True)
        self._thread.start()

    # ---- loop thread ----------------------------------------------------------------
    def open(self, fd: int, on_failed: Callable[[str], None]) -> Outlet:
        return Outlet(os.dup(fd), on_failed)

    def push(self, outlet: Outlet, data: bytes) -> None:
        outlet.pushed += len(data)
        self._queue.append((outlet, data))

    def close(self, outlet: Outlet, abort: bool = False) -> None:
        """Close after what is queued has gone out (abort: at once, dropping it)."""
        self._queue.append((outlet, ABORT if abort else CLOSE))
        self.wake()

    def wake(self) -> None:
        """Once per loop pass, after the pushes: the writer takes them all."""
        if self._asleep:
            self._asleep = False
            os.eventfd_write(self._wake, 1)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop = True
        os.eventfd_write(self._wake, 1)
        self._thread.join(timeout)

    def stats(self) -> dict[str, int]:
        return {"sends": self.sends, "calls": self.calls, "bytes": self.bytes, "would_block": self.would_block,
                "failed": self.failed, "blocked_now": len(self._blocked), "close_timeouts": self.close_timeouts,
                "batch_peak": self.batch_peak}

    # ---- writer thread --------------------------------------------------------------
    def _run(self) -> None:
        ready: dict[Outlet, None] = {}  # outlets with bytes to send, in first-queued order
        while not self._stop:
            self._take(ready)
            if ready:
                self._send(ready)
                continue
            self._asleep = True
            if self._queue:  # pushed between _take and _asleep = True: no eventfd write came for it
                self._asleep = False
                continue
            timeout = 0.1 if (self._closing or self._blocked) else 1.0
            for fd, _ in self._epoll.poll(timeout):
                if fd == self._wake:
                    with contextlib.suppress(BlockingIOError):
                        os.eventfd_read(self._wake)
                    continue
                outlet = self._blocked.pop(fd, None)
                if outlet is not None:
                    outlet.blocked = False
                    if not outlet.dead:
                        ready[outlet] = None
            self._asleep = False
            self._reap_closing(ready)
        self._take(ready)
        if ready:
            self._send(ready)

    def _take(self, ready: dict[Outlet, None]) -> None:
        queue = self._queue
        for _ in range(len(queue)):
            outlet, data = queue.popleft()
            if data is CLOSE or data is ABORT:
                self._on_close(outlet, data is ABORT)
            elif not outlet.dead:
                outlet.parts.append(data)
                if not outlet.blocked:
                    ready[outlet] = None
            else:
                outlet.sent += len(data)  # for nobody: keep `queued` honest

    def _send(self, ready: dict[Outlet, None]) -> None:
        outlets = list(ready)
        ready.clear()
        fds, bufs = [], []
        for outlet in outlets:
            parts = outlet.parts
            if outlet.leftover:
                parts.insert(0, outlet.leftover)
                outlet.leftover = b""
            fds.append(outlet.fd)
            bufs.append(parts[0] if len(parts) == 1 else b"".join(parts))
            parts.clear()
        results = send_many(fds, bufs)
        self.calls += 1
        self.batch_peak = max(self.batch_peak, len(outlets))
        for outlet, data, result in zip(outlets, bufs, results, strict=True):
            if result >= 0:
                self.sends += 1
                self.bytes += result
                outlet.sent += result
                if result < len(data):
                    self._block(outlet, data[result:])
                elif outlet.closing:
                    self._finish(outlet)
            elif result == -errno.EAGAIN:
                self._block(outlet, data)
            else:
                self._fail(outlet, data, os.strerror(-result))

    def _block(self, outlet: Outlet, rest: bytes) -> None:
        """The socket buffer is full: keep the rest, send it when the socket is writable again."""
        self.would_block += 1
        outlet.leftover = rest
        outlet.blocked = True
        self._blocked[outlet.fd] = outlet
        try:
            self._epoll.register(outlet.fd, select.EPOLLOUT | select.EPOLLONESHOT)
        except FileExistsError:
            self._epoll.modify(outlet.fd, select.EPOLLOUT | select.EPOLLONESHOT)

    def _fail(self, outlet: Outlet, data: bytes, why: str) -> None:
        self.failed += 1
        outlet.sent += len(data)
        self._release(outlet)
        self._loop_call(outlet.on_failed, why)

    def _on_close(self, outlet: Outlet, abort: bool) -> None:
        if outlet.dead:
            return
        if abort:
            self._release(outlet)
            return
        outlet.closing = True
        outlet.close_by = time.monotonic() + CLOSE_GRACE
        if not outlet.parts and not outlet.leftover:
            self._finish(outlet)
        else:
            self._closing.append(outlet)

    def _finish(self, outlet: Outlet) -> None:
        if outlet.parts or outlet.leftover:
            return  # more came before the close marker was handled; the next send finishes it
        self._release(outlet)

    def _reap_closing(self, ready: dict[Outlet, None]) -> None:
        """Closing outlets whose client has not read what was left for CLOSE_GRACE seconds: close them anyway."""
        if not self._closing:
            return
        now = time.monotonic()
        keep = []
        for outlet in self._closing:
            if outlet.dead:
                continue
            if now >= outlet.close_by:
                self.close_timeouts += 1
                self._release(outlet)
            else:
                keep.append(outlet)
                if not outlet.blocked and (outlet.parts or outlet.leftover):
                    ready[outlet] = None
        self._closing = keep

    def _release(self, outlet: Outlet) -> None:
        """No more writes: drop what is left (counted as sent to nobody) and close our fd."""
        if outlet.dead:
            return
        outlet.dead = True
        outlet.sent += len(outlet.leftover) + sum(len(p) for p in outlet.parts)
        outlet.leftover = b""
        outlet.parts.clear()
        if self._blocked.pop(outlet.fd, None) is not None:
            with contextlib.suppress(FileNotFoundError, OSError):
                self._epoll.unregister(outlet.fd)
        with contextlib.suppress(OSError):
            os.close(outlet.fd)
