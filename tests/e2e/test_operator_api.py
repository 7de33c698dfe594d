"""The operator API through real processes: a real HTTP client (urllib) on the gateways' control ports, real
chat clients (chatwire.WireClient) watching what each call does, `chatctl` run as an operator runs it."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from chatwire import WireClient
from clusters import start_cluster
from test_cluster_flow import unique
from test_gateways import connect_to
from waiting import wait_for

from chatcluster.common.frames import ErrorCode
from chatcluster.proto import chat_pb2 as pb

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="two gateways on one port: Linux")]


class Api:
    """A gateway's operator API, through urllib: (status, body) of each call."""

    def __init__(self, cluster, key: str, gateway: int = 0) -> None:
        g = cluster.config.gateways[gateway]
        self.base = f"http://{g.control_host}:{g.control_port}/api/"
        self.key = key

    def raw(self, method: str, data: bytes, headers: dict[str, str]) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + method, data=data, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def call(self, method: str, key: str | None = None, **fields) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json", "Authorization": f"apikey {key or self.key}"}
        return self.raw(method, json.dumps(fields).encode(), headers)

    def ok(self, method: str, **fields) -> dict:
        status, body = self.call(method, **fields)
        assert status == 200, body
        return body["result"]


def chatctl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatcluster", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def notices(client: WireClient, cls, *players: WireClient) -> None:
    """The join or leave notices of these players, in this order, are what the client gets next."""
    for player in players:
        assert client.expect(cls).player.player_id == player.player_id


@pytest.fixture(scope="module")
def ops(tmp_path_factory):
    """Two gateways, two shards, an API key in a file; (cluster, key, key file)."""
    data = tmp_path_factory.mktemp("ops")
    key = secrets.token_hex(24)
    key_file = data / "api.key"
    key_file.write_text(key + "\n")
    cluster = start_cluster(data / "cluster", "--api-key-file", str(key_file), shards=2, gateways=2)
    yield cluster, key, key_file
    cluster.stop()


def logged_in(cluster, gateway: int, name: str) -> WireClient:
    """A client of the given gateway, logged in at once (finding the gateway can take a while: a client that
    waited for the others would miss its login deadline)."""
    client = connect_to(cluster, gateway)
    assert client.login(unique(name)).success
    return client


@pytest.fixture
def room_across(ops):
    """ann (gateway 0) made a room; bob (gateway 1) and cat (gateway 0) joined; every notice read."""
    cluster, key, _ = ops
    ann, bob, cat = (logged_in(cluster, gateway, name) for gateway, name in ((0, "ann"), (1, "bob"), (0, "cat")))
    ann.send(pb.C_CREATE_ROOM_REQ(name="ops-room"))
    room = ann.expect(pb.S_CREATE_ROOM_RES).room.room_id
    for c in (bob, cat):
        c.send(pb.C_JOIN_ROOM_REQ(room_id=room))
        assert c.expect(pb.S_JOIN_ROOM_RES).success
    notices(ann, pb.S_JOIN_ROOM_NTF, bob, cat)
    notices(bob, pb.S_JOIN_ROOM_NTF, cat)
    yield ann, bob, cat, room
    for c in (ann, bob, cat):
        c.close()


def test_publish_reaches_every_member_on_both_gateways_with_the_next_seq_and_is_in_the_history(ops, room_across):
    cluster, key, _ = ops
    ann, bob, cat, room = room_across
    ann.chat("before")
    for c in (ann, bob, cat):
        assert c.expect(pb.S_ROOM_CHAT_NTF).seq == 1
    api = Api(cluster, key, gateway=1)
    assert api.ok("publish", room_id=room, text="maintenance at noon") == {"room_id": room, "seq": 2}
    for c in (ann, bob, cat):
        ntf = c.expect(pb.S_ROOM_CHAT_NTF)
        assert (ntf.seq, ntf.text, ntf.sender.player_id, ntf.sender.name) == (2, "maintenance at noon", 0, "system")
    # In the chat log (chatctl history reads the database) and in the room's history (the API's history call).
    wait_for(lambda: "#2 system: maintenance at noon" in chatctl("history", str(room), "--data-dir",
                                                                  str(cluster.data_dir)).stdout, timeout=10,
             what="the system message in chatctl history")
    messages = api.ok("history", room_id=room, limit=10)["messages"]
    assert [(m["seq"], m["sender"]["name"], m["text"]) for m in messages][-1] == (2, "system", "maintenance at noon")
    assert api.ok("history", room_id=room, since_seq=1, limit=1)["messages"][0]["seq"] == 2


