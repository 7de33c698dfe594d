"""Gateway sessions and shard rooms together, as plain objects (tests/unit/memcluster.py)."""

from __future__ import annotations

import pytest
from memcluster import MemCluster, rooms_on

from chatcluster.common.config import Limits
from chatcluster.common.envelope import Batch, Kind, pack_deliver
from chatcluster.common.frames import HEADER, ErrorCode, encode
from chatcluster.gateway.session import State
from chatcluster.proto import chat_pb2 as pb


@pytest.fixture
def cluster(tmp_path):
    c = MemCluster(tmp_path, shards=3)
    yield c
    c.db.close()


def login(cluster, gw, name, password="pw"):
    client = gw.connect()
    client.send(pb.C_LOGIN_REQ(name=name, password=password))
    cluster.run()
    res = client.one(pb.S_LOGIN_RES)
    assert res.success, res.message
    client.player_id = res.player_id
    return client


def create(cluster, client, name="room"):
    client.send(pb.C_CREATE_ROOM_REQ(name=name))
    cluster.run()
    res = client.one(pb.S_CREATE_ROOM_RES)
    assert res.success, res.message
    return res.room.room_id


def join(cluster, client, room_id):
    client.send(pb.C_JOIN_ROOM_REQ(room_id=room_id))
    cluster.run()
    res = [m for m in client.take() if isinstance(m, pb.S_JOIN_ROOM_RES)]
    assert res and res[0].success, res
    return res[0]


def pair_in_room(cluster, gw):
    """alice created a room and bob joined it; alice's notice of bob already taken."""
    a, b = login(cluster, gw, "alice"), login(cluster, gw, "bob")
    room = create(cluster, a)
    join(cluster, b, room)
    a.take()
    return a, b, room


