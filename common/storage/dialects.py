"""What differs between database backends, and nothing else.

Every backend speaks qmark (`?`) parameters through a DB-API connection; a
Dialect knows how to open one, the DDL of the one schema in its own types,
how to get a new row's id back, and which errors mean "duplicate key" or
"the connection is dead".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote


class Dialect:
    name = "generic"

    def connect(self) -> Any:
        raise NotImplementedError

    def schema(self) -> list[str]:
        """CREATE statements of the current schema version."""
        raise NotImplementedError

    def insert_returning_id(self, cursor: Any, sql: str, params: tuple) -> int:
        raise NotImplementedError

    def is_unique_violation(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def is_disconnect(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """The URL with nothing secret in it, for logs and status."""
        raise NotImplementedError


class SQLiteDialect(Dialect):
    """The zero-setup default: stdlib sqlite3, one file, WAL so readers never block the writer."""

    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the pool hands a connection to one worker thread at a time.
        conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def schema(self) -> list[str]:
        return [
            """CREATE TABLE IF NOT EXISTS schema_version (
                   version INTEGER NOT NULL
               )""",
            """CREATE TABLE IF NOT EXISTS accounts (
                   id INTEGER PRIMARY KEY AUTOINCREMENT,
                   name TEXT NOT NULL UNIQUE,
                   password_hash TEXT NOT NULL,
                   created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                   last_login_at TIMESTAMP
               )""",
            # AUTOINCREMENT: SQLite never hands out an id again, even after deletes.
            """CREATE TABLE IF NOT EXISTS rooms (
                   id INTEGER PRIMARY KEY AUTOINCREMENT,
                   name TEXT NOT NULL,
                   creator_id INTEGER NOT NULL,
                   created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                   closed_at TIMESTAMP
               )""",
            """CREATE TABLE IF NOT EXISTS chat_log (
                   room_id INTEGER NOT NULL,
                   seq INTEGER NOT NULL,
                   sender_id INTEGER NOT NULL,
                   text TEXT NOT NULL,
                   server_time_us INTEGER NOT NULL,
                   PRIMARY KEY (room_id, seq)
               )""",
        ]

    def insert_returning_id(self, cursor: Any, sql: str, params: tuple) -> int:
        cursor.execute(sql, params)
        return int(cursor.lastrowid)

    def is_unique_violation(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.IntegrityError):
            code = getattr(exc, "sqlite_errorname", "")
            return code in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY") or "UNIQUE" in str(exc)
        return False

    def is_disconnect(self, exc: BaseException) -> bool:
        # A file database has no connection to lose; a failed statement leaves it usable.
        return False

    def describe(self) -> str:
        return f"sqlite:///{self.path}"  # an absolute path gives the four-slash form


def dialect_for(url: str) -> Dialect:
    """The dialect of a --db URL: sqlite:///path or odbc://<connection string>."""
    if url.startswith("sqlite:///"):
        # As SQLAlchemy: sqlite:///relative/chat.db, sqlite:////absolute/chat.db
        path = unquote(url[len("sqlite:///"):])
        if not path:
            raise ValueError(f"no file in database URL {url!r}; use sqlite:///path/to/chat.db")
        return SQLiteDialect(Path(path))
    if url.startswith("odbc://"):
        raise ValueError("odbc:// databases are not supported yet")
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or odbc://<connection string>")
