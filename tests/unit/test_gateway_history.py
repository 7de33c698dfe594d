"""History, resume, idempotent resend and paging through gateways and shards, as plain objects (memcluster)."""

from __future__ import annotations

import pytest
from memcluster import MemCluster
from test_gateway_logic import login

from chatcluster.common.config import Limits
from chatcluster.common.frames import ErrorCode
from chatcluster.proto import chat_pb2 as pb


@pytest.fixture
def cluster(tmp_path):
    c = MemCluster(tmp_path, shards=2, chat_log=True)
    yield c
    c.db.close()


def room_with(cluster, gw, *names):
    """The first named creates a room, the others join it; every answer taken. (clients, room, create answer)"""
    clients = [login(cluster, gw, n) for n in names]
    clients[0].send(pb.C_CREATE_ROOM_REQ(name="talk"))
    cluster.run()
    res = clients[0].one(pb.S_CREATE_ROOM_RES)
    for c in clients[1:]:
        c.send(pb.C_JOIN_ROOM_REQ(room_id=res.room.room_id))
        cluster.run()
    for c in clients:
        c.take()
    return clients, res.room.room_id, res


def say(cluster, client, count, prefix="m"):
    for n in range(count):
        client.chat(f"{prefix}{n}")
    cluster.run()


def test_create_and_join_answers_carry_the_epoch_and_head(cluster):
    gw = cluster.gateway()
    (a, b), room, created = room_with(cluster, gw, "alice", "bob")
    assert created.epoch != 0 and created.head_seq == 0
    say(cluster, a, 3)
    c = login(cluster, gw, "carol")
    c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    cluster.run()
    res = c.one(pb.S_JOIN_ROOM_RES)
    assert (res.epoch, res.head_seq, res.oldest_seq, res.recovered) == (created.epoch, 3, 1, False)
    local = gw.core.rooms.get(room)
    assert (local.epoch, local.last_seq) == (created.epoch, 3)  # what a rebuild will hand back


def test_join_with_history_shows_the_last_messages_then_live_ones(cluster):
    gw = cluster.gateway()
    (a,), room, _ = room_with(cluster, gw, "alice")
    say(cluster, a, 8)
    a.take()
    b = login(cluster, gw, "bob")
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room, history=3))
    a.chat("live")
    cluster.run()
    res, *rest = b.take()
    assert isinstance(res, pb.S_JOIN_ROOM_RES) and res.head_seq == 8
    assert [(m.seq, m.text) for m in rest] == [(6, "m5"), (7, "m6"), (8, "m7"), (9, "live")]


def test_a_dropped_client_resumes_with_exactly_what_it_missed(cluster):
    gw = cluster.gateway()
    (a, b), room, created = room_with(cluster, gw, "alice", "bob")
    say(cluster, a, 5)
    last = b.take()[-1].seq
    b.session.transport = None
    gw.core.connection_lost(b.session)  # the socket closed
    cluster.run()
    say(cluster, a, 50, prefix="while away ")
    again = login(cluster, gw, "bob")
    again.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=last, epoch=created.epoch))
    cluster.run()
    res, *missed = again.take()
    assert res.success and res.recovered and (res.epoch, res.head_seq) == (created.epoch, 55)
    assert [m.seq for m in missed] == list(range(6, 56))
    assert [m.text for m in missed] == [f"while away {n}" for n in range(50)]
    a.chat("live again")
    cluster.run()
    assert [m.seq for m in again.take()] == [56]


def test_a_room_whose_members_all_dropped_comes_back_whole_on_resume(cluster):
    gw = cluster.gateway()
    (a,), room, created = room_with(cluster, gw, "alice")
    say(cluster, a, 4)
    gw.core.connection_lost(a.session)
    cluster.run()
    b = login(cluster, gw, "bob")
    b.send(pb.C_ROOM_LIST_REQ())
    cluster.run()
    assert b.one(pb.S_ROOM_LIST_RES).rooms == []  # unlisted while it rests
    again = login(cluster, gw, "alice")
    again.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=2, epoch=created.epoch))
    cluster.run()
    res, *missed = again.take()
    assert res.recovered and [m.seq for m in missed] == [3, 4]


