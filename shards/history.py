"""A room's recent messages, kept as the frames the shard already sent, within one byte bound per shard.

Why frames: the shard serializes each S_ROOM_CHAT_NTF once for the broadcast;
keeping that same bytes object makes every replay (history on join, a resume,
an idempotent resend) a copy of references, never a second encoding, and the
chat path pays one deque append for it.

The rules (PROTOCOL.md, "History on join"):

- a room keeps at least its last `history_messages` messages and at least
  those of the last `history_age` seconds; older ones are trimmed as new ones
  come (`expired`, counted);
- the shard keeps at most `history_bytes` in all; past it, the oldest messages
  of any room go first, whatever that room's minimum (`evicted`, counted);
- a ring is one run of seqs with no hole, ending at the newest message the room
  sent: what it can replay is exactly [oldest, last]. A seq that does not follow
  `last` empties it first, so a hole can never be replayed across.

Sans-I/O: the caller gives the time (µs since the epoch), so every rule is
tested with plain numbers (tests/unit/test_history.py).
"""

from __future__ import annotations

import secrets
from collections import deque
from heapq import heapify, heappop, heapreplace
from itertools import islice
from typing import Any

from chatcluster.common.config import Limits

#: What a kept message costs besides its frame's bytes: the bytes object's header (33), its time as an
#: int (32), two deque slots (16) and a share of the deques' blocks. Counted, so the bound is the memory's.
OVERHEAD = 96

#: A sender's idempotency key as a ring keeps it: (player id, key).
Key = tuple[int, int]


def new_epoch(old: int = 0) -> int:
    """A fresh epoch: non-zero, unlike `old`, and within 2**53 so that JavaScript clients hold it exactly."""
    while True:
        epoch = secrets.randbits(53) or 1
        if epoch != old:
            return epoch


class BadResume(ValueError):
    """A resuming join that makes no sense (no epoch, or a position beyond the room's head): BAD_REQUEST."""


class Ring:
    """One room's kept messages: frames and their times, oldest first, and the idempotency keys among them."""

    __slots__ = ("frames", "times", "last", "nbytes", "keys", "keyed")

    def __init__(self, last: int = 0) -> None:
        self.frames: deque[bytes] = deque()
        self.times: deque[int] = deque()
        self.last = last   # seq of the room's newest message, kept or not (the ring ends there)
        self.nbytes = 0    # frames' bytes + OVERHEAD each
        self.keys: dict[Key, int] = {}             # (sender, idempotency key) -> seq, for kept messages only
        self.keyed: deque[tuple[int, Key]] = deque()  # (seq, key) in seq order: keys leave with their messages

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def oldest(self) -> int:
        """The seq of the oldest message kept; 0 if none is."""
        n = len(self.frames)
        return self.last - n + 1 if n else 0

    def frame(self, seq: int) -> bytes | None:
        """The frame of message `seq`, if it is still kept."""
        n = len(self.frames)
        index = seq - (self.last - n + 1)
        return self.frames[index] if 0 <= index < n else None

    def after(self, seq: int) -> list[bytes] | None:
        """The frames of seq+1 .. last, in order; None if some of them are no longer kept."""
        missing = self.last - seq
        if missing <= 0:
            return []
        n = len(self.frames)
        if missing > n:
            return None
        return list(islice(self.frames, n - missing, None))

    def newest(self, count: int) -> list[bytes]:
        """The newest `count` frames kept (fewer if fewer are), oldest first."""
        if count <= 0:
            return []
        return list(islice(self.frames, max(0, len(self.frames) - count), None))

    def between(self, low: int, high: int) -> list[bytes]:
        """The kept frames of seqs low .. high (inclusive), oldest first."""
        if not self.frames:
            return []
        first = self.last - len(self.frames) + 1
        start, stop = max(low, first) - first, min(high, self.last) - first + 1
        return list(islice(self.frames, start, stop)) if stop > start else []

    def find(self, key: Key) -> tuple[int, bytes] | None:
        """(seq, frame) of the kept message a sender sent with this idempotency key."""
        seq = self.keys.get(key)
        if seq is None:
            return None
        frame = self.frame(seq)
        return None if frame is None else (seq, frame)


