"""History in the shard, with plain objects: what a join replays, resume, idempotent resend, resting rooms,
paging, and the epoch across a restart (the chat log's answers given by hand)."""

from __future__ import annotations

import pytest
from test_shard_logic import GW_A, GW_B, Harness, chat_body, delivered, member, replies

from chatcluster.common.config import Limits
from chatcluster.common.envelope import Batch, Kind, iter_items
from chatcluster.common.frames import MAX_FRAME, SERVER_IDS, ErrorCode, FrameDecoder, decode_body, encode
from chatcluster.proto import chat_pb2 as pb
from chatcluster.proto import cluster_pb2
from chatcluster.shards.store import Page, PageRead, RestoreRead, Tail, frame_of

ROOM = 7
S = 1_000_000


def messages(frame: bytes) -> list:
    """Every client message in a Reply's frame (which may hold several), decoded."""
    decoder = FrameDecoder(MAX_FRAME, SERVER_IDS)
    decoder.feed(frame)
    return [decode_body(msg_id, body) for msg_id, body in decoder.frames()]


def join(h: Harness, session: int, gateway: bytes = GW_A, **fields) -> tuple[cluster_pb2.Reply, list]:
    """A join's Reply and the messages it carries (the answer first); fails if anything else came."""
    out = h.one(gateway, Kind.JOIN, cluster_pb2.JoinRoom(request=50, room_id=ROOM, member=member(session), **fields))
    mine = [cluster_pb2.Reply.FromString(p) for k, p in out.get(gateway, []) if k == Kind.REPLY]
    assert len(mine) == 1
    return mine[0], messages(mine[0].frame)


def say(h: Harness, count: int, session: int = 1, start: int = 1) -> None:
    batch = Batch()
    for n in range(start, start + count):
        batch.add_chat(ROOM, session, chat_body(f"m{n}", n))
    h.send(GW_A, batch)


def created(h: Harness, session: int = 1) -> pb.S_CREATE_ROOM_RES:
    out = h.one(GW_A, Kind.CREATE, cluster_pb2.CreateRoom(request=1, room_id=ROOM, name="r", member=member(session)))
    reply, = replies(out[GW_A])
    return pb.S_CREATE_ROOM_RES.FromString(reply.frame[4:])


def leave(h: Harness, session: int, gateway: bytes = GW_A) -> None:
    h.one(gateway, Kind.LEAVE, cluster_pb2.LeaveRoom(request=0, room_id=ROOM, session=session))


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_a_new_room_has_an_epoch_and_no_messages(h):
    res = created(h)
    assert res.epoch != 0 and res.head_seq == 0
    reply, (answer,) = join(h, 2)
    assert (answer.epoch, answer.head_seq, answer.oldest_seq, answer.recovered) == (res.epoch, 0, 0, False)
    assert (reply.epoch, reply.head_seq) == (res.epoch, 0)  # the gateway keeps them for a rebuild


def test_join_with_history_replays_the_newest_messages_after_its_answer(h):
    created(h)
    say(h, 30)
    reply, (answer, *replay) = join(h, 2, history=5)
    assert isinstance(answer, pb.S_JOIN_ROOM_RES) and answer.success
    assert (answer.head_seq, answer.oldest_seq, answer.recovered) == (30, 1, False)
    assert [(m.seq, m.text) for m in replay] == [(s, f"m{s}") for s in range(26, 31)]
    assert all(m.client_msg_id == m.seq for m in replay)  # the very frames that were sent
    assert h.shard.book.replayed == 5


def test_history_is_capped_by_the_server_limit():
    h = Harness(Limits(history_replay=10))
    created(h)
    say(h, 30)
    _, (_, *replay) = join(h, 2, history=1000)
    assert [m.seq for m in replay] == list(range(21, 31))


def test_the_replay_comes_before_any_live_message():
    h = Harness()
    created(h)
    say(h, 3)
    batch = Batch()
    batch.add(Kind.JOIN, cluster_pb2.JoinRoom(request=5, room_id=ROOM, member=member(2), history=3)
              .SerializeToString())
    batch.add_chat(ROOM, 1, chat_body("live", 9))
    out = h.send(GW_A, batch)[GW_A]
    kinds = [k for k, _ in out]
    assert kinds.index(Kind.REPLY) < max(i for i, k in enumerate(kinds) if k == Kind.DELIVER)
    live = [n for *_, n in delivered([item for item in out if item[0] == Kind.DELIVER and
                                      b"live" in item[1]])]
    assert [n.seq for n in live] == [4]


