"""The `chatcluster.json.v1` mapping: one JSON object per frame, `{"type": "<message name>", ...fields}`.

The fields are protobuf's canonical JSON mapping of the same message
(lowerCamelCase names, 64-bit integers as strings, enum values by name,
defaults left out), so a browser needs no protobuf library, and the frame
behind every object is exactly what a TCP client would have sent or got:
the gateway core only ever sees frames. Sans-I/O and stateless.
"""

from __future__ import annotations

import json

from google.protobuf import json_format

from chatcluster.common.frames import CLIENT_IDS, HEADER, HEADER_SIZE, MESSAGE_TYPES, MsgId, decode_body, encode

_ID_BY_NAME = {m.name: int(m) for m in MsgId}


class JsonFrameError(ValueError):
    """A JSON message that does not stand for a frame; the message says why, for the client."""


def to_json(frame: bytes) -> bytes:
    """One whole frame as its JSON object, UTF-8 encoded."""
    size, msg_id = HEADER.unpack_from(frame)
    message = decode_body(msg_id, frame[HEADER_SIZE:size])
    fields = json_format.MessageToDict(message)
    return json.dumps({"type": MsgId(msg_id).name, **fields}, ensure_ascii=False,
                      separators=(",", ":")).encode()


def split_frames(data: bytes) -> list[bytes]:
    """The whole frames in `data`, which holds nothing but whole frames (what the core wrote)."""
    size = HEADER.unpack_from(data)[0]
    if size == len(data):
        return [data]
    frames, pos = [], 0
    while pos < len(data):
        size = HEADER.unpack_from(data, pos)[0]
        frames.append(data[pos:pos + size])
        pos += size
    return frames


def from_json(text: str, accept: frozenset[int] = CLIENT_IDS) -> bytes:
    """The frame a JSON message stands for; JsonFrameError if it stands for none we accept."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise JsonFrameError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise JsonFrameError(f"expected a JSON object, got {type(obj).__name__}")
    kind = obj.pop("type", None)
    if not isinstance(kind, str):
        raise JsonFrameError('the object has no "type" naming a message')
    msg_id = _ID_BY_NAME.get(kind)
    if msg_id is None or msg_id not in accept:
        raise JsonFrameError(f"unknown message type {kind[:40]!r}")
    try:
        message = json_format.ParseDict(obj, MESSAGE_TYPES[msg_id]())
    except json_format.ParseError as exc:
        raise JsonFrameError(f"{kind}: {exc}") from None
    try:
        return encode(message)
    except ValueError as exc:
        raise JsonFrameError(str(exc)) from None

