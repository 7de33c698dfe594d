"""The five operations end to end: `chatctl up` processes, real TCP, every frame checked.

Runs on uvloop, on the stock asyncio loop, and on the stock loop with the
ZeroMQ I/O-thread bridge (the path Windows' IOCP proactor loop takes).
"""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from chatwire import AsyncWire, WireClient
from waiting import wait_for

from chatcluster.common.frames import HEADER, ErrorCode
from chatcluster.common.hashing import owner
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e

LOOPS = {
    "uvloop": ("--loop", "uvloop"),
    "asyncio": ("--loop", "asyncio"),
    "asyncio-thread-bridge": ("--loop", "asyncio", "--zmq-bridge", "thread"),
    "uvloop-writer-thread": ("--loop", "uvloop", "--writer", "thread"),
}
_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}{next(_names)}-{int(time.time() * 1000) % 100000}"


def players(members) -> list[tuple[int, str]]:
    return [(m.player_id, m.name) for m in members]


@pytest.mark.parametrize("flags", LOOPS.values(), ids=LOOPS.keys())
def test_three_clients_login_create_join_chat_leave_disconnect(cluster_factory, flags):
    cluster = cluster_factory(*flags, shards=2)
    gw = cluster.gateway_status()
    assert gw["loop"] == ("uvloop" if "uvloop" in flags else "SelectorEventLoop")
    assert gw["zmq_bridge"] == ("thread" if "--zmq-bridge" in flags else "reader")
    assert gw["writer_mode"] == ("thread" if "--writer" in flags else "loop")  # the loop writes by default
    full_flow(cluster)


def full_flow(cluster) -> int:
    """Three clients through every operation, every frame checked; returns the room id."""
    a, b, c = (WireClient(cluster.host, cluster.port) for _ in range(3))
    for client, name in ((a, unique("alice")), (b, unique("bob")), (c, unique("carol"))):
        res = client.login(name, "secret")
        assert res.success and res.player_id > 0, res
    assert len({a.player_id, b.player_id, c.player_id}) == 3

    # create: the creator is in at once, alone
    a.send(pb.C_CREATE_ROOM_REQ(name="TestRoom"))
    res = a.expect(pb.S_CREATE_ROOM_RES)
    room = res.room.room_id
    assert res.success and room > 0 and res.room.name == "TestRoom" and res.room.member_count == 1
    assert players(res.members) == [(a.player_id, a.name)]

    # join: the joiner gets everyone, the others a notice
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    res = b.expect(pb.S_JOIN_ROOM_RES)
    assert res.success and res.room.member_count == 2
    assert players(res.members) == [(a.player_id, a.name), (b.player_id, b.name)]
    ntf = a.expect(pb.S_JOIN_ROOM_NTF)
    assert ntf.room_id == room and (ntf.player.player_id, ntf.player.name) == (b.player_id, b.name)
    assert b.quiet()

    c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    res = c.expect(pb.S_JOIN_ROOM_RES)
    assert players(res.members) == [(x.player_id, x.name) for x in (a, b, c)]
    for other in (a, b):
        assert other.expect(pb.S_JOIN_ROOM_NTF).player.player_id == c.player_id

    # chat both ways: everyone, sender included, same order, seq from 1, client_msg_id echoed
    a.chat("Hi Im User1")
    b.chat("Hi Im User2 Test is Good")
    c.chat("one")
    c.chat("two")
    seen = []
    for receiver in (a, b, c):
        got = [receiver.expect(pb.S_ROOM_CHAT_NTF) for _ in range(4)]
        assert all(m.room_id == room and m.server_time_us > 0 for m in got)
        seen.append([(m.seq, m.sender.player_id, m.sender.name, m.client_msg_id, m.text) for m in got])
    assert seen[0] == seen[1] == seen[2]  # one order for everyone
    assert [m[0] for m in seen[0]] == [1, 2, 3, 4]
    assert sorted(m[1:] for m in seen[0]) == sorted([
        (a.player_id, a.name, 1, "Hi Im User1"), (b.player_id, b.name, 1, "Hi Im User2 Test is Good"),
        (c.player_id, c.name, 1, "one"), (c.player_id, c.name, 2, "two")])
    from_c = [m[4] for m in seen[0] if m[1] == c.player_id]
    assert from_c == ["one", "two"]  # a sender's messages in the order it sent them

    # leave: ack to the leaver, notice to the rest, nothing more for the leaver
    b.send(pb.C_LEAVE_ROOM_REQ())
    assert b.expect(pb.S_LEAVE_ROOM_ACK).success
    for other in (a, c):
        ntf = other.expect(pb.S_LEAVE_ROOM_NTF)
        assert ntf.room_id == room and ntf.player.player_id == b.player_id
    a.chat("after bob")
    for receiver in (a, c):
        assert receiver.expect(pb.S_ROOM_CHAT_NTF).seq == 5
    assert b.quiet()

    # disconnect = leave
    c.close()
    ntf = a.expect(pb.S_LEAVE_ROOM_NTF)
    assert ntf.player.player_id == c.player_id

    # the last one out removes the room; its id is not handed out again
    a.send(pb.C_LEAVE_ROOM_REQ())
    assert a.expect(pb.S_LEAVE_ROOM_ACK).success
    b.send(pb.C_ROOM_LIST_REQ())
    assert room not in [r.room_id for r in b.expect(pb.S_ROOM_LIST_RES).rooms]
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    assert not b.expect(pb.S_JOIN_ROOM_RES).success
    b.send(pb.C_CREATE_ROOM_REQ(name="next"))
    assert b.expect(pb.S_CREATE_ROOM_RES).room.room_id > room

    b.send(pb.C_PING(client_time_us=77))
    pong = b.expect(pb.S_PONG)
    assert pong.client_time_us == 77 and pong.server_time_us > 0
    for client in (a, b):
        client.close()
    return room


