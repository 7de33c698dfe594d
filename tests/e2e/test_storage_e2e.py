"""Storage through a running cluster: PostgreSQL as the database, the chat log, login spikes, outages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest
from chatwire import AsyncWire, WireClient, pair_in_room
from databases import refuse_connections
from test_cluster_flow import full_flow, unique
from waiting import wait_for

from chatcluster.common.storage import Database
from chatcluster.proto import chat_pb2 as pb

pytestmark = [pytest.mark.e2e, pytest.mark.db]


def chatctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatcluster", *args], capture_output=True, text=True, timeout=60)


def test_full_flow_on_postgresql_over_odbc(cluster_factory, postgres_url):
    cluster = cluster_factory("--db", postgres_url, shards=2)
    room = full_flow(cluster)
    out = chatctl("history", str(room), "--data-dir", str(cluster.data_dir))  # finds the DB in the run file
    assert out.returncode == 0, out.stderr
    wait_for(lambda: len(chatctl("history", str(room), "--db", postgres_url).stdout.splitlines()) == 5)
    lines = chatctl("history", str(room), "--db", postgres_url, "--last", "2").stdout.splitlines()
    assert [line.split("] ", 1)[1] for line in lines][-1].endswith(": after bob")
    assert "#4 " in lines[0] and "#5 " in lines[1]
    check = chatctl("db", "check", "--db", postgres_url, "--json")
    assert check.returncode == 0 and '"chat_log_rows": 5' in check.stdout


async def chat_load(host: str, port: int, clients: int, rooms: int, messages: int) -> dict[int, int]:
    """clients log in and spread over rooms; each sends `messages` chats; returns {room: messages sent}."""
    conns = [await AsyncWire.connect(host, port) for _ in range(clients)]
    await asyncio.gather(*(c.login(unique("load")) for c in conns))
    room_ids = []
    for owner in conns[:rooms]:
        owner.send(pb.C_CREATE_ROOM_REQ(name=unique("r")))
        room_ids.append((await owner.expect(pb.S_CREATE_ROOM_RES)).room.room_id)
    for i, c in enumerate(conns[rooms:]):
        c.send(pb.C_JOIN_ROOM_REQ(room_id=room_ids[i % rooms]))
        while not isinstance(await c.recv(), pb.S_JOIN_ROOM_RES):
            pass
    sent = {r: 0 for r in room_ids}

    async def talk(i: int, c: AsyncWire) -> None:
        room = room_ids[i % rooms]
        for n in range(messages):
            c.send(pb.C_ROOM_CHAT_REQ(text=f"m{n}", client_msg_id=n + 1))
            sent[room] += 1
            await asyncio.sleep(0.002)

    async def drain(c: AsyncWire) -> int:
        own = 0
        while own < messages:
            msg = await c.recv()
            if isinstance(msg, pb.S_ROOM_CHAT_NTF) and msg.sender.player_id == c.player_id:
                own += 1
        return own

    ordered = list(enumerate(conns[:rooms])) + list(enumerate(conns[rooms:]))
    await asyncio.gather(*(talk(i, c) for i, c in ordered), *(drain(c) for c in conns))
    for c in conns:
        c.close()
    return sent


def test_chat_log_rows_equal_accepted_messages_and_survive_sigterm(cluster):
    sent = asyncio.run(chat_load(cluster.host, cluster.port, clients=20, rooms=2, messages=40))
    assert sum(sent.values()) == 800
    assert cluster.stop() == 0  # SIGTERM: the shards flush their backlog before exiting
    assert "chat log flushed" in cluster.log()
    db = Database(cluster.config.db_url)
    summary = db.chat_summary()
    db.close()
    assert {room: rows for room, (rows, _, _) in summary.items()} == sent
    for rows, low, high in summary.values():
        assert (low, high) == (1, rows)  # no (room, seq) gaps
    file_lines = sum(len(p.read_text().splitlines()) for p in (cluster.data_dir / "chatlog").glob("shard-*.log"))
    assert file_lines == 800


def test_login_spike_of_500(cluster):
    async def spike() -> list:
        conns = await asyncio.gather(*(AsyncWire.connect(cluster.host, cluster.port) for _ in range(500)))
        started = time.monotonic()
        results = await asyncio.gather(*(c.login(unique("spike")) for c in conns))
        elapsed = time.monotonic() - started
        for c in conns:
            c.close()
        return results, elapsed

    results, elapsed = asyncio.run(spike())
    assert all(r.success for r in results) and len({r.player_id for r in results}) == 500
    status = wait_for(lambda: (g := cluster.gateway_status())["logins"] >= 500 and g)
    pool = status["db_pool"]
    assert pool["acquires"] >= 1000 and pool["errors"] == 0  # a lookup and an insert per new account
    assert "acquire_wait_max_ms" in pool and "loop_lag_max_ms" in status
    print(f"500 logins in {elapsed:.2f} s; pool waits {pool['waits']}, acquire wait avg "
          f"{pool['acquire_wait_avg_ms']:.1f} ms max {pool['acquire_wait_max_ms']:.1f} ms; "
          f"loop lag max {status['loop_lag_max_ms']:.1f} ms")


def test_postgresql_outage_chat_goes_on_and_nothing_is_lost(cluster_factory, postgres_url):
    cluster = cluster_factory("--db", postgres_url, shards=2)
    alice, bob, room = pair_in_room(cluster.host, cluster.port, "outage", (unique("alice"), unique("bob")))

    def say(n: int) -> None:
        for i in range(n):
            alice.chat(f"line {i}")
        for client in (alice, bob):
            for _ in range(n):
                client.expect(pb.S_ROOM_CHAT_NTF)

    say(10)
    refuse_connections(postgres_url, True)
    try:
        say(30)  # chat goes on
        late = WireClient(cluster.host, cluster.port)
        res = late.login(unique("late"))
        assert not res.success and "database" in res.message  # a clear answer, not a hang

        def held() -> bool:
            return sum((s["chatlog"] or {}).get("backlog", 0) for s in cluster.shard_status()) >= 30

        wait_for(held, timeout=10)
    finally:
        refuse_connections(postgres_url, False)
    say(10)
    wait_for(lambda: all(s["chatlog"]["backlog"] == 0 for s in cluster.shard_status()), timeout=20)
    late = WireClient(cluster.host, cluster.port)
    assert late.login(unique("later")).success  # logins work again, no restart
    assert cluster.stop() == 0
    db = Database(postgres_url)
    assert db.chat_summary()[room] == (50, 1, 50)
    db.close()