def test_resume_in_the_same_epoch_replays_exactly_what_was_missed(h):
    epoch = created(h).epoch
    join(h, 2)
    say(h, 10)
    leave(h, 2)  # dropped after seeing 10
    say(h, 50, start=11)
    reply, (answer, *replay) = join(h, 2, resume=True, since_seq=10, epoch=epoch, history=5)
    assert answer.success and answer.recovered and (answer.epoch, answer.head_seq) == (epoch, 60)
    assert [m.seq for m in replay] == list(range(11, 61))  # all 50, not just `history`
    assert (h.shard.book.resumes, h.shard.book.resumes_recovered) == (1, 1)


def test_resume_from_the_head_replays_nothing_and_is_a_recovery(h):
    epoch = created(h).epoch
    say(h, 4)
    _, (answer, *replay) = join(h, 2, resume=True, since_seq=4, epoch=epoch, history=3)
    assert answer.recovered and replay == []


def test_resume_in_another_epoch_is_not_a_recovery_and_gets_history(h):
    epoch = created(h).epoch
    say(h, 20)
    _, (answer, *replay) = join(h, 2, resume=True, since_seq=15, epoch=epoch + 1, history=3)
    assert answer.success and not answer.recovered and answer.epoch == epoch
    assert [m.seq for m in replay] == [18, 19, 20]
    assert (h.shard.book.resumes, h.shard.book.resumes_recovered) == (1, 0)


def test_resume_from_outside_the_window_is_not_a_recovery():
    h = Harness(Limits(history_messages=10, history_age=1))
    epoch = created(h).epoch
    say(h, 5)
    h.now += 10 * S
    say(h, 20, start=6)  # the first five are older than 1 s and beyond the last 10: trimmed
    _, (answer, *replay) = join(h, 2, resume=True, since_seq=3, epoch=epoch, history=2)
    assert not answer.recovered and answer.oldest_seq > 4 and [m.seq for m in replay] == [24, 25]


@pytest.mark.parametrize(("fields", "why"), [
    ({"since_seq": 11}, "past"),
    ({"since_seq": 3, "epoch": 0}, "epoch"),
])
def test_a_bad_resume_is_refused_and_changes_nothing(h, fields, why):
    epoch = created(h).epoch
    say(h, 10)
    h.one(GW_A, Kind.CREATE, cluster_pb2.CreateRoom(request=1, room_id=8, name="other", member=member(2)))
    reply, (error,) = join(h, 2, **{"resume": True, "epoch": epoch, **fields})
    assert not reply.ok and error.code == ErrorCode.BAD_REQUEST and why in error.message
    assert h.shard.book.where[(GW_A, 2)] == 8 and len(h.shard.book.rooms[ROOM].members) == 1


def test_an_emptied_room_rests_unlisted_and_only_a_resume_brings_it_back(h):
    epoch = created(h).epoch
    say(h, 5)
    leave(h, 1)
    book = h.shard.book
    assert ROOM not in book.rooms and ROOM in book.resting and book.rooms_closed == 0
    listed = h.one(GW_A, Kind.LIST, cluster_pb2.ListRooms(request=3))[GW_A]
    assert cluster_pb2.RoomList.FromString(listed[0][1]).rooms == []
    reply, (answer,) = join(h, 2)  # a plain join: the room is gone as far as it knows
    assert not reply.ok and not answer.success
    h.now += 119 * S
    assert book.expire() == 0
    _, (answer, *replay) = join(h, 2, resume=True, since_seq=3, epoch=epoch)
    assert answer.success and answer.recovered and [m.seq for m in replay] == [4, 5]
    assert ROOM in book.rooms and ROOM not in book.resting
    say(h, 1, session=2, start=6)
    assert book.rooms[ROOM].seq == 6


def test_a_room_resting_past_its_grace_is_closed():
    closed = []
    h = Harness(on_room_closed=closed.append)
    epoch = created(h).epoch
    say(h, 5)
    leave(h, 1)
    assert closed == [] and h.shard.book.history.messages == 5
    h.now += 121 * S
    h.shard.expire(0.0, h.out)
    assert closed == [ROOM] and h.shard.book.rooms_closed == 1 and h.shard.book.history.messages == 0
    reply, (answer,) = join(h, 2, resume=True, since_seq=5, epoch=epoch)
    assert not reply.ok and "not found" in answer.message


