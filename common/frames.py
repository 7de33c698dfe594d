"""Client frames: `[u16 size LE][u16 id LE][protobuf body]`, as PROTOCOL.md defines them.

Sans-I/O: FrameDecoder takes bytes in whatever pieces TCP delivers them and
hands out whole frames; it never touches a socket, so the gateway, the load
generator, the console client and the tests all cut frames the same way.
"""

from __future__ import annotations

import struct
from enum import IntEnum

from google.protobuf.message import DecodeError, Message

from chatcluster.common.config import Limits
from chatcluster.proto import chat_pb2

HEADER = struct.Struct("<HH")
HEADER_SIZE = HEADER.size
#: Largest frame a client may send: the server's default limit (PROTOCOL.md), kept with the other limits.
MAX_CLIENT_FRAME = Limits.max_frame
#: Largest frame that the u16 size can describe: the bound on what the server sends.
MAX_FRAME = 0xFFFF


class MsgId(IntEnum):
    C_LOGIN_REQ = 1
    S_LOGIN_RES = 2
    C_CREATE_ROOM_REQ = 3
    S_CREATE_ROOM_RES = 4
    C_JOIN_ROOM_REQ = 5
    S_JOIN_ROOM_RES = 6
    S_JOIN_ROOM_NTF = 7
    C_ROOM_CHAT_REQ = 8
    S_ROOM_CHAT_NTF = 9
    C_LEAVE_ROOM_REQ = 10
    S_LEAVE_ROOM_ACK = 11
    S_LEAVE_ROOM_NTF = 12
    C_ROOM_LIST_REQ = 13
    S_ROOM_LIST_RES = 14
    S_ERROR = 15
    C_PING = 16
    S_PONG = 17
    # version 1.1
    C_ROOM_HISTORY_REQ = 18
    S_ROOM_HISTORY_RES = 19


ErrorCode = chat_pb2.ErrorCode

#: The message class of every id; the names match, which a unit test checks.
MESSAGE_TYPES: dict[int, type[Message]] = {int(m): getattr(chat_pb2, m.name) for m in MsgId}
MSG_ID_OF: dict[type[Message], int] = {cls: mid for mid, cls in MESSAGE_TYPES.items()}
CLIENT_IDS = frozenset(int(m) for m in MsgId if m.name.startswith("C_"))
SERVER_IDS = frozenset(int(m) for m in MsgId if m.name.startswith("S_"))


class ProtocolError(Exception):
    """A stream that cannot be framed any further: answer S_ERROR and close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encode(message: Message) -> bytes:
    """The complete frame for a protobuf message of chat.proto."""
    body = message.SerializeToString()
    size = HEADER_SIZE + len(body)
    if size > MAX_FRAME:
        raise ValueError(f"{type(message).__name__} of {size} bytes does not fit one frame")
    return HEADER.pack(size, MSG_ID_OF[type(message)]) + body


def error_frame(code: int, message: str) -> bytes:
    return encode(chat_pb2.S_ERROR(code=code, message=message))


def decode_body(msg_id: int, body: bytes) -> Message:
    """Parse a body; raises DecodeError (the caller answers BAD_REQUEST)."""
    msg = MESSAGE_TYPES[msg_id]()
    msg.ParseFromString(body)
    return msg


def whole_frames(data: bytes) -> bool:
    """Whether `data` is one or more whole frames, none cut short (what a binary WebSocket message must hold)."""
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < HEADER_SIZE:
            return False
        size = HEADER.unpack_from(data, pos)[0]
        if size < HEADER_SIZE:
            return False
        pos += size
    return pos == end


class FrameDecoder:
    """Cuts a byte stream into (id, body) frames.

    Partial frames are kept until the rest arrives; one feed may hold many
    frames. next_frame() returns one frame at a time so that the caller can
    stop in the middle of a read (the gateway does while a session waits for
    a reply) and resume later without buffering frames twice.
    """

    __slots__ = ("_buf", "_pos", "max_size", "accept")

    def __init__(self, max_size: int = MAX_CLIENT_FRAME, accept: frozenset[int] = CLIENT_IDS) -> None:
        self._buf = b""
        self._pos = 0
        self.max_size = max_size
        self.accept = accept

    def feed(self, data: bytes) -> None:
        if type(data) is not bytes:
            data = bytes(data)
        if self._pos >= len(self._buf):
            self._buf = data
        else:
            self._buf = self._buf[self._pos:] + data
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as frames."""
        return len(self._buf) - self._pos

    def next_frame(self) -> tuple[int, bytes] | None:
        """The next whole frame, or None until more bytes arrive.

        Raises ProtocolError for a size below the header, a size over the
        limit, or an id this side does not accept; the stream is then unusable.
        """
        buf, pos = self._buf, self._pos
        have = len(buf) - pos
        if have < HEADER_SIZE:
            if have >= 2:  # the size alone already tells a bad frame
                self._check_size(buf[pos] | buf[pos + 1] << 8)
            return None
        size, msg_id = HEADER.unpack_from(buf, pos)
        if size < HEADER_SIZE or size > self.max_size:
            self._check_size(size)
        if msg_id not in self.accept:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"unknown message id {msg_id}")
        end = pos + size
        if end > len(buf):
            return None
        self._pos = end
        return msg_id, buf[pos + HEADER_SIZE:end]

    def _check_size(self, size: int) -> None:
        if size < HEADER_SIZE:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"frame size {size} < {HEADER_SIZE}")
        if size > self.max_size:
            raise ProtocolError(ErrorCode.TOO_LARGE, f"frame size {size} > limit {self.max_size}")

    def frames(self):
        """Every whole frame buffered now (for callers that never pause)."""
        while (frame := self.next_frame()) is not None:
            yield frame


__all__ = [
    "HEADER", "HEADER_SIZE", "MAX_CLIENT_FRAME", "MAX_FRAME", "MsgId", "ErrorCode", "MESSAGE_TYPES",
    "CLIENT_IDS", "SERVER_IDS", "ProtocolError", "DecodeError", "encode", "error_frame", "decode_body",
    "FrameDecoder", "whole_frames",
]
