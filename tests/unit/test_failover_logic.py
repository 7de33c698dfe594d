"""Shard restarts, silent shards and restarted gateways, as plain objects (no processes)."""

from __future__ import annotations

import pytest
from memcluster import MemCluster

from chatcluster.common.frames import ErrorCode
from chatcluster.gateway.health import Event, ShardHealth
from chatcluster.proto import chat_pb2 as pb
from chatcluster.shards.peers import GatewayPeers


@pytest.fixture
def setup(tmp_path):
    now = [0.0]
    cluster = MemCluster(tmp_path, shards=2)
    gw = cluster.gateway(clock=lambda: now[0])
    gw.core.start()
    cluster.run()
    clients = []
    for name in ("alice", "bob"):
        c = gw.connect()
        c.send(pb.C_LOGIN_REQ(name=name, password="pw"))
        cluster.run()
        c.take()
        clients.append(c)
    a, b = clients
    a.send(pb.C_CREATE_ROOM_REQ(name="lobby"))
    cluster.run()
    room = a.one(pb.S_CREATE_ROOM_RES).room.room_id
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    cluster.run()
    b.take()
    a.take()
    for i in range(3):
        a.chat(f"before {i}")
    cluster.run()
    assert [m.seq for m in b.take()] == [1, 2, 3]
    a.take()
    yield cluster, gw, a, b, room, now, gw.core.owner(room)
    cluster.db.close()


def test_a_restarted_shard_gets_its_rooms_back_and_seq_goes_on(setup):
    cluster, gw, a, b, room, now, shard = setup
    cluster.restart_shard(shard)
    now[0] += 1.5
    gw.core.tick()  # heartbeat -> the new incarnation answers -> rebuild
    cluster.run()
    for c in (a, b):
        notice = c.one(pb.S_ERROR)
        assert notice.code == ErrorCode.UNAVAILABLE and "restored" in notice.message
    book = cluster.shards[shard]
    assert room in book.rooms and len(book.rooms[room].members) == 2
    a.chat("after")
    cluster.run()
    assert [(m.seq, m.text) for m in b.take()] == [(4, "after")]  # no seq reused, no gap
    assert gw.core.stats.rebuilds == 1


def test_a_chat_to_a_room_the_shard_lost_is_refused_and_triggers_the_rebuild(setup):
    cluster, gw, a, b, room, now, shard = setup
    cluster.restart_shard(shard)  # before any heartbeat tells the gateway
    a.chat("lost in the restart")
    cluster.run()
    got = a.take()
    codes = [m.code for m in got if isinstance(m, pb.S_ERROR)]
    assert ErrorCode.UNAVAILABLE in codes and all(c == ErrorCode.UNAVAILABLE for c in codes)
    assert any("not delivered" in m.message for m in got)  # the sender is told: nothing lost silently
    assert room in cluster.shards[shard].rooms
    b.take()
    a.chat("again")
    cluster.run()
    assert [(m.seq, m.text) for m in b.take()] == [(4, "again")]


def test_a_silent_shard_answers_unavailable_at_once_and_recovers(setup):
    cluster, gw, a, b, room, now, shard = setup
    cluster.silent.add(shard)
    now[0] += 4
    gw.core.tick()
    assert gw.core.shards.down(shard)
    a.chat("while down")
    gw.flush()
    assert a.one(pb.S_ERROR).code == ErrorCode.UNAVAILABLE
    c = gw.connect()
    c.send(pb.C_LOGIN_REQ(name="carol", password="pw"))
    cluster.run()
    c.take()
    c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    gw.flush()
    assert c.one(pb.S_ERROR).code == ErrorCode.UNAVAILABLE and not c.session.busy
    cluster.silent.discard(shard)
    now[0] += 1.5
    gw.core.tick()
    cluster.run()
    assert not gw.core.shards.down(shard)  # back, same incarnation: nothing to rebuild
    assert gw.core.stats.rebuilds == 0
    b.take()
    a.chat("back")
    cluster.run()
    assert [(m.seq, m.text) for m in b.take()] == [(4, "back")]


def test_gateway_peers():
    peers = GatewayPeers(timeout=5)
    assert peers.hello(b"gw0", 1, now=0) == "new"
    assert peers.hello(b"gw0", 1, now=1) == "same"
    assert peers.hello(b"gw0", 2, now=2) == "restarted"  # same identity, new incarnation
    peers.seen(b"gw1", now=2)
    assert peers.expired(now=6) == []
    peers.grace(now=20)  # we were frozen from 2 to 20: nobody expires for that
    assert peers.expired(now=24) == []
    assert peers.expired(now=25.5) == [b"gw0", b"gw1"]
    assert peers.restarts == 1 and peers.timeouts == 2
    assert peers.hello(b"gw0", 2, now=26) == "new"  # forgotten: the shard holds nothing of it any more


def test_a_shard_that_dropped_us_after_a_silence_gets_the_rooms_back(setup):
    cluster, gw, a, b, room, now, shard = setup
    from chatcluster.shards.rooms import Outbox

    state = cluster.states[shard]
    state.drop_gateway(gw.name, Outbox())  # as after a cut link: the shard thinks we died ...
    state.peers.expired(now=1e9)           # ... and forgot us
    now[0] += 1.5
    gw.core.tick()
    cluster.run()
    assert len(cluster.shards[shard].rooms[room].members) == 2
    a.take()
    b.take()
    a.chat("healed")
    cluster.run()
    assert [(m.seq, m.text) for m in b.take()] == [(4, "healed")]


def test_dropping_a_gateway_takes_its_sessions_out_of_rooms(setup):
    cluster, gw, a, b, room, now, shard = setup
    book = cluster.shards[shard]
    from chatcluster.shards.rooms import Outbox

    out = Outbox()
    assert book.drop_gateway(gw.name, out) == 2
    assert room not in book.rooms and book.members == 0


def test_shard_health_events():
    h = ShardHealth(timeout=3, now=0)
    assert h.hello(7, now=1) is Event.FIRST
    assert h.hello(7, now=2) is Event.SAME
    assert not h.check(now=4) and h.check(now=5.5) and not h.check(now=6)
    assert h.hello(7, now=7) is Event.BACK
    assert h.hello(8, now=8) is Event.RESTARTED
    assert h.downs == 1 and h.restarts == 1
