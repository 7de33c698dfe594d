"""Dialect choice and the SQL each dialect writes (no server needed; tests/db runs it for real)."""

from __future__ import annotations

import pytest

from chatcluster.common.storage.dialects import (
    COLUMNS,
    MariaDBDialect,
    PostgresDialect,
    SQLiteDialect,
    SQLServerDialect,
    dialect_for,
)


@pytest.mark.parametrize(("url", "cls"), [
    ("sqlite:///chat.db", SQLiteDialect),
    ("odbc://DRIVER={PostgreSQL Unicode};SERVER=db;DATABASE=chat;UID=chat", PostgresDialect),
    ("odbc://Driver={MariaDB Unicode};Server=db;Database=chat;Uid=root", MariaDBDialect),
    ("odbc://DRIVER={MySQL ODBC 8.0 Unicode Driver};SERVER=db", MariaDBDialect),
    ("odbc://DRIVER={FreeTDS};SERVER=db;PORT=1433;DATABASE=chat;UID=sa;PWD=x;TDS_Version=7.4", SQLServerDialect),
    ("odbc://DRIVER={ODBC Driver 18 for SQL Server};SERVER=db", SQLServerDialect),
])
def test_dialect_from_url(url, cls):
    assert type(dialect_for(url)) is cls


def test_sqlite_paths():
    assert str(dialect_for("sqlite:///rel/chat.db").path) == "rel/chat.db"
    assert str(dialect_for("sqlite:////abs/chat.db").path) == "/abs/chat.db"


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:///", "odbc://", "odbc://DRIVER={Oracle};SERVER=x"])
def test_unsupported_urls(url):
    with pytest.raises(ValueError):
        dialect_for(url)


def test_postgres_gets_transaction_level_rollback_once():
    d = dialect_for("odbc://DRIVER={PostgreSQL Unicode};SERVER=db")
    assert ";Protocol=7.4-1;" in d.connection_string and d.connection_string.endswith("CommLog=0;Debug=0")
    own = dialect_for("odbc://DRIVER={PostgreSQL Unicode};SERVER=db;protocol=7.4-2")
    assert own.connection_string.count("=7.4") == 1  # the operator's choice stands


def test_describe_hides_passwords():
    d = dialect_for("odbc://DRIVER={FreeTDS};SERVER=db;UID=sa;PWD={s3cr;et};Port=1433")
    assert "s3cr" not in d.describe() and "PWD=***" in d.describe()
    assert "secret" not in dialect_for("odbc://DRIVER={MariaDB Unicode};Password=secret").describe()


def test_chat_inserts_skip_duplicates_per_dialect():
    assert "INSERT OR IGNORE" in SQLiteDialect.insert_chat_sql(SQLiteDialect.__new__(SQLiteDialect), 2)
    pg = PostgresDialect("DRIVER={PostgreSQL Unicode}").insert_chat_sql(2)
    assert pg.endswith("ON CONFLICT (room_id, seq) DO NOTHING") and pg.count("(?,?,?,?,?,?,?)") == 2
    assert "ON DUPLICATE KEY UPDATE" in MariaDBDialect("DRIVER={MariaDB}").insert_chat_sql(1)
    ms = SQLServerDialect("DRIVER={FreeTDS}")
    assert "WHERE NOT EXISTS" in ms.insert_chat_sql(3)
    assert ms.batch_rows * len(COLUMNS) <= 2100  # SQL Server's parameter limit


def test_sql_server_returns_the_new_id_with_output_inserted():
    class Cursor:
        def execute(self, sql, params):
            self.sql = sql

        def fetchone(self):
            return (42,)

    cursor = Cursor()
    ms = SQLServerDialect("DRIVER={FreeTDS}")
    assert ms.insert_returning_id(cursor, "INSERT INTO rooms (name, creator_id) VALUES (?, ?)", ("r", 1)) == 42
    assert cursor.sql == "INSERT INTO rooms (name, creator_id) OUTPUT INSERTED.id VALUES (?, ?)"
    assert ms.limit("SELECT 1 ORDER BY x").endswith("OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY")


class FakeOdbcError(Exception):
    pass


@pytest.mark.parametrize(("state", "message", "dead"), [
    ("08S01", "Lost connection to server during query (2013)", True),
    ("08003", "Connection not open", True),
    ("57P01", "terminating connection due to administrator command", True),
    ("HY000", "MySQL server has gone away (2006)", True),
    ("23505", "duplicate key value", False),
    ("42601", "syntax error", False),
])
def test_disconnects_are_told_by_sqlstate(state, message, dead):
    exc = FakeOdbcError(state, f"[{state}] {message}")
    dialect = MariaDBDialect("DRIVER={MariaDB}") if "2006" in message else PostgresDialect("DRIVER={PostgreSQL}")
    assert dialect.is_disconnect(exc) is dead
    assert PostgresDialect("DRIVER={PostgreSQL}").is_unique_violation(exc) is (state == "23505")
