"""Token login through a real cluster: tokens from `chatctl token`, over TCP and WebSocket, expiry and refresh."""

from __future__ import annotations

import subprocess
import sys

import pytest
from chatwire import WireClient, WsClient

from chatcluster.common.tokens import sign
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e

SECRET = b"the application's secret: 48 bytes or more, random"


@pytest.fixture
def token_cluster(cluster_factory, tmp_path):
    key = tmp_path / "token.key"
    key.write_bytes(SECRET + b"\n")
    return cluster_factory("--token-key", str(key), "--limit", "token_leeway=0")


def chatctl_token(cluster, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "chatcluster", "token", *args, "--data-dir", str(cluster.data_dir)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_token_from_chatctl_logs_in_over_tcp_and_websocket_beside_passwords(token_cluster):
    token = chatctl_token(token_cluster, "app-user-1", "--name", "Maya", "--ttl", "10m")
    tcp = WireClient(token_cluster.host, token_cluster.port)
    tcp.send(pb.C_LOGIN_REQ(token=token))
    first = tcp.expect(pb.S_LOGIN_RES)
    assert first.success and first.name == "Maya"
    ws = WsClient(token_cluster.host, token_cluster.http_port, json=True)
    ws.send(pb.C_LOGIN_REQ(token=token))  # the same user again, from a browser: the first one is replaced
    again = ws.expect(pb.S_LOGIN_RES)
    assert again.success and again.player_id == first.player_id
    assert tcp.expect(pb.S_ERROR).code == pb.REPLACED
    password = WireClient(token_cluster.host, token_cluster.port)
    assert password.login("bob").success  # --auth both: passwords still work
    forged = WireClient(token_cluster.host, token_cluster.port)
    forged.send(pb.C_LOGIN_REQ(token=sign("app-user-1", b"not the secret but 32 bytes or more", "HS256", 600)))
    refused = forged.expect(pb.S_LOGIN_RES)
    assert not refused.success and "signature" in refused.message
    logs = "".join(p.read_text() for p in (token_cluster.data_dir / "logs").glob("*.log")) + token_cluster.log()
    assert token not in logs and SECRET.decode() not in logs


def test_an_expired_token_closes_the_session_and_a_refreshed_one_keeps_it(token_cluster):
    short = WireClient(token_cluster.host, token_cluster.port)
    short.send(pb.C_LOGIN_REQ(token=sign("short", SECRET, "HS256", 2)))
    assert short.expect(pb.S_LOGIN_RES).success
    kept = WireClient(token_cluster.host, token_cluster.port)
    kept.send(pb.C_LOGIN_REQ(token=sign("kept", SECRET, "HS256", 2)))
    assert kept.expect(pb.S_LOGIN_RES).success
    kept.send(pb.C_LOGIN_REQ(token=sign("kept", SECRET, "HS256", 600)))
    assert kept.expect(pb.S_LOGIN_RES).message == "token refreshed"
    error = short.expect(pb.S_ERROR, timeout=10)
    assert (error.code, error.message) == (pb.AUTH_FAILED, "token expired")
    assert short.closed_by_server()
    kept.send(pb.C_PING(client_time_us=1))
    assert kept.expect(pb.S_PONG).client_time_us == 1


def test_a_tokens_only_server_refuses_passwords(cluster_factory, tmp_path):
    key = tmp_path / "token.key"
    key.write_bytes(SECRET)
    cluster = cluster_factory("--token-key", str(key), "--auth", "token")
    client = WireClient(cluster.host, cluster.port)
    res = client.login("alice")
    assert not res.success and "token logins only" in res.message
    client.send(pb.C_LOGIN_REQ(token=sign("alice", SECRET, "HS256", 60)))
    assert client.expect(pb.S_LOGIN_RES).success


def test_a_bad_token_key_stops_the_start_with_a_clear_message(tmp_path):
    from chatcluster.spawn import SpawnedCluster, SpawnError

    key = tmp_path / "short.key"
    key.write_bytes(b"too short")
    with pytest.raises(SpawnError, match="at least 32 bytes"):
        SpawnedCluster.start(tmp_path / "c", "--token-key", str(key), timeout=30)