def test_no_grace_closes_an_emptied_room_at_once():
    h = Harness(Limits(history_grace=0))
    created(h)
    leave(h, 1)
    assert ROOM not in h.shard.book.resting and h.shard.book.rooms_closed == 1


def test_the_byte_bound_shows_in_the_figures():
    h = Harness(Limits(history_bytes=20_000))
    created(h)
    say(h, 300)
    figures = h.shard.book.figures()
    assert figures["bytes"] <= 20_000 and figures["evicted"] > 0 and figures["evictions"] >= 1
    assert figures["messages"] == len(h.shard.book.rooms[ROOM].ring) < 300


# ---- idempotent resend ---------------------------------------------------------------------------
def keyed(text: str, key: int, client_msg_id: int = 1) -> bytes:
    return encode(pb.C_ROOM_CHAT_REQ(text=text, client_msg_id=client_msg_id, idempotency_key=key))[4:]


def test_a_resend_with_the_same_key_goes_to_the_sender_alone(h):
    created(h)
    join(h, 2, gateway=GW_B)
    batch = Batch()
    batch.add_chat(ROOM, 1, keyed("once", 99, 1))
    first = h.send(GW_A, batch)
    original, = [n for *_, n in delivered(first[GW_A])]
    batch.add_chat(ROOM, 1, keyed("once", 99, 2))  # the same key again (another client_msg_id: still the key)
    again = h.send(GW_A, batch)
    assert GW_B not in again  # nobody else hears it twice
    reply, = replies(again[GW_A])
    assert reply.ok and reply.request == 0 and reply.session == 1
    assert messages(reply.frame) == [original]  # the original frame, its seq and client_msg_id
    assert h.shard.book.rooms[ROOM].seq == 1 and h.shard.book.resent == 1 and len(h.log) == 1


def test_keys_are_per_sender_and_zero_means_no_check(h):
    created(h)
    join(h, 2)
    batch = Batch()
    batch.add_chat(ROOM, 1, keyed("a", 5))
    batch.add_chat(ROOM, 2, keyed("b", 5))  # another sender's key 5
    batch.add_chat(ROOM, 1, keyed("c", 0))
    batch.add_chat(ROOM, 1, keyed("c", 0))
    out = h.send(GW_A, batch)
    assert [n.text for *_, n in delivered(out[GW_A])] == ["a", "b", "c", "c"]


def test_a_key_whose_message_left_the_history_is_broadcast_again():
    h = Harness(Limits(history_messages=2, history_age=1))
    created(h)
    batch = Batch()
    batch.add_chat(ROOM, 1, keyed("first", 7))
    h.send(GW_A, batch)
    h.now += 5 * S
    say(h, 3)
    batch.add_chat(ROOM, 1, keyed("first", 7))
    out = h.send(GW_A, batch)
    assert [(n.seq, n.text) for *_, n in delivered(out[GW_A])] == [(5, "first")]


# ---- paging back -----------------------------------------------------------------------------------
def page(h: Harness, session: int = 1, **fields) -> tuple[cluster_pb2.Reply | None, list]:
    out = h.one(GW_A, Kind.HISTORY, cluster_pb2.RoomHistory(request=70, room_id=ROOM, session=session, **fields))
    if GW_A not in out:
        return None, []
    reply, = replies(out[GW_A])
    return reply, messages(reply.frame)


def test_a_page_from_memory(h):
    created(h)
    say(h, 30)
    reply, (*chats, res) = page(h, before_seq=21, limit=5)
    assert reply.ok and reply.room_id == 0  # a late answer must undo nothing at the gateway
    assert [m.seq for m in chats] == [16, 17, 18, 19, 20]
    assert (res.success, res.room_id, res.first_seq, res.last_seq, res.more) == (True, ROOM, 16, 20, True)
    _, (*chats, res) = page(h, before_seq=0, limit=3)  # 0: the newest
    assert [m.seq for m in chats] == [28, 29, 30] and (res.first_seq, res.last_seq) == (28, 30)
    _, (*chats, res) = page(h, before_seq=4, limit=0)  # 0: as many as allowed
    assert [m.seq for m in chats] == [1, 2, 3] and not res.more


def test_a_page_of_a_room_without_messages(h):
    created(h)
    _, (res,) = page(h, before_seq=0, limit=10)
    assert res.success and (res.first_seq, res.last_seq, res.more) == (0, 0, False)


def test_a_page_for_someone_not_in_the_room(h):
    created(h)
    reply, (error,) = page(h, session=9)
    assert not reply.ok and error.code == ErrorCode.NOT_IN_ROOM


