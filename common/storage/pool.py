"""A fixed-size pool of database connections, used from worker threads only.

The seed's DBConnectionPool, with the figures an operator needs to see it
under load: how many connections are in use, how often and how long callers
waited for one, queries per second, errors, and how many dead connections
were replaced. No event loop ever calls into it: the gateway and the shards
reach it through their thread pools.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from chatcluster.common.histogram import WAIT_SECONDS, Histogram


class PoolTimeout(Exception):
    """No connection became free in time."""


class ConnectionPool:
    def __init__(
        self,
        connect: Callable[[], Any],
        size: int,
        is_disconnect: Callable[[BaseException], bool],
        acquire_timeout: float = 10.0,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        """`clock` times the waits for a connection (and what is left of acquire_timeout); tests pass their own."""
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self._connect = connect
        self._is_disconnect = is_disconnect
        self.size = size
        self.acquire_timeout = acquire_timeout
        self._clock = clock
        self._idle: list[Any] = []
        self._open = 0
        self._cond = threading.Condition()
        self._closed = False
        # figures
        self.in_use = 0
        self.acquires = 0
        self.waits = 0
        self.waiting = 0  # callers blocked for a connection right now
        self.wait_total = 0.0
        self.wait_max = 0.0
        self.acquire_wait = Histogram(WAIT_SECONDS)  # every acquisition's wait (0 when one was free); under _cond
        self.queries = 0
        self.errors = 0
        self.reconnects = 0

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection for the duration of the block.

        If the block fails with an error that means the connection is dead
        (server restarted, network cut), the connection is closed and the
        next caller gets a fresh one; the error still propagates.
        """
        conn = self._acquire()
        failed = broken = False
        try:
            yield conn
        except BaseException as exc:
            failed = True
            broken = self._is_disconnect(exc)
            raise
        finally:
            self._release(conn, failed, broken)

    def _acquire(self) -> Any:
        start = self._clock()
        waited = False
        with self._cond:
            while True:
                if self._closed:
                    raise PoolTimeout("the connection pool is closed")
                if self._idle:
                    conn = self._idle.pop()
                    break
                if self._open < self.size:
                    self._open += 1
                    conn = None
                    break
                waited = True
                remaining = self.acquire_timeout - (self._clock() - start)
                self.waiting += 1
                try:
                    timed_out = remaining <= 0 or not self._cond.wait(remaining)
                finally:
                    self.waiting -= 1
                if timed_out and not self._idle and self._open >= self.size:
                    raise PoolTimeout(f"no database connection free within {self.acquire_timeout:.1f} s")
            self.in_use += 1
            self.acquires += 1
            if waited:
                elapsed = self._clock() - start
                self.waits += 1
                self.wait_total += elapsed
                self.wait_max = max(self.wait_max, elapsed)
                self.acquire_wait.observe(elapsed)
            else:
                self.acquire_wait.observe(0.0)
        if conn is None:
            try:
                conn = self._connect()
            except BaseException:
                with self._cond:
                    self._open -= 1
                    self.in_use -= 1
                    self.errors += 1
                    self._cond.notify()
                raise
        return conn

    def _release(self, conn: Any, failed: bool, broken: bool) -> None:
        if broken:
            with suppress(Exception):  # it is already dead
                conn.close()
        with self._cond:
            self.in_use -= 1
            if failed:
                self.errors += 1
            else:
                self.queries += 1
            if broken:
                self.reconnects += 1
            if broken or self._closed:
                self._open -= 1
                if self._closed and not broken:
                    conn.close()
            else:
                self._idle.append(conn)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            with suppress(Exception):
                conn.close()

    def stats(self) -> dict[str, float]:
        return {
            "size": self.size,
            "open": self._open,
            "in_use": self.in_use,
            "acquires": self.acquires,
            "waits": self.waits,
            "waiting": self.waiting,
            "acquire_wait_avg_ms": (self.wait_total / self.waits * 1000) if self.waits else 0.0,
            "acquire_wait_max_ms": self.wait_max * 1000,
            "acquire_wait_seconds": self.acquire_wait.as_dict(),
            "queries": self.queries,
            "errors": self.errors,
            "reconnects": self.reconnects,
        }
