"""Framing as PROTOCOL.md defines it, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatcluster.common.frames import (
    CLIENT_IDS,
    HEADER,
    MAX_FRAME,
    SERVER_IDS,
    ErrorCode,
    FrameDecoder,
    MsgId,
    ProtocolError,
    decode_body,
    encode,
)
from chatcluster.proto import chat_pb2 as pb


def frames_of(*messages) -> bytes:
    return b"".join(encode(m) for m in messages)


def test_encode_header():
    frame = encode(pb.C_PING(client_time_us=1))
    size, msg_id = HEADER.unpack_from(frame)
    assert size == len(frame) and msg_id == MsgId.C_PING
    assert encode(pb.C_LEAVE_ROOM_REQ()) == HEADER.pack(4, 10)  # an empty body is a 4-byte frame


def test_many_frames_in_one_read():
    d = FrameDecoder()
    d.feed(frames_of(pb.C_PING(client_time_us=1), pb.C_LEAVE_ROOM_REQ(), pb.C_PING(client_time_us=2)))
    got = list(d.frames())
    assert [m for m, _ in got] == [16, 10, 16]
    assert decode_body(*got[2]).client_time_us == 2
    assert d.buffered == 0


def test_byte_by_byte():
    data = frames_of(pb.C_LOGIN_REQ(name="a", password="b"), pb.C_PING(client_time_us=7))
    d = FrameDecoder()
    got = []
    for i in range(len(data)):
        d.feed(data[i:i + 1])
        got.extend(d.frames())
    assert [m for m, _ in got] == [1, 16]
    assert decode_body(*got[0]).name == "a"


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=30), st.data())
def test_any_split_gives_the_same_frames(sizes, data):
    messages = [pb.C_ROOM_CHAT_REQ(text="x" * n, client_msg_id=i) for i, n in enumerate(sizes)]
    stream = frames_of(*messages)
    cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=20)))
    d = FrameDecoder()
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        d.feed(stream[prev:cut])
        prev = cut
        got.extend(decode_body(m, b) for m, b in d.frames())
    assert got == messages


def test_pausing_keeps_the_rest():
    d = FrameDecoder()
    d.feed(frames_of(pb.C_PING(client_time_us=1), pb.C_PING(client_time_us=2)) + b"\x08")
    assert d.next_frame()[0] == 16
    assert d.buffered > 0
    d.feed(b"\x00")  # more bytes while the caller was not reading frames
    assert decode_body(*d.next_frame()).client_time_us == 2
    assert d.next_frame() is None and d.buffered == 2


@pytest.mark.parametrize(("data", "code"), [
    (HEADER.pack(3, 1), ErrorCode.BAD_REQUEST),          # size < 4
    (HEADER.pack(0, 1), ErrorCode.BAD_REQUEST),
    (b"\x02\x00", ErrorCode.BAD_REQUEST),                 # the size alone is enough to tell
    (HEADER.pack(8193, 1), ErrorCode.TOO_LARGE),          # over the limit
    (HEADER.pack(0xFFFF, 8), ErrorCode.TOO_LARGE),
    (HEADER.pack(4, 999), ErrorCode.BAD_REQUEST),         # unknown id
    (HEADER.pack(4, 0), ErrorCode.BAD_REQUEST),
    (HEADER.pack(4, MsgId.S_LOGIN_RES), ErrorCode.BAD_REQUEST),  # a server message from a client
])
def test_malformed_frames(data, code):
    d = FrameDecoder()
    d.feed(data)
    with pytest.raises(ProtocolError) as err:
        d.next_frame()
    assert err.value.code == code


def test_a_full_size_frame_is_accepted():
    d = FrameDecoder()
    d.feed(HEADER.pack(8192, MsgId.C_ROOM_CHAT_REQ) + b"\0" * 8188)
    msg_id, body = d.next_frame()
    assert msg_id == MsgId.C_ROOM_CHAT_REQ and len(body) == 8188


def test_client_side_decoder_takes_server_ids():
    d = FrameDecoder(MAX_FRAME, SERVER_IDS)
    big = pb.S_ROOM_LIST_RES(rooms=[pb.RoomInfo(room_id=i, name="r" * 40) for i in range(500)])
    d.feed(encode(big))
    assert decode_body(*d.next_frame()) == big
    assert CLIENT_IDS.isdisjoint(SERVER_IDS)