def test_rooms_and_room_name_each_member_and_its_gateway(ops, room_across):
    cluster, key, _ = ops
    ann, bob, cat, room = room_across
    api = Api(cluster, key)
    listed = api.ok("rooms")
    assert {"room_id": room, "name": "ops-room", "member_count": 3} in listed["rooms"]
    assert listed["unavailable_shards"] == []
    got = api.ok("room", room_id=room)
    assert sorted((m["player_id"], m["gateway"]) for m in got["members"]) == sorted(
        [(ann.player_id, "gw0"), (bob.player_id, "gw1"), (cat.player_id, "gw0")])


def test_kick_on_the_other_gateway_sends_the_player_to_the_lobby_and_the_others_see_it_leave(ops, room_across):
    cluster, key, _ = ops
    ann, bob, cat, room = room_across
    assert Api(cluster, key, gateway=0).ok("kick", room_id=room, player_id=bob.player_id, reason="spam")["kicked"] == 1
    err = bob.expect(pb.S_ERROR)
    assert (err.code, err.message) == (ErrorCode.KICKED, f"removed from room {room} by an operator: spam")
    for c in (ann, cat):
        assert c.expect(pb.S_LEAVE_ROOM_NTF).player.player_id == bob.player_id
    ann.chat("bob is gone")
    assert cat.expect(pb.S_ROOM_CHAT_NTF).text == "bob is gone"
    bob.send(pb.C_PING(client_time_us=5))  # still connected, in the lobby, and no chat of the room came
    assert bob.expect(pb.S_PONG).client_time_us == 5
    bob.chat("let me back")
    assert bob.expect(pb.S_ERROR).code == ErrorCode.NOT_IN_ROOM


def test_mute_in_one_room_then_everywhere_on_the_other_gateway(ops, room_across):
    cluster, key, _ = ops
    ann, bob, cat, room = room_across
    api = Api(cluster, key, gateway=0)
    muted = api.ok("mute", player_id=bob.player_id, room_id=room, seconds=600, reason="calm down")
    bob.chat("can I?")
    err = bob.expect(pb.S_ERROR)
    assert (err.code, err.message) == (ErrorCode.MUTED, f"you are muted in room {room} {muted['until']}: calm down")
    assert ann.quiet() and cat.quiet()
    # Another room (bob moves): there he may talk.
    cat.send(pb.C_CREATE_ROOM_REQ(name="other"))
    other = cat.expect(pb.S_CREATE_ROOM_RES).room.room_id
    notices(ann, pb.S_LEAVE_ROOM_NTF, cat)
    notices(bob, pb.S_LEAVE_ROOM_NTF, cat)
    bob.send(pb.C_JOIN_ROOM_REQ(room_id=other))
    assert bob.expect(pb.S_JOIN_ROOM_RES).success
    notices(cat, pb.S_JOIN_ROOM_NTF, bob)
    bob.chat("here I can")
    assert cat.expect(pb.S_ROOM_CHAT_NTF).text == "here I can"
    assert bob.expect(pb.S_ROOM_CHAT_NTF).text == "here I can"
    api.ok("mute", player_id=bob.player_id, seconds=600)  # everywhere: every shard has it
    bob.chat("and now?")
    assert bob.expect(pb.S_ERROR).message.startswith("you are muted everywhere until ")
    assert api.ok("unmute", player_id=bob.player_id)["lifted"] is True  # both, on every shard
    bob.chat("free again")
    assert bob.expect(pb.S_ROOM_CHAT_NTF).text == "free again"


def test_ban_closes_the_session_on_the_other_gateway_refuses_logins_and_unban_lets_them_in(ops):
    cluster, key, _ = ops
    name = unique("eve")
    eve = connect_to(cluster, 1)
    assert eve.login(name).success
    api = Api(cluster, key, gateway=0)
    banned = api.ok("ban", name=name, seconds=3600, reason="spam")
    assert banned["disconnected"] is True and banned["player_id"] == eve.player_id
    err = eve.expect(pb.S_ERROR)
    assert (err.code, err.message) == (ErrorCode.BANNED, f"this account is banned {banned['until']}: spam")
    assert eve.closed_by_server()
    for gateway in (0, 1):
        again = connect_to(cluster, gateway)
        res = again.login(name)
        assert not res.success and res.message == f"this account is banned {banned['until']}: spam"
        again.close()
    assert api.ok("unban", name=name)["lifted"] is True
    back = WireClient(cluster.host, cluster.port)
    assert back.login(name).success
    back.close()


