"""The one schema and its queries on every backend: SQLite, and PostgreSQL and MariaDB over ODBC.

Each test runs against a scratch database on the real servers of this machine
(see the db_url fixture in tests/conftest.py).
"""

from __future__ import annotations

import threading
import time

import pytest
from databases import kill_connections, refuse_connections
from waiting import wait_for

from chatcluster.common.storage import Database, open_database
from chatcluster.common.storage import database as database_module
from chatcluster.shards.chatlog import ChatLog, RotatingLines

pytestmark = pytest.mark.db


@pytest.fixture
def db(db_url):
    database = open_database(db_url, pool_size=2, scrypt_n=16)
    yield database
    database.close()


def test_schema_is_created_once_and_checked(db):
    assert db.schema_version() == database_module.SCHEMA_VERSION
    assert db.migrate() == database_module.SCHEMA_VERSION  # idempotent
    report = db.check()
    assert report["ok"] and report["accounts_rows"] == 0 and report["chat_log_rows"] == 0
    assert "PWD=" not in db.describe() or "PWD=***" in db.describe()


def test_an_older_schema_is_migrated(db_url, monkeypatch):
    first = open_database(db_url, pool_size=1, scrypt_n=16)
    first.close()
    current = database_module.SCHEMA_VERSION
    monkeypatch.setattr(database_module, "SCHEMA_VERSION", current + 1)
    later = Database(db_url, pool_size=1, scrypt_n=16)
    original = later.dialect.migrations()
    step = ["CREATE INDEX chat_log_by_sender ON chat_log (sender_id)"]
    monkeypatch.setattr(later.dialect, "migrations", lambda: {**original, current + 1: step})
    assert later.schema_version() == current
    assert later.migrate() == current + 1
    assert later.schema_version() == current + 1
    later.close()
    monkeypatch.setattr(database_module, "SCHEMA_VERSION", current)
    newer = Database(db_url, pool_size=1)
    with pytest.raises(database_module.SchemaError):
        newer.migrate()  # a database from the future is refused, not damaged
    newer.close()


def test_accounts(db):
    first = db.login("alice", "pw", register=True)
    assert first.ok and first.registered
    assert db.login("alice", "pw", register=True).player_id == first.player_id
    assert not db.login("alice", "bad", register=True).ok
    assert not db.login("bob", "pw", register=False).ok
    unicode = db.login("지민😀", "pässwörd", register=True)
    assert unicode.ok and db.login("지민😀", "pässwörd", register=True).player_id == unicode.player_id
    assert db.find_account("Alice") is None  # names compare exactly


def test_duplicate_names_are_found_by_sqlstate(db):
    assert db.create_account("carol", "h1") is not None
    assert db.create_account("carol", "h2") is None  # unique violation recognised, not raised


