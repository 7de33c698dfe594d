"""The WebSocket adapter's logic as plain objects: server frame headers, the JSON mapping, Origin rules."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame

from chatcluster.common.config import Limits
from chatcluster.common.frames import SERVER_IDS, encode, whole_frames
from chatcluster.common.jsonframes import JsonFrameError, from_json, split_frames, to_json
from chatcluster.gateway.http import StaticFiles
from chatcluster.gateway.websocket import FIN_BINARY, JsonCache, WebEndpoint, header
from chatcluster.gateway.wsecho import EchoSink
from chatcluster.proto import chat_pb2 as pb


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 1 << 20])
def test_our_header_is_the_one_the_library_would_write(length):
    payload = b"x" * length
    assert header(FIN_BINARY, length) + payload == Frame(2, payload).serialize(mask=False)


def test_json_mapping_both_ways():
    chat = encode(pb.S_ROOM_CHAT_NTF(room_id=3, sender=pb.Player(player_id=9, name="ann"), text="hé", seq=12))
    obj = json.loads(to_json(chat))
    assert obj == {"type": "S_ROOM_CHAT_NTF", "roomId": "3", "sender": {"playerId": "9", "name": "ann"},
                   "text": "hé", "seq": "12"}
    assert from_json(to_json(chat), accept=SERVER_IDS) == chat
    error = json.loads(to_json(encode(pb.S_ERROR(code=pb.BAD_REQUEST, message="no"))))
    assert error == {"type": "S_ERROR", "code": "BAD_REQUEST", "message": "no"}
    assert from_json('{"type":"C_ROOM_CHAT_REQ","text":"hi","clientMsgId":"7"}') == encode(
        pb.C_ROOM_CHAT_REQ(text="hi", client_msg_id=7))
    assert from_json('{"type":"C_ROOM_CHAT_REQ","text":"hi","clientMsgId":7}') == encode(
        pb.C_ROOM_CHAT_REQ(text="hi", client_msg_id=7))  # numbers are accepted for 64-bit fields too


@pytest.mark.parametrize(("text", "why"), [
    ("", "not JSON"), ("[]", "expected a JSON object"), ('"C_PING"', "expected a JSON object"),
    ("{}", '"type"'), ('{"type": 5}', '"type"'), ('{"type": "S_PONG"}', "unknown message type"),
    ('{"type": "C_PING", "clientTimeUs": -1}', "C_PING"), ('{"type": "C_PING", "extra": 1}', "C_PING"),
    ('{"type": "C_ROOM_CHAT_REQ", "text": "' + "x" * 70000 + '"}', "does not fit one frame"),
])
def test_json_that_stands_for_no_client_frame(text, why):
    with pytest.raises(JsonFrameError, match=why.replace("(", r"\(")):
        from_json(text)


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=6))
def test_split_frames_gives_back_what_was_joined(bodies):
    frames = [encode(pb.S_ERROR(message=b.hex()[:200])) for b in bodies]
    joined = b"".join(frames)
    assert split_frames(joined) == frames
    assert whole_frames(joined)
    assert not whole_frames(joined[:-1])
    assert not whole_frames(joined + joined[:3])


def test_a_frame_is_converted_once_per_pass_however_many_sessions_get_it():
    cache = JsonCache()
    frame = encode(pb.S_ROOM_CHAT_NTF(room_id=1, text="hi", seq=1))
    first = [cache.message(frame) for _ in range(50)]
    assert cache.conversions == 1 and all(m is first[0] for m in first)
    cache.new_pass()
    cache.message(frame)
    assert cache.conversions == 2


def test_origin_rules():
    endpoint = WebEndpoint(EchoSink(), Limits(), ["https://app.example.com/"], static=StaticFiles({}))
    allowed = endpoint.origin_allowed
    assert allowed(None, "chat.example.com:8080")                         # no browser
    assert allowed("http://chat.example.com:8080", "chat.example.com:8080")  # the server's own page
    assert allowed("HTTPS://APP.EXAMPLE.COM", "chat.example.com")          # configured
    assert not allowed("https://evil.example.net", "chat.example.com:8080")
    assert not allowed("http://chat.example.com:9090", "chat.example.com:8080")  # another port is another site
    assert not allowed("null", "chat.example.com")                         # a sandboxed or file page
    anyone = WebEndpoint(EchoSink(), Limits(), ["*"], static=StaticFiles({}))
    assert anyone.origin_allowed("https://evil.example.net", "chat.example.com")
