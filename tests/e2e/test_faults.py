"""kill -9 of a shard and of the gateway, with players in rooms: nobody stranded, no ghosts."""

from __future__ import annotations

import os
import signal
import time

import pytest
from chatwire import WireClient, pair_in_room
from test_cluster_flow import unique
from waiting import wait_for

from chatcluster.common.config import Limits
from chatcluster.common.frames import ErrorCode
from chatcluster.common.hashing import owner
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e


def room_with_two(cluster):
    a, b, room = pair_in_room(cluster.host, cluster.port, "survivors", (unique("alice"), unique("bob")))
    for i in range(3):
        a.chat(f"before {i}")
    for c in (a, b):
        assert [c.expect(pb.S_ROOM_CHAT_NTF).seq for _ in range(3)] == [1, 2, 3]
    return a, b, room


def test_kill_9_of_a_shard_rebuilds_its_rooms(cluster):
    a, b, room = room_with_two(cluster)
    shard_ids = [s.id for s in cluster.config.shards]
    victim = next(s for s in cluster.shard_status() if s["id"] == shard_ids[owner(room, shard_ids)])
    os.kill(victim["pid"], signal.SIGKILL)
    killed = time.monotonic()
    # both members are told, and the room is back on the new process
    for c in (a, b):
        notice = c.expect(pb.S_ERROR, timeout=10)
        assert notice.code == ErrorCode.UNAVAILABLE and "restored" in notice.message
    restored = time.monotonic() - killed
    new = wait_for(lambda: (s := next(x for x in cluster.shard_status() if x["id"] == victim["id"]))
                   ["pid"] != victim["pid"] and room in s["room_ids"] and s)
    assert new["members"] == 2 and new["rooms_rebuilt"] == 1
    a.chat("after the restart")
    for c in (a, b):
        ntf = c.expect(pb.S_ROOM_CHAT_NTF)
        assert (ntf.seq, ntf.text) == (4, "after the restart")  # the seq goes on, not from 1
    print(f"shard {victim['id']} killed; members told and room restored after {restored:.2f} s")


def test_kill_9_of_the_gateway_leaves_no_ghosts(cluster):
    a, b, room = room_with_two(cluster)
    gw = cluster.gateway_status()
    os.kill(gw["pid"], signal.SIGKILL)
    assert a.closed_by_server(timeout=5) and b.closed_by_server(timeout=5)
    # restarted by the supervisor; the shards drop the old incarnation's sessions at its first heartbeat
    wait_for(lambda: (g := _gateway(cluster)) and g["pid"] != gw["pid"], timeout=10)

    def cleaned_up() -> bool:  # /status is a snapshot a second old at most: wait for the one after the restart
        shards = cluster.shard_status()
        return any(s["gateway_restarts"] for s in shards) and sum(s["members"] for s in shards) == 0

    wait_for(cleaned_up, timeout=10)
    assert "gateway gw0 restarted: its 2 old session(s) left their rooms" in cluster.log()
    c = WireClient(cluster.host, cluster.port)
    assert c.login(a.name).success  # the players can come back
    c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    assert not c.expect(pb.S_JOIN_ROOM_RES).success  # the old room emptied and was removed


def _gateway(cluster):
    """The gateway's /status, or None while no gateway answers (restarting)."""
    try:
        return cluster.gateway_status()
    except OSError as exc:
        print("gateway status:", exc)
        return None


def test_an_unresponsive_shard_answers_unavailable_then_service_resumes(cluster):
    a, b, room = room_with_two(cluster)
    shard_ids = [s.id for s in cluster.config.shards]
    victim = next(s for s in cluster.shard_status() if s["id"] == shard_ids[owner(room, shard_ids)])
    os.kill(victim["pid"], signal.SIGSTOP)  # alive but answering nothing, as behind a cut link
    try:
        down = wait_for(lambda: _gateway(cluster)["shards"][str(victim["id"])]["state"] == "down", timeout=10)
        assert down
        a.chat("into the void")
        # at once, no hang: well within the request timeout, so not a request that timed out
        err = a.expect(pb.S_ERROR, timeout=Limits.request_timeout / 2)
        assert err.code == ErrorCode.UNAVAILABLE
        c = WireClient(cluster.host, cluster.port)
        assert c.login(unique("carol")).success
        c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
        assert c.expect(pb.S_ERROR, timeout=2).code == ErrorCode.UNAVAILABLE
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
    wait_for(lambda: _gateway(cluster)["shards"][str(victim["id"])]["state"] == "up", timeout=10)
    a.chat("back again")
    for client in (a, b):
        ntf = client.expect(pb.S_ROOM_CHAT_NTF)
        assert (ntf.seq, ntf.text) == (4, "back again")  # same process: state intact, nothing rebuilt
