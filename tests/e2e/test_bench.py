"""chatctl bench end to end: a short run of the seed scenario, and a server that loses and repeats messages.

The first test is the CI-sized bench: it starts its own cluster (--spawn) and
checks its own JSON. The second points the bench at a small fake server that
breaks the protocol's promises on purpose, to show that the bench counts
what happened instead of assuming it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chatcluster.common.frames import CLIENT_IDS, MAX_CLIENT_FRAME, FrameDecoder, MsgId, decode_body, encode
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e


def run_bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatcluster", "bench", "--no-live", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_short_bench_against_a_spawned_cluster_is_complete_and_in_order(tmp_path: Path):
    out = tmp_path / "bench.json"
    proc = run_bench("--spawn", "--shards", "2", "--clients", "20", "--rooms", "2", "--rps", "10",
                     "--duration", "3", "--warmup", "1", "--interval", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    c = r["correctness"]
    assert c["lost"] == 0 and c["gaps"] == 0 and c["reorders"] == 0 and c["duplicates"] == 0
    assert c["errors"] == 0 and c["dead"] == 0 and c["unknown_own"] == 0 and c["wrong_room"] == 0
    assert c["measured_sent"] > 0
    assert c["delivered"] == c["expected_deliveries"] == c["measured_sent"] * 10   # rooms of 10 members
    assert r["ok"] and r["failures"] == {} and r["exit_status"] == 0
    lat = r["latency"]
    assert lat["count"] == c["measured_sent"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert sum(r["latency_buckets"].values()) == lat["count"]
    assert [row["sec"] for row in r["rows"]] == [1, 2, 3]
    for row in r["rows"] + [r["total"]]:
        assert row["app_in_s"] > 0 and row["bc_deliv_s"] > 0 and row["p50"] <= row["p99"]
    assert r["kpi"]["fanout"] == 10 and r["kpi"]["send_ops_source"] == "gateway writes"
    assert r["kpi"]["throughput_msgs_s"] == pytest.approx(200, rel=0.1)
    server = r["server"]
    assert [e["role"] for e in server["endpoints"]] == ["gateway", "shard", "shard"]
    assert server["total"]["job_enq_s"] > 0  # a rate from 1-second /status snapshots: present, not exact
    assert r["run"]["spawned"] and r["run"]["members_mismatch"] == 0
    for label in ("io r/s", "bc-deliv/s", "Throughput (app in/s)", "SG efficiency", "<=100us", "job enq/s", "OK:"):
        assert label in proc.stdout


# ---------------------------------------------------------------------------- a server that misbehaves
class FaultyChat(asyncio.Protocol):
    """Just enough of PROTOCOL.md for the bench, with one fault: `drop_every` or `dup_every` chat messages."""

    def __init__(self, server: FaultyServer) -> None:
        self.server = server
        self.decoder = FrameDecoder(MAX_CLIENT_FRAME, CLIENT_IDS)
        self.player = None
        self.room = None

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self.room is not None:
            self.server.rooms[self.room]["members"].remove(self)

    def data_received(self, data):
        self.decoder.feed(data)
        for kind, body in self.decoder.frames():
            self.handle(kind, decode_body(kind, body))

    def handle(self, kind, msg):
        srv = self.server
        if kind == MsgId.C_LOGIN_REQ:
            srv.next_player += 1
            self.player = pb.Player(player_id=srv.next_player, name=msg.name)
            self.transport.write(encode(pb.S_LOGIN_RES(success=True, player_id=srv.next_player)))
        elif kind == MsgId.C_CREATE_ROOM_REQ:
            srv.next_room += 1
            self.room = srv.next_room
            srv.rooms[self.room] = {"members": [self], "seq": 0}
            self.transport.write(encode(pb.S_CREATE_ROOM_RES(
                success=True, room=pb.RoomInfo(room_id=self.room, name=msg.name, member_count=1),
                members=[self.player])))
        elif kind == MsgId.C_JOIN_ROOM_REQ:
            room = srv.rooms[msg.room_id]
            for other in room["members"]:
                other.transport.write(encode(pb.S_JOIN_ROOM_NTF(room_id=msg.room_id, player=self.player)))
            room["members"].append(self)
            self.room = msg.room_id
            self.transport.write(encode(pb.S_JOIN_ROOM_RES(
                success=True, room=pb.RoomInfo(room_id=msg.room_id, member_count=len(room["members"])),
                members=[m.player for m in room["members"]])))
        elif kind == MsgId.C_ROOM_CHAT_REQ:
            room = srv.rooms[self.room]
            room["seq"] += 1
            seq = room["seq"]
            frame = encode(pb.S_ROOM_CHAT_NTF(room_id=self.room, sender=self.player, text=msg.text, seq=seq,
                                              client_msg_id=msg.client_msg_id, server_time_us=1))
            if srv.drop_every and seq % srv.drop_every == 0:
                return  # the seq is used up, nobody gets the message
            copies = 2 if srv.dup_every and seq % srv.dup_every == 0 else 1
            for member in room["members"]:
                member.transport.write(frame * copies)


class FaultyServer:
    def __init__(self, drop_every: int = 0, dup_every: int = 0) -> None:
        self.drop_every = drop_every
        self.dup_every = dup_every
        self.next_player = 0
        self.next_room = 0
        self.rooms: dict[int, dict] = {}
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            self.loop.create_server(lambda: FaultyChat(self), "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> FaultyServer:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.mark.parametrize("fault, expect", [
    ({"drop_every": 7}, ("lost", "gaps", "missing_deliveries")),
    ({"dup_every": 5}, ("duplicates", "extra_deliveries")),
])
def test_lost_and_repeated_messages_are_counted_and_fail_the_run(tmp_path: Path, fault: dict, expect: tuple):
    out = tmp_path / "bench.json"
    with FaultyServer(**fault) as server:
        proc = run_bench("--port", str(server.port), "--clients", "6", "--rooms", "2", "--rps", "20",
                         "--duration", "2", "--warmup", "0", "--grace", "0.5", "--interval", "1",
                         "--json", str(out), timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    assert not r["ok"] and r["exit_status"] == 1
    assert set(r["failures"]) == set(expect), r["failures"]
    for name in expect:
        assert f"FAIL: {name} = " in proc.stdout
    assert "no status endpoints" in proc.stdout
    c = r["correctness"]
    if "lost" in expect:
        # every 7th seq of each room is never delivered: the sender loses its own copy, the others see a gap
        assert c["lost"] > 0 and c["gaps"] >= 2 * c["lost"]
    else:
        assert c["lost"] == 0 and c["gaps"] == 0 and c["duplicates"] > 0