def test_rooms_on_different_shards_are_served_by_different_processes(cluster):
    shard_ids = [s.id for s in cluster.config.shards]
    owners: dict[int, tuple[int, WireClient]] = {}
    clients = []
    while len(owners) < 2:
        client = WireClient(cluster.host, cluster.port)
        clients.append(client)
        assert client.login(unique("owner")).success
        client.send(pb.C_CREATE_ROOM_REQ(name=unique("room")))
        room = client.expect(pb.S_CREATE_ROOM_RES).room.room_id
        owners.setdefault(shard_ids[owner(room, shard_ids)], (room, client))
        assert len(clients) < 30
    expected_rooms = len(owners) + (len(clients) - len(owners))

    def settled() -> dict:  # /status is a snapshot taken once a second
        rows = {s["id"]: s for s in cluster.shard_status()}
        return rows if sum(s["rooms"] for s in rows.values()) == expected_rooms else {}

    status = wait_for(settled)
    assert status[0]["pid"] != status[1]["pid"]
    for shard, (room, client) in owners.items():
        assert room in status[shard]["room_ids"]
        assert all(room not in s["room_ids"] for sid, s in status.items() if sid != shard)
        client.chat(f"hello from shard {shard}")
        ntf = client.expect(pb.S_ROOM_CHAT_NTF)
        assert ntf.room_id == room and ntf.seq == 1
    gw = wait_for(lambda: (g := cluster.gateway_status())["sessions"] == len(clients) and g)
    assert gw["rooms"] == expected_rooms and gw["members"] == len(clients)
    for client in clients:
        client.close()


