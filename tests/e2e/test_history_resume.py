"""History, resume, idempotent resend and paging through real processes (PROTOCOL.md 1.1).

A client that drops (its socket closed, or its process killed) comes back,
resumes, and gets exactly what it missed, in order, then live messages; the
same across a kill -9 of the room's shard (recovered from the chat log, or an
honest recovered=false without one), and across gateways. On SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from chatwire import WireClient
from databases import scratch_database
from test_cluster_flow import unique
from test_gateways import connect_to
from waiting import wait_for

from chatcluster.common.frames import ErrorCode
from chatcluster.common.hashing import owner
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e

MISSED = 50


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.db)])
def backend(request):
    """Extra `chatctl up` arguments for each database backend in turn."""
    if request.param == "sqlite":
        yield ()
        return
    with scratch_database("postgresql") as url:
        yield ("--db", url)


def create(client: WireClient, name: str = "resumable") -> pb.S_CREATE_ROOM_RES:
    client.send(pb.C_CREATE_ROOM_REQ(name=name))
    res = client.expect(pb.S_CREATE_ROOM_RES)
    assert res.success and res.epoch != 0
    return res


def join(client: WireClient, room: int, **fields) -> pb.S_JOIN_ROOM_RES:
    client.send(pb.C_JOIN_ROOM_REQ(room_id=room, **fields))
    res = client.expect(pb.S_JOIN_ROOM_RES)
    assert res.success, res.message
    return res


def chats(client: WireClient, count: int, timeout: float = 10.0) -> list[pb.S_ROOM_CHAT_NTF]:
    """The next `count` messages, which must all be chats (no notice, no error in between)."""
    return [client.expect(pb.S_ROOM_CHAT_NTF, timeout) for _ in range(count)]


def say(client: WireClient, texts: list[str]) -> list[int]:
    """Send each text; returns the seqs of the sender's own copies (so all of them were accepted)."""
    for text in texts:
        client.chat(text)
    return [m.seq for m in chats(client, len(texts))]


def resume(host: str, port: int, name: str, room: int, since: int, epoch: int, **fields) -> tuple[WireClient,
                                                                                                 pb.S_JOIN_ROOM_RES]:
    """Log in again as `name` and resume; a shard that is still getting its rooms back says try again."""
    def attempt():
        client = WireClient(host, port)
        assert client.login(name).success
        client.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=since, epoch=epoch, **fields))
        res = client.recv()
        if isinstance(res, pb.S_ERROR) and res.code == ErrorCode.UNAVAILABLE:
            client.close()
            return None
        assert isinstance(res, pb.S_JOIN_ROOM_RES) and res.success, res
        return client, res
    return wait_for(attempt, timeout=15, what="a resume the shard accepts")


def missed_texts() -> list[str]:
    return [f"while away {n}" for n in range(MISSED)]


def test_a_client_whose_socket_closed_resumes_with_exactly_what_it_missed(cluster_factory, backend):
    cluster = cluster_factory(*backend)
    host, port = cluster.host, cluster.port
    a, b = WireClient(host, port), WireClient(host, port)
    alice, bob = unique("alice"), unique("bob")
    assert a.login(alice).success and b.login(bob).success
    room = create(a).room.room_id
    epoch = join(b, room).epoch
    a.expect(pb.S_JOIN_ROOM_NTF)
    say(a, [f"before {n}" for n in range(5)])
    assert [m.seq for m in chats(b, 5)] == [1, 2, 3, 4, 5]
    b.close()
    a.expect(pb.S_LEAVE_ROOM_NTF)  # the gateway saw it go
    assert say(a, missed_texts()) == list(range(6, 6 + MISSED))
    back, res = resume(host, port, bob, room, since=5, epoch=epoch)
    assert res.recovered and (res.epoch, res.head_seq) == (epoch, 5 + MISSED)
    got = chats(back, MISSED)
    assert [(m.seq, m.text, m.sender.name) for m in got] == [
        (6 + n, text, alice) for n, text in enumerate(missed_texts())]
    a.chat("live")
    live = back.expect(pb.S_ROOM_CHAT_NTF)
    assert (live.seq, live.text) == (6 + MISSED, "live")
    assert back.quiet()  # nothing twice


CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from chatwire import WireClient
from chatcluster.proto import chat_pb2 as pb
client = WireClient(sys.argv[2], int(sys.argv[3]))
assert client.login(sys.argv[4]).success
client.send(pb.C_JOIN_ROOM_REQ(room_id=int(sys.argv[5])))
res = client.expect(pb.S_JOIN_ROOM_RES)
print("epoch", res.epoch, flush=True)
while True:
    msg = client.recv(120)
    if isinstance(msg, pb.S_ROOM_CHAT_NTF):
        print("seq", msg.seq, flush=True)