class History:
    """Every ring of one shard and the byte bound over them all."""

    def __init__(self, limits: Limits) -> None:
        self.min_messages = limits.history_messages
        self.min_age_us = int(limits.history_age * 1_000_000)
        self.max_bytes = limits.history_bytes
        self.rings: set[Ring] = set()
        # figures
        self.bytes = 0
        self.messages = 0
        self.bytes_peak = 0
        self.expired = 0   # trimmed past both minimums: the normal end of a message's stay
        self.evicted = 0   # dropped for the byte bound
        self.evictions = 0  # times the bound was hit (each drops the oldest until 1/16 of it is free)

    def ring(self, last: int = 0) -> Ring:
        """A new, empty ring for a room whose newest message so far is `last`."""
        ring = Ring(last)
        self.rings.add(ring)
        return ring

    def forget(self, ring: Ring) -> None:
        """The room is gone: its messages no longer count."""
        self.reset(ring, ring.last)
        self.rings.discard(ring)

    def reset(self, ring: Ring, last: int) -> None:
        """Keep nothing of the room's past; its next message is last + 1."""
        self.bytes -= ring.nbytes
        self.messages -= len(ring.frames)
        ring.frames.clear()
        ring.times.clear()
        ring.keys.clear()
        ring.keyed.clear()
        ring.nbytes = 0
        ring.last = last

    def append(self, ring: Ring, seq: int, frame: bytes, now_us: int, key: Key | None = None) -> None:
        """The room sent message `seq` as `frame` at now_us: keep it, and trim what the rules let go."""
        if not self.max_bytes:  # history_bytes=0: keep nothing (a resume recovers only from the head)
            ring.last = seq
            return
        if seq != ring.last + 1:
            self.reset(ring, seq - 1)
        ring.frames.append(frame)
        ring.times.append(now_us)
        ring.last = seq
        size = len(frame) + OVERHEAD
        ring.nbytes += size
        self.bytes += size
        self.messages += 1
        if key is not None:
            ring.keys[key] = seq
            ring.keyed.append((seq, key))
        if len(ring.frames) > self.min_messages and ring.times[0] < now_us - self.min_age_us:
            self._trim(ring, now_us)
        if self.bytes > self.max_bytes:
            self._evict()
        elif self.bytes > self.bytes_peak:
            self.bytes_peak = self.bytes

    def load(self, ring: Ring, entries: list[tuple[int, bytes, int, Key | None]], now_us: int) -> None:
        """Fill an empty ring with (seq, frame, time_us, key) in seq order, ending at the room's newest message."""
        for seq, frame, time_us, key in entries:
            self.append(ring, seq, frame, time_us, key)
        if len(ring.frames) > self.min_messages:
            self._trim(ring, now_us)

    def figures(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "bytes_peak": max(self.bytes_peak, self.bytes),
            "max_bytes": self.max_bytes,
            "messages": self.messages,
            "rooms": sum(1 for ring in self.rings if ring.frames),
            "expired": self.expired,
            "evicted": self.evicted,
            "evictions": self.evictions,
        }

    # ---- internals --------------------------------------------------------------------
    def _pop_oldest(self, ring: Ring) -> None:
        seq = ring.last - len(ring.frames) + 1
        size = len(ring.frames.popleft()) + OVERHEAD
        ring.times.popleft()
        ring.nbytes -= size
        self.bytes -= size
        self.messages -= 1
        keyed = ring.keyed
        while keyed and keyed[0][0] <= seq:
            old_seq, key = keyed.popleft()
            if ring.keys.get(key) == old_seq:
                del ring.keys[key]

    def _trim(self, ring: Ring, now_us: int) -> None:
        cutoff = now_us - self.min_age_us
        times, keep = ring.times, self.min_messages
        while len(times) > keep and times[0] < cutoff:
            self._pop_oldest(ring)
            self.expired += 1

    def _evict(self) -> None:
        """Over the bound: drop the shard's oldest messages, whichever rooms they are in, until 1/16 is free.

        One pass looks at every room once (a heap of each ring's oldest time)
        and then drops message by message; freeing a sixteenth of the bound
        per pass keeps passes rare under steady load.
        """
        self.bytes_peak = max(self.bytes_peak, self.bytes)
        self.evictions += 1
        target = self.max_bytes - (self.max_bytes >> 4)
        heap = [(ring.times[0], id(ring), ring) for ring in self.rings if ring.frames]
        heapify(heap)
        while self.bytes > target and heap:
            ring = heap[0][2]
            self._pop_oldest(ring)
            self.evicted += 1
            if ring.frames:
                heapreplace(heap, (ring.times[0], id(ring), ring))
            else:
                heappop(heap)


def replay_for_join(ring: Ring, epoch: int, *, resume: bool, since_seq: int, client_epoch: int, history: int,
                    max_history: int, max_bytes: int) -> tuple[list[bytes], bool]:
    """What a join replays after its answer, and whether it is a full recovery (PROTOCOL.md "Resume").

    A resume in the room's epoch from a position whose every later message is
    still kept (and fits `max_bytes`) replays exactly those: recovered. Anything
    else replays the newest `history` messages (at most `max_history`) and is
    not a recovery. BadResume for a resume without an epoch, or from beyond the
    room's newest message in its own epoch.
    """
    if resume:
        if not client_epoch:
            raise BadResume("a resuming join needs the room's epoch")
        if client_epoch == epoch:
            if since_seq > ring.last:
                raise BadResume(f"since_seq {since_seq} is past the room's newest message ({ring.last})")
            frames = ring.after(since_seq)
            if frames is not None and sum(map(len, frames)) <= max_bytes:
                return frames, True
    return ring.newest(min(history, max_history)), False