def test_a_resume_without_an_epoch_is_refused_by_the_gateway(cluster):
    gw = cluster.gateway()
    (a,), room, _ = room_with(cluster, gw, "alice")
    b = login(cluster, gw, "bob")
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=1))
    cluster.run()
    assert b.one(pb.S_ERROR).code == ErrorCode.BAD_REQUEST
    assert b.session.state.value == "lobby" and len(cluster.to_shards) == 0


def test_a_resume_past_the_head_is_refused_and_leaves_the_client_where_it_was(cluster):
    gw = cluster.gateway()
    (a,), room, created = room_with(cluster, gw, "alice")
    (b,), other, _ = room_with(cluster, gw, "bob")
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=9, epoch=created.epoch))
    cluster.run()
    assert b.one(pb.S_ERROR).code == ErrorCode.BAD_REQUEST
    assert b.session.room_id == other
    b.chat("still in my room")
    cluster.run()
    assert b.one(pb.S_ROOM_CHAT_NTF).room_id == other


def test_a_resend_with_the_same_key_reaches_the_sender_alone(cluster):
    gw = cluster.gateway()
    (a, b), room, _ = room_with(cluster, gw, "alice", "bob")
    a.send(pb.C_ROOM_CHAT_REQ(text="did it arrive?", client_msg_id=1, idempotency_key=555))
    cluster.run()
    first = a.one(pb.S_ROOM_CHAT_NTF)
    assert b.one(pb.S_ROOM_CHAT_NTF) == first
    a.send(pb.C_ROOM_CHAT_REQ(text="did it arrive?", client_msg_id=2, idempotency_key=555))
    cluster.run()
    assert a.one(pb.S_ROOM_CHAT_NTF) == first  # the original: same seq, same client_msg_id
    assert b.take() == []
    assert cluster.db.chat_summary()[room] == (1, 1, 1)  # logged once


def test_a_resend_after_a_reconnect_is_recognised(cluster):
    gw = cluster.gateway()
    (a, b), room, created = room_with(cluster, gw, "alice", "bob")
    a.send(pb.C_ROOM_CHAT_REQ(text="sent, then the line dropped", client_msg_id=1, idempotency_key=9))
    cluster.run()
    gw.core.connection_lost(a.session)
    cluster.run()
    again = login(cluster, gw, "alice")
    again.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=0, epoch=created.epoch),
               pb.C_ROOM_CHAT_REQ(text="sent, then the line dropped", client_msg_id=1, idempotency_key=9))
    cluster.run()
    res, replayed, resent = again.take()
    assert res.recovered and replayed.seq == resent.seq == 1
    assert [m.seq for m in b.take() if isinstance(m, pb.S_ROOM_CHAT_NTF)] == [1]


def test_paging_back_from_memory_then_from_the_chat_log(tmp_path):
    cluster = MemCluster(tmp_path, shards=1, chat_log=True, limits=Limits(history_messages=20, history_age=0))
    gw = cluster.gateway()
    (a,), room, _ = room_with(cluster, gw, "alice")
    say(cluster, a, 60)
    a.take()
    assert cluster.shards[0].rooms[room].ring.oldest == 41
    pages, before = [], 0
    while True:
        a.send(pb.C_ROOM_HISTORY_REQ(before_seq=before, limit=25))
        cluster.run()
        *chats, res = a.take()
        assert isinstance(res, pb.S_ROOM_HISTORY_RES) and res.success and res.room_id == room
        assert [m.seq for m in chats] == list(range(res.first_seq, res.last_seq + 1))
        pages.append((res.first_seq, res.last_seq, res.more))
        if not res.more:
            break
        before = res.first_seq
    assert pages == [(36, 60, True), (11, 35, True), (1, 10, False)]
    assert cluster.shards[0].pages_from_db == 3  # the first page reached past memory too (36..40)
    cluster.db.close()


