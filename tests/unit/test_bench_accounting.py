"""chatctl bench: what one client counts from the bytes it receives (no sockets), and the latency histograms."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatcluster.common.frames import HEADER, MsgId, decode_body, encode
from chatcluster.loadtest.accounting import (
    ERROR_FIELDS,
    Counters,
    SeqCheck,
    add_counts,
    correctness_failures,
    decode_histogram,
    encode_histogram,
    latency_buckets,
    latency_summary,
    merge_histograms,
    new_histogram,
    record_us,
    sub_counts,
)
from chatcluster.loadtest.core import BenchClient
from chatcluster.loadtest.schedule import msg_id
from chatcluster.proto import chat_pb2 as pb

CLIENTS = 4
ROOM = 77


def ntf(seq: int, sender_index: int, n: int = 0, measured: bool = True, room: int = ROOM,
        sender_id: int | None = None) -> bytes:
    return encode(pb.S_ROOM_CHAT_NTF(
        room_id=room, sender=pb.Player(player_id=100 + sender_index if sender_id is None else sender_id,
                                       name=f"bench{sender_index}-t"),
        text="hello", seq=seq, client_msg_id=msg_id(n, measured, sender_index, CLIENTS), server_time_us=1))


def make_client(index: int = 1, members: int = CLIENTS) -> BenchClient:
    """A client logged in as player 100+index and joined to ROOM with `members` members."""
    client = BenchClient(index, f"bench{index}-t", Counters(), new_histogram(), CLIENTS)
    replies = []
    client.on_reply = lambda kind, msg: replies.append(kind)
    client.receive(encode(pb.S_LOGIN_RES(success=True, player_id=100 + index)), 0)
    client.receive(encode(pb.S_JOIN_ROOM_RES(
        success=True, room=pb.RoomInfo(room_id=ROOM, name="r", member_count=members),
        members=[pb.Player(player_id=100 + i, name=f"bench{i}-t") for i in range(members)])), 0)
    assert replies == [MsgId.S_LOGIN_RES, MsgId.S_JOIN_ROOM_RES]
    assert (client.player_id, client.room_id, client.members) == (100 + index, ROOM, members)
    return client


def errors(c: Counters) -> dict:
    return {k: v for k, v in c.as_dict().items() if k in ERROR_FIELDS and v}


# ---------------------------------------------------------------------------- seq accounting
def test_seq_in_order_gap_duplicate_and_reorder():
    c = Counters()
    s = SeqCheck()
    for seq in (1, 2, 3):
        s.see(seq, c)
    assert (c.gaps, c.duplicates, c.reorders) == (0, 0, 0)
    s.see(6, c)          # 4 and 5 never came
    assert c.gaps == 2 and s.last == 6
    s.see(6, c)          # the same again
    assert c.duplicates == 1
    s.see(5, c)          # late: out of order
    assert c.reorders == 1 and s.last == 6
    s.see(7, c)
    assert (c.gaps, c.duplicates, c.reorders) == (2, 1, 1)


def test_first_seq_must_be_one():
    c = Counters()
    SeqCheck().see(3, c)
    assert c.gaps == 2


# ---------------------------------------------------------------------------- one client, frame by frame
def test_own_copy_is_matched_by_client_msg_id_and_timed():
    client = make_client(index=1)
    frame = client.chat_frame(0, True, "hi there", clock_ns=1_000_000)
    assert HEADER.unpack(frame[:4]) == (len(frame), MsgId.C_ROOM_CHAT_REQ)
    req = decode_body(MsgId.C_ROOM_CHAT_REQ, frame[4:])
    assert req.text == "hi there" and req.client_msg_id == msg_id(0, True, 1, CLIENTS)
    c = client.counters
    assert (c.app_in, c.measured_sent, c.expected) == (1, 1, CLIENTS)
    client.receive(ntf(1, sender_index=1, n=0), now_ns=1_250_000)
    assert client.hist.get_total_count() == 1
    assert client.hist.get_max_value() == pytest.approx(250, rel=0.001)
    assert (c.own_received, c.latencies, c.deliveries, c.delivered) == (1, 1, 1, 1)
    assert client.outstanding == {} and not errors(c)


def test_other_clients_messages_count_as_deliveries_not_as_own():
    client = make_client(index=1)
    client.receive(ntf(1, sender_index=0) + ntf(2, sender_index=2) + ntf(3, sender_index=3, measured=False), 5)
    c = client.counters
    assert (c.deliveries, c.delivered, c.own_received, c.latencies) == (3, 2, 0, 0)
    assert c.frames_r == 5 and c.io_r == 3  # login, join, and this read of three frames
    assert not errors(c)


def test_frames_split_at_every_byte_still_count_once():
    client = make_client(index=2)
    client.chat_frame(0, True, "x", clock_ns=0)
    data = ntf(1, sender_index=0) + ntf(2, sender_index=2) + ntf(3, sender_index=1)
    for i in range(len(data)):
        client.receive(data[i:i + 1], now_ns=2_000_000)
    c = client.counters
    assert (c.deliveries, c.own_received, c.latencies) == (3, 1, 1)
    assert not errors(c)


def test_warmup_messages_are_checked_but_not_timed_or_counted_as_measured():
    client = make_client(index=1)
    client.chat_frame(0, False, "warm", clock_ns=0)
    client.receive(ntf(1, sender_index=1, n=0, measured=False), now_ns=10_000)
    c = client.counters
    assert (c.app_in, c.measured_sent, c.expected, c.own_received, c.latencies, c.delivered) == (1, 0, 0, 1, 0, 0)
    assert client.hist.get_total_count() == 0


def test_a_second_own_copy_is_a_duplicate_and_an_id_never_sent_is_unknown():
    client = make_client(index=1)
    client.chat_frame(0, True, "x", clock_ns=0)
    client.receive(ntf(1, sender_index=1, n=0), 1000)
    client.receive(ntf(2, sender_index=1, n=0), 2000)   # same client_msg_id again (new seq)
    client.receive(ntf(3, sender_index=1, n=5), 3000)   # never sent
    c = client.counters
    assert (c.duplicates, c.unknown_own, c.latencies) == (1, 1, 1)


def test_own_id_with_someone_elses_player_id_is_not_matched():
    client = make_client(index=1)
    client.chat_frame(0, True, "x", clock_ns=0)
    client.receive(ntf(1, sender_index=1, n=0, sender_id=999), 1000)
    assert client.counters.unknown_own == 1 and client.counters.latencies == 0
    assert len(client.outstanding) == 1


def test_messages_never_echoed_are_lost_when_the_grace_period_ends():
    client = make_client(index=0)
    for n in range(3):
        client.chat_frame(n, n > 0, "x", clock_ns=n)   # message 0 in warmup, 1 and 2 measured
    client.receive(ntf(1, sender_index=0, n=1), 10)
    assert client.measured_in_flight() == 1
    client.settle()
    c = client.counters
    assert (c.lost, c.warmup_lost) == (1, 1)
    assert client.outstanding == {}


def test_wrong_room_is_counted_and_not_sequenced():
    client = make_client()
    client.receive(ntf(1, sender_index=0, room=ROOM + 1) + ntf(1, sender_index=0), 0)
    c = client.counters
    assert c.wrong_room == 1 and c.gaps == 0 and client.seq.last == 1


def test_gaps_reorders_and_duplicates_across_a_stream():
    client = make_client()
    client.receive(b"".join(ntf(s, sender_index=0, n=s) for s in (1, 2, 4, 3, 3, 5, 9)), 0)
    c = client.counters
    assert (c.gaps, c.reorders, c.duplicates) == (1 + 3, 2, 0)


def test_join_and_leave_notifications_change_the_expected_fan_out():
    client = make_client(members=2)
    client.receive(encode(pb.S_JOIN_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=7, name="a"))), 0)
    client.receive(encode(pb.S_JOIN_ROOM_NTF(room_id=ROOM + 1, player=pb.Player(player_id=8, name="b"))), 0)
    assert client.members == 3
    client.chat_frame(0, True, "x", 0)
    client.receive(encode(pb.S_LEAVE_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=7, name="a"))), 0)
    client.chat_frame(1, True, "x", 0)
    assert client.counters.expected == 3 + 2


def test_s_error_is_counted_sampled_and_answers_a_waiting_setup_step():
    client = make_client()
    seen = []
    client.on_reply = lambda kind, msg: seen.append((kind, msg.code))
    client.receive(encode(pb.S_ERROR(code=pb.NOT_IN_ROOM, message="not in a room")), 0)
    assert client.counters.errors == 1
    assert seen == [(MsgId.S_ERROR, pb.NOT_IN_ROOM)]
    assert client.error_samples == ["bench1-t: S_ERROR NOT_IN_ROOM not in a room"]


def test_a_framing_error_marks_the_connection_broken():
    client = make_client()
    client.receive(HEADER.pack(2, 9), 0)
    assert client.broken and client.counters.undecodable == 1


def test_an_undecodable_body_is_counted_and_the_stream_goes_on():
    client = make_client()
    bad = HEADER.pack(4 + 3, MsgId.S_ROOM_CHAT_NTF) + b"\xff\xff\xff"
    client.receive(bad + ntf(1, sender_index=0), 0)
    c = client.counters
    assert c.undecodable == 1 and c.deliveries == 2 and client.seq.last == 1 and not client.broken



def test_a_bad_size_in_a_partial_header_breaks_the_stream_and_asks_to_close_it_once():
    client = make_client()
    closes = []
    client.on_broken = lambda: closes.append(1)
    client.receive(ntf(1, sender_index=0) + HEADER.pack(3, 9)[:2], 0)   # a size below the header, then nothing
    assert client.broken and closes == [1]
    c = client.counters
    assert c.undecodable == 1 and c.deliveries == 1 and client.seq.last == 1


@pytest.mark.parametrize("kind", [MsgId.C_LOGIN_REQ, 0x0100 | MsgId.S_ROOM_CHAT_NTF, 0])
def test_an_id_a_server_does_not_send_is_a_framing_error(kind: int):
    client = make_client()
    client.receive(HEADER.pack(4, kind), 0)
    assert client.broken and client.counters.undecodable == 1 and client.counters.frames_r == 2


def test_replies_and_notifications_split_at_every_byte_keep_their_order():
    client = make_client(index=1, members=2)
    client.chat_frame(0, True, "x", clock_ns=0)
    join = encode(pb.S_JOIN_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=9, name="late")))
    data = ntf(1, sender_index=0) + join + ntf(2, sender_index=1) + ntf(3, sender_index=2)
    for i in range(len(data)):
        client.receive(data[i:i + 1], now_ns=1_000)
    c = client.counters
    assert client.members == 3 and client.seq.last == 3 and client.pending == b""
    assert (c.frames_r, c.deliveries, c.own_received, c.latencies, c.delivered) == (2 + 4, 3, 1, 1, 3)
    assert not errors(c)


def test_the_read_time_defaults_to_the_monotonic_clock():
    client = make_client(index=1)
    client.chat_frame(0, True, "x", clock_ns=time.monotonic_ns())
    client.receive(ntf(1, sender_index=1, n=0))
    assert client.counters.latencies == 1 and client.hist.get_total_count() == 1


def test_a_body_of_another_message_type_is_undecodable_not_a_delivery_of_the_room():
    client = make_client()
    body = pb.S_ERROR(code=pb.BAD_REQUEST, message="x" * 3).SerializeToString()   # "xxx" is no Player
    client.receive(HEADER.pack(4 + len(body), MsgId.S_ROOM_CHAT_NTF) + body + ntf(1, sender_index=0), 0)
    c = client.counters
    assert c.deliveries == 2 and c.delivered == 1 and client.seq.last == 1
    assert c.undecodable == 1 and c.wrong_room == 0

# ---------------------------------------------------------------------------- counters
def test_counter_sums_differences_and_failures():
    a = {"app_in": 3, "expected": 10, "delivered": 10}
    b = {"app_in": 4, "expected": 20, "delivered": 19, "gaps": 1}
    total = add_counts([a, b])
    assert total == {"app_in": 7, "expected": 30, "delivered": 29, "gaps": 1}
    assert sub_counts(total, a) == {"app_in": 4, "expected": 20, "delivered": 19, "gaps": 1}
    assert correctness_failures(total) == {"gaps": 1, "missing_deliveries": 1}
    assert correctness_failures({"expected": 5, "delivered": 6}) == {"extra_deliveries": 1}
    assert correctness_failures({"expected": 5, "delivered": 5, "lost": 0}) == {}


# ---------------------------------------------------------------------------- latency histograms
def test_histogram_round_trip_merge_and_ordered_percentiles():
    a, b = new_histogram(), new_histogram()
    for v in range(1, 1001):
        record_us(a, v)
    for v in range(1001, 2001):
        record_us(b, v * 10)
    merged = merge_histograms([encode_histogram(a), encode_histogram(b), ""])
    assert merged.get_total_count() == 2000
    s = latency_summary(merged)
    assert s["count"] == 2000 and s["min"] == 1
    assert s["p50"] <= s["p90"] <= s["p99"] <= s["p99.9"] <= s["max"]
    assert s["p50"] == pytest.approx(1000, rel=0.002)
    assert s["max"] == pytest.approx(20_000, rel=0.002)
    assert decode_histogram("").get_total_count() == 0
    assert encode_histogram(new_histogram()) == ""


def test_empty_summary_has_no_figures():
    s = latency_summary(new_histogram())
    assert s["count"] == 0 and s["p99"] is None and s["avg"] is None


def test_values_out_of_range_are_clamped_not_dropped():
    h = new_histogram()
    record_us(h, 0)
    record_us(h, 10**12)
    assert h.get_total_count() == 2
    assert h.get_min_value() == 1
    assert h.get_max_value() >= 60_000_000 * 0.999


def test_latency_buckets_are_the_seeds_disjoint_bins():
    h = new_histogram()
    for v, n in [(50, 3), (100, 2), (101, 1), (500, 4), (999, 5), (1000, 1), (4000, 6), (5000, 1),
                 (20_000, 7), (50_000, 1), (70_000, 8)]:
        for _ in range(n):
            record_us(h, v)
    assert latency_buckets(h) == {"<=100us": 5, "<=500us": 5, "<=1ms": 6, "<=5ms": 7, "<=50ms": 8, ">50ms": 8}
    assert sum(latency_buckets(new_histogram()).values()) == 0


# ---------------------------------------------------------------------------- however TCP cuts the stream
_frames = st.lists(st.one_of(
    st.builds(lambda seq, sender, measured: ntf(seq, sender_index=sender, n=seq, measured=measured),
              st.integers(1, 300), st.integers(0, CLIENTS - 1), st.booleans()),
    st.builds(lambda pid: encode(pb.S_JOIN_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=pid, name="j"))),
              st.integers(1, 10**6)),
    st.builds(lambda t: encode(pb.S_PONG(client_time_us=t, server_time_us=t)), st.integers(0, 2**64 - 1)),
    st.just(HEADER.pack(7, MsgId.S_ROOM_CHAT_NTF) + b"\xff\xff\xff"),
), max_size=12)


@settings(max_examples=200, deadline=None)
@given(frames=_frames, cuts=st.lists(st.integers(0, 4000), max_size=8))
def test_counts_do_not_depend_on_where_the_reads_end(frames: list[bytes], cuts: list[int]):
    data = b"".join(frames)
    whole, pieces = make_client(index=1), make_client(index=1)
    for client in (whole, pieces):
        for n in range(3):
            client.chat_frame(n, True, "x", clock_ns=0)
    whole.receive(data, 10_000)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    for a, b in itertools.pairwise(bounds):
        pieces.receive(data[a:b], 10_000)
    assert pieces.counters.as_dict() | {"io_r": 0} == whole.counters.as_dict() | {"io_r": 0}
    assert (pieces.members, pieces.seq.last, pieces.outstanding) == (whole.members, whole.seq.last, whole.outstanding)
    assert whole.counters.frames_r == 2 + len(frames) and pieces.pending == b""
    assert whole.counters.deliveries == sum(f[2] == MsgId.S_ROOM_CHAT_NTF for f in frames)
