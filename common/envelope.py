"""Gateway <-> shard envelopes, several to one ZeroMQ message.

A ZeroMQ message between a gateway and a shard is a batch: a sequence of
`[u8 kind][u32 length LE][payload]` items, each payload one message of
proto/cluster.proto. Batching is what lets a busy gateway send one ZeroMQ
message per shard per event-loop pass instead of one per chat, and a shard
one message per gateway per wake-up instead of one per broadcast.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from enum import IntEnum

from google.protobuf.message import Message

from chatcluster.common.errors import PeerError
from chatcluster.proto import cluster_pb2

ITEM = struct.Struct("<BI")


class Kind(IntEnum):
    # gateway -> shard
    CREATE = 1
    JOIN = 2
    LEAVE = 3
    CHAT = 4
    LIST = 5
    HELLO = 6  # both ways
    REBUILD = 7
    CLAIM = 8
    RELEASE = 9
    # shard -> gateway
    REPLY = 16
    DELIVER = 17
    ROOMS = 18
    KICK = 19


PAYLOAD_TYPES: dict[int, type[Message]] = {
    Kind.CREATE: cluster_pb2.CreateRoom,
    Kind.JOIN: cluster_pb2.JoinRoom,
    Kind.LEAVE: cluster_pb2.LeaveRoom,
    Kind.CHAT: cluster_pb2.ChatIn,
    Kind.LIST: cluster_pb2.ListRooms,
    Kind.HELLO: cluster_pb2.Hello,
    Kind.REBUILD: cluster_pb2.Rebuild,
    Kind.CLAIM: cluster_pb2.Claim,
    Kind.RELEASE: cluster_pb2.Release,
    Kind.KICK: cluster_pb2.Kick,
    Kind.REPLY: cluster_pb2.Reply,
    Kind.DELIVER: cluster_pb2.Deliver,
    Kind.ROOMS: cluster_pb2.RoomList,
}


class EnvelopeError(PeerError):
    """A batch that does not parse: a peer of another version or a foreign process, never a client's doing."""


class Batch:
    """Envelopes waiting to go to one peer; take() empties it into one message."""

    __slots__ = ("_parts", "count")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.count = 0

    def add(self, kind: int, payload: bytes) -> None:
        self._parts.append(ITEM.pack(kind, len(payload)))
        self._parts.append(payload)
        self.count += 1

    def add_message(self, kind: int, message: Message) -> None:
        self.add(kind, message.SerializeToString())

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        self.count = 0
        return data

    def __bool__(self) -> bool:
        return self.count > 0


def iter_items(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(kind, payload) of every envelope in a batch, in order."""
    pos, end = 0, len(data)
    unpack = ITEM.unpack_from
    while pos < end:
        if end - pos < ITEM.size:
            raise EnvelopeError(f"truncated envelope header at byte {pos}")
        kind, length = unpack(data, pos)
        pos += ITEM.size
        if pos + length > end:
            raise EnvelopeError(f"envelope of {length} bytes overruns the batch at byte {pos}")
        yield kind, data[pos:pos + length]
        pos += length


def parse(kind: int, payload: bytes) -> Message:
    """The cluster.proto message of an envelope; EnvelopeError for an unknown kind or bad bytes."""
    cls = PAYLOAD_TYPES.get(kind)
    if cls is None:
        raise EnvelopeError(f"unknown envelope kind {kind}")
    msg = cls()
    try:
        msg.ParseFromString(payload)
    except Exception as exc:  # google.protobuf.message.DecodeError
        raise EnvelopeError(f"kind {kind} does not decode: {exc}") from exc
    return msg
