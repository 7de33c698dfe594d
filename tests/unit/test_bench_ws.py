"""chatctl bench over WebSocket and TLS: the client codec, the JSON mapping and the adapter, as plain objects.

The codec's frames are checked against websockets' own implementation (its
sans-I/O ServerProtocol parses what we send; its Frame serializer makes what
the server would send), and one test shakes hands with websockets' real
server on a free port. The JSON codec is checked against json_format, and a
scenario fed as JSON must count exactly what it counts fed as frames.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import threading

import pytest
from google.protobuf import json_format
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import Protocol, Side
from websockets.sync.server import serve
from websockets.utils import accept_key

from chatcluster.common.frames import HEADER, MsgId, encode
from chatcluster.loadtest import wsjson
from chatcluster.loadtest.accounting import Counters, new_histogram
from chatcluster.loadtest.core import BenchClient
from chatcluster.loadtest.protocols import SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON, WsBenchProtocol
from chatcluster.loadtest.report import transport_label
from chatcluster.loadtest.schedule import msg_id
from chatcluster.loadtest.tls import client_context, make_self_signed
from chatcluster.loadtest.wsclient import (
    CLOSED,
    OP_BINARY,
    OP_TEXT,
    OPEN,
    WsClient,
    WsHandshakeError,
    WsProtocolError,
)
from chatcluster.proto import chat_pb2 as pb

CLIENTS = 4
ROOM = 77


# ---------------------------------------------------------------------------- helpers
def open_client(subprotocol: str = SUBPROTOCOL_BINARY, max_message: int = 1 << 20) -> WsClient:
    ws = WsClient("127.0.0.1:8080", "/ws", subprotocol, max_message=max_message)
    ws.state = OPEN
    return ws


def server_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """A frame as a server sends it (unmasked), made by websockets, not by us."""
    return Frame(opcode, data, fin).serialize(mask=False)


def parsed_by_server(data: bytes, max_size: int | None = None) -> list[Frame]:
    """What websockets' server side makes of bytes we send (it checks the mask bit and unmasks)."""
    server = Protocol(Side.SERVER, max_size=max_size)    # an open connection's server side
    server.receive_data(data)
    return server.events_received()


def response(key: str, subprotocol: str = SUBPROTOCOL_BINARY, **extra: str) -> bytes:
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept_key(key),
               "Sec-WebSocket-Protocol": subprotocol, **extra}
    return ("HTTP/1.1 101 Switching Protocols\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n").encode()


def ntf(seq: int, sender_index: int, n: int = 0, measured: bool = True, room: int = ROOM) -> pb.S_ROOM_CHAT_NTF:
    return pb.S_ROOM_CHAT_NTF(room_id=room, sender=pb.Player(player_id=100 + sender_index, name=f"b{sender_index}"),
                              text="hello", seq=seq, client_msg_id=msg_id(n, measured, sender_index, CLIENTS),
                              server_time_us=1)


def as_json(message) -> bytes:
    return json.dumps({"type": type(message).__name__, **json_format.MessageToDict(message)}).encode()


def make_client(index: int = 1, members: int = CLIENTS, json_mode: bool = False) -> BenchClient:
    """A client logged in as player 100+index and joined to ROOM, through its own wire format."""
    client = BenchClient(index, f"b{index}", Counters(), new_histogram(), CLIENTS, json=json_mode)
    setup = [pb.S_LOGIN_RES(success=True, player_id=100 + index),
             pb.S_JOIN_ROOM_RES(success=True, room=pb.RoomInfo(room_id=ROOM, name="r", member_count=members),
                                members=[pb.Player(player_id=100 + i, name=f"b{i}") for i in range(members)])]
    for message in setup:
        if json_mode:
            client.receive_json(as_json(message), 0)
        else:
            client.receive(encode(message), 0)
    assert (client.player_id, client.room_id, client.members) == (100 + index, ROOM, members)
    return client


def counts(client: BenchClient, *skip: str) -> dict[str, int]:
    return {k: v for k, v in client.counters.as_dict().items() if k not in skip}


