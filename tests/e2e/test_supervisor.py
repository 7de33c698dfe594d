"""`chatctl up` as a supervisor: restarts, clean stops, no orphans."""

from __future__ import annotations

import os
import signal
import time

import pytest
from chatwire import WireClient
from test_cluster_flow import unique
from waiting import wait_for

from chatcluster.common.frames import ErrorCode
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def child_pids(cluster) -> list[int]:
    return [row["pid"] for row in cluster.status()]


def test_a_killed_shard_is_restarted_and_the_rest_keep_serving(cluster):
    client = WireClient(cluster.host, cluster.port)
    assert client.login(unique("steady")).success
    victim = cluster.shard_status()[1]
    os.kill(victim["pid"], signal.SIGKILL)
    started = time.monotonic()

    def restarted():
        try:
            rows = {r["id"]: r for r in cluster.shard_status()}
        except OSError:
            return None
        return rows[1]["pid"] != victim["pid"] and rows[1]

    row = wait_for(restarted, timeout=5)
    assert time.monotonic() - started < 3.0
    assert "shard 1" in cluster.log() and "restarting" in cluster.log()
    # the gateway and the other shard never stopped; new rooms work on both shards
    for _ in range(4):
        client.send(pb.C_CREATE_ROOM_REQ(name="after"))
        res = client.expect(pb.S_CREATE_ROOM_RES)
        assert res.success
        client.chat("hi")
        assert client.expect(pb.S_ROOM_CHAT_NTF).seq == 1
    assert row["uptime_s"] < 10


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_stops_everything_and_tells_clients(cluster, sig):
    pids = child_pids(cluster)
    client = WireClient(cluster.host, cluster.port)
    assert client.login(unique("leaving")).success
    started = time.monotonic()
    assert cluster.stop(sig) == 0
    assert time.monotonic() - started < 8
    err = client.expect(pb.S_ERROR)
    assert err.code == ErrorCode.SHUTTING_DOWN
    assert client.closed_by_server()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=3)


def test_kill_9_of_the_supervisor_leaves_no_orphans(cluster):
    pids = child_pids(cluster)
    os.kill(cluster.proc.pid, signal.SIGKILL)
    cluster.proc.wait()
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=8)


def test_a_taken_port_is_a_clear_error(cluster, cluster_factory, tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "chatcluster", "up", "--shards", "1", "--port", str(cluster.port),
         "--data-dir", str(tmp_path / "second")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0
    assert "did not start" in out.stderr
    assert "address already in use" in (out.stdout + out.stderr).lower()


def test_one_data_dir_one_cluster(cluster):
    import subprocess
    import sys

    from chatcluster.spawn import free_port_block

    out = subprocess.run(
        [sys.executable, "-m", "chatcluster", "up", "--shards", "1", "--port", str(free_port_block(4)),
         "--data-dir", str(cluster.data_dir)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "another cluster is running with data dir" in out.stderr
    client = WireClient(cluster.host, cluster.port)  # the first one is untouched
    assert client.login(unique("still")).success
