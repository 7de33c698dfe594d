"""Operators' calls through whole in-memory clusters (tests/unit/memcluster.py): two gateways, real shards, a
real SQLite database, no sockets. A call enters one gateway's core as the HTTP thread would hand it over and
its effect is seen by the clients, wherever they are connected."""

from __future__ import annotations

import pytest
from memcluster import MemCluster
from test_gateway_logic import create, join, login

from chatcluster.common.config import Limits
from chatcluster.common.frames import ErrorCode
from chatcluster.gateway import api
from chatcluster.gateway.session import State
from chatcluster.proto import chat_pb2 as pb


@pytest.fixture
def cluster(tmp_path):
    c = MemCluster(tmp_path, shards=3, chat_log=True)
    yield c
    c.db.close()


def call(cluster, gw, what: api.Call) -> tuple[int, dict]:
    """Make an API call on gateway gw, run the cluster, and return (status, body)."""
    call_id = gw.call(what)
    cluster.run()
    response = gw.answers.pop(call_id)
    return response.status, response.body


def result(cluster, gw, what: api.Call) -> dict:
    status, body = call(cluster, gw, what)
    assert status == 200, body
    return body["result"]


@pytest.fixture
def two(cluster):
    """alice on gateway 0 made a room; bob (gateway 1) and carol (gateway 0) joined; notices taken."""
    gw0, gw1 = cluster.gateway(), cluster.gateway()
    alice, carol = login(cluster, gw0, "alice"), login(cluster, gw0, "carol")
    bob = login(cluster, gw1, "bob")
    room = create(cluster, alice)
    join(cluster, bob, room)
    join(cluster, carol, room)
    for c in (alice, bob, carol):
        c.take()
    return gw0, gw1, alice, bob, carol, room


def test_publish_reaches_every_member_on_every_gateway_with_the_next_seq(cluster, two):
    gw0, gw1, alice, bob, carol, room = two
    alice.chat("first")
    cluster.run()
    for c in (alice, bob, carol):
        c.take()
    assert result(cluster, gw1, api.Publish(room, "maintenance at noon")) == {"room_id": room, "seq": 2}
    for c in (alice, bob, carol):
        ntf = c.one(pb.S_ROOM_CHAT_NTF)
        assert (ntf.seq, ntf.text, ntf.sender.player_id, ntf.sender.name) == (2, "maintenance at noon", 0, "system")
    assert cluster.db.history(room)[-1][1:4] == (0, "system", "maintenance at noon")  # in the chat log
    messages = result(cluster, gw0, api.History(room, limit=10))["messages"]
    assert [(m["seq"], m["sender"]["name"], m["text"]) for m in messages] == [
        (1, "alice", "first"), (2, "system", "maintenance at noon")]


def test_publish_to_no_open_room_is_404_and_sends_nothing(cluster, two):
    gw0, *_, room = two
    status, body = call(cluster, gw0, api.Publish(room + 100, "hello?"))
    assert status == 404 and body["error"] == {"code": "not_found", "message": f"no open room {room + 100}"}


def test_rooms_and_room_show_members_with_their_gateways(cluster, two):
    gw0, gw1, alice, bob, carol, room = two
    assert result(cluster, gw1, api.Rooms()) == {
        "rooms": [{"room_id": room, "name": "room", "member_count": 3}], "unavailable_shards": []}
    got = result(cluster, gw0, api.Room(room))
    assert (got["room_id"], got["name"]) == (room, "room")
    assert sorted((m["name"], m["gateway"]) for m in got["members"]) == [
        ("alice", "gw0"), ("bob", "gw1"), ("carol", "gw0")]


def test_kick_on_another_gateway_sends_the_player_to_the_lobby_and_tells_the_others(cluster, two):
    gw0, gw1, alice, bob, carol, room = two
    got = result(cluster, gw0, api.Kick(room, bob.player_id, "spam"))
    assert got == {"room_id": room, "player_id": bob.player_id, "kicked": 1}
    err = bob.one(pb.S_ERROR)
    assert (err.code, err.message) == (ErrorCode.KICKED, f"removed from room {room} by an operator: spam")
    assert bob.session.state is State.LOBBY and not bob.closed
    for c in (alice, carol):
        ntf = c.one(pb.S_LEAVE_ROOM_NTF)
        assert ntf.player.player_id == bob.player_id
    alice.chat("after the kick")
    cluster.run()
    assert bob.take() == [] and carol.one(pb.S_ROOM_CHAT_NTF).text == "after the kick"
    join(cluster, bob, room)  # a kick is no ban: it may come back
    assert gw1.core.ops.stats.operator_kicks == 1


def test_kick_of_someone_not_in_the_room_is_404(cluster, two):
    gw0, *_, room = two
    status, body = call(cluster, gw0, api.Kick(room, 999, ""))
    assert status == 404 and body["error"]["message"] == f"player 999 is not in room {room}"


