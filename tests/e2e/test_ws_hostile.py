"""Fuzzing over WebSocket: garbage frames inside binary messages, JSON that is no message, broken
WebSocket framing itself; two good clients chat meanwhile and notice nothing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawws import RawWs
from test_cluster_flow import unique
from test_hostile import GoodPair, frames
from waiting import wait_for
from websockets.frames import Opcode

from chatcluster.common.frames import encode
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e

JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=8)
MESSAGE_NAMES = st.sampled_from(["C_LOGIN_REQ", "C_CREATE_ROOM_REQ", "C_JOIN_ROOM_REQ", "C_ROOM_CHAT_REQ",
                                 "C_PING", "S_PONG", "C_NOPE", ""])


@st.composite
def json_messages(draw) -> str:
    kind = draw(st.sampled_from(["typed", "any", "text"]))
    if kind == "typed":
        fields = draw(st.dictionaries(st.sampled_from(["name", "password", "roomId", "text", "clientMsgId",
                                                       "clientTimeUs", "x"]), JSON_VALUES, max_size=3))
        return json.dumps({"type": draw(MESSAGE_NAMES), **fields})
    if kind == "any":
        return json.dumps(draw(JSON_VALUES))
    return draw(st.text(max_size=200))


class WsFuzzer:
    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.messages = 0
        self.connections = 0
        self.handshakes = 0  # answered 101 (a busy machine may time one out before its answer)

    def send(self, protocol: str, login_first: bool, batch: list, garbage: bytes) -> None:
        ws = RawWs(self.cluster.host, self.cluster.http_port)
        self.connections += 1
        try:
            assert ws.handshake(protocol=protocol)[0] == 101
            self.handshakes += 1
            binary = protocol == "chatcluster.v1"
            if login_first:
                login = pb.C_LOGIN_REQ(name=unique("wsfz"), password="pw")
                ws.send_frame(Opcode.BINARY, encode(login)) if binary else ws.send_frame(
                    Opcode.TEXT, json.dumps({"type": "C_LOGIN_REQ", "name": login.name, "password": "pw"}).encode())
            for item in batch:
                ws.send_frame(Opcode.BINARY if binary else Opcode.TEXT, item if binary else item.encode())
                self.messages += 1
            ws.sock.sendall(garbage)  # then whatever bytes, as WebSocket framing
            while ws.recv_frame(0.05) is not None:
                pass
        except (TimeoutError, OSError):
            pass  # the server closed on us mid-batch, as it may
        finally:
            ws.close()


def test_fuzz_websocket_messages_while_two_good_clients_chat(cluster):
    fuzzer = WsFuzzer(cluster)
    gateway_pid = cluster.gateway_status()["pid"]

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(protocol=st.sampled_from(["chatcluster.v1", "chatcluster.json.v1"]), login_first=st.booleans(),
           frames_batch=st.lists(st.lists(frames(), min_size=1, max_size=4).map(b"".join), max_size=8),
           json_batch=st.lists(json_messages(), max_size=8), garbage=st.binary(max_size=64))
    def fuzz(protocol, login_first, frames_batch, json_batch, garbage):
        binary = protocol == "chatcluster.v1"
        fuzzer.send(protocol, login_first, frames_batch if binary else json_batch, garbage)

    with GoodPair(cluster) as good:
        fuzz()
        # /status is a snapshot published once a second: one taken mid-fuzz, between two connections, also
        # shows none open, so wait for the one that has counted every handshake the fuzzer saw answered.
        after = wait_for(lambda: (g := cluster.gateway_status())["sessions"] == 2
                         and g["websocket"]["connections"] == 0 and g["websocket"]["handshakes"] >= fuzzer.handshakes
                         and g, 20, "every fuzzing connection counted and gone")
    good.check()
    assert cluster.gateway_status()["pid"] == gateway_pid
    assert "Traceback" not in cluster.log() and "exited with status" not in cluster.log()
    web = after["websocket"]
    print(f"ws fuzz: {fuzzer.messages} messages on {fuzzer.connections} connections; figures {web}")
    assert web["handshakes"] >= fuzzer.handshakes > 250 and fuzzer.messages > 800 and web["bytes_out"] > 0