def answered(h: Harness) -> dict[bytes, list[tuple[int, bytes]]]:
    """What the shard queued outside a batch (after a read came back)."""
    return {gw: list(iter_items(data)) for gw, data in h.out.take()}


def test_a_page_older_than_memory_comes_from_the_chat_log():
    h = Harness(Limits(history_messages=10, history_age=1), can_read=True)
    created(h)
    say(h, 10)
    h.now += 10 * S
    say(h, 10, start=11)  # memory keeps 11..20
    assert h.shard.book.rooms[ROOM].ring.oldest == 11
    reply, got = page(h, before_seq=14, limit=6)
    assert reply is None and got == []  # nothing yet: the chat log is asked first
    read, = h.shard.book.take_reads()
    assert read == PageRead(read.token, ROOM, 11, 3)  # only what memory lacks: 8, 9, 10
    logged = [(s, frame_of(ROOM, s, 1001, "p1", f"m{s}", 0)) for s in (8, 9, 10)]
    h.shard.book.read_done(read.token, Page(logged, more=True), h.out)
    reply, = replies(answered(h)[GW_A])
    *chats, res = messages(reply.frame)
    assert [(m.seq, m.text) for m in chats] == [(s, f"m{s}") for s in range(8, 14)]
    assert (res.first_seq, res.last_seq, res.more) == (8, 13, True)
    assert h.shard.book.pages_from_db == 1


def test_a_page_the_chat_log_cannot_give_says_so():
    h = Harness(Limits(history_messages=1, history_age=1), can_read=True)
    created(h)
    say(h, 5)
    h.now += 10 * S
    say(h, 1, start=6)
    page(h, before_seq=0, limit=10)
    read, = h.shard.book.take_reads()
    h.shard.book.read_done(read.token, OSError("database is down"), h.out)
    reply, = replies(answered(h)[GW_A])
    res, = messages(reply.frame)
    assert not res.success and "unavailable" in res.message


def test_without_a_chat_log_a_page_stops_where_memory_does():
    h = Harness(Limits(history_messages=5, history_age=1))
    created(h)
    say(h, 5)
    h.now += 10 * S
    say(h, 5, start=6)
    _, (*chats, res) = page(h, before_seq=0, limit=8)
    assert [m.seq for m in chats] == [6, 7, 8, 9, 10] and (res.first_seq, res.more) == (6, False)
    assert h.shard.book.take_reads() == []


# ---- a restart: rooms rebuilt from the gateways, history from the chat log ----------------------
def rebuild(h: Harness, last_seq: int, epoch: int, sessions: tuple[int, ...] = (1,), gateway: bytes = GW_A) -> dict:
    msg = cluster_pb2.Rebuild(room_id=ROOM, name="r", last_seq=last_seq, epoch=epoch,
                              members=[member(s) for s in sessions])
    return h.one(gateway, Kind.REBUILD, msg)


def tail(first: int, last: int, t0: int = 1_700_000_000_000_000) -> Tail:
    rows = range(first, last + 1)
    return Tail(last, [(s, frame_of(ROOM, s, 1001, "p1", f"m{s}", t0 + s), t0 + s, None) for s in rows])


def restart(can_read: bool = True) -> Harness:
    return Harness(can_read=can_read)


def test_a_restored_room_whose_log_is_whole_keeps_its_epoch_and_history():
    h = restart()
    out = rebuild(h, last_seq=40, epoch=1234)
    assert GW_A not in out  # members are told once the chat log has answered
    read, = h.shard.book.take_reads()
    assert isinstance(read, RestoreRead) and read.room_id == ROOM and read.keep == 100
    h.shard.book.read_done(read.token, tail(1, 40), h.out)
    notice, = replies(answered(h)[GW_A])
    assert "restored" in messages(notice.frame)[0].message and (notice.epoch, notice.head_seq) == (1234, 40)
    room = h.shard.book.rooms[ROOM]
    assert (room.epoch, room.seq, room.ring.oldest) == (1234, 40, 1)
    _, (answer, *replay) = join(h, 2, resume=True, since_seq=35, epoch=1234)
    assert answer.recovered and [(m.seq, m.text) for m in replay] == [(s, f"m{s}") for s in range(36, 41)]
    assert h.shard.book.restores_kept == 1


