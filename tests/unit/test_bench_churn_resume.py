"""chatctl bench --churn: what one client makes of a drop, its resume, the replay and the resends (no sockets).

Frames go in as the server would send them (PROTOCOL.md 1.1, Resume after a
reconnect, Sending again without duplicates); the counters say what was
missed, replayed, sent again or echoed, and correctness_failures() whether
the run fails.
"""

from __future__ import annotations

import json

from google.protobuf import json_format

from chatcluster.common.frames import HEADER_SIZE, MsgId, decode_body, encode
from chatcluster.loadtest import wsjson
from chatcluster.loadtest.accounting import ERROR_FIELDS, Counters, correctness_failures, every_resume_in_window
from chatcluster.loadtest.core import BenchClient
from chatcluster.loadtest.schedule import msg_id
from chatcluster.proto import chat_pb2 as pb

CLIENTS = 4
ROOM = 77
EPOCH = 123456789
ME = 1  # the client under test: index 1, player 101


def ntf(seq: int, sender_index: int, n: int = 0, measured: bool = True) -> bytes:
    return encode(pb.S_ROOM_CHAT_NTF(
        room_id=ROOM, sender=pb.Player(player_id=100 + sender_index, name=f"bench{sender_index}-t"),
        text="hello", seq=seq, client_msg_id=msg_id(n, measured, sender_index, CLIENTS), server_time_us=1))


def join_res(head: int = 0, *, epoch: int = EPOCH, oldest: int = 0, recovered: bool = False,
             members: int = CLIENTS) -> bytes:
    return encode(pb.S_JOIN_ROOM_RES(
        success=True, room=pb.RoomInfo(room_id=ROOM, name="r", member_count=members),
        members=[pb.Player(player_id=100 + i, name=f"bench{i}-t") for i in range(members)],
        epoch=epoch, head_seq=head, oldest_seq=oldest, recovered=recovered))


class Sent(list):
    """What the client asked its adapter to write (resends), decoded."""

    def __call__(self, frame: bytes) -> None:
        assert int.from_bytes(frame[:2], "little") == len(frame)
        self.append(decode_body(frame[2] | frame[3] << 8, frame[HEADER_SIZE:]))


def make_client(*, churn: bool = True, json_mode: bool = False) -> tuple[BenchClient, Sent, list[int]]:
    """Client ME logged in and joined to ROOM (epoch EPOCH, 4 bench clients), under churn."""
    client = BenchClient(ME, "bench1-t", Counters(), _hist(), CLIENTS, json=json_mode, churn=churn,
                         room_size=CLIENTS)
    replies: list[int] = []
    client.on_reply = lambda kind, msg: replies.append(kind)
    sent = Sent()
    client.send_now = sent
    feed(client, encode(pb.S_LOGIN_RES(success=True, player_id=100 + ME)))
    feed(client, join_res())
    assert (client.room_id, client.epoch, client.members) == (ROOM, EPOCH, CLIENTS)
    replies.clear()
    return client, sent, replies


def _hist():
    from chatcluster.loadtest.accounting import new_histogram
    return new_histogram()


def feed(client: BenchClient, *frames: bytes) -> None:
    """One read holding these frames (as JSON messages, one each, for a JSON client)."""
    if client.json:
        for frame in frames:
            kind = frame[2] | frame[3] << 8
            text = wsjson.request(decode_body(kind, frame[HEADER_SIZE:]))
            client.receive_json(text.encode(), 5_000_000)
    else:
        client.receive(b"".join(frames), 5_000_000)


def send(client: BenchClient, n: int, measured: bool = True) -> int:
    client.chat_frame(n, measured, "hi", 1_000_000)
    return msg_id(n, measured, ME, CLIENTS)


def drop_and_resume(client: BenchClient) -> pb.C_JOIN_ROOM_REQ:
    client.dropped()
    frame = client.resume_frame()
    if client.json:
        obj = json.loads(frame)
        assert obj.pop("type") == "C_JOIN_ROOM_REQ"
        return json_format.ParseDict(obj, pb.C_JOIN_ROOM_REQ())
    return decode_body(int(MsgId.C_JOIN_ROOM_REQ), frame[HEADER_SIZE:])


def errors(c: Counters) -> dict:
    return {k: v for k, v in c.as_dict().items() if k in ERROR_FIELDS and v}