def test_disconnect_by_name_or_id_finds_the_player_on_any_gateway(cluster, two):
    gw0, gw1, alice, bob, carol, room = two
    assert result(cluster, gw0, api.Disconnect(name="bob", reason="enough")) == {
        "player_id": bob.player_id, "disconnected": True}
    err = bob.one(pb.S_ERROR)
    assert (err.code, err.message) == (ErrorCode.KICKED, "disconnected by an operator: enough")
    assert bob.closed
    assert alice.one(pb.S_LEAVE_ROOM_NTF).player.name == "bob"
    status, body = call(cluster, gw0, api.Disconnect(player_id=bob.player_id))
    assert status == 404 and body["error"]["message"] == f"player {bob.player_id} is not online"
    status, body = call(cluster, gw0, api.Disconnect(name="nobody"))
    assert status == 404 and body["error"]["message"] == "no account named 'nobody'"


def test_ban_closes_the_session_refuses_logins_until_unban(cluster, two):
    gw0, gw1, alice, bob, carol, room = two
    got = result(cluster, gw0, api.Ban("bob", 3600, "spam"))
    assert got["player_id"] == bob.player_id and got["disconnected"] is True and got["until"].endswith(" UTC")
    err = bob.one(pb.S_ERROR)
    assert err.code == ErrorCode.BANNED and err.message == f"this account is banned {got['until']}: spam"
    assert bob.closed
    again = gw1.connect()
    again.send(pb.C_LOGIN_REQ(name="bob", password="pw"))
    cluster.run()
    res = again.one(pb.S_LOGIN_RES)
    assert not res.success and res.message == f"this account is banned {got['until']}: spam"
    assert result(cluster, gw1, api.Unban("bob")) == {"player_id": bob.player_id, "name": "bob", "lifted": True}
    login(cluster, gw1, "bob")
    assert result(cluster, gw1, api.Unban("bob"))["lifted"] is False


def test_a_ban_of_someone_offline_is_stored_and_of_nobody_is_404(cluster, two):
    gw0, *_ = two
    status, body = call(cluster, gw0, api.Ban("ghost"))
    assert status == 404 and body["error"]["message"] == "no account named 'ghost'"
    dave = cluster.db.login("dave", "pw", register=True).player_id  # an account, not online
    got = result(cluster, gw0, api.Ban("dave"))
    assert got == {"player_id": dave, "name": "dave", "until_us": 0, "until": "until lifted", "disconnected": False}
    assert cluster.db.active_ban(dave) is not None


def test_mute_in_one_room_on_the_other_gateway_then_everywhere(cluster, two):
    gw0, gw1, alice, bob, carol, room = two
    got = result(cluster, gw0, api.Mute(bob.player_id, 600, room_id=room, reason="calm down"))
    assert got["player_id"] == bob.player_id and got["room_id"] == room and got["until"].startswith("until ")
    bob.chat("can I speak?")
    cluster.run()
    err = bob.one(pb.S_ERROR)
    assert err.code == ErrorCode.MUTED and err.message == f"you are muted in room {room} {got['until']}: calm down"
    assert alice.take() == []
    # Another room: free to talk.
    other = create(cluster, carol, "other")
    join(cluster, bob, other)
    carol.take()
    bob.chat("here I can")
    cluster.run()
    assert bob.one(pb.S_ROOM_CHAT_NTF).text == "here I can"
    everywhere = result(cluster, gw1, api.Mute(bob.player_id, 600))
    assert everywhere["room_id"] == 0 and "unavailable_shards" not in everywhere  # every shard has it
    bob.chat("and now?")
    cluster.run()
    assert bob.one(pb.S_ERROR).message.startswith("you are muted everywhere until ")
    assert result(cluster, gw0, api.Unmute(bob.player_id))["lifted"] is True  # both mutes, on their shards
    assert result(cluster, gw0, api.Unmute(bob.player_id))["lifted"] is False
    bob.chat("free")
    cluster.run()
    assert bob.one(pb.S_ROOM_CHAT_NTF).text == "free"


def test_a_down_shard_is_503_at_once_and_a_silent_one_504_at_the_deadline(tmp_path):
    now = [100.0]
    cluster = MemCluster(tmp_path, shards=2, limits=Limits(request_timeout=5.0))
    try:
        gw = cluster.gateway(clock=lambda: now[0])
        owner = gw.core.owner(7)
        cluster.silent.add(owner)
        call_id = gw.call(api.Room(7))
        cluster.run()
        assert call_id not in gw.answers  # waiting for the shard
        now[0] += 5.0
        gw.core.tick()
        cluster.run()
        response = gw.answers.pop(call_id)
        assert response.status == 504 and "did not answer in 5 s" in response.body["error"]["message"]
        now[0] += 10.0  # the silent shard is down by now
        gw.core.tick()
        status, body = call(cluster, gw, api.Room(7))
        assert status == 503 and body["error"]["code"] == "unavailable"
        rooms = result(cluster, gw, api.Rooms())
        assert rooms["unavailable_shards"] == [owner]
    finally:
        cluster.db.close()
