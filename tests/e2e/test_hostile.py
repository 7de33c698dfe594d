"""Hostile and broken clients against a live cluster: each gets its answer, nobody else notices."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from chatwire import WireClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cluster_flow import unique
from waiting import wait_for

from chatcluster.common.frames import HEADER, ErrorCode, MsgId, encode
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e


class GoodPair:
    """Two well-behaved players chatting in one room in the background, checking everything they get."""

    ENOUGH = 10  # messages the pair exchanges at least

    def __init__(self, cluster) -> None:
        self.a, self.b = WireClient(cluster.host, cluster.port), WireClient(cluster.host, cluster.port)
        assert self.a.login(unique("good-a")).success and self.b.login(unique("good-b")).success
        self.a.send(pb.C_CREATE_ROOM_REQ(name="good"))
        self.room = self.a.expect(pb.S_CREATE_ROOM_RES).room.room_id
        self.b.send(pb.C_JOIN_ROOM_REQ(room_id=self.room))
        self.b.expect(pb.S_JOIN_ROOM_RES)
        self.a.expect(pb.S_JOIN_ROOM_NTF)
        self.sent = 0
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                for sender in (self.a, self.b):
                    self.sent += 1
                    sender.chat(f"good {self.sent}")
                    for receiver in (self.a, self.b):
                        msg = receiver.expect(pb.S_ROOM_CHAT_NTF, timeout=5)
                        if (msg.seq, msg.text, msg.sender.player_id) != (self.sent, f"good {self.sent}",
                                                                         sender.player_id):
                            self.errors.append(f"unexpected {msg}")
                time.sleep(0.01)
        except Exception as exc:  # noqa: BLE001 - reported by check()
            self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> GoodPair:
        self.thread.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:  # the pair goes on until it has chatted enough to have noticed what the block did
            wait_for(lambda: self.sent > self.ENOUGH or not self.thread.is_alive(), 10, "the good pair to chat")
        self.stop.set()
        self.thread.join(10)

    def check(self) -> None:
        assert not self.errors, self.errors[:3]
        assert self.sent > self.ENOUGH


def raw(cluster) -> socket.socket:
    return socket.create_connection((cluster.host, cluster.port), timeout=5)


def answer_and_close(client: WireClient) -> tuple[list, bool]:
    """The messages the server sends until it closes (or goes quiet for 3 s), and whether it closed."""
    got = []
    try:
        while (msg := client.recv(3)) is not None:
            got.append(msg)
    except TimeoutError:
        return got, False
    return got, True


CLOSING = [
    ("size below the header", HEADER.pack(3, 1), ErrorCode.BAD_REQUEST),
    ("size zero", HEADER.pack(0, 1), ErrorCode.BAD_REQUEST),
    ("size over the limit", HEADER.pack(8193, 1) + b"\0" * 100, ErrorCode.TOO_LARGE),
    ("unknown id", HEADER.pack(4, 999), ErrorCode.BAD_REQUEST),
    ("a server message id", HEADER.pack(4, MsgId.S_ROOM_CHAT_NTF), ErrorCode.BAD_REQUEST),
]


def test_malformed_frames_close_only_that_connection(cluster):
    with GoodPair(cluster) as good:
        for what, data, code in CLOSING:
            for logged_in in (False, True):
                bad = WireClient(cluster.host, cluster.port)
                if logged_in:
                    bad.send(pb.C_LOGIN_REQ(name=unique("bad"), password="pw"))
                bad.send_raw(data)
                got, closed = answer_and_close(bad)
                errors = [m for m in got if isinstance(m, pb.S_ERROR)]
                assert closed and errors and errors[-1].code == code, (what, got)
        # a truncated frame then close: nothing to answer, and nothing breaks. Only our sending side
        # closes (the server sees the same end of stream), so we can see the server let go in turn.
        s = raw(cluster)
        s.sendall(encode(pb.C_LOGIN_REQ(name=unique("trunc"), password="pw"))[:7])
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b"", "the server answered a truncated frame"
        s.close()
    good.check()


def test_bad_bodies_are_answered_and_the_connection_stays(cluster):
    c = WireClient(cluster.host, cluster.port)
    c.send_raw(HEADER.pack(4 + 3, MsgId.C_LOGIN_REQ) + b"\x0a\x05a")  # truncated field
    assert c.expect(pb.S_ERROR).code == ErrorCode.BAD_REQUEST
    assert c.login(unique("body")).success
    c.send(pb.C_CREATE_ROOM_REQ(name="r"))
    c.expect(pb.S_CREATE_ROOM_RES)
    cases = [
        (HEADER.pack(4 + 3, MsgId.C_ROOM_CHAT_REQ) + b"\x0a\x01\xff", ErrorCode.BAD_REQUEST),  # invalid UTF-8
        (encode(pb.C_ROOM_CHAT_REQ(text="", client_msg_id=1)), ErrorCode.BAD_REQUEST),       # empty text
        (encode(pb.C_ROOM_CHAT_REQ(text="é" * 2049)), ErrorCode.TOO_LARGE),                  # 4098 bytes
        (HEADER.pack(4 + 2, MsgId.C_JOIN_ROOM_REQ) + b"\x08\xff", ErrorCode.BAD_REQUEST),     # truncated varint
    ]
    for data, code in cases:
        c.send_raw(data)
        assert c.expect(pb.S_ERROR).code == code
    c.send(pb.C_JOIN_ROOM_REQ(room_id=2**64 - 1))  # absurd room ids are just unknown rooms
    assert not c.expect(pb.S_JOIN_ROOM_RES).success
    c.send(pb.C_JOIN_ROOM_REQ(room_id=0))
    assert not c.expect(pb.S_JOIN_ROOM_RES).success
    c.send(pb.C_CREATE_ROOM_REQ(name="x" * 65))
    assert not c.expect(pb.S_CREATE_ROOM_RES).success
    c.chat("still here")
    assert c.expect(pb.S_ROOM_CHAT_NTF).seq == 1


# ---- fuzzing -------------------------------------------------------------------------------------
VALID = [
    encode(pb.C_LOGIN_REQ(name="fuzz", password="pw")), encode(pb.C_CREATE_ROOM_REQ(name="fz")),
    encode(pb.C_JOIN_ROOM_REQ(room_id=1)), encode(pb.C_ROOM_CHAT_REQ(text="hello", client_msg_id=5)),
    encode(pb.C_LEAVE_ROOM_REQ()), encode(pb.C_ROOM_LIST_REQ()), encode(pb.C_PING(client_time_us=1)),
]


@st.composite
def frames(draw) -> bytes:
    kind = draw(st.sampled_from(["random", "mutated", "valid-id-random-body", "bad-size"]))
    if kind == "random":
        return draw(st.binary(min_size=1, max_size=300))
    if kind == "mutated":
        frame = bytearray(draw(st.sampled_from(VALID)))
        for _ in range(draw(st.integers(1, 4))):
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
        return bytes(frame[:draw(st.integers(1, len(frame)))])
    if kind == "valid-id-random-body":
        body = draw(st.binary(max_size=200))
        return HEADER.pack(len(body) + 4, draw(st.sampled_from([1, 3, 5, 8, 10, 13, 16]))) + body
    return struct.pack("<HH", draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)))


class Fuzzer:
    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.frames = 0
        self.connections = 0

    def send(self, login_first: bool, batch: list[bytes]) -> None:
        s = raw(self.cluster)
        self.connections += 1
        try:
            if login_first:
                s.sendall(encode(pb.C_LOGIN_REQ(name=unique("fz"), password="pw")))
            for frame in batch:
                s.sendall(frame)
                self.frames += 1
            s.settimeout(0.02)
            try:
                while s.recv(65536):
                    pass
            except (TimeoutError, OSError):
                pass
        except OSError:
            pass  # the server closed on us mid-batch: a protocol error, as expected
        finally:
            s.close()


def test_fuzz_10000_frames_while_two_good_clients_chat(cluster):
    fuzzer = Fuzzer(cluster)
    gateway_pid = cluster.gateway_status()["pid"]
    shard_pids = [s["pid"] for s in cluster.shard_status()]

    @settings(max_examples=800, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(login_first=st.booleans(), batch=st.lists(frames(), min_size=40, max_size=60))
    def fuzz(login_first, batch):
        if fuzzer.frames < 10_000:  # frames the server took before closing on a bad one count
            fuzzer.send(login_first, batch)

    with GoodPair(cluster) as good:
        # /status is published once a second: wait for the snapshots that show the moments we compare
        rss_before = wait_for(lambda: (g := cluster.gateway_status())["sessions"] == 2 and g)["rss_bytes"]
        fuzz()
        # every fuzzing connection has come and gone: only the good pair is left
        after = wait_for(lambda: (g := cluster.gateway_status())["accepted"] >= 2 + fuzzer.connections
                         and g["sessions"] == 2 and g)
        rss_after = after["rss_bytes"]
    good.check()
    assert fuzzer.frames >= 10_000
    # nobody crashed or was restarted
    assert cluster.gateway_status()["pid"] == gateway_pid
    assert [s["pid"] for s in cluster.shard_status()] == shard_pids
    assert "exited with status" not in cluster.log()
    # memory stays flat: closed connections leave nothing behind (a generous bound; RSS is noisy)
    grown = (rss_after - rss_before) / 1e6
    print(f"fuzz: {fuzzer.frames} frames; good pair exchanged {good.sent} messages; gateway RSS {grown:+.1f} MB")
    assert grown < 30


@pytest.mark.parametrize("writer", ["thread", "loop"])
def test_a_stalled_reader_is_dropped_and_the_room_goes_on(cluster_factory, writer):
    cluster = cluster_factory("--writer", writer, shards=1)
    assert cluster.gateway_status()["writer_mode"] == writer
    talker, listener = WireClient(cluster.host, cluster.port), WireClient(cluster.host, cluster.port)
    assert talker.login(unique("talker")).success and listener.login(unique("listener")).success
    talker.send(pb.C_CREATE_ROOM_REQ(name="busy"))
    room = talker.expect(pb.S_CREATE_ROOM_RES).room.room_id
    stalled = socket.create_connection((cluster.host, cluster.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(encode(pb.C_LOGIN_REQ(name=unique("stalled"), password="pw")) +
                    encode(pb.C_JOIN_ROOM_REQ(room_id=room)))
    # it never reads again
    for c in (listener,):
        c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
        c.expect(pb.S_JOIN_ROOM_RES)
    text = "x" * 4000
    sent = 0
    latencies = []
    while cluster.gateway_status()["slow_consumers"] == 0:
        for _ in range(50):
            sent += 1
            started = time.monotonic()
            talker.send(pb.C_ROOM_CHAT_REQ(text=text, client_msg_id=sent))
            for c in (talker, listener):
                while not isinstance(msg := c.recv(5), pb.S_ROOM_CHAT_NTF):  # skip join/leave notices
                    assert isinstance(msg, pb.S_JOIN_ROOM_NTF | pb.S_LEAVE_ROOM_NTF), msg
                assert msg.seq == sent
            latencies.append(time.monotonic() - started)
            time.sleep(0.002)  # under the 500/s request limit
        # 4 MiB of our buffer plus up to 4 MiB of kernel socket buffer: about 2,100 messages of 4 KB
        assert sent < 6000, "the stalled reader was never dropped"
    status = cluster.gateway_status()
    assert status["slow_consumers"] == 1 and status["sessions"] == 2
    assert "slow consumer" in cluster.log()
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(f"stalled reader dropped after {sent} messages of 4 KB; the others' round trip p99 {p99:.1f} ms")
    stalled.close()
