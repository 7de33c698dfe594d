"""A shard's record of every accepted chat: a rotating file at once, the database in batches.

The seed server logs each room chat to a file and to the database from the
room's job queue. Here the shard's loop only appends a tuple to a deque (no
lock, no I/O, so broadcast latency never waits for the database); a writer
thread wakes many times a second and writes every new message to the shard's
file log, and every half second or so to the database in multi-row batches:
a row costs the database several times less in an INSERT of a thousand rows
than in one of a hundred, and fewer, larger writes hold the GIL less often.

Nothing accepted is lost silently. If the database is down, chat goes on: the
rows wait in memory (the backlog, bounded by `max_backlog`) and the writer
retries with back-off until the database is back. Rows past the bound are not
kept for the database; they are counted (`db_dropped`), logged, and still in
the file log. On shutdown the backlog is flushed before the process exits.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from itertools import islice
from pathlib import Path
from typing import Any

from chatcluster.common.histogram import WAIT_SECONDS, Histogram
from chatcluster.common.storage import Database

log = logging.getLogger("chatcluster.chatlog")

Row = tuple[int, int, int, str, int, int, int]  # room_id, seq, sender_id, text, server_time_us, client_msg_id, key

FLUSH_INTERVAL = 0.05   # seconds between writer passes: how late a line reaches the file log
DB_INTERVAL = 0.5       # the database is written when this long has passed since its last write ...
DB_MIN_ROWS = 2000      # ... or when this many rows wait for it, whichever comes first
DB_BATCH = 5000         # rows per database round trip (the dialect splits it into statements)
RETRY_FIRST = 0.25      # back-off after a failed write, doubling ...
RETRY_MAX = 5.0         # ... up to this
WARN_EVERY = 30.0       # seconds between repeated "database still down" lines


class RotatingLines:
    """Append-only text lines with size-based rotation (file, file.1, ... file.N)."""

    def __init__(self, path: Path, max_bytes: int = 64 << 20, backups: int = 10) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the writer's lifetime
        self._size = self._file.tell()

    def write(self, lines: list[str]) -> None:
        text = "".join(lines)
        self._file.write(text)
        self._file.flush()  # to the OS at once: a crash of this process loses nothing written
        self._size += len(text.encode("utf-8")) if not text.isascii() else len(text)
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._file.close()


_second_cache: list = [-1, ""]  # (unix second, its ISO text): most lines of a batch share the second


def format_line(row: Row) -> str:
    """`2026-11-25T08:01:01.846123Z room=1 seq=1 sender=5 text="..."`: one line per message, whatever the text."""
    room_id, seq, sender_id, text, time_us = row[:5]
    second, micros = divmod(time_us, 1_000_000)
    if second != _second_cache[0]:
        _second_cache[0], _second_cache[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    if text.isprintable() and '"' not in text and "\\" not in text:
        quoted = f'"{text}"'  # what json.dumps would write, without its cost
    else:
        quoted = json.dumps(text, ensure_ascii=False)
    return f"{_second_cache[1]}.{micros:06d}Z room={room_id} seq={seq} sender={sender_id} text={quoted}\n"


class ChatLog:
    def __init__(self, db: Database | None, file: RotatingLines | None, max_backlog: int = 200_000,
                 flush_interval: float = FLUSH_INTERVAL, db_interval: float = DB_INTERVAL,
                 db_min_rows: int = DB_MIN_ROWS) -> None:
        self.db = db
        self.file = file
        self.max_backlog = max_backlog
        self.flush_interval = flush_interval
        self.db_interval = db_interval
        self.db_min_rows = db_min_rows
        self._db_due_at = 0.0
        self._queue: deque[Row] = deque()       # appended by the shard loop, taken by the writer
        self._closed_rooms: deque[int] = deque()
        self._pending: deque[Row] = deque()     # in the file, not yet in the database (writer thread only)
        self._wake = threading.Event()
        self._stopping = False
        self._retry_at = 0.0
        self._retry_delay = RETRY_FIRST
        self._warned_at = 0.0
        # figures
        self.accepted = 0        # shard loop
        self.file_lines = 0      # writer
        self.db_rows = 0
        self.db_batches = 0
        self.db_errors = 0
        self.db_dropped = 0
        self.backlog_peak = 0
        self.last_batch_ms = 0.0
        self.write_seconds = Histogram(WAIT_SECONDS)  # each successful database batch (writer thread only)
        self.last_error = ""
        self.db_down_since: float | None = None
        self._thread = threading.Thread(target=self._run, name="chatlog", daemon=True)
        self._thread.start()

    # ---- the shard loop's side (cheap) ------------------------------------------
    def append(self, room_id: int, seq: int, sender_id: int, text: str, server_time_us: int, client_msg_id: int = 0,
               idempotency_key: int = 0) -> None:
        """One accepted chat. client_msg_id and idempotency_key go to the database only (the file log keeps
        its line format): a frame rebuilt from the log echoes the one, a resend after a restart is checked
        against the other."""
        self._queue.append((room_id, seq, sender_id, text, server_time_us, client_msg_id, idempotency_key))
        self.accepted += 1

    def room_closed(self, room_id: int) -> None:
        self._closed_rooms.append(room_id)

    @property
    def backlog(self) -> int:
        """Accepted messages not yet in the database (and not dropped past the bound)."""
        return self.accepted - self.db_rows - self.db_dropped if self.db is not None else 0

    def stats(self) -> dict[str, Any]:
        backlog = self.backlog
        self.backlog_peak = max(self.backlog_peak, backlog)
        return {
            "accepted": self.accepted,
            "file_lines": self.file_lines,
            "db_rows": self.db_rows,
            "backlog": backlog,
            "backlog_peak": self.backlog_peak,
            "max_backlog": self.max_backlog,
            "db_dropped": self.db_dropped,
            "db_batches": self.db_batches,
            "db_errors": self.db_errors,
            "db_down_s": (time.monotonic() - self.db_down_since) if self.db_down_since is not None else 0.0,
            "last_batch_ms": self.last_batch_ms,
            "write_seconds": self.write_seconds.as_dict(),
            "last_error": self.last_error,
            "db_pool": self.db.pool.stats() if self.db is not None else None,
        }

    def close(self, timeout: float = 4.0) -> bool:
        """Flush and stop; True if everything accepted reached the database (or there is none)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive() or self._pending or self._queue:
            left = len(self._pending) + len(self._queue)
            log.error(" chat log: %d message(s) not written to the database before exit (%s); "
                      "they are in the file log %s", left, self.last_error or "timeout",
                      self.file.path if self.file else "(none)")
            return False
        if self.file is not None:
            self.file.close()
        return True

    # ---- the writer thread ----------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            self._take()
            now = time.monotonic()
            if stopping or now >= self._db_due_at or len(self._pending) >= self.db_min_rows:
                self._db_due_at = now + self.db_interval
                self._write_db(final=stopping)
            if stopping and not self._queue:
                return

    def _take(self) -> None:
        """Move new rows to the file log at once, and on to the database backlog (bounded)."""
        queue = self._queue
        rows = [queue.popleft() for _ in range(len(queue))]
        if not rows:
            return
        if self.file is not None:
            try:
                self.file.write([format_line(r) for r in rows])
                self.file_lines += len(rows)
            except OSError as exc:
                log.error(" chat log file %s: %s", self.file.path, exc)
        if self.db is None:
            return
        room = self.max_backlog - len(self._pending)
        if len(rows) > room:
            over = len(rows) - max(room, 0)
            self.db_dropped += over
            log.error(" chat log backlog full (%d rows waiting for the database): %d message(s) not kept for "
                      "the database (counted; they are in the file log)", len(self._pending), over)
            rows = rows[:max(room, 0)]
        self._pending.extend(rows)

    def _write_db(self, final: bool = False) -> None:
        db = self.db
        if db is None:
            return
        if self._closed_rooms:
            closed = [self._closed_rooms.popleft() for _ in range(len(self._closed_rooms))]
            try:
                db.close_rooms(closed)
            except Exception:  # noqa: BLE001 - best effort: a room left open in the table is harmless
                self._closed_rooms.extend(closed)
        deadline = time.monotonic() + (3.0 if final else 0.5)
        while self._pending and time.monotonic() < deadline:
            now = time.monotonic()
            if now < self._retry_at:
                if not final:
                    return
                time.sleep(min(self._retry_at - now, max(0.0, deadline - now)))
                continue
            batch = list(islice(self._pending, DB_BATCH))
            started = time.perf_counter()
            try:
                db.append_chat(batch)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the rows, retry later
                self._failed(exc)
                continue
            took = time.perf_counter() - started
            self.last_batch_ms = took * 1000
            self.write_seconds.observe(took)
            for _ in batch:
                self._pending.popleft()
            self.db_rows += len(batch)
            self.db_batches += 1
            if self.db_down_since is not None:
                log.info(" chat log: database is back after %.1f s; writing the backlog (%d rows)",
                         time.monotonic() - self.db_down_since, len(self._pending) + len(batch))
                self.db_down_since = None
            self._retry_delay = RETRY_FIRST

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self.db_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]
        if self.db_down_since is None:
            self.db_down_since = now
            self._warned_at = 0.0
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(" chat log: database write failed (%s); holding %d row(s), retrying",
                        self.last_error, len(self._pending))
        self._retry_at = now + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RETRY_MAX)