def test_paging_outside_a_room_is_refused(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    a.send(pb.C_ROOM_HISTORY_REQ(before_seq=0, limit=10))
    cluster.run()
    assert a.one(pb.S_ERROR).code == ErrorCode.NOT_IN_ROOM


def test_a_late_page_answer_undoes_nothing(cluster):
    now = [0.0]
    gw = cluster.gateway(clock=lambda: now[0])
    (a,), room, _ = room_with(cluster, gw, "alice")
    say(cluster, a, 2)
    a.take()
    a.send(pb.C_ROOM_HISTORY_REQ(before_seq=0, limit=10))
    now[0] += 10
    gw.core.tick()  # the page timed out before the shard's answer came
    cluster.run()
    got = a.take()
    assert any(isinstance(m, pb.S_ERROR) and m.code == ErrorCode.UNAVAILABLE for m in got)
    a.chat("still in the room")
    cluster.run()
    assert a.one(pb.S_ROOM_CHAT_NTF).seq == 3


# ---- a shard restart ------------------------------------------------------------------------
def restart_and_rebuild(cluster, gw, now, shard):
    cluster.restart_shard(shard)
    now[0] += 1.5
    gw.core.tick()  # the heartbeat meets the new incarnation: the gateway rebuilds
    cluster.run()


@pytest.mark.parametrize("chat_log", [True, False])
def test_a_shard_restart_keeps_the_epoch_only_when_the_chat_log_makes_the_room_whole(tmp_path, chat_log):
    cluster = MemCluster(tmp_path, shards=2, chat_log=chat_log)
    now = [0.0]
    gw = cluster.gateway(clock=lambda: now[0])
    gw.core.start()
    (a, b), room, created = room_with(cluster, gw, "alice", "bob")
    say(cluster, a, 5)
    b.take()
    gw.core.connection_lost(b.session)
    say(cluster, a, 10, prefix="meanwhile ")
    a.take()
    restart_and_rebuild(cluster, gw, now, gw.core.owner(room))
    notice = a.one(pb.S_ERROR)
    assert notice.code == ErrorCode.UNAVAILABLE and "restored" in notice.message
    book = cluster.shards[gw.core.owner(room)]
    again = login(cluster, gw, "bob")
    again.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=5, epoch=created.epoch))
    cluster.run()
    res, *missed = again.take()
    assert res.success and res.head_seq == 15
    if chat_log:  # every row is in the log: the room is whole, the epoch the same, the missed ten replayed
        assert res.recovered and res.epoch == created.epoch and book.restores_kept == 1
        assert [m.text for m in missed] == [f"meanwhile {n}" for n in range(10)]
    else:  # nothing to refill from: honestly not recovered, in a new epoch
        assert not res.recovered and res.epoch != created.epoch and missed == []
        assert gw.core.rooms.get(room).epoch == res.epoch  # the gateway heard the new epoch
    a.chat("after")
    cluster.run()
    assert [m.seq for m in again.take()] == [16]
    cluster.db.close()


def test_after_a_restart_a_resend_is_still_answered_with_the_original(tmp_path):
    """The chat log keeps client_msg_id and the idempotency key: the frames a restored room gets back are the
    ones it sent, and a resend of a message from before the restart is still not broadcast again."""
    cluster = MemCluster(tmp_path, shards=1, chat_log=True)
    now = [0.0]
    gw = cluster.gateway(clock=lambda: now[0])
    gw.core.start()
    (a, b), room, created = room_with(cluster, gw, "alice", "bob")
    a.send(pb.C_ROOM_CHAT_REQ(text="did it arrive?", client_msg_id=41, idempotency_key=2**64 - 3))
    cluster.run()
    original = a.one(pb.S_ROOM_CHAT_NTF)
    b.take()
    restart_and_rebuild(cluster, gw, now, 0)
    for c in (a, b):
        assert "restored" in c.one(pb.S_ERROR).message
    a.send(pb.C_ROOM_CHAT_REQ(text="did it arrive?", client_msg_id=41, idempotency_key=2**64 - 3))
    cluster.run()
    assert a.one(pb.S_ROOM_CHAT_NTF) == original  # rebuilt from the log, byte for byte the same message
    assert b.take() == [] and cluster.shards[0].rooms[room].seq == 1
    cluster.db.close()
