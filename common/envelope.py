"""Gateway <-> shard envelopes, several to one ZeroMQ message.

A ZeroMQ message between a gateway and a shard is a batch: a sequence of
`[u8 kind][u32 length LE][payload]` items. Each payload is one message of
proto/cluster.proto, except the two kinds every chat takes (CHAT and
DELIVER): those have a fixed little-endian header followed by the bytes the
gateway or the shard passes on untouched, so the hot path builds and cuts
them with one struct call and no protobuf object. Batching is what lets a busy gateway send one ZeroMQ
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
CHAT_HEAD = struct.Struct("<QQ")      # room_id, session
DELIVER_HEAD = struct.Struct("<QQQ")  # room_id, except_session (0: nobody), seq (0: a notice)
_CHAT_ITEM = struct.Struct("<BIQQ")   # ITEM and CHAT_HEAD in one call
_CHAT_HEAD_SIZE = CHAT_HEAD.size


class Kind(IntEnum):
    # Retired, never to be reused: 4 (CHAT as a protobuf message), 17 (DELIVER as one).
    # gateway -> shard
    CREATE = 1
    JOIN = 2
    LEAVE = 3
    CHAT = 10       # fixed header (CHAT_HEAD), then the client's C_ROOM_CHAT_REQ body
    LIST = 5
    HELLO = 6  # both ways
    REBUILD = 7
    CLAIM = 8
    RELEASE = 9
    HISTORY = 11    # a page of a room's older messages (1.1)
    OPERATE = 12    # an operator's action (1.1: the gateway's HTTP API)
    # shard -> gateway
    REPLY = 16
    DELIVER = 20    # fixed header (DELIVER_HEAD), then the client frame to pass on
    ROOMS = 18
    KICK = 19
    OPERATED = 21   # the answer to an OPERATE


PAYLOAD_TYPES: dict[int, type[Message]] = {
    Kind.CREATE: cluster_pb2.CreateRoom,
    Kind.JOIN: cluster_pb2.JoinRoom,
    Kind.LEAVE: cluster_pb2.LeaveRoom,
    Kind.LIST: cluster_pb2.ListRooms,
    Kind.HELLO: cluster_pb2.Hello,
    Kind.REBUILD: cluster_pb2.Rebuild,
    Kind.CLAIM: cluster_pb2.Claim,
    Kind.RELEASE: cluster_pb2.Release,
    Kind.HISTORY: cluster_pb2.RoomHistory,
    Kind.KICK: cluster_pb2.Kick,
    Kind.OPERATE: cluster_pb2.Operate,
    Kind.OPERATED: cluster_pb2.Operated,
    Kind.REPLY: cluster_pb2.Reply,
    Kind.ROOMS: cluster_pb2.RoomList,
}


_CHAT = int(Kind.CHAT)


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

    def add_chat(self, room_id: int, session: int, body: bytes) -> None:
        """A CHAT envelope: the client's body goes on unparsed, behind a fixed header."""
        self._parts.append(_CHAT_ITEM.pack(_CHAT, _CHAT_HEAD_SIZE + len(body), room_id, session))
        self._parts.append(body)
        self.count += 1

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


def pack_deliver(room_id: int, except_session: int, seq: int, frame: bytes) -> bytes:
    """A DELIVER payload: one client frame for every local member of the room but except_session."""
    return DELIVER_HEAD.pack(room_id, except_session, seq) + frame


def unpack_deliver(payload: bytes) -> tuple[int, int, int, bytes]:
    """(room_id, except_session, seq, frame) of a DELIVER payload."""
    if len(payload) < DELIVER_HEAD.size:
        raise EnvelopeError(f"DELIVER of {len(payload)} bytes is shorter than its header")
    room_id, except_session, seq = DELIVER_HEAD.unpack_from(payload)
    return room_id, except_session, seq, payload[DELIVER_HEAD.size:]


def unpack_chat(payload: bytes) -> tuple[int, int, bytes]:
    """(room_id, session, body) of a CHAT payload."""
    if len(payload) < CHAT_HEAD.size:
        raise EnvelopeError(f"CHAT of {len(payload)} bytes is shorter than its header")
    room_id, session = CHAT_HEAD.unpack_from(payload)
    return room_id, session, payload[CHAT_HEAD.size:]


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