# ---------------------------------------------------------------------------- frames we send
@pytest.mark.parametrize("size, header", [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_binary_frames_are_masked_with_the_right_length_encoding(size: int, header: int):
    ws = open_client()
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    data = ws.binary(payload)
    assert data[0] == 0x82 and data[1] & 0x80              # FIN + binary, MASK bit set
    assert len(data) == header + 4 + size
    assert {125: 125, 126: 126, 65535: 126, 65536: 127}.get(size, size) == data[1] & 0x7F
    key = data[header:header + 4]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(data[header + 4:])) == payload
    [frame] = parsed_by_server(data)
    assert frame.opcode is Opcode.BINARY and frame.fin and frame.data == payload


def test_every_frame_gets_its_own_masking_key_from_a_refilled_pool():
    ws = open_client()
    keys = {ws.binary(b"x" * 10)[2:6] for _ in range(3000)}   # more frames than one pool of keys holds
    assert len(keys) > 2990                                    # random 32-bit keys: a collision or two at most


def test_text_frames_carry_utf8_and_websockets_reads_them():
    ws = open_client(SUBPROTOCOL_JSON)
    [frame] = parsed_by_server(ws.text('{"type":"C_PING","text":"héllo ✓"}'))
    assert frame.opcode is Opcode.TEXT and frame.data.decode() == '{"type":"C_PING","text":"héllo ✓"}'


def test_our_close_frame_carries_the_code_and_ends_sending():
    ws = open_client()
    [frame] = parsed_by_server(ws.close(1000, "bench over"))
    assert Close.parse(frame.data) == Close(1000, "bench over")
    assert ws.state is CLOSED


# ---------------------------------------------------------------------------- frames the server sends
@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_server_frames_of_every_length_encoding_are_read_whole_or_byte_by_byte(size: int):
    payload = bytes(i % 251 for i in range(size))
    data = server_frame(Opcode.BINARY, payload)
    assert open_client().receive(data) == [(OP_BINARY, payload)]
    ws = open_client()
    got = []
    step = 1 if size < 1000 else 977
    for i in range(0, len(data), step):
        got += ws.receive(data[i:i + step])
    assert got == [(OP_BINARY, payload)] and ws._buf == b""


def test_several_messages_in_one_read_and_one_message_split_over_reads():
    ws = open_client()
    a, b, c = b"a" * 10, b"b" * 300, b"c" * 5
    data = server_frame(Opcode.BINARY, a) + server_frame(Opcode.BINARY, b) + server_frame(Opcode.BINARY, c)
    cut = len(data) - 3
    assert ws.receive(data[:cut]) == [(OP_BINARY, a), (OP_BINARY, b)]
    assert ws.receive(data[cut:]) == [(OP_BINARY, c)]


def test_fragmented_messages_are_joined_and_pings_between_fragments_are_answered():
    ws = open_client()
    data = (server_frame(Opcode.TEXT, b'{"a":', fin=False) + server_frame(Opcode.PING, b"p1")
            + server_frame(Opcode.CONT, b"1", fin=False) + server_frame(Opcode.CONT, b"}")
            + server_frame(Opcode.BINARY, b"next"))
    assert ws.receive(data) == [(OP_TEXT, b'{"a":1}'), (OP_BINARY, b"next")]
    [pong] = parsed_by_server(b"".join(ws.take_outgoing()))
    assert pong.opcode is Opcode.PONG and pong.data == b"p1"


def test_a_ping_is_answered_with_a_masked_pong_carrying_its_payload():
    ws = open_client()
    assert ws.receive(server_frame(Opcode.PING, b"keepalive-7")) == []
    out = ws.take_outgoing()
    assert len(out) == 1 and out[0][1] & 0x80                 # masked, as every client frame must be
    [pong] = parsed_by_server(out[0])
    assert pong.opcode is Opcode.PONG and pong.data == b"keepalive-7"
    assert ws.receive(server_frame(Opcode.PONG, b"x")) == [] and ws.take_outgoing() == []   # unsolicited: ignored


def test_the_servers_close_is_echoed_and_nothing_after_it_is_read():
    ws = open_client()
    data = (server_frame(Opcode.BINARY, b"last") + Frame(Opcode.CLOSE, Close(1001, "going away").serialize())
            .serialize(mask=False) + server_frame(Opcode.BINARY, b"after"))
    assert ws.receive(data) == [(OP_BINARY, b"last")]
    assert ws.state is CLOSED and (ws.close_code, ws.close_reason) == (1001, "going away")
    [echo] = parsed_by_server(b"".join(ws.take_outgoing()))
    assert Close.parse(echo.data).code == 1001
    assert ws.receive(server_frame(Opcode.BINARY, b"more")) == []


def test_a_close_without_a_code_is_answered_with_1000():
    ws = open_client()
    ws.receive(server_frame(Opcode.CLOSE, b""))
    [echo] = parsed_by_server(b"".join(ws.take_outgoing()))
    assert ws.close_code is None and Close.parse(echo.data).code == 1000


@pytest.mark.parametrize("data, code", [
    (bytes((0x82, 0x81)) + b"\0\0\0\0x", 1002),                        # masked by the server
    (bytes((0xC2, 0x01)) + b"x", 1002),                                # RSV1 without an extension
    (bytes((0x80, 0x01)) + b"x", 1002),                                # continuation of nothing
    (bytes((0x03 | 0x80, 0x01)) + b"x", 1002),                         # reserved data opcode
    (bytes((0x0B | 0x80, 0x00)), 1002),                                # reserved control opcode
    (bytes((0x09, 0x00)), 1002),                                       # fragmented ping
    (bytes((0x89, 126, 0, 126)) + b"x" * 126, 1002),                   # ping longer than 125
    (bytes((0x88, 0x01, 0x03)), 1002),                                 # close with one byte
    (bytes((0x01, 0x01)) + b"{" + bytes((0x02, 0x01)) + b"x", 1002),  # new message inside a fragmented one
    (bytes((0x82, 127)) + (2048).to_bytes(8, "big"), 1009),            # larger than max_message (1024 here)
])
def test_protocol_violations_are_refused_with_a_close_code(data: bytes, code: int):
    with pytest.raises(WsProtocolError) as info:
        open_client(max_message=1024).receive(data)
    assert info.value.code == code


def test_a_fragmented_message_over_the_limit_is_refused():
    ws = open_client(max_message=100)
    ws.receive(server_frame(Opcode.BINARY, b"x" * 60, fin=False))
    with pytest.raises(WsProtocolError) as info:
        ws.receive(server_frame(Opcode.CONT, b"x" * 60))
    assert info.value.code == 1009


# ---------------------------------------------------------------------------- the opening handshake
def test_the_handshake_request_asks_for_one_subprotocol_and_no_extension():
    ws = WsClient("127.0.0.1:8080", "/ws", SUBPROTOCOL_JSON, key="dGhlIHNhbXBsZSBub25jZQ==")
    text = ws.handshake_request().decode()
    assert text.startswith("GET /ws HTTP/1.1\r\n") and text.endswith("\r\n\r\n")
    for line in ("Host: 127.0.0.1:8080", "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
                 "Sec-WebSocket-Protocol: chatcluster.json.v1"):
        assert f"\r\n{line}\r\n" in text
    assert "Extensions" not in text and "Origin" not in text


def test_a_101_split_over_reads_opens_and_frames_after_it_in_the_same_read_are_read():
    ws = WsClient("h:1", "/ws", SUBPROTOCOL_BINARY)
    data = response(ws.key) + server_frame(Opcode.BINARY, b"first")
    assert ws.receive(data[:20]) == [] and ws.state == "connecting"
    assert ws.receive(data[20:]) == [(OP_BINARY, b"first")] and ws.state is OPEN


@pytest.mark.parametrize("mutate, why", [
    (lambda key: b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", "403"),
    (lambda key: response("AAAAAAAAAAAAAAAAAAAAAA=="), "Accept"),
    (lambda key: response(key, SUBPROTOCOL_JSON), "subprotocol"),
    (lambda key: response(key, **{"Sec-WebSocket-Extensions": "permessage-deflate"}), "extensions"),
    (lambda key: response(key).replace(b"Upgrade: websocket", b"Upgrade: h2c"), "Upgrade"),
])
def test_a_handshake_answer_that_is_not_ours_is_refused(mutate, why: str):
    ws = WsClient("h:1", "/ws", SUBPROTOCOL_BINARY)
    with pytest.raises(WsHandshakeError, match=why):
        ws.receive(mutate(ws.key))


def test_against_websockets_own_server_echo_and_ping():
    """Our codec on a real socket against websockets' sync server: handshake, echo both ways, a ping."""
    pinged = threading.Event()

    def handler(conn):
        for message in conn:
            if message == b"ping me":
                if conn.ping(b"are you there").wait(5):   # set when our pong arrives
                    pinged.set()
                conn.send(b"pong seen")
            else:
                conn.send(message)

    with serve(handler, "127.0.0.1", 0, subprotocols=[SUBPROTOCOL_BINARY, SUBPROTOCOL_JSON]) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            ws = WsClient(f"127.0.0.1:{port}", "/ws", SUBPROTOCOL_BINARY)
            sock.sendall(ws.handshake_request())
            got: list[tuple[int, bytes]] = []

            def read_until(n: int) -> None:
                while len(got) < n:
                    data = sock.recv(65536)
                    assert data, "the server closed the connection"
                    got.extend(ws.receive(data))
                    for out in ws.take_outgoing():
                        sock.sendall(out)

            big = bytes(range(256)) * 300                      # 76,800 bytes: the 64-bit length
            sock.sendall(ws.binary(b"hello") + ws.binary(big) + ws.text("hi") + ws.binary(b"ping me"))
            read_until(4)
            assert got == [(OP_BINARY, b"hello"), (OP_BINARY, big), (OP_TEXT, b"hi"), (OP_BINARY, b"pong seen")]
            assert pinged.is_set()
            sock.sendall(ws.close())
            assert sock.recv(100)[:2] == b"\x88\x02"            # the server's close answer
        server.shutdown()


# ---------------------------------------------------------------------------- the JSON mapping
@pytest.mark.parametrize("text, cid", [("hi", 7), ("x" * 2000, 2 ** 63 + 5), ('quote " and \\ and é ✓', 3),
                                       ("", 9), ("no id", 0)])
def test_the_hand_made_chat_request_is_what_json_format_prints(text: str, cid: int):
    made = wsjson.chat_request(text, cid)
    assert made == wsjson.request(pb.C_ROOM_CHAT_REQ(text=text, client_msg_id=cid))
    obj = json.loads(made)
    assert obj.pop("type") == "C_ROOM_CHAT_REQ"
    assert json_format.ParseDict(obj, pb.C_ROOM_CHAT_REQ()) == pb.C_ROOM_CHAT_REQ(text=text, client_msg_id=cid)


def test_requests_use_protobufs_json_mapping():
    assert json.loads(wsjson.request(pb.C_JOIN_ROOM_REQ(room_id=12))) == {"type": "C_JOIN_ROOM_REQ", "roomId": "12"}
    assert json.loads(wsjson.request(pb.C_LOGIN_REQ(name="n", password="p"))) == {
        "type": "C_LOGIN_REQ", "name": "n", "password": "p"}             # token "" is a default: left out
    assert wsjson.request(pb.C_LEAVE_ROOM_REQ()) == '{"type":"C_LEAVE_ROOM_REQ"}'


def test_server_objects_become_messages_and_bad_ones_are_refused():
    kind, msg = wsjson.message_of({"type": "S_ERROR", "code": "NOT_IN_ROOM", "message": "m", "future": 1})
    assert kind == MsgId.S_ERROR and msg == pb.S_ERROR(code=pb.NOT_IN_ROOM, message="m")
    for obj, why in (({"type": "S_NOPE"}, "unknown"), ({"type": "C_PING"}, "not a server"),
                     ({"type": "S_LOGIN_RES", "playerId": "x"}, "bad S_LOGIN_RES"), ({}, "unknown")):
        with pytest.raises(ValueError, match=why):
            wsjson.message_of(obj)
    assert wsjson.decode_object(b' {"a": 1} \n') == {"a": 1}
    for raw in (b"[1]", b'"s"', b'{"a":1} x', b"{", b"\xff{}"):
        with pytest.raises(ValueError):
            wsjson.decode_object(raw)


def test_the_same_server_messages_count_the_same_as_json_and_as_frames():
    """Deliveries, own copies, gaps, duplicates, a wrong room, join/leave, S_ERROR: JSON and frames agree."""
    script = [ntf(1, 0), ntf(2, 1, n=0), ntf(3, 2, measured=False), ntf(5, 3), ntf(5, 3), ntf(4, 0, n=1),
              ntf(6, 1, n=0), ntf(7, 0, room=ROOM + 1), ntf(8, 1, n=9),
              pb.S_JOIN_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=9, name="j")),
              pb.S_LEAVE_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=9, name="j")),
              pb.S_ERROR(code=pb.RATE_LIMITED, message="slow down")]
    binary, text = make_client(), make_client(json_mode=True)
    for client in (binary, text):
        client.chat_frame(0, True, "hi", clock_ns=1_000)
    for message in script:
        binary.receive(encode(message), 5_000)
        text.receive_json(as_json(message), 5_000)
    skip = ("io_r", "bytes_r", "bytes_s")
    assert counts(text, *skip) == counts(binary, *skip)
    c = text.counters
    assert (c.deliveries, c.gaps, c.duplicates, c.reorders, c.wrong_room, c.errors, c.unknown_own) == (
        9, 2, 2, 1, 1, 1, 1)   # gaps: 3->5, and 6->8 (7 went to another room)
    assert c.own_received == 1 and text.hist.get_total_count() == 1 and text.members == CLIENTS