"""


def test_a_client_whose_process_was_killed_resumes_from_what_it_had_printed(cluster):
    host, port = cluster.host, cluster.port
    a = WireClient(host, port)
    assert a.login(unique("alice")).success
    room = create(a).room.room_id
    bob = unique("bob")
    tests_dir = str(Path(__file__).parent)
    child = subprocess.Popen([sys.executable, "-c", CHILD, tests_dir, host, str(port), bob, str(room)],
                             stdout=subprocess.PIPE, text=True)
    try:
        epoch = int(child.stdout.readline().split()[1])
        a.expect(pb.S_JOIN_ROOM_NTF)
        say(a, [f"before {n}" for n in range(3)])
        seen = [int(child.stdout.readline().split()[1]) for _ in range(3)]
        assert seen == [1, 2, 3]
    finally:
        child.kill()
        child.wait(10)
    a.expect(pb.S_LEAVE_ROOM_NTF)
    say(a, missed_texts())
    back, res = resume(host, port, bob, room, since=seen[-1], epoch=epoch)
    assert res.recovered
    assert [(m.seq, m.text) for m in chats(back, MISSED)] == [(4 + n, t) for n, t in enumerate(missed_texts())]
    assert back.quiet()


def test_a_resend_with_the_same_key_is_not_broadcast_again(cluster):
    host, port = cluster.host, cluster.port
    a, b = WireClient(host, port), WireClient(host, port)
    alice = unique("alice")
    assert a.login(alice).success and b.login(unique("bob")).success
    room = create(a).room.room_id
    epoch = join(b, room).epoch
    a.expect(pb.S_JOIN_ROOM_NTF)
    a.send(pb.C_ROOM_CHAT_REQ(text="maybe lost", client_msg_id=1, idempotency_key=2**63 + 5))
    original = a.expect(pb.S_ROOM_CHAT_NTF)
    assert b.expect(pb.S_ROOM_CHAT_NTF) == original
    a.close()  # the line drops before the sender knows; it comes back and sends again
    b.expect(pb.S_LEAVE_ROOM_NTF)
    back, res = resume(host, port, alice, room, since=0, epoch=epoch)
    assert res.recovered and back.expect(pb.S_ROOM_CHAT_NTF) == original
    back.send(pb.C_ROOM_CHAT_REQ(text="maybe lost", client_msg_id=1, idempotency_key=2**63 + 5))
    assert back.expect(pb.S_ROOM_CHAT_NTF) == original  # the original again, to the sender alone
    assert isinstance(b.recv(), pb.S_JOIN_ROOM_NTF) and b.quiet()
    back.chat("next")
    assert back.expect(pb.S_ROOM_CHAT_NTF).seq == 2  # the resend took no seq


def shard_of(cluster, room: int) -> dict:
    shard_ids = [s.id for s in cluster.config.shards]
    victim_id = shard_ids[owner(room, shard_ids)]
    return next(s for s in cluster.shard_status() if s["id"] == victim_id)


def kill_shard_and_wait(cluster, room: int, victim: dict, members: list[WireClient]) -> None:
    """kill -9 the room's shard; returns once every member heard the room is back."""
    os.kill(victim["pid"], signal.SIGKILL)
    for client in members:
        notice = client.expect(pb.S_ERROR, timeout=15)
        assert notice.code == ErrorCode.UNAVAILABLE and "restored" in notice.message
    wait_for(lambda: (s := shard_of(cluster, room))["pid"] != victim["pid"] and room in s["room_ids"],
             timeout=15, what="the restarted shard to have the room")


def test_a_resume_across_a_kill_9_of_the_rooms_shard_is_recovered_from_the_chat_log(cluster_factory, backend):
    cluster = cluster_factory(*backend)
    host, port = cluster.host, cluster.port
    a, b = WireClient(host, port), WireClient(host, port)
    bob = unique("bob")
    assert a.login(unique("alice")).success and b.login(bob).success
    room = create(a).room.room_id
    epoch = join(b, room).epoch
    a.expect(pb.S_JOIN_ROOM_NTF)
    say(a, ["before"])
    assert chats(b, 1)[0].seq == 1
    b.close()
    a.expect(pb.S_LEAVE_ROOM_NTF)
    say(a, missed_texts())
    victim = shard_of(cluster, room)
    # The chat log reaches the database within half a second; the test waits for it, then kills.
    wait_for(lambda: shard_of(cluster, room)["chatlog"]["db_rows"] >= 1 + MISSED, timeout=10,
             what="the chat log in the database")
    kill_shard_and_wait(cluster, room, victim, [a])
    back, res = resume(host, port, bob, room, since=1, epoch=epoch)
    assert res.recovered and (res.epoch, res.head_seq) == (epoch, 1 + MISSED)
    assert [(m.seq, m.text) for m in chats(back, MISSED)] == [(2 + n, t) for n, t in enumerate(missed_texts())]
    a.expect(pb.S_JOIN_ROOM_NTF)
    a.chat("after the restart")
    assert (back.expect(pb.S_ROOM_CHAT_NTF).seq, a.expect(pb.S_ROOM_CHAT_NTF).seq) == (2 + MISSED, 2 + MISSED)
    wait_for(lambda: shard_of(cluster, room)["history"]["restores_kept"] == 1, what="the restore in /status")


