"""`chatctl status` and /metrics against a running cluster with known sessions and rooms."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import pytest
from chatwire import WireClient
from test_cluster_flow import unique
from waiting import wait_for

from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e


def status_json(cluster) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "chatcluster", "status", "--data-dir", str(cluster.data_dir),
                          "--json"], capture_output=True, text=True, timeout=30)
    return out.returncode, json.loads(out.stdout)


def test_status_counts_match_what_the_clients_did(cluster):
    clients = [WireClient(cluster.host, cluster.port) for _ in range(5)]
    for c in clients:
        assert c.login(unique("st")).success
    clients[0].send(pb.C_CREATE_ROOM_REQ(name="a"))
    room_a = clients[0].expect(pb.S_CREATE_ROOM_RES).room.room_id
    clients[1].send(pb.C_CREATE_ROOM_REQ(name="b"))
    clients[1].expect(pb.S_CREATE_ROOM_RES)
    for c in clients[2:4]:
        c.send(pb.C_JOIN_ROOM_REQ(room_id=room_a))
        c.expect(pb.S_JOIN_ROOM_RES)
    # 5 sessions, 2 rooms, 4 members (client 4 stays in the lobby)

    def settled():
        code, data = status_json(cluster)
        procs = data["processes"]
        gw = next(p for p in procs if p["role"] == "gateway")
        shards = [p for p in procs if p["role"] == "shard"]
        ok = gw["sessions"] == 5 and sum(s["rooms"] for s in shards) == 2 and sum(s["members"] for s in shards) == 4
        return (code, gw, shards) if ok else None

    code, gw, shards = wait_for(settled)
    assert code == 0
    assert gw["rooms"] == 2 and gw["members"] == 4 and gw["players"] == 5
    assert all(p["state"] == "up" and p["pid"] > 0 and p["rss_bytes"] > 0 for p in [gw, *shards])
    assert {"db_pool", "zmq", "gc", "loop_lag_ms", "send_buffer_peak_bytes"} <= gw.keys()
    assert all({"chatlog", "zmq", "jobs_peak"} <= s.keys() for s in shards)

    metrics = urllib.request.urlopen(gw["metrics"], timeout=5).read().decode()
    assert 'chatcluster_gateway_sessions{id="0",role="gateway"} 5.0' in metrics
    assert 'chatcluster_gateway_members{id="0",role="gateway"} 4.0' in metrics
    assert "chatcluster_gateway_logins_total" in metrics and "process_resident_memory_bytes" in metrics
    for c in clients:
        c.close()


def test_a_process_that_does_not_answer_is_shown(cluster):
    shard = cluster.shard_status()[0]
    os.kill(shard["pid"], signal.SIGSTOP)  # alive to the supervisor, deaf to the control port
    try:
        code, data = status_json(cluster)
        row = next(p for p in data["processes"] if p["role"] == "shard" and p["id"] == shard["id"])
        assert code == 1 and row["state"] == "unreachable" and row["error"]
        text = subprocess.run([sys.executable, "-m", "chatcluster", "status", "--data-dir", str(cluster.data_dir)],
                              capture_output=True, text=True, timeout=30)
        assert text.returncode == 1 and "unreachable" in text.stdout
    finally:
        os.kill(shard["pid"], signal.SIGCONT)