def test_json_notifications_accept_numbers_and_count_bad_ones_as_undecodable():
    client = make_client(json_mode=True)
    client.receive_json(json.dumps({"type": "S_ROOM_CHAT_NTF", "roomId": ROOM, "seq": 1, "clientMsgId": 4,
                                    "sender": {"playerId": 100}}).encode(), 0)   # numbers, not strings: allowed
    assert client.counters.deliveries == 1 and client.seq.last == 1
    for bad in (b"not json", b"[]", b'{"no":"type"}', b'{"type":"S_ROOM_CHAT_NTF","seq":"x"}',
                b'{"type":"S_ROOM_CHAT_NTF","roomId":"77","sender":"me"}', b'{"type":"S_UNKNOWN"}'):
        client.receive_json(bad, 0)
    assert client.counters.undecodable == 6 and client.seq.last == 1 and not client.broken


def test_json_clients_send_json_and_frame_clients_send_frames():
    text, binary = make_client(json_mode=True), make_client()
    assert json.loads(text.login_frame("pw")) == {"type": "C_LOGIN_REQ", "name": "b1", "password": "pw"}
    assert json.loads(text.join_frame(5)) == {"type": "C_JOIN_ROOM_REQ", "roomId": "5"}
    chat = json.loads(text.chat_frame(0, True, "hey", clock_ns=0))
    assert chat == {"type": "C_ROOM_CHAT_REQ", "text": "hey", "clientMsgId": str(msg_id(0, True, 1, CLIENTS))}
    assert HEADER.unpack_from(binary.chat_frame(0, True, "hey", clock_ns=0))[1] == MsgId.C_ROOM_CHAT_REQ
    assert text.counters.expected == binary.counters.expected == CLIENTS