def test_without_a_chat_log_a_resume_across_a_kill_9_is_honestly_not_recovered(cluster_factory):
    cluster = cluster_factory("--no-chat-log")
    host, port = cluster.host, cluster.port
    a, b = WireClient(host, port), WireClient(host, port)
    bob = unique("bob")
    assert a.login(unique("alice")).success and b.login(bob).success
    room = create(a).room.room_id
    epoch = join(b, room).epoch
    a.expect(pb.S_JOIN_ROOM_NTF)
    b.close()
    a.expect(pb.S_LEAVE_ROOM_NTF)
    say(a, missed_texts())
    kill_shard_and_wait(cluster, room, shard_of(cluster, room), [a])
    back, res = resume(host, port, bob, room, since=0, epoch=epoch, history=5)
    assert not res.recovered and res.epoch != epoch and res.head_seq == MISSED
    assert back.quiet()  # nothing kept to replay: none of the history it asked for, and no pretence
    a.chat("after the restart")
    assert back.expect(pb.S_ROOM_CHAT_NTF).seq == MISSED + 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreading is Linux's")
def test_a_resume_on_the_other_gateway(cluster_factory):
    cluster = cluster_factory(shards=2, gateways=2)
    a, b = connect_to(cluster, 0), connect_to(cluster, 0)
    bob = unique("bob")
    assert a.login(unique("alice")).success and b.login(bob).success
    room = create(a).room.room_id
    epoch = join(b, room).epoch
    a.expect(pb.S_JOIN_ROOM_NTF)
    say(a, ["before"])
    chats(b, 1)
    b.close()
    a.expect(pb.S_LEAVE_ROOM_NTF)
    say(a, missed_texts())
    back = connect_to(cluster, 1)
    assert back.login(bob).success
    back.send(pb.C_JOIN_ROOM_REQ(room_id=room, resume=True, since_seq=1, epoch=epoch))
    res = back.expect(pb.S_JOIN_ROOM_RES)
    assert res.success and res.recovered
    assert [(m.seq, m.text) for m in chats(back, MISSED)] == [(2 + n, t) for n, t in enumerate(missed_texts())]
    a.chat("across gateways")
    assert back.expect(pb.S_ROOM_CHAT_NTF).seq == 2 + MISSED
    assert back.quiet()


def test_join_with_history_and_paging_back_into_the_chat_log(cluster_factory, backend):
    cluster = cluster_factory(*backend, "--limit", "history_messages=10", "--limit", "history_age=0")
    host, port = cluster.host, cluster.port
    a, b = WireClient(host, port), WireClient(host, port)
    assert a.login(unique("alice")).success and b.login(unique("bob")).success
    room = create(a).room.room_id
    say(a, [f"m{n}" for n in range(1, 41)])
    res = join(b, room, history=5)
    assert (res.head_seq, res.oldest_seq) == (40, 31)  # memory keeps the last 10
    assert [m.seq for m in chats(b, 5)] == [36, 37, 38, 39, 40]
    wait_for(lambda: shard_of(cluster, room)["chatlog"]["db_rows"] >= 40, timeout=10, what="the chat log")
    got, before = [], 36
    while before > 1:
        b.send(pb.C_ROOM_HISTORY_REQ(before_seq=before, limit=15))
        page = []
        while not isinstance(msg := b.recv(), pb.S_ROOM_HISTORY_RES):
            page.append(msg)
        assert msg.success and [m.seq for m in page] == list(range(msg.first_seq, msg.last_seq + 1))
        assert msg.last_seq == before - 1 and msg.more == (msg.first_seq > 1)
        got = [(m.seq, m.text) for m in page] + got
        before = msg.first_seq
    assert got == [(n, f"m{n}") for n in range(1, 36)]
    # /status is a snapshot of the last second: wait for the one after the pages
    wait_for(lambda: shard_of(cluster, room)["history"]["pages_from_db"] == 3, what="three pages from the log")
