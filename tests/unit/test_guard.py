"""Rate limits and login back-off, as plain objects and through the gateway core."""

from __future__ import annotations

import pytest
from memcluster import MemCluster

from chatcluster.common.config import Limits
from chatcluster.common.frames import ErrorCode
from chatcluster.gateway.guard import LoginGuard, TokenBucket
from chatcluster.proto import chat_pb2 as pb


def test_token_bucket():
    bucket = TokenBucket(rate=10, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.1)          # one token back after 1/rate s
    assert not bucket.take(0.1)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]  # never more than burst


def test_login_guard_backs_off_per_name_and_address():
    guard = LoginGuard(free_per_name=2, free_per_address=4, first_lock=1.0, max_lock=8.0)
    for _ in range(2):
        guard.failed("alice", "1.2.3.4", now=0.0)
    assert guard.wait("alice", "1.2.3.4", 0.0) == 0  # two free tries
    guard.failed("alice", "1.2.3.4", now=0.0)
    assert guard.wait("alice", "5.6.7.8", 0.0) == 1.0  # the name is locked wherever it is tried from
    guard.failed("alice", "1.2.3.4", now=1.0)
    assert guard.wait("alice", "5.6.7.8", 1.0) == 2.0  # doubling
    assert guard.wait("bob", "1.2.3.4", 1.0) == 0.0    # the address has 4 free tries
    guard.failed("bob", "1.2.3.4", now=1.0)
    assert guard.wait("carol", "1.2.3.4", 1.0) == 1.0  # the 5th failure from one address locks it
    guard.succeeded("alice")
    assert guard.wait("alice", "9.9.9.9", 1.0) == 0.0
    for i in range(20):
        guard.failed("eve", "6.6.6.6", now=float(i))
    assert guard.wait("eve", "7.7.7.7", 19.0) == 8.0  # capped


def test_records_are_bounded():
    guard = LoginGuard(max_records=10)
    for i in range(100):
        guard.failed(f"n{i}", f"a{i}", now=0.0)
    assert len(guard._records) == 10


@pytest.fixture
def cluster(tmp_path):
    c = MemCluster(tmp_path, shards=1, limits=Limits(chat_rate=5, chat_burst=5, flood_after=20,
                                                     login_failures_per_name=2, max_connections=3,
                                                     login_timeout=10))
    yield c
    c.db.close()


def login(cluster, gw, name, password="pw"):
    c = gw.connect()
    c.send(pb.C_LOGIN_REQ(name=name, password=password))
    cluster.run()
    return c


def test_chat_rate_limit_then_flood_drop(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    a.take()
    a.send(pb.C_CREATE_ROOM_REQ(name="r"))
    cluster.run()
    a.take()
    for i in range(8):  # burst 5, 4 used by login+create... the bucket started full at login
        a.chat(f"m{i}")
    cluster.run()
    got = a.take()
    chats = [m for m in got if isinstance(m, pb.S_ROOM_CHAT_NTF)]
    limited = [m for m in got if isinstance(m, pb.S_ERROR) and m.code == ErrorCode.RATE_LIMITED]
    assert len(chats) + len(limited) == 8 and len(limited) >= 3
    assert [m.seq for m in chats] == list(range(1, len(chats) + 1))
    for i in range(30):
        a.chat(f"flood{i}")
    cluster.run()
    assert a.closed and gw.core.stats.floods == 1


def test_failed_logins_lock_the_name(cluster):
    gw = cluster.gateway()
    login(cluster, gw, "bob", "right").take()
    for _ in range(2):
        c = login(cluster, gw, "bob", "wrong")
        assert c.one(pb.S_LOGIN_RES).message == "wrong password"
        gw.core.connection_lost(c.session)
    c = login(cluster, gw, "bob", "wrong")
    assert c.one(pb.S_LOGIN_RES).message == "wrong password"  # third failure: now locked
    c.send(pb.C_LOGIN_REQ(name="bob", password="right"))
    cluster.run()
    res = c.one(pb.S_LOGIN_RES)
    assert not res.success and "too many failed logins" in res.message
    assert gw.core.stats.login_throttled == 1


def test_connection_limit_and_login_timeout(cluster):
    now = [0.0]
    gw = cluster.gateway(clock=lambda: now[0])
    a = login(cluster, gw, "alice")
    idle = gw.connect()
    third = gw.connect()
    fourth = gw.connect()
    assert fourth.one(pb.S_ERROR).code == ErrorCode.LIMIT and fourth.closed
    now[0] = 11.0
    gw.core.tick()
    gw.flush()
    assert idle.one(pb.S_ERROR).code == ErrorCode.NOT_LOGGED_IN and idle.closed and third.closed
    assert not a.closed and gw.core.stats.login_timeouts == 2 and gw.core.stats.connections_refused == 1


def test_room_limit_per_shard(tmp_path):
    cluster = MemCluster(tmp_path, shards=1, limits=Limits(max_rooms=1))
    gw = cluster.gateway()
    a, b = login(cluster, gw, "a"), login(cluster, gw, "b")
    a.send(pb.C_CREATE_ROOM_REQ(name="one"))
    b.send(pb.C_CREATE_ROOM_REQ(name="two"))
    cluster.run()
    assert [type(m).__name__ for m in b.take()] == ["S_LOGIN_RES", "S_ERROR"]
    cluster.db.close()