# ---------------------------------------------------------------------------- sending
def test_under_churn_a_chat_carries_its_client_msg_id_as_idempotency_key_and_counts_every_member():
    client, _, _ = make_client()
    frame = client.chat_frame(0, True, "hi", 1)
    req = decode_body(int(MsgId.C_ROOM_CHAT_REQ), frame[HEADER_SIZE:])
    assert req.idempotency_key == req.client_msg_id == msg_id(0, True, ME, CLIENTS)
    assert client.frames[req.client_msg_id] == frame
    feed(client, encode(pb.S_LEAVE_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=102))))
    client.chat_frame(1, True, "hi", 1)
    c = client.counters
    assert (c.expected, c.expected_all) == (CLIENTS + CLIENTS - 1, 2 * CLIENTS)  # live view vs every member


def test_without_churn_no_key_and_no_frame_is_kept():
    client, _, _ = make_client(churn=False)
    frame = client.chat_frame(0, True, "hi", 1)
    assert decode_body(int(MsgId.C_ROOM_CHAT_REQ), frame[HEADER_SIZE:]).idempotency_key == 0
    assert client.frames == {}
    assert json.loads(wsjson.chat_request("hi", 7)) == {"type": "C_ROOM_CHAT_REQ", "text": "hi", "clientMsgId": "7"}


# ---------------------------------------------------------------------------- resume
def test_the_resume_asks_from_the_last_seq_received_in_the_rooms_epoch():
    client, _, _ = make_client()
    feed(client, ntf(1, 0), ntf(2, 2), ntf(3, 3)[:5])  # a frame cut by the drop
    req = drop_and_resume(client)
    assert (req.room_id, req.resume, req.since_seq, req.epoch) == (ROOM, True, 2, EPOCH)
    assert client.pending == b""


def test_a_recovered_resume_replays_exactly_the_hole_and_nothing_counts_against_it():
    client, sent, replies = make_client()
    feed(client, ntf(1, 0), ntf(2, 2))
    drop_and_resume(client)
    feed(client, join_res(5, oldest=1, recovered=True), ntf(3, 0), ntf(4, 2), ntf(5, 3))
    feed(client, encode(pb.S_JOIN_ROOM_NTF(room_id=ROOM, player=pb.Player(player_id=102))), ntf(6, 0))
    c = client.counters
    assert replies == [MsgId.S_JOIN_ROOM_RES]
    assert (c.resumes, c.resumes_recovered, c.resumes_not_recovered, c.replayed, c.missed) == (1, 1, 0, 3, 0)
    assert errors(c) == {} and client.seq.last == 6 and sent == []
    assert client.members == CLIENTS + 1  # the answer's member list, then the notices
    assert correctness_failures({**c.as_dict(), "expected_all": 0, "delivered": 0}, churn=True) == {}


def test_a_hole_after_a_recovered_resume_is_missed_and_fails_the_run():
    client, _, _ = make_client()
    feed(client, ntf(1, 0))
    drop_and_resume(client)
    feed(client, join_res(4, oldest=1, recovered=True), ntf(2, 0), ntf(4, 2), ntf(6, 3))
    c = client.counters
    assert (c.missed, c.gaps) == (2, 0)  # seq 3 (the replay's hole) and 5 (a live one)
    assert correctness_failures({**c.as_dict(), "expected_all": c.delivered}, churn=True) == {"missed": 2}


def test_a_gap_before_any_resume_is_still_a_gap():
    client, _, _ = make_client()
    feed(client, ntf(1, 0), ntf(3, 0))
    assert (client.counters.gaps, client.counters.missed) == (1, 0)


def test_a_replay_that_repeats_a_seen_seq_is_a_duplicate():
    client, _, _ = make_client()
    feed(client, ntf(1, 0), ntf(2, 0))
    drop_and_resume(client)
    feed(client, join_res(3, oldest=1, recovered=True), ntf(2, 0), ntf(3, 0))
    assert errors(client.counters) == {"duplicates": 1}


def test_own_message_brought_back_by_the_replay_is_not_sent_again_nor_timed():
    client, sent, _ = make_client()
    feed(client, ntf(1, 0))
    mine = send(client, 0)
    drop_and_resume(client)
    feed(client, join_res(2, oldest=1, recovered=True), ntf(2, ME, 0))
    c = client.counters
    assert sent == [] and client.outstanding == {} and client.frames == {}
    assert (c.own_received, c.own_recovered, c.latencies, c.resent) == (1, 1, 0, 0)
    assert mine not in client.resent