def test_login_registers_then_checks_password(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice", "secret")
    assert a.player_id > 0
    b = gw.connect()
    b.send(pb.C_LOGIN_REQ(name="alice", password="wrong"))
    cluster.run()
    res = b.one(pb.S_LOGIN_RES)
    assert not res.success and res.message == "wrong password"
    assert b.session.state is State.CONNECTED
    assert not a.closed


def test_requests_before_login_are_refused_and_change_nothing(cluster):
    gw = cluster.gateway()
    c = gw.connect()
    for msg in (pb.C_CREATE_ROOM_REQ(name="x"), pb.C_JOIN_ROOM_REQ(room_id=1), pb.C_ROOM_CHAT_REQ(text="hi"),
                pb.C_LEAVE_ROOM_REQ(), pb.C_ROOM_LIST_REQ(), pb.C_PING(client_time_us=1)):
        c.send(msg)
        cluster.run()
        err = c.one(pb.S_ERROR)
        assert err.code == ErrorCode.NOT_LOGGED_IN
    assert rooms_on(cluster) == [[], [], []]
    assert c.session.state is State.CONNECTED and not c.closed


def test_create_join_chat_leave(cluster):
    gw = cluster.gateway()
    a, b, c = (login(cluster, gw, n) for n in ("alice", "bob", "carol"))
    room = create(cluster, a, "lobby")
    res = join(cluster, b, room)
    assert [p.name for p in res.members] == ["alice", "bob"] and res.room.member_count == 2
    ntf = a.one(pb.S_JOIN_ROOM_NTF)
    assert ntf.room_id == room and ntf.player.name == "bob" and ntf.player.player_id == b.player_id
    join(cluster, c, room)
    assert a.one(pb.S_JOIN_ROOM_NTF).player.name == "carol"
    assert b.one(pb.S_JOIN_ROOM_NTF).player.name == "carol"

    a.chat("hello", 42)
    b.chat("hi alice", 7)
    cluster.run()
    for client in (a, b, c):
        got = client.take()
        assert [(m.seq, m.text, m.sender.name, m.client_msg_id) for m in got] == [
            (1, "hello", "alice", 42), (2, "hi alice", "bob", 7)]
        assert all(m.room_id == room and m.server_time_us > 0 for m in got)

    b.send(pb.C_LEAVE_ROOM_REQ())
    cluster.run()
    assert b.one(pb.S_LEAVE_ROOM_ACK).success
    for client in (a, c):
        ntf = client.one(pb.S_LEAVE_ROOM_NTF)
        assert ntf.room_id == room and ntf.player.name == "bob"
    a.chat("still here")
    cluster.run()
    assert b.take() == []
    assert a.one(pb.S_ROOM_CHAT_NTF).seq == 3


def test_empty_room_is_removed_and_its_id_never_reused(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    first = create(cluster, a, "one")
    a.send(pb.C_LEAVE_ROOM_REQ())
    cluster.run()
    assert a.one(pb.S_LEAVE_ROOM_ACK).success
    assert rooms_on(cluster) == [[], [], []]
    b = login(cluster, gw, "bob")
    b.send(pb.C_JOIN_ROOM_REQ(room_id=first))
    cluster.run()
    res = b.one(pb.S_JOIN_ROOM_RES)
    assert not res.success and "not found" in res.message
    second = create(cluster, a, "two")
    assert second > first


def test_join_unknown_room_keeps_current_room(cluster):
    gw = cluster.gateway()
    a, b, room = pair_in_room(cluster, gw)
    b.send(pb.C_JOIN_ROOM_REQ(room_id=999_999))
    cluster.run()
    assert not b.one(pb.S_JOIN_ROOM_RES).success
    assert b.session.room_id == room
    assert a.take() == []  # nobody saw b leave
    b.chat("still in")
    cluster.run()
    assert a.one(pb.S_ROOM_CHAT_NTF).text == "still in"


def test_joining_another_room_leaves_the_old_one(cluster):
    gw = cluster.gateway()
    a, b, c = (login(cluster, gw, n) for n in ("alice", "bob", "carol"))
    r1 = create(cluster, a, "r1")
    r2 = create(cluster, c, "r2")
    join(cluster, b, r1)
    a.take()
    join(cluster, b, r2)
    assert a.one(pb.S_LEAVE_ROOM_NTF).player.name == "bob"
    assert c.one(pb.S_JOIN_ROOM_NTF).player.name == "bob"
    a.chat("r1 only")
    c.chat("r2 only")
    cluster.run()
    assert [m.text for m in b.take()] == ["r2 only"]


def test_creating_a_room_while_in_one_leaves_it(cluster):
    gw = cluster.gateway()
    a, b = login(cluster, gw, "alice"), login(cluster, gw, "bob")
    r1 = create(cluster, a)
    join(cluster, b, r1)
    a.take()
    r2 = create(cluster, b, "b's")
    assert r2 != r1
    assert a.one(pb.S_LEAVE_ROOM_NTF).player.name == "bob"
    assert b.session.room_id == r2


def test_chat_errors(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    a.chat("nowhere")
    cluster.run()
    assert a.one(pb.S_ERROR).code == ErrorCode.NOT_IN_ROOM
    create(cluster, a)
    a.send(pb.C_ROOM_CHAT_REQ(text="", client_msg_id=1))
    a.send(pb.C_ROOM_CHAT_REQ(text="x" * 4097, client_msg_id=2))
    a.send(pb.C_ROOM_CHAT_REQ(text="é" * 2049, client_msg_id=3))  # 4098 bytes of UTF-8
    a.send(pb.C_ROOM_CHAT_REQ(text="x" * 4096, client_msg_id=4))
    a.send_raw(HEADER.pack(4 + 4, 8) + b"\x0a\x05ab")  # truncated field: does not decode
    a.send_raw(HEADER.pack(4 + 3, 8) + b"\x0a\x01\xff")  # invalid UTF-8
    cluster.run()
    got = a.take()
    assert [(type(m).__name__, getattr(m, "code", None)) for m in got] == [
        ("S_ERROR", ErrorCode.BAD_REQUEST), ("S_ERROR", ErrorCode.TOO_LARGE), ("S_ERROR", ErrorCode.TOO_LARGE),
        ("S_ROOM_CHAT_NTF", None), ("S_ERROR", ErrorCode.BAD_REQUEST), ("S_ERROR", ErrorCode.BAD_REQUEST)]
    assert got[3].seq == 1  # refused chats take no seq
    assert not a.closed


def test_protocol_errors_close_only_that_connection(cluster):
    gw = cluster.gateway()
    good = login(cluster, gw, "good")
    room = create(cluster, good)
    cases = [HEADER.pack(3, 1), HEADER.pack(9000, 1), HEADER.pack(4, 999), HEADER.pack(4, 2)]
    expected = [ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE, ErrorCode.BAD_REQUEST, ErrorCode.BAD_REQUEST]
    for data, code in zip(cases, expected, strict=True):
        bad = login(cluster, gw, f"bad{code}{len(gw.clients)}")
        join(cluster, bad, room)
        bad.send_raw(data)
        cluster.run()
        got = bad.take()
        assert isinstance(got[-1], pb.S_ERROR) and got[-1].code == code
        assert bad.closed
    good.take()
    good.chat("after")
    cluster.run()
    got = good.take()
    assert [m.text for m in got if isinstance(m, pb.S_ROOM_CHAT_NTF)] == ["after"]


def test_relogin_replaces_the_old_connection(cluster):
    gw = cluster.gateway()
    old = login(cluster, gw, "alice", "pw1")
    b = login(cluster, gw, "bob")
    room = create(cluster, old)
    join(cluster, b, room)
    old.take()
    new = login(cluster, gw, "alice", "pw1")
    assert new.player_id == old.player_id
    err = old.one(pb.S_ERROR)
    assert err.code == ErrorCode.REPLACED and old.closed
    assert b.one(pb.S_LEAVE_ROOM_NTF).player.name == "alice"
    assert gw.core.players[new.player_id] is new.session


def test_already_logged_in(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    a.send(pb.C_LOGIN_REQ(name="other", password="pw"))
    cluster.run()
    res = a.one(pb.S_LOGIN_RES)
    assert not res.success and res.message == "already logged in"


@pytest.mark.parametrize("name", ["", " alice", "a\nb", "x" * 33])
def test_bad_names_are_refused(cluster, name):
    gw = cluster.gateway()
    c = gw.connect()
    c.send(pb.C_LOGIN_REQ(name=name, password="pw"))
    cluster.run()
    assert not c.one(pb.S_LOGIN_RES).success


def test_registration_closed_refuses_unknown_names(cluster):
    gw = cluster.gateway(registration_open=False)
    c = gw.connect()
    c.send(pb.C_LOGIN_REQ(name="stranger", password="pw"))
    cluster.run()
    res = c.one(pb.S_LOGIN_RES)
    assert not res.success and "registration is closed" in res.message
    cluster.db.login("known", "pw", register=True)
    c.send(pb.C_LOGIN_REQ(name="known", password="pw"))
    cluster.run()
    assert c.one(pb.S_LOGIN_RES).success


def test_database_down_login_fails_clearly(cluster):
    gw = cluster.gateway()
    cluster.db_down = True
    c = gw.connect()
    c.send(pb.C_LOGIN_REQ(name="alice", password="pw"))
    cluster.run()
    res = c.one(pb.S_LOGIN_RES)
    assert not res.success and "database" in res.message
    cluster.db_down = False
    c.send(pb.C_LOGIN_REQ(name="alice", password="pw"))
    cluster.run()
    assert c.one(pb.S_LOGIN_RES).success


def test_pipelined_requests_run_in_order_and_reading_pauses(cluster):
    gw = cluster.gateway()
    a = gw.connect()
    a.send(pb.C_LOGIN_REQ(name="alice", password="pw"), pb.C_CREATE_ROOM_REQ(name="r"),
           pb.C_ROOM_CHAT_REQ(text="first", client_msg_id=1), pb.C_PING(client_time_us=5))
    gw.flush()  # the end of the loop pass: the adapter carries out the pause
    assert a.session.busy and a.session.id in gw.paused
    cluster.run()
    got = a.take()
    # The pong is the gateway's own answer; the chat comes back through the shard, so it may come later.
    assert [type(m).__name__ for m in got[:2]] == ["S_LOGIN_RES", "S_CREATE_ROOM_RES"]
    by_type = {type(m).__name__: m for m in got[2:]}
    assert by_type.keys() == {"S_ROOM_CHAT_NTF", "S_PONG"}
    assert by_type["S_ROOM_CHAT_NTF"].text == "first" and by_type["S_PONG"].client_time_us == 5
    assert a.session.id not in gw.paused


def test_disconnect_leaves_room_and_late_join_is_undone(cluster):
    gw = cluster.gateway()
    a, b = login(cluster, gw, "alice"), login(cluster, gw, "bob")
    room = create(cluster, a)
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    gw.core.connection_lost(b.session)  # gone before the shard answered
    cluster.run()
    # The shard had bob in the room before the gateway undid the join: alice saw him come and go.
    assert [type(m) for m in a.take()] == [pb.S_JOIN_ROOM_NTF, pb.S_LEAVE_ROOM_NTF]
    assert gw.core.stats.undone == 1
    owner = gw.core.owner(room)
    assert len(cluster.shards[owner].rooms[room].members) == 1
    gw.core.connection_lost(a.session)
    cluster.run()
    assert rooms_on(cluster) == [[], [], []]


def test_shard_timeout_answers_unavailable_and_undoes_late_success(cluster):
    now = [0.0]
    gw = cluster.gateway(clock=lambda: now[0])
    a, b = login(cluster, gw, "alice"), login(cluster, gw, "bob")
    room = create(cluster, a)
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    now[0] += 10
    gw.core.tick()
    gw.flush()
    err = b.one(pb.S_ERROR)
    assert err.code == ErrorCode.UNAVAILABLE and not b.session.busy
    cluster.run()  # the shard answers late: the join is undone
    assert b.take() == []
    assert len(cluster.shards[gw.core.owner(room)].rooms[room].members) == 1
    assert gw.core.stats.undone == 1


def test_room_list_merges_every_shard_lowest_ids_first(cluster):
    gw = cluster.gateway()
    ids = []
    for i in range(8):
        c = login(cluster, gw, f"u{i}")
        ids.append(create(cluster, c, f"room{i}"))
    assert sum(1 for r in rooms_on(cluster) if r) >= 2  # spread over shards
    c = login(cluster, gw, "lister")
    c.send(pb.C_ROOM_LIST_REQ())
    cluster.run()
    res = c.one(pb.S_ROOM_LIST_RES)
    assert [r.room_id for r in res.rooms] == sorted(ids)
    assert [r.member_count for r in res.rooms] == [1] * 8


def test_room_list_answers_without_a_silent_shard(cluster):
    now = [0.0]
    gw = cluster.gateway(clock=lambda: now[0])
    c = login(cluster, gw, "lister")
    create(cluster, c)
    c.send(pb.C_ROOM_LIST_REQ())
    cluster.to_shards.clear()  # every shard is silent
    now[0] += 2
    gw.core.tick()
    gw.flush()
    assert c.one(pb.S_ROOM_LIST_RES).rooms == []


def test_room_member_limit(tmp_path):
    cluster = MemCluster(tmp_path, shards=1, limits=Limits(max_members=2))
    gw = cluster.gateway()
    a, b, c = (login(cluster, gw, n) for n in ("a", "b", "c"))
    room = create(cluster, a)
    join(cluster, b, room)
    c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    cluster.run()
    err = c.one(pb.S_ERROR)
    assert err.code == ErrorCode.LIMIT and c.session.state is State.LOBBY


def test_members_on_two_gateways_see_one_order(cluster):
    gw1, gw2 = cluster.gateway(), cluster.gateway()
    a = login(cluster, gw1, "alice")
    b = login(cluster, gw2, "bob")
    c = login(cluster, gw2, "carol")
    room = create(cluster, a)
    join(cluster, b, room)
    join(cluster, c, room)
    for client in (a, b):
        client.take()
    for i in range(5):
        (a, b, c)[i % 3].chat(f"m{i}")
    cluster.run()
    seen = [[(m.seq, m.text) for m in client.take()] for client in (a, b, c)]
    # Each gateway sends its pass's chats in one batch, so the shard's order need not be the typing order;
    # what holds: one order everywhere, seq 1..5 without gaps, and each gateway's chats in the order sent.
    assert seen[0] == seen[1] == seen[2]
    assert [seq for seq, _ in seen[0]] == [1, 2, 3, 4, 5]
    texts = [text for _, text in seen[0]]
    assert sorted(texts) == [f"m{i}" for i in range(5)]
    assert [t for t in texts if t in ("m0", "m3")] == ["m0", "m3"]
    assert [t for t in texts if t in ("m1", "m2", "m4")] == ["m1", "m2", "m4"]
    # one Deliver per gateway per chat, not one per member
    assert cluster.shards[gw1.core.owner(room)].deliveries >= 15


def test_except_session_applies_only_on_its_own_gateway(cluster):
    gw1, gw2 = cluster.gateway(), cluster.gateway()
    a = login(cluster, gw1, "alice")  # session 1 on gw1
    b = login(cluster, gw2, "bob")    # session 1 on gw2: same session number, other gateway
    assert a.session.id == b.session.id
    room = create(cluster, a)
    join(cluster, b, room)
    assert a.one(pb.S_JOIN_ROOM_NTF).player.name == "bob"


def test_shutdown_tells_every_client(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    gw.core.shutdown()
    gw.flush()
    assert a.one(pb.S_ERROR).code == ErrorCode.SHUTTING_DOWN and a.closed
    late = gw.connect()
    assert late.one(pb.S_ERROR).code == ErrorCode.SHUTTING_DOWN and late.closed


def test_ping(cluster):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    a.send(pb.C_PING(client_time_us=123))
    cluster.run()
    pong = a.one(pb.S_PONG)
    assert pong.client_time_us == 123 and pong.server_time_us > 0


def test_slow_consumer_is_dropped_alone(cluster):
    gw = cluster.gateway()
    a, b, room = pair_in_room(cluster, gw)
    gw.core.on_slow_consumer(b.session, 10 << 20)
    cluster.run()
    assert b.closed and gw.core.stats.slow_consumers == 1
    assert a.one(pb.S_LEAVE_ROOM_NTF).player.name == "bob"


def test_encode_refuses_oversized_frames():
    with pytest.raises(ValueError):
        encode(pb.S_ROOM_LIST_RES(rooms=[pb.RoomInfo(room_id=i, name="x" * 60) for i in range(2000)]))


def test_chat_then_leave_in_one_read_still_echoes_to_the_sender(cluster):
    gw = cluster.gateway()
    a, b, room = pair_in_room(cluster, gw)
    a.send(pb.C_ROOM_CHAT_REQ(text="bye", client_msg_id=9), pb.C_LEAVE_ROOM_REQ())
    cluster.run()
    got = a.take()
    assert [type(m).__name__ for m in got] == ["S_ROOM_CHAT_NTF", "S_LEAVE_ROOM_ACK"]
    assert got[0].client_msg_id == 9 and got[1].success
    assert [type(m).__name__ for m in b.take()] == ["S_ROOM_CHAT_NTF", "S_LEAVE_ROOM_NTF"]


def test_chat_then_join_elsewhere_in_one_read_still_echoes(cluster):
    gw = cluster.gateway()
    a, b = login(cluster, gw, "alice"), login(cluster, gw, "bob")
    r1 = create(cluster, a, "one")
    r2 = create(cluster, b, "two")
    a.send(pb.C_ROOM_CHAT_REQ(text="last words", client_msg_id=1), pb.C_JOIN_ROOM_REQ(room_id=r2))
    cluster.run()
    got = a.take()
    chats = [m for m in got if isinstance(m, pb.S_ROOM_CHAT_NTF)]
    assert [(m.room_id, m.text) for m in chats] == [(r1, "last words")]
    assert any(isinstance(m, pb.S_JOIN_ROOM_RES) and m.success for m in got)
    b.chat("welcome")
    cluster.run()
    assert [(m.room_id, m.text) for m in a.take()] == [(r2, "welcome")]


def test_leave_is_acked_even_when_the_shard_is_silent(cluster):
    now = [0.0]
    gw = cluster.gateway(clock=lambda: now[0])
    a = login(cluster, gw, "alice")
    room = create(cluster, a)
    a.send(pb.C_LEAVE_ROOM_REQ())
    cluster.to_shards.clear()
    assert a.session.busy and a.take() == []
    now[0] += 10
    gw.core.tick()
    gw.flush()
    assert a.one(pb.S_LEAVE_ROOM_ACK).success
    assert room not in gw.core.rooms and len(gw.core.requests) == 0


def test_logins_in_flight_are_bounded(tmp_path):
    cluster = MemCluster(tmp_path, shards=1, limits=Limits(max_logins_in_flight=2))
    gw = cluster.gateway()
    clients = [gw.connect() for _ in range(3)]
    for i, c in enumerate(clients):
        c.send(pb.C_LOGIN_REQ(name=f"u{i}", password="pw"))
    gw.flush()
    busy = clients[2].one(pb.S_LOGIN_RES)
    assert not busy.success and "busy" in busy.message
    assert gw.core.stats.logins_refused_busy == 1 and gw.core.logins.in_flight == 2
    cluster.run()
    assert all(c.one(pb.S_LOGIN_RES).success for c in clients[:2])
    assert gw.core.logins.in_flight == 0
    clients[2].send(pb.C_LOGIN_REQ(name="u2", password="pw"))
    cluster.run()
    assert clients[2].one(pb.S_LOGIN_RES).success


def test_a_client_cannot_speak_for_another_or_into_another_room(cluster):
    """The shard checks membership by (gateway, session) and signs every chat with the member's own player."""
    from chatcluster.common.envelope import iter_items, parse
    from chatcluster.shards.rooms import Outbox

    gw = cluster.gateway()
    a, b = login(cluster, gw, "alice"), login(cluster, gw, "bob")
    room = create(cluster, a)
    book = cluster.shards[gw.core.owner(room)]
    body = encode(pb.C_ROOM_CHAT_REQ(text="I am alice", client_msg_id=1))[4:]
    for gateway, session in ((gw.name, b.session.id), (b"gw-other", a.session.id)):  # not a member / forged gateway
        out = Outbox()
        book.chat(gateway, room, session, body, out)
        (_, data), = out.take()
        (kind, payload), = iter_items(data)
        reply = parse(kind, payload)
        assert reply.not_member and not reply.ok
    assert book.rooms[room].seq == 0  # nothing was broadcast
    b.chat("hello")  # bob's chat goes to bob's room only: he is in none
    cluster.run()
    assert b.one(pb.S_ERROR).code == ErrorCode.NOT_IN_ROOM
    a.chat("mine")
    cluster.run()
    assert a.one(pb.S_ROOM_CHAT_NTF).sender.player_id == a.player_id


def test_relogin_on_another_gateway_replaces_the_old_connection(cluster):
    gw1, gw2 = cluster.gateway(), cluster.gateway()
    old = login(cluster, gw1, "alice")
    b = login(cluster, gw2, "bob")
    room = create(cluster, old)
    join(cluster, b, room)
    old.take()
    new = login(cluster, gw2, "alice")
    assert new.player_id == old.player_id
    assert old.one(pb.S_ERROR).code == ErrorCode.REPLACED and old.closed
    assert b.one(pb.S_LEAVE_ROOM_NTF).player.player_id == old.player_id
    presence = cluster.states[gw1.core.owner(old.player_id)].presence
    assert presence.holders[old.player_id] == (gw2.name, new.session.id) and presence.kicks == 1
    gw2.core.connection_lost(new.session)
    cluster.run()
    assert old.player_id not in presence.holders


def test_a_bad_envelope_from_a_shard_is_counted_and_the_rest_of_its_batch_goes_on(cluster):
    gw = cluster.gateway()
    a, b, room = pair_in_room(cluster, gw)
    good = [encode(pb.S_ROOM_CHAT_NTF(room_id=room, seq=n, text=f"m{n}")) for n in (1, 2)]
    batch = Batch()
    batch.add(Kind.DELIVER, pack_deliver(room, 0, 1, good[0]))
    batch.add(Kind.DELIVER, b"short")              # shorter than its header
    batch.add(Kind.REPLY, b"\xff\xff\xff")         # does not decode
    batch.add(99, b"")                             # a kind gateways do not take
    batch.add(Kind.DELIVER, pack_deliver(room, 0, 2, good[1]))
    gw.core.on_shard_batch(0, batch.take() + b"\x11\x00")  # and a truncated item header at the end
    gw.flush()
    assert [m.text for m in a.take()] == ["m1", "m2"]
    assert [m.text for m in b.take()] == ["m1", "m2"]
    assert gw.core.stats.shard_errors == 4


def test_a_bug_while_handling_a_shard_batch_surfaces(cluster, monkeypatch):
    gw = cluster.gateway()
    a = login(cluster, gw, "alice")
    create(cluster, a)

    def broken(payload: bytes) -> None:
        raise KeyError("a bug of ours")

    monkeypatch.setattr(gw.core, "_deliver", broken)
    batch = Batch()
    batch.add(Kind.DELIVER, pack_deliver(1, 0, 1, b""))
    with pytest.raises(KeyError):
        gw.core.on_shard_batch(0, batch.take())
    assert gw.core.stats.shard_errors == 0


def test_every_output_is_taken_once_and_in_one_piece(cluster):
    gw = cluster.gateway()
    a = gw.connect()
    a.send(pb.C_PING(client_time_us=1), pb.C_LOGIN_REQ(name="alice", password="pw"))
    output = gw.core.take_output()
    assert output.writes == [a.session] and len(a.session.out) == 1  # the pong
    assert [type(e).__name__ for e in output.effects] == ["Login"]
    assert "pw" not in repr(output.effects[0])  # a password never reaches a log line
    assert not gw.core.has_output
    empty = gw.core.take_output()
    assert (empty.envelopes, empty.writes, empty.effects) == ([], [], [])
