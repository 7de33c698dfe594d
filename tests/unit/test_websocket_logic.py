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


# ---- the adapter on a recording transport (no socket: what it writes, byte for byte) -----------------
class RecordingTransport:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.writes = 0
        self.closed = self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.chunks.append(bytes(data))

    def writelines(self, parts) -> None:
        self.writes += 1
        self.chunks.append(b"".join(parts))

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5000) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0


class RecordingSink:
    subprotocols = ("chatcluster.v1", "chatcluster.json.v1")

    def __init__(self) -> None:
        self.links, self.binary_in, self.text_in, self.lost_links = [], [], [], []

    def opened(self, link):
        self.links.append(link)
        return link

    def accepts_text(self, link) -> bool:
        return link.json

    def accepts_binary(self, link) -> bool:
        return not link.json

    def binary(self, session, data) -> None:
        self.binary_in.append(data)

    def text(self, session, text) -> None:
        self.text_in.append(text)

    def lost(self, session) -> None:
        self.lost_links.append(session)

    def slow(self, session, queued) -> None:
        pass


def open_connection(protocol: str, origin: str | None = None):
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    sink = RecordingSink()
    endpoint = WebEndpoint(sink, Limits(), static=StaticFiles({}))
    conn, transport = endpoint.protocol(), RecordingTransport()
    conn.connection_made(transport)
    client = ClientProtocol(parse_uri("ws://127.0.0.1:8080/ws"), subprotocols=[protocol],
                            origin=origin)
    request = client.connect()
    client.send_request(request)
    conn.data_received(b"".join(client.data_to_send()))
    client.receive_data(transport.chunks.pop(0))
    assert client.events_received()[0].status_code == 101
    transport.writes = 0
    return endpoint, conn, transport, sink, client


def test_a_pass_of_frames_is_one_binary_message_in_one_write():
    endpoint, conn, transport, sink, client = open_connection("chatcluster.v1")
    (link,) = sink.links
    frames = [encode(pb.S_ROOM_CHAT_NTF(room_id=1, text=f"m{i}", seq=i)) for i in range(1, 4)]
    link.write(b"".join(frames))
    assert transport.writes == 1
    client.receive_data(transport.chunks.pop())
    (message,) = client.events_received()
    assert message.opcode == 2 and message.data == b"".join(frames)
    # a ping from the client is answered before the next data message
    client.send_ping(b"hi")
    conn.data_received(b"".join(client.data_to_send()))
    link.write(frames[0])
    client.receive_data(b"".join(transport.chunks))
    pong, data = client.events_received()
    assert (pong.opcode, pong.data) == (10, b"hi") and data.data == frames[0]


def test_json_sessions_get_one_text_message_per_frame():
    endpoint, conn, transport, sink, client = open_connection("chatcluster.json.v1")
    (link,) = sink.links
    frames = [encode(pb.S_ROOM_CHAT_NTF(room_id=1, text=f"m{i}", seq=i)) for i in range(1, 3)]
    link.write(b"".join(frames))
    client.receive_data(transport.chunks.pop())
    messages = client.events_received()
    assert [json.loads(m.data)["seq"] for m in messages] == ["1", "2"] and {m.opcode for m in messages} == {1}


def test_text_fragments_are_joined_and_checked_and_binary_is_refused():
    endpoint, conn, transport, sink, client = open_connection("chatcluster.json.v1")
    client.send_text(b'{"type": ', fin=False)
    client.send_continuation(b'"C_PING"}', fin=True)
    conn.data_received(b"".join(client.data_to_send()))
    assert sink.text_in == ['{"type": "C_PING"}']
    client.send_binary(b"\x06\x00\x10\x00")
    conn.data_received(b"".join(client.data_to_send()))
    client.receive_data(b"".join(transport.chunks))
    (close,) = client.events_received()
    assert close.opcode == 8 and close.data[:2] == b"\x03\xeb"  # 1003
    assert transport.closed and endpoint.stats.wrong_message_type == 1


def test_keepalive_pings_once_then_closes_a_silent_client():
    import time

    endpoint, conn, transport, sink, client = open_connection("chatcluster.v1")
    later = time.monotonic() + endpoint.limits.ws_ping_interval + 1
    conn.tick(later)
    conn.tick(later + 1)  # one ping outstanding: no second one
    client.receive_data(b"".join(transport.chunks))
    (ping,) = client.events_received()
    assert ping.opcode == 9 and endpoint.stats.pings == 1
    conn.tick(later + endpoint.limits.ws_ping_timeout + 1)
    assert endpoint.stats.ping_timeouts == 1 and transport.closed


def test_a_handshake_that_never_finishes_is_dropped():
    import time

    endpoint = WebEndpoint(RecordingSink(), Limits(), static=StaticFiles({}))
    conn, transport = endpoint.protocol(), RecordingTransport()
    conn.connection_made(transport)
    conn.data_received(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
    endpoint.tick(time.monotonic() + endpoint.limits.ws_handshake_timeout + 1)
    assert transport.aborted and endpoint.stats.handshake_timeouts == 1