def test_errors(cluster):
    x = WireClient(cluster.host, cluster.port)
    x.chat("too early")
    assert x.expect(pb.S_ERROR).code == ErrorCode.NOT_LOGGED_IN
    name = unique("erin")
    assert x.login(name, "right").success

    wrong = WireClient(cluster.host, cluster.port)
    res = wrong.login(name, "wrong")
    assert not res.success and res.message == "wrong password"

    x.chat("lobby")
    assert x.expect(pb.S_ERROR).code == ErrorCode.NOT_IN_ROOM
    x.send(pb.C_JOIN_ROOM_REQ(room_id=987654321))
    assert not x.expect(pb.S_JOIN_ROOM_RES).success

    friend = WireClient(cluster.host, cluster.port)
    assert friend.login(unique("frank")).success
    x.send(pb.C_CREATE_ROOM_REQ(name="r"))
    room = x.expect(pb.S_CREATE_ROOM_RES).room.room_id
    friend.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    friend.expect(pb.S_JOIN_ROOM_RES)
    x.expect(pb.S_JOIN_ROOM_NTF)

    x.send(pb.C_ROOM_CHAT_REQ(text="x" * 4097, client_msg_id=1))
    assert x.expect(pb.S_ERROR).code == ErrorCode.TOO_LARGE
    x.send(pb.C_ROOM_CHAT_REQ(text="", client_msg_id=2))
    assert x.expect(pb.S_ERROR).code == ErrorCode.BAD_REQUEST

    # re-login elsewhere replaces the old connection, which leaves the room
    again = WireClient(cluster.host, cluster.port)
    res = again.login(name, "right")
    assert res.success and res.player_id == x.player_id
    err = x.expect(pb.S_ERROR)
    assert err.code == ErrorCode.REPLACED
    assert x.closed_by_server()
    assert friend.expect(pb.S_LEAVE_ROOM_NTF).player.player_id == x.player_id

    # a protocol error closes that connection only
    bad = WireClient(cluster.host, cluster.port)
    bad.send_raw(HEADER.pack(9000, 1) + b"\0" * 100)
    assert bad.expect(pb.S_ERROR).code == ErrorCode.TOO_LARGE
    assert bad.closed_by_server()
    friend.chat("still fine")
    assert friend.expect(pb.S_ROOM_CHAT_NTF).text == "still fine"


def test_registration_closed(cluster_factory):
    cluster = cluster_factory("--registration", "closed", shards=1)
    x = WireClient(cluster.host, cluster.port)
    res = x.login(unique("stranger"))
    assert not res.success and "registration is closed" in res.message


def test_a_big_room_gets_every_chat_in_order_when_answers_arrive_mid_pass(cluster_factory):
    """200 members: every write phase is over 64 sessions, so the gateway takes in shard answers in the
    middle of it (GatewayServer.flush). Nobody may miss, repeat or reorder a chat because of it."""
    cluster = cluster_factory(shards=1)
    members, rounds_max, per_round = 200, 20, 2

    async def run() -> int:
        clients = [await AsyncWire.connect(cluster.host, cluster.port) for _ in range(members)]
        for c in clients:
            assert (await c.login(unique("big"))).success
        clients[0].send(pb.C_CREATE_ROOM_REQ(name="big"))
        room = (await clients[0].expect(pb.S_CREATE_ROOM_RES)).room.room_id
        for c in clients[1:]:
            c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
            await c.expect(pb.S_JOIN_ROOM_RES)
        seen = [0] * members  # last seq each member saw
        sent = 0
        for _ in range(rounds_max):
            for c in clients:  # a burst: everyone chats at once
                for _ in range(per_round):
                    sent += 1
                    c.send(pb.C_ROOM_CHAT_REQ(text=f"m{sent}", client_msg_id=sent))

            async def read_all(i: int, c: AsyncWire, upto: int) -> None:
                while seen[i] < upto:
                    msg = await c.recv(20)
                    if isinstance(msg, pb.S_JOIN_ROOM_NTF):
                        continue
                    assert isinstance(msg, pb.S_ROOM_CHAT_NTF), msg
                    assert msg.seq == seen[i] + 1, f"member {i}: seq {msg.seq} after {seen[i]}"
                    seen[i] = msg.seq

            await asyncio.gather(*(read_all(i, c, sent) for i, c in enumerate(clients)))
            if cluster.gateway_status()["mid_pass_answers"] > 0:
                break
        for c in clients:
            c.close()
        return sent

    sent = asyncio.run(run())
    # /status is a snapshot published once a second: wait for the one that covers the last round.
    status = wait_for(lambda: (s := cluster.gateway_status())["deliveries"] >= sent * members and s)
    assert status["mid_pass_answers"] > 0, "no write phase took in shard answers; the path was not exercised"
    print(f"{sent} chats x {members} members in order; {status['mid_pass_answers']} mid-pass takes")