def test_disconnect_by_name_finds_the_player_on_any_gateway(ops):
    cluster, key, _ = ops
    name = unique("dan")
    dan = connect_to(cluster, 1)
    assert dan.login(name).success
    api = Api(cluster, key, gateway=0)
    assert api.ok("disconnect", name=name, reason="bedtime") == {"player_id": dan.player_id, "disconnected": True}
    err = dan.expect(pb.S_ERROR)
    assert (err.code, err.message) == (ErrorCode.KICKED, "disconnected by an operator: bedtime")
    assert dan.closed_by_server()
    status, body = api.call("disconnect", player_id=dan.player_id)
    assert status == 404 and body["error"]["code"] == "not_found"


def test_a_missing_or_wrong_key_or_a_bad_body_changes_nothing(ops, room_across):
    cluster, key, _ = ops
    ann, bob, cat, room = room_across
    api = Api(cluster, key)
    body = json.dumps({"room_id": room, "text": "should not arrive"}).encode()
    for headers in ({}, {"Authorization": "apikey " + "0" * 48}, {"Authorization": f"Bearer {key}"}):
        status, answer = api.raw("publish", body, headers)
        assert status == 401 and answer["error"]["code"] == "unauthorized"
    status, answer = api.call("kick", key="wrong-key-wrong-key", room_id=room, player_id=bob.player_id)
    assert status == 401
    for data in (b'{"room_id": "one", "text": "x"}', b"{not json", b'{"room_id": 1, "text": "x", "as": "me"}'):
        status, answer = api.raw("publish", data, {"Authorization": f"apikey {key}"})
        assert status == 400 and answer["error"]["code"] == "bad_request", answer
    status, _ = api.call("kick", room_id=room, player_id="bob")
    assert status == 400
    assert ann.quiet() and bob.quiet() and cat.quiet()  # nobody was told anything, nobody was kicked
    assert api.ok("publish", room_id=room, text="the first that counts")["seq"] == 1
    assert len(api.ok("room", room_id=room)["members"]) == 3


def test_chatctl_commands_find_the_api_and_the_key(ops, room_across):
    cluster, key, key_file = ops
    ann, bob, cat, room = room_across
    where = ("--data-dir", str(cluster.data_dir))
    env = {k: v for k, v in os.environ.items() if k != "CHATCLUSTER_API_KEY"}
    out = chatctl("publish", str(room), "hello from chatctl", *where, env=env)  # the key: the config's file
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"room {room}: system message sent as #1"
    for c in (ann, bob, cat):
        assert c.expect(pb.S_ROOM_CHAT_NTF).text == "hello from chatctl"
    out = chatctl("rooms", *where, "--api-key-file", str(key_file), env=env)
    assert out.returncode == 0 and any(line.split()[:2] == [str(room), "3"] for line in out.stdout.splitlines())
    out = chatctl("room", str(room), *where, "--json", env={**env, "CHATCLUSTER_API_KEY": key})
    assert out.returncode == 0 and len(json.loads(out.stdout)["members"]) == 3
    out = chatctl("mute", str(cat.player_id), "--room", str(room), "--for", "10m", *where, env=env)
    assert out.returncode == 0 and out.stdout.startswith(f"player {cat.player_id} muted in room {room} until ")
    cat.chat("muted?")
    assert cat.expect(pb.S_ERROR).code == ErrorCode.MUTED
    assert chatctl("unmute", str(cat.player_id), *where, env=env).returncode == 0
    out = chatctl("kick", str(room), str(bob.player_id), "--reason", "bye", *where, env=env)
    assert out.stdout.strip() == f"player {bob.player_id} removed from room {room}"
    assert bob.expect(pb.S_ERROR).code == ErrorCode.KICKED
    out = chatctl("kick", str(room), str(bob.player_id), *where, env=env)  # not in the room any more
    assert out.returncode == 1
    assert out.stderr.strip() == (f"chatctl kick: player {bob.player_id} is not in room {room} "
                                  "(HTTP 404 not_found)")
    out = chatctl("ban", bob.name, "--for", "1h", "--reason", "spam", *where, env=env)
    assert out.returncode == 0 and "their session was closed" in out.stdout
    assert bob.expect(pb.S_ERROR).code == ErrorCode.BANNED
    assert chatctl("unban", bob.name, *where, env=env).stdout.strip().endswith("ban lifted")
    notices(cat, pb.S_LEAVE_ROOM_NTF, bob)  # kicked a moment ago
    out = chatctl("disconnect", "--name", cat.name, *where, env=env)
    assert out.returncode == 0 and cat.expect(pb.S_ERROR).code == ErrorCode.KICKED
    out = chatctl("rooms", *where, "--api-key-file", str(key_file.parent / "missing"), env=env)
    assert out.returncode == 2 and "does not exist" in out.stderr  # click's own check of the path
    wrong = key_file.parent / "wrong.key"
    wrong.write_text("x" * 32)
    out = chatctl("rooms", *where, "--api-key-file", str(wrong), env=env)
    assert out.returncode == 1 and "(HTTP 401 unauthorized)" in out.stderr and "x" * 32 not in out.stderr