def test_a_restored_room_goes_on_from_the_higher_of_the_gateways_and_the_log():
    h = restart()
    rebuild(h, last_seq=38, epoch=1234)
    read, = h.shard.book.take_reads()
    h.shard.book.read_done(read.token, tail(1, 40), h.out)  # 39 and 40 reached the log, not the gateways
    say(h, 1, start=1)
    assert h.shard.book.rooms[ROOM].seq == 41 and h.log[-1][1] == 41  # never a seq the log already holds
    assert h.shard.book.rooms[ROOM].epoch == 1234


@pytest.mark.parametrize("answer", [tail(1, 37), OSError("database is down"), Tail(0, [])],
                         ids=["log behind the gateways", "log unreachable", "log empty"])
def test_a_restored_room_the_log_cannot_make_whole_gets_a_new_epoch(answer):
    h = restart()
    rebuild(h, last_seq=40, epoch=1234)
    read, = h.shard.book.take_reads()
    h.shard.book.read_done(read.token, answer, h.out)
    notice, = replies(answered(h)[GW_A])
    room = h.shard.book.rooms[ROOM]
    assert room.epoch not in (0, 1234) and notice.epoch == room.epoch
    assert room.seq == 40 and len(room.ring) == 0 and h.shard.book.restores_lost == 1
    _, (answer, *replay) = join(h, 2, resume=True, since_seq=35, epoch=1234, history=2)
    assert not answer.recovered and replay == []  # nothing kept: honest, not a recovery


def test_without_a_chat_log_a_restored_room_with_messages_gets_a_new_epoch_at_once():
    h = restart(can_read=False)
    notice, = replies(rebuild(h, last_seq=40, epoch=1234)[GW_A])
    assert notice.epoch not in (0, 1234) and h.shard.book.take_reads() == []
    h2 = restart(can_read=False)
    notice, = replies(rebuild(h2, last_seq=0, epoch=1234)[GW_A])
    assert notice.epoch == 1234  # no message was ever sent: nothing to lose


def test_while_restoring_chats_are_refused_and_joins_wait():
    h = restart()
    rebuild(h, last_seq=40, epoch=1234)
    reply, = replies(h.chats(GW_A, (ROOM, 1, "too early"))[GW_A])
    assert not reply.ok and not reply.room_unknown and messages(reply.frame)[0].code == ErrorCode.UNAVAILABLE
    out = h.one(GW_B, Kind.JOIN, cluster_pb2.JoinRoom(request=5, room_id=ROOM, member=member(2), resume=True,
                                                      since_seq=39, epoch=1234))
    assert GW_B not in out
    rebuild(h, last_seq=40, epoch=1234, sessions=(3,), gateway=GW_B)  # another gateway's part merges in
    read, = h.shard.book.take_reads()  # one read for the room, however many gateways rebuild it
    h.shard.book.read_done(read.token, tail(1, 40), h.out)
    got = answered(h)
    notices = [r for r in replies([i for i in got[GW_B] if i[0] == Kind.REPLY]) if r.request == 0]
    assert len(notices) == 1 and notices[0].session == 3
    answer, *replay = messages([r for r in replies([i for i in got[GW_B] if i[0] == Kind.REPLY])
                                if r.request == 5][0].frame)
    assert answer.recovered and [m.seq for m in replay] == [40]
    assert {m.key for m in h.shard.book.rooms[ROOM].members.values()} == {(GW_A, 1), (GW_B, 2), (GW_B, 3)}


def test_a_rebuild_of_a_resting_room_brings_it_back_as_it_was(h):
    epoch = created(h).epoch
    say(h, 3)
    h.shard.drop_gateway(GW_A, h.out)  # its gateway went silent: the room empties and rests
    assert ROOM in h.shard.book.resting
    out = rebuild(h, last_seq=3, epoch=epoch)
    assert GW_A not in out and h.shard.book.rebuilt == 1  # taken back, but not lost: nobody is told anything
    room = h.shard.book.rooms[ROOM]
    assert room.epoch == epoch and room.ring.oldest == 1 and len(room.members) == 1


def test_a_resume_to_a_room_a_new_shard_does_not_know_yet_is_asked_to_wait():
    h = restart()
    reply, (error,) = join(h, 2, resume=True, since_seq=3, epoch=1234)
    assert not reply.ok and error.code == ErrorCode.UNAVAILABLE and "try again" in error.message
    h.now += 6 * S  # past the time every gateway has had to give its rooms back: the room is gone
    reply, (answer,) = join(h, 2, resume=True, since_seq=3, epoch=1234)
    assert not reply.ok and "not found" in answer.message
