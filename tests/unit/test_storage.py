"""Passwords, the connection pool and the SQLite database, without any server."""

from __future__ import annotations

import threading

import pytest
from waiting import wait_for

from chatcluster.common.storage import Database, open_database
from chatcluster.common.storage.database import CPU, DB, SCHEMA_VERSION, login_steps
from chatcluster.common.storage.passwords import hash_password, verify_password
from chatcluster.common.storage.pool import ConnectionPool, PoolTimeout


def test_password_hashes_are_salted_and_verify():
    a, b = hash_password("secret", n=16), hash_password("secret", n=16)
    assert a != b and a.startswith("scrypt$16$8$1$")
    assert "secret" not in a
    assert verify_password("secret", a) and verify_password("secret", b)
    assert not verify_password("Secret", a)
    assert not verify_password("secret", "garbage") and not verify_password("secret", "md5$x$y$z$a$b")


class FakeConn:
    opened = 0

    def __init__(self) -> None:
        FakeConn.opened += 1
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Gone(Exception):
    pass


def test_pool_bounds_and_counts_waits():
    now = [0.0]  # the pool's clock: time passes when the test says so
    pool = ConnectionPool(FakeConn, size=2, is_disconnect=lambda e: isinstance(e, Gone), acquire_timeout=2,
                          clock=lambda: now[0])
    both_held = threading.Barrier(3)
    release = threading.Event()

    def hold():
        with pool.connection():
            both_held.wait()
            release.wait()

    def third():
        with pool.connection():  # must wait for one of the two
            pass

    threads = [threading.Thread(target=fn) for fn in (hold, hold, third)]
    for t in threads[:2]:
        t.start()
    both_held.wait()
    assert pool.stats()["in_use"] == 2
    threads[2].start()
    wait_for(lambda: pool.stats()["waiting"] == 1, what="the third caller to wait for a connection")
    now[0] = 0.25
    release.set()
    for t in threads:
        t.join()
    stats = pool.stats()
    assert stats["waits"] == 1 and stats["waiting"] == 0 and stats["acquire_wait_max_ms"] == 250
    assert stats["open"] <= 2 and stats["in_use"] == 0 and stats["queries"] == 3


def test_pool_times_out():
    pool = ConnectionPool(FakeConn, size=1, is_disconnect=lambda e: False, acquire_timeout=0.1)
    with pool.connection(), pytest.raises(PoolTimeout), pool.connection():
        pass


def test_pool_replaces_dead_connections():
    pool = ConnectionPool(FakeConn, size=1, is_disconnect=lambda e: isinstance(e, Gone))
    with pytest.raises(Gone), pool.connection() as first:
        raise Gone
    assert first.closed
    with pool.connection() as second:
        assert second is not first and not second.closed
    with pytest.raises(ValueError), pool.connection() as third:
        raise ValueError("a bad query, not a dead connection")
    assert third is second and not third.closed
    stats = pool.stats()
    assert stats["reconnects"] == 1 and stats["errors"] == 2


@pytest.fixture
def db(tmp_path):
    database = open_database(f"sqlite:///{tmp_path / 'chat.db'}", pool_size=2, scrypt_n=16)
    yield database
    database.close()


def test_login_registers_once_and_checks_the_password(db):
    password = "correct horse battery staple"
    first = db.login("alice", password, register=True)
    assert first.ok and first.registered and first.player_id > 0
    again = db.login("alice", password, register=True)
    assert again.ok and not again.registered and again.player_id == first.player_id
    assert not db.login("alice", "nope", register=True).ok
    closed = db.login("bob", "pw", register=False)
    assert not closed.ok and "registration is closed" in closed.message
    assert db.find_account("bob") is None
    _, stored = db.find_account("alice")
    assert password not in stored and stored.startswith("scrypt$")


def test_login_steps_separate_database_and_cpu_work(db):
    kinds = []
    steps = login_steps(db, "carol", "pw", True)
    value = None
    try:
        while True:
            kind, fn, args = steps.send(value)
            kinds.append(kind)
            value = fn(*args)
    except StopIteration as done:
        assert done.value.ok
    assert kinds == [DB, CPU, DB]  # lookup, hash, insert: the hash holds no connection


def test_racing_registrations_end_in_one_account(db):
    steps = login_steps(db, "dave", "pw", True)
    kind, fn, args = steps.send(None)
    assert fn(*args) is None  # not there yet
    kind, fn, args = steps.send(None)
    stored = fn(*args)
    other = db.login("dave", "pw", register=True)  # another gateway wins the race
    kind, fn, args = steps.send(stored)
    assert fn(*args) is None  # the insert hits the unique name
    value = None
    try:
        kind, fn, args = steps.send(None)
        while True:
            value = fn(*args)
            kind, fn, args = steps.send(value)
    except StopIteration as done:
        assert done.value.ok and done.value.player_id == other.player_id


def test_room_ids_are_never_reused(db, tmp_path):
    ids = [db.allocate_room(f"r{i}", 1) for i in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    db.close_rooms([ids[-1]])
    db.close()
    reopened = Database(f"sqlite:///{tmp_path / 'chat.db'}", scrypt_n=16)
    assert reopened.allocate_room("again", 1) > ids[-1]
    reopened.close()


def test_schema_version(db):
    assert db.schema_version() == SCHEMA_VERSION
    assert db.migrate() == SCHEMA_VERSION  # idempotent


def test_bad_urls():
    with pytest.raises(ValueError):
        Database("mysql://x")
    with pytest.raises(ValueError):
        Database("sqlite:///")


def test_chat_log_file_rotates(tmp_path):
    from chatcluster.shards.chatlog import RotatingLines, format_line

    lines = RotatingLines(tmp_path / "shard-0.log", max_bytes=1000, backups=2)
    for seq in range(1, 61):
        lines.write([format_line((1, seq, 2, f"hello {seq} ✓", 1_764_000_000_000_000))])
    lines.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["shard-0.log", "shard-0.log.1", "shard-0.log.2"]
    assert all(p.stat().st_size <= 1200 for p in tmp_path.iterdir())
    newest_first = [tmp_path / n for n in ("shard-0.log", "shard-0.log.1", "shard-0.log.2")]
    text = "".join(p.read_text() for p in reversed(newest_first)).splitlines()
    seqs = [int(line.split("seq=")[1].split()[0]) for line in text]
    assert seqs == list(range(seqs[0], 61))  # the newest lines, in order, none missing
    last = text[-1]
    assert last == '2025-11-24T16:00:00.000000Z room=1 seq=60 sender=2 text="hello 60 ✓"'