def test_own_message_missing_from_the_replay_is_sent_again_only_once_the_replay_is_complete():
    client, sent, _ = make_client()
    feed(client, ntf(1, 0))
    mine = send(client, 0)
    other = send(client, 1, measured=False)
    drop_and_resume(client)
    feed(client, join_res(3, oldest=1, recovered=True), ntf(2, 0))
    assert sent == []                                   # seq 3 may still be one of them
    feed(client, ntf(3, 2))
    assert [(m.client_msg_id, m.idempotency_key) for m in sent] == [(mine, mine), (other, other)]
    assert client.counters.resent == 2 and client.resent == {mine, other}
    feed(client, ntf(4, ME, 0), ntf(5, ME, 1, measured=False))  # not in history before: broadcast now
    c = client.counters
    assert (c.own_received, c.own_recovered, c.latencies, c.resend_echoes) == (2, 2, 0, 0)
    assert errors(c) == {} and client.outstanding == {}


def test_a_resume_with_nothing_to_replay_sends_again_at_once():
    client, sent, _ = make_client()
    feed(client, ntf(1, 0))
    mine = send(client, 0)
    drop_and_resume(client)
    feed(client, join_res(1, oldest=1, recovered=True))
    assert [m.client_msg_id for m in sent] == [mine]
    assert client.counters.replayed == 0


def test_messages_sent_after_the_resume_are_not_sent_again():
    client, sent, _ = make_client()
    feed(client, ntf(1, 0))
    drop_and_resume(client)
    feed(client, join_res(2, oldest=1, recovered=True))
    send(client, 0)                                     # on the new connection, before the replay ended
    feed(client, ntf(2, 0))
    assert sent == []


def test_the_original_of_a_resent_message_then_its_echo_is_no_duplicate():
    client, sent, _ = make_client()
    feed(client, ntf(1, 0))
    mine = send(client, 0)
    drop_and_resume(client)
    feed(client, join_res(1, oldest=1, recovered=True))  # the original had not reached the room yet
    assert [m.client_msg_id for m in sent] == [mine]
    feed(client, ntf(2, ME, 0), ntf(3, 2))               # the original, broadcast
    feed(client, ntf(2, ME, 0), ntf(4, 3))               # the server's answer to the resend: the original again
    c = client.counters
    assert (c.resend_echoes, c.own_received) == (1, 1)
    assert errors(c) == {} and client.seq.last == 4
    assert c.deliveries == c.delivered == 4              # seq 1 to 4: the echo is no delivery


def test_an_echo_whose_original_was_never_seen_is_that_messages_own_copy():
    client, _, _ = make_client()
    feed(client, ntf(1, 0))
    send(client, 0)
    drop_and_resume(client)
    feed(client, join_res(1, oldest=1, recovered=True))
    feed(client, ntf(3, 2))                              # seq 2 (ours) never came: a gap after the resume
    feed(client, ntf(2, ME, 0))                          # the resend's answer: our original
    c = client.counters
    assert (c.missed, c.resend_echoes, c.own_received, c.reorders) == (1, 0, 1, 0)
    assert client.outstanding == {}


def test_a_second_own_copy_of_a_message_never_resent_is_still_a_duplicate():
    client, _, _ = make_client()
    send(client, 0)
    feed(client, ntf(1, ME, 0))
    feed(client, ntf(1, ME, 0))
    assert errors(client.counters) == {"duplicates": 2}  # the seq again, and a second own copy


def test_a_drop_during_the_replay_keeps_what_is_still_unanswered_for_the_next_resume():
    client, sent, _ = make_client()
    feed(client, ntf(1, 0))
    mine = send(client, 0)
    drop_and_resume(client)
    feed(client, join_res(3, oldest=1, recovered=True), ntf(2, 0))
    req = drop_and_resume(client)                        # dropped again before seq 3
    assert req.since_seq == 2 and sent == []
    feed(client, join_res(3, oldest=1, recovered=True), ntf(3, 0))
    assert [m.client_msg_id for m in sent] == [mine]
    c = client.counters
    assert (c.resumes, c.replayed, c.missed) == (2, 1 + 1, 0)  # seq 2 by the first replay, 3 by the second