def test_concurrent_registrations_of_one_name(db):
    results = []
    threads = [threading.Thread(target=lambda: results.append(db.login("dup", "pw", register=True)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.ok for r in results)
    assert len({r.player_id for r in results}) == 1


def test_room_ids_increase_and_rooms_close(db):
    ids = [db.allocate_room(f"room{i}", 1) for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    db.close_rooms(ids[:2])
    db.close_rooms([])


def test_chat_log_batches_skip_duplicates_and_keep_text(db):
    rows = [(7, seq, 3, f"message {seq} 안녕 😀", 1_700_000_000_000_000 + seq) for seq in range(1, 2501)]
    rows.append((7, 2501, 3, "x" * 4096, 1))
    assert db.append_chat(rows) == len(rows)
    db.append_chat(rows[1000:1200])  # a retry of rows already written: skipped, no error
    assert db.chat_summary() == {7: (2501, 1, 2501)}
    history = db.history(7, last=3)
    assert [h[0] for h in history] == [2499, 2500, 2501]
    assert history[0][3] == "message 2499 안녕 😀" and history[2][3] == "x" * 4096
    assert db.last_seq(7) == 2501 and db.last_seq(8) == 0


def test_history_names_the_sender(db):
    alice = db.login("alice", "pw", register=True).player_id
    db.append_chat([(1, 1, alice, "hi", 1), (1, 2, 999, "ghost", 2)])
    assert [(seq, name, text) for seq, _, name, text, _ in db.history(1)] == [(1, "alice", "hi"),
                                                                                (2, "#999", "ghost")]


def test_chat_log_writer_writes_file_and_database(db, tmp_path):
    log = ChatLog(db, RotatingLines(tmp_path / "shard-0.log"))
    for seq in range(1, 3001):
        log.append(room_id=5, seq=seq, sender_id=1, text=f"m{seq}", server_time_us=seq)
    assert log.close()
    assert db.chat_summary() == {5: (3000, 1, 3000)}
    lines = (tmp_path / "shard-0.log").read_text().splitlines()
    assert len(lines) == 3000 and lines[0].endswith('room=5 seq=1 sender=1 text="m1"')
    stats = log.stats()
    assert stats["accepted"] == stats["db_rows"] == stats["file_lines"] == 3000 and stats["backlog"] == 0


@pytest.mark.parametrize("db_url", ["postgresql", "mariadb"], indirect=True)
def test_a_dead_connection_is_replaced(db, db_url):
    assert db.login("erin", "pw", register=True).ok
    kill_connections(db_url)
    with pytest.raises(Exception) as failure:  # noqa: B017, PT011 - whatever the driver raises
        db.find_account("erin")
    assert db.dialect.is_disconnect(failure.value), failure.value
    assert db.find_account("erin") is not None  # a fresh connection, no restart needed
    assert db.pool.stats()["reconnects"] == 1


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_chat_log_holds_the_backlog_while_the_database_is_down(db, db_url, tmp_path):
    log = ChatLog(db, RotatingLines(tmp_path / "shard-0.log"), max_backlog=500)
    log.append(1, 1, 1, "before", 1)
    wait_for(lambda: log.stats()["db_rows"] == 1, 10)
    refuse_connections(db_url, True)
    try:
        for seq in range(2, 702):
            log.append(1, seq, 1, f"during {seq}", seq)
        wait_for(lambda: log.stats()["db_errors"] > 0 and log.stats()["file_lines"] == 701, 10)
        stats = log.stats()
        assert stats["db_rows"] == 1 and stats["backlog"] == 500 and stats["db_dropped"] == 200
    finally:
        refuse_connections(db_url, False)
    wait_for(lambda: log.stats()["backlog"] == 0, 15)
    assert log.close()
    summary = db.chat_summary()
    assert summary[1][0] == 501  # everything kept for the database got there; the 200 past the bound are counted
    assert len((tmp_path / "shard-0.log").read_text().splitlines()) == 701  # and all are in the file


def test_a_version_1_chat_log_gains_the_history_columns(db_url, monkeypatch):
    """Schema v2 adds client_msg_id and idempotency_key to chat_log: old rows read back with 0, new ones keep
    the client's uint64 values whole (stored as signed BIGINT)."""
    monkeypatch.setattr(database_module, "SCHEMA_VERSION", 1)
    old = Database(db_url, pool_size=1, scrypt_n=16)
    assert old.migrate() == 1
    with old.pool.connection() as conn:
        conn.cursor().execute("INSERT INTO chat_log (room_id, seq, sender_id, text, server_time_us) "
                              "VALUES (?, ?, ?, ?, ?)", (3, 1, 9, "from v1", 100))
        Database._commit(conn)
    old.close()
    monkeypatch.setattr(database_module, "SCHEMA_VERSION", 2)
    db = Database(db_url, pool_size=1, scrypt_n=16)
    assert db.migrate() == 2
    db.append_chat([(3, 2, 9, "from v2", 200, 2**64 - 1, 2**63 + 7), (3, 3, 9, "no key", 300, 5, 0)])
    assert db.chat_before(3, 10, 10) == [(1, 9, "#9", "from v1", 100, 0, 0),
                                         (2, 9, "#9", "from v2", 200, 2**64 - 1, 2**63 + 7),
                                         (3, 9, "#9", "no key", 300, 5, 0)]
    assert db.history(3, last=1) == [(3, 9, "#9", "no key", 300)]
    db.close()


def test_bans_on_every_backend(db):
    """A ban (the operator API's) is stored, replaced, honoured at login with its reason, ended, and lifted."""
    now_us = time.time_ns() // 1000
    eve = db.login("eve", "pw", register=True).player_id
    assert db.account_id("eve") == eve and db.account_id("nobody") is None
    db.ban(eve, 0, "first")
    db.ban(eve, now_us + 3_600_000_000, "spam — répété")  # replaces it (one row per account), any text
    ban = db.active_ban(eve)
    assert ban is not None and ban.until_us == now_us + 3_600_000_000 and ban.reason == "spam — répété"
    refused = db.login("eve", "pw", register=True)
    assert not refused.ok and refused.message.endswith(" UTC: spam — répété")
    assert db.active_ban(eve, now_us + 3_600_000_001) is None  # ended by then
    assert db.unban(eve) is True and db.active_ban(eve) is None and db.unban(eve) is False
    assert db.login("eve", "pw", register=True).ok
