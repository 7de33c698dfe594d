"""The JSON form of the chat messages (WebSocket subprotocol chatcluster.json.v1), sans-I/O.

One text message is one object: `{"type": "<message name>", ...fields}`, the
fields in protobuf's JSON mapping (lowerCamelCase names, 64-bit integers as
strings, enum values as names, defaults omitted), as docs/PROTOCOL.md says.
json_format does the mapping wherever cost does not matter (setup requests,
replies); the two messages of the hot path have their own code, measured
(`python -m chatcluster.loadtest.wsmeasure`, 2026-12-04, this VM): a chat
request printed here costs 1.0 µs against json_format's 4.9 µs, and a
notification decoded with the C scanner 1.3 µs against json.loads' 2.2 µs
(on bytes) and json_format's 17 µs. The unit tests check that the
hand-made text is what json_format would print.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.message import Message

from chatcluster.common.frames import MESSAGE_TYPES, MSG_ID_OF, SERVER_IDS, MsgId

_dumps = json.dumps
_raw_decode = json.JSONDecoder().raw_decode


def request(message: Message) -> str:
    """Any chat.proto message as the JSON text of one WebSocket message."""
    body = json_format.MessageToDict(message)
    return _dumps({"type": MsgId(MSG_ID_OF[type(message)]).name, **body}, separators=(",", ":"),
                  ensure_ascii=False)


def chat_request(text: str, client_msg_id: int, idempotency_key: int = 0) -> str:
    """C_ROOM_CHAT_REQ exactly as request() prints it, at a fifth of the cost (the bench's every send)."""
    out = '{"type":"C_ROOM_CHAT_REQ"'
    if text:
        out += ',"text":' + _dumps(text, ensure_ascii=False)
    if client_msg_id:
        out += ',"clientMsgId":"' + str(client_msg_id) + '"'
    if idempotency_key:
        out += ',"idempotencyKey":"' + str(idempotency_key) + '"'
    return out + "}"


def decode_object(payload: bytes) -> dict:
    """The JSON object of one text message (strict UTF-8); ValueError if it is not one."""
    text = payload.decode("utf-8")
    try:
        obj, end = _raw_decode(text)   # the C scanner without json.loads' checks around it
    except ValueError:
        obj, end = json.loads(text), len(text)  # leading whitespace is fine; anything else raises
    if end != len(text) and text[end:].strip():
        raise ValueError(f"text after the JSON object at {end}")
    if type(obj) is not dict:
        raise ValueError(f"a JSON {type(obj).__name__}, not an object")
    return obj


def message_of(obj: dict) -> tuple[int, Message]:
    """(message id, message) of a server message object; ValueError for an unknown type or bad fields."""
    name = obj.get("type")
    try:
        kind = int(MsgId[name])  # type: ignore[misc]
    except (KeyError, TypeError):
        raise ValueError(f"unknown message type {name!r}") from None
    if kind not in SERVER_IDS:
        raise ValueError(f"{name} is not a server message")
    fields = {k: v for k, v in obj.items() if k != "type"}
    try:
        # unknown fields are skipped, as the binary parser skips unknown field numbers (a newer server)
        return kind, json_format.ParseDict(fields, MESSAGE_TYPES[kind](), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(f"bad {name}: {exc}") from None
