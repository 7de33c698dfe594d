"""What a shard asks of the chat log in the database, and the blocking code that answers it.

The shard's logic (shards/rooms.py) never touches the database: when a page
of history is older than what a room keeps in memory, or a restarted shard
wants a room's recent messages back, it queues a read (PageRead,
RestoreRead) as an effect with a token. Whoever drives the shard runs the
read off the shard's loop (the worker on a small thread pool with a database
pool of its own, the logic tests inline) and hands the result back with
RoomBook.read_done(token, result). `serve` is that blocking step; it also
rebuilds the frames from the rows, so the shard's loop pays nothing but the
reply.

The chat log keeps (room, seq, sender id, text, time, client_msg_id,
idempotency key); the sender's name comes from the accounts table (names
never change), so a rebuilt frame is the S_ROOM_CHAT_NTF the room sent, and a
restored room knows its messages' keys: a resend after a shard restart is
still answered with the original. (Rows written before schema v2 have
client_msg_id and key 0.)
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from chatcluster.common.frames import encode
from chatcluster.common.storage import Database
from chatcluster.proto import chat_pb2
from chatcluster.shards.history import Key

log = logging.getLogger("chatcluster.shard")

#: The most rows a restore reads back: a room keeps its last `history_messages` and those of the last
#: `history_age` seconds; a room that said more than this in that time gets the newest this many.
RESTORE_CAP = 5000


@dataclass(frozen=True, slots=True)
class PageRead:
    """The newest `count` logged messages of a room with seq < before_seq."""

    token: int
    room_id: int
    before_seq: int
    count: int


@dataclass(frozen=True, slots=True)
class RestoreRead:
    """A room's newest logged seq, and its messages that history keeps: the last `keep`, and those since since_us."""

    token: int
    room_id: int
    keep: int
    since_us: int


Read = PageRead | RestoreRead


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[tuple[int, bytes]]  # (seq, frame), oldest first
    more: bool                        # older rows exist below the first one


@dataclass(frozen=True, slots=True)
class Tail:
    max_seq: int                                         # the room's newest logged seq (0: none)
    entries: list[tuple[int, bytes, int, Key | None]]    # (seq, frame, time_us, key), oldest first


def frame_of(room_id: int, seq: int, sender_id: int, name: str, text: str, time_us: int,
             client_msg_id: int = 0) -> bytes:
    """The S_ROOM_CHAT_NTF frame of one logged message."""
    return encode(chat_pb2.S_ROOM_CHAT_NTF(room_id=room_id, sender=chat_pb2.Player(player_id=sender_id, name=name),
                                           text=text, seq=seq, client_msg_id=client_msg_id, server_time_us=time_us))


def serve(db: Database, read: Read) -> Page | Tail:
    """Answer one read (blocking: a worker thread's job)."""
    if isinstance(read, PageRead):
        rows = db.chat_before(read.room_id, read.before_seq, read.count + 1)  # one more: are there older ones?
        more = len(rows) > read.count
        rows = rows[1:] if more else rows
        return Page([(r[0], frame_of(read.room_id, *r[:6])) for r in rows], more)
    rows = db.chat_before(read.room_id, 2**63 - 1, RESTORE_CAP)
    max_seq = rows[-1][0] if rows else 0
    kept = [r for r in rows if r[0] > max_seq - read.keep or r[4] >= read.since_us]
    return Tail(max_seq, [(r[0], frame_of(read.room_id, *r[:6]), r[4], (r[1], r[6]) if r[6] else None) for r in kept])


class Reader:
    """Runs a shard's reads on a few threads with a database pool of their own; results wait in `done`.

    The shard's loop never waits for it: it looks at `done` once per turn
    (and turns more often while `busy`), so the result of a read is taken in
    on the loop, in order with everything else.
    """

    def __init__(self, db: Database, workers: int = 2, serve_one: Callable[[Database, Read], object] = serve) -> None:
        self.db = db
        self._serve = serve_one
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="history")
        self.done: deque[tuple[int, object]] = deque()  # (token, result or the exception it raised)
        self._lock = threading.Lock()
        self.in_flight = 0
        self.reads = 0
        self.failures = 0

    @property
    def busy(self) -> bool:
        return self.in_flight > 0

    def submit(self, read: Read) -> None:
        self.in_flight += 1
        self.reads += 1
        self._pool.submit(self._run, read)

    def take(self) -> list[tuple[int, object]]:
        taken = []
        while self.done:
            taken.append(self.done.popleft())
        self.in_flight -= len(taken)
        return taken

    def _run(self, read: Read) -> None:
        try:
            result: object = self._serve(self.db, read)
        except Exception as exc:  # noqa: BLE001 - the shard answers the failure; it must not vanish
            self.failures += 1
            log.warning(" history read for room %d failed: %s: %s", read.room_id, type(exc).__name__, exc)
            result = exc
        self.done.append((read.token, result))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.db.close()