# ---------------------------------------------------------------------------- the adapter (no socket)
class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    abort = close


class Owner:
    closing = False


def opened_protocol(json_mode: bool = False) -> tuple[WsBenchProtocol, FakeTransport]:
    """A WsBenchProtocol through its handshake, on a fake transport, inside a running loop (see run())."""
    client = make_client(json_mode=json_mode)
    for name in ("io_r", "bytes_r", "frames_r"):
        setattr(client.counters, name, 0)
    proto = WsBenchProtocol(client, Owner(), "127.0.0.1", 8080)
    transport = FakeTransport()
    proto.connection_made(transport)
    request = transport.written.pop()
    key = request.split(b"Sec-WebSocket-Key: ")[1].split(b"\r\n")[0].decode()
    proto.data_received(response(key, SUBPROTOCOL_JSON if json_mode else SUBPROTOCOL_BINARY))
    assert proto._opened.done() and proto._opened.exception() is None
    for name in ("io_r", "bytes_r"):
        setattr(client.counters, name, 0)
    return proto, transport


def run(test) -> None:
    async def main() -> None:
        test()
    asyncio.run(main())


def test_adapter_several_frames_in_one_message_and_two_messages_in_one_read():
    def test() -> None:
        proto, transport = opened_protocol()
        first = encode(ntf(1, 0)) + encode(ntf(2, 2)) + encode(ntf(3, 3))
        data = server_frame(Opcode.BINARY, first) + server_frame(Opcode.BINARY, encode(ntf(4, 1, n=0)))
        proto.client.chat_frame(0, True, "x", clock_ns=0)
        proto.data_received(data)
        c = proto.client.counters
        assert (c.deliveries, c.frames_r, c.own_received, proto.client.seq.last) == (4, 4, 1, 4)
        assert (c.io_r, c.bytes_r) == (1, len(data))           # one read, the bytes on the wire
        assert c.undecodable == 0 and not transport.closed

        proto.write(encode(pb.C_PING()))
        [frame] = parsed_by_server(transport.written.pop())
        assert frame.opcode is Opcode.BINARY and frame.data == encode(pb.C_PING())
    run(test)


