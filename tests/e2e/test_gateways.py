"""Several gateways on one port (SO_REUSEPORT): one room order across them, one session per player."""

from __future__ import annotations

import sys

import pytest
from chatwire import WireClient
from test_cluster_flow import unique
from waiting import wait_for

from chatcluster.common.control import fetch_status
from chatcluster.common.frames import ErrorCode
from chatcluster.proto import chat_pb2 as pb

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreading is Linux's")]


def accepted(cluster) -> list[int]:
    return [fetch_status((g.control_host, g.control_port))["accepted"] for g in cluster.config.gateways]


def connect_to(cluster, gateway: int) -> WireClient:
    """A connection that the kernel handed to the given gateway (retrying until it does)."""
    for _ in range(200):
        before = accepted(cluster)
        client = WireClient(cluster.host, cluster.port)
        after = wait_for(lambda b=before: (a := accepted(cluster)) != b and a)
        if after[gateway] > before[gateway]:
            return client
        client.close()
    raise AssertionError(f"the kernel never picked gateway {gateway}")


def test_members_on_two_gateways_share_one_room(cluster_factory):
    cluster = cluster_factory(shards=2, gateways=2)
    statuses = [fetch_status((g.control_host, g.control_port)) for g in cluster.config.gateways]
    assert len({s["pid"] for s in statuses}) == 2
    on0 = [connect_to(cluster, 0) for _ in range(2)]
    on1 = [connect_to(cluster, 1) for _ in range(2)]
    clients = on0 + on1
    for c in clients:
        assert c.login(unique("multi")).success
    owner = clients[0]
    owner.send(pb.C_CREATE_ROOM_REQ(name="across"))
    room = owner.expect(pb.S_CREATE_ROOM_RES).room.room_id
    for c in clients[1:]:
        c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
        res = c.expect(pb.S_JOIN_ROOM_RES)
        assert res.success
    assert len(res.members) == 4
    for c in clients:
        while True:  # skip the join notices of those who came after
            try:
                c.recv(0.3)
            except TimeoutError:
                break
    for i, c in enumerate(clients):
        c.chat(f"from {i}")
    seen = [[(m.seq, m.text) for m in (c.expect(pb.S_ROOM_CHAT_NTF) for _ in range(4))] for c in clients]
    assert seen[0] == seen[1] == seen[2] == seen[3]  # one room order on both gateways
    assert [s for s, _ in seen[0]] == [1, 2, 3, 4]
    rooms = [fetch_status((g.control_host, g.control_port))["members"] for g in cluster.config.gateways]
    assert rooms == [2, 2]


def test_login_on_another_gateway_replaces_the_session(cluster_factory):
    cluster = cluster_factory(shards=2, gateways=2)
    name = unique("roamer")
    old = connect_to(cluster, 0)
    assert old.login(name).success
    new = connect_to(cluster, 1)
    assert new.login(name).success
    err = old.expect(pb.S_ERROR)
    assert err.code == ErrorCode.REPLACED and old.closed_by_server()
    new.send(pb.C_PING(client_time_us=1))
    assert new.expect(pb.S_PONG).client_time_us == 1