def test_the_key_is_in_no_log_no_status_and_no_run_file(ops, room_across):
    cluster, key, _ = ops
    Api(cluster, key).ok("rooms")
    Api(cluster, "not-the-key-" * 3).call("rooms")  # a refused call is logged too, still without any key
    texts = {path: path.read_text(errors="replace") for path in Path(cluster.data_dir).rglob("*")
             if path.is_file() and path.suffix in (".log", ".json") or path.name.endswith(".log.1")}
    assert any(p.name == "gateway-0.log" for p in texts) and any(p.name == "chatctl-up.log" for p in texts)
    assert any(p.name == "cluster.json" for p in texts)
    for path, text in texts.items():
        assert key not in text, f"the API key is in {path}"
    for status in cluster.gateway_statuses():
        assert key not in json.dumps(status) and status["api"]["enabled"] is True
    shown = chatctl("status", "--data-dir", str(cluster.data_dir))
    assert "no key (401)" in shown.stdout and "rate (429)" in shown.stdout and key not in shown.stdout
    log = (Path(cluster.data_dir) / "logs" / "gateway-0.log").read_text()
    assert " API rooms reason='' from 127.0.0.1: 200 ok" in log
    assert "API 'rooms' refused from 127.0.0.1: 401" in log


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """One gateway with a tiny API rate (one call per 10 s, bursts of 3) and body bound (1 KiB); the key from the
    environment."""
    data = tmp_path_factory.mktemp("bounded")
    key = secrets.token_hex(20)
    os.environ["CHATCLUSTER_API_KEY"] = key  # inherited by `chatctl up` and its children
    try:
        cluster = start_cluster(data / "cluster", "--limit", "api_rate=0.1", "--limit", "api_burst=3",
                                "--limit", "api_max_body=1024", shards=1, gateways=1)
    finally:
        del os.environ["CHATCLUSTER_API_KEY"]
    yield cluster, key
    cluster.stop()


def test_the_api_has_its_own_size_and_rate_bounds_counted_in_status(bounded):
    cluster, key = bounded
    api = Api(cluster, key)
    status, body = api.raw("publish", b'{"room_id": 1, "text": "' + b"x" * 100_000 + b'"}',
                           {"Authorization": f"apikey {key}"})
    assert status == 413 and body["error"]["code"] == "too_large"
    try:  # a GET is no call (and costs no token)
        urllib.request.urlopen(api.base + "rooms", timeout=10)
        raise AssertionError("a GET of the API was answered 200")
    except urllib.error.HTTPError as exc:
        assert exc.code == 405 and exc.headers["Allow"] == "POST"
    statuses = [api.call("rooms")[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:]
    figures = wait_for(lambda: (a := cluster.gateway_status()["api"])["rate_limited"] and a, timeout=5)
    assert figures["too_large"] == 1 and figures["rate_limited"] >= 1 and figures["ok"] >= 3
    assert key not in (Path(cluster.data_dir) / "chatctl-up.log").read_text()


def test_without_a_key_the_api_is_off(cluster_factory):
    env_key = os.environ.pop("CHATCLUSTER_API_KEY", None)
    try:
        cluster = cluster_factory(shards=1)
    finally:
        if env_key is not None:
            os.environ["CHATCLUSTER_API_KEY"] = env_key
    for method in ("rooms", "publish", "nothing"):
        status, body = Api(cluster, "k" * 32).call(method)
        assert status == 404 and body["error"]["code"] == "not_found"
    assert cluster.gateway_status()["api"] == {"enabled": False}
    assert "operator API        off" in cluster.log()


def test_a_short_key_stops_chatctl_up_before_anything_starts(tmp_path):
    short = tmp_path / "short.key"
    short.write_text("hunter2\n")
    out = chatctl("up", "--api-key-file", str(short), "--data-dir", str(tmp_path / "data"), "--port", "1")
    assert out.returncode == 2
    assert "holds a key of 7 bytes; use at least 16" in out.stderr and "hunter2" not in out.stderr + out.stdout