def test_adapter_a_frame_spanning_two_messages_breaks_the_stream():
    def test() -> None:
        proto, transport = opened_protocol()
        frame = encode(ntf(1, 0))
        proto.data_received(server_frame(Opcode.BINARY, frame[:5]) + server_frame(Opcode.BINARY, frame[5:]))
        c = proto.client.counters
        assert c.undecodable == 1 and proto.client.broken and transport.closed and c.deliveries == 0
    run(test)


def test_adapter_answers_pings_echoes_close_and_counts_wrong_message_kinds():
    def test() -> None:
        proto, transport = opened_protocol(json_mode=True)
        proto.data_received(server_frame(Opcode.PING, b"k") + server_frame(Opcode.BINARY, b"\x05\x00\x09\x00x")
                            + server_frame(Opcode.TEXT, as_json(ntf(1, 0))))
        [pong] = parsed_by_server(transport.written.pop())
        c = proto.client.counters
        assert pong.opcode is Opcode.PONG and pong.data == b"k"
        assert c.undecodable == 1 and c.deliveries == 1          # a binary message on the JSON subprotocol
        proto.data_received(Frame(Opcode.CLOSE, Close(1001, "bye").serialize()).serialize(mask=False))
        [echo] = parsed_by_server(transport.written.pop())
        assert Close.parse(echo.data).code == 1001 and transport.closed and not proto.alive
        proto.write(wsjson.chat_request("late", 3))             # nothing is sent after a close
        assert transport.written == []
        proto.connection_lost(None)
        assert c.dead == 1 and any("1001 bye" in e for e in proto.client.error_samples)
    run(test)


