"""Which shard owns a room: rendezvous (highest-random-weight) hashing.

Every gateway computes the owner from the room id and the configured shard
ids alone, so routing needs no directory and no round trip; and when a shard
is added or removed only the rooms that hash to it move. The hash is a fixed
64-bit mix (splitmix64), not Python's hash(), so every process and host
agrees whatever its PYTHONHASHSEED.
"""

from __future__ import annotations

from collections.abc import Sequence

MASK64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """splitmix64's finalizer: a cheap, well-spread 64-bit permutation."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def owner(room_id: int, shard_ids: Sequence[int]) -> int:
    """The index into shard_ids of the shard that owns room_id."""
    best, best_score = 0, -1
    for index, shard_id in enumerate(shard_ids):
        score = mix64(room_id ^ mix64(shard_id + 1))
        if score > best_score:
            best, best_score = index, score
    return best