# ---------------------------------------------------------------------------- recovered = false
def test_not_recovered_with_another_epoch_is_legitimate_and_its_hole_is_missed():
    client, sent, _ = make_client()
    feed(client, ntf(1, 0), ntf(2, 0))
    mine = send(client, 0)
    drop_and_resume(client)
    feed(client, join_res(7, epoch=EPOCH + 1, oldest=0, recovered=False), ntf(8, 2))
    c = client.counters
    assert (c.resumes_not_recovered, c.resumes_in_window_not_recovered, c.missed) == (1, 0, 5)
    assert client.epoch == EPOCH + 1 and errors(c) == {}
    assert [m.client_msg_id for m in sent] == [mine]     # nothing more is coming: sent again at once
    counts = c.as_dict()
    assert not every_resume_in_window(counts)
    assert correctness_failures({**counts, "expected_all": 10, "delivered": 4}, churn=True) == {}


def test_not_recovered_when_memory_no_longer_reaches_since_plus_one_is_legitimate():
    client, _, _ = make_client()
    feed(client, ntf(1, 0), ntf(2, 0))
    drop_and_resume(client)
    feed(client, join_res(9, oldest=4, recovered=False))
    assert (client.counters.resumes_in_window_not_recovered, client.counters.missed) == (0, 7)


def test_not_recovered_with_nothing_kept_is_legitimate_when_something_was_missed():
    client, _, _ = make_client()  # history_bytes=0: oldest_seq 0
    feed(client, ntf(1, 0))
    drop_and_resume(client)
    feed(client, join_res(3, oldest=0, recovered=False))
    assert client.counters.resumes_in_window_not_recovered == 0


def test_not_recovered_within_the_window_is_a_failure():
    for head, oldest in ((5, 3), (5, 1), (2, 0)):  # oldest <= since+1, or nothing missed at all
        client, _, _ = make_client()
        feed(client, ntf(1, 0), ntf(2, 0))
        drop_and_resume(client)
        feed(client, join_res(head, oldest=oldest, recovered=False))
        c = client.counters
        assert c.resumes_in_window_not_recovered == 1, (head, oldest)
        assert any("within the window" in e for e in client.error_samples)
        assert every_resume_in_window(c.as_dict())
        failures = correctness_failures(c.as_dict(), churn=True)
        assert failures["resumes_in_window_not_recovered"] == 1
        assert failures.get("missed", 0) == head - 2


def test_a_resume_refused_unavailable_is_a_retry_not_an_error_and_answers_the_waiter():
    client, _, replies = make_client()
    drop_and_resume(client)
    feed(client, encode(pb.S_ERROR(code=pb.UNAVAILABLE, message="try again")))
    assert replies == [MsgId.S_ERROR]
    assert (client.counters.resume_retries, client.counters.errors) == (1, 0)
    client.resume_frame()
    feed(client, join_res(0, oldest=0, recovered=True))
    assert client.counters.resumes_recovered == 1
    feed(client, encode(pb.S_ERROR(code=pb.UNAVAILABLE, message="not resuming")))
    assert client.counters.errors == 1


def test_json_client_resumes_and_tells_echoes_the_same_way():
    client, _, _ = make_client(json_mode=True)
    sent: list[str] = []
    client.send_now = sent.append
    feed(client, ntf(1, 0))
    mine = send(client, 0)
    assert json.loads(client.frames[mine])["idempotencyKey"] == str(mine)
    drop_and_resume(client)
    feed(client, join_res(2, oldest=1, recovered=True), ntf(2, 2))
    assert [json.loads(s)["clientMsgId"] for s in sent] == [str(mine)]
    feed(client, ntf(3, ME, 0), ntf(3, ME, 0), ntf(5, 0))
    c = client.counters
    assert (c.replayed, c.resend_echoes, c.missed, c.own_received) == (1, 1, 1, 1)
    assert errors(c) == {}


# ---------------------------------------------------------------------------- the verdict
def test_under_churn_deliveries_are_judged_against_every_member_not_the_live_count():
    base = dict.fromkeys(ERROR_FIELDS, 0)
    counts = {**base, "expected": 95, "expected_all": 100, "delivered": 100, "resumes": 3,
              "resumes_recovered": 3}
    assert correctness_failures(counts, churn=True) == {}
    assert correctness_failures(counts) == {"extra_deliveries": 5}
    assert correctness_failures({**counts, "delivered": 98}, churn=True) == {"missing_deliveries": 2}
    assert correctness_failures({**counts, "duplicates": 1}, churn=True) == {"duplicates": 1}