def test_adapter_a_refused_handshake_fails_setup():
    def test() -> None:
        proto = WsBenchProtocol(make_client(), Owner(), "::1", 8080)
        assert proto.ws.host == "[::1]:8080"
        transport = FakeTransport()
        proto.connection_made(transport)
        proto.data_received(b"HTTP/1.1 403 Forbidden\r\n\r\n")
        assert transport.closed and "403" in str(proto._opened.exception())
    run(test)


def test_adapter_a_protocol_error_sends_a_close_frame_then_closes():
    def test() -> None:
        proto, transport = opened_protocol()
        proto.data_received(bytes((0x82, 0x81)) + b"\0\0\0\0x")    # a masked server frame
        [close] = parsed_by_server(transport.written.pop())
        assert Close.parse(close.data).code == 1002 and transport.closed
        assert proto.client.counters.undecodable == 1
    run(test)


# ---------------------------------------------------------------------------- TLS
class OneTlsServer:
    """Accepts one TLS connection on a free port in a thread and echoes what it reads in upper case."""

    def __init__(self, cert, key) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(10).upper())
        except (ssl.SSLError, OSError):   # the client refused our certificate
            conn.close()

    def __enter__(self) -> OneTlsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.thread.join(5)
        self.listener.close()


@pytest.mark.parametrize("use", ["cryptography", "openssl"])
def test_a_throwaway_certificate_is_trusted_by_the_bench_context_for_its_host(tmp_path, use: str):
    if use == "cryptography":
        pytest.importorskip("cryptography")
    cert, key = make_self_signed(tmp_path, "127.0.0.1", use=use)
    assert key.stat().st_mode & 0o077 == 0
    with OneTlsServer(cert, key) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            client_context(str(cert)).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"hello")
        assert tls.recv(10) == b"HELLO"


def test_without_ca_the_system_store_does_not_trust_a_throwaway_certificate(tmp_path):
    cert, key = make_self_signed(tmp_path, "127.0.0.1", use="openssl")
    with OneTlsServer(cert, key) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            pytest.raises(ssl.SSLCertVerificationError):
        client_context(None).wrap_socket(raw, server_hostname="127.0.0.1")


def test_transport_labels_name_what_was_measured():
    assert transport_label("tcp", False) == "TCP"
    assert transport_label("ws", True) == "WebSocket binary (chatcluster.v1) with TLS"
    assert transport_label("ws-json", False) == "WebSocket JSON (chatcluster.json.v1)"
