"""The cluster's database: accounts, room ids, chat log, behind one connection pool.

Every method blocks and is meant for a worker thread (the gateway's and the
shards' thread pools); none may be called on an event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from chatcluster.common.storage import passwords
from chatcluster.common.storage.dialects import Dialect, dialect_for
from chatcluster.common.storage.pool import ConnectionPool

SCHEMA_VERSION = 1
log = logging.getLogger("chatcluster.db")


class SchemaError(Exception):
    """The database holds a schema this version cannot use."""


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    player_id: int = 0
    message: str = ""
    registered: bool = False


class Database:
    def __init__(self, url: str, pool_size: int = 4, scrypt_n: int = passwords.DEFAULT_N) -> None:
        self.dialect: Dialect = dialect_for(url)
        self.pool = ConnectionPool(self.dialect.connect, pool_size, self.dialect.is_disconnect)
        self.scrypt_n = scrypt_n

    def describe(self) -> str:
        return self.dialect.describe()

    def close(self) -> None:
        self.pool.close()

    # ---- schema ---------------------------------------------------------
    def init_schema(self) -> int:
        """Create the schema if the database is empty; returns the version found or made."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            for statement in self.dialect.schema():
                cur.execute(statement)
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            if row is None:
                cur.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                self._commit(conn)
                return SCHEMA_VERSION
            self._commit(conn)
            version = int(row[0])
        if version > SCHEMA_VERSION:
            raise SchemaError(f"database schema version {version} is newer than this chatcluster ({SCHEMA_VERSION})")
        return version

    def schema_version(self) -> int | None:
        with self.pool.connection() as conn:
            cur = conn.cursor()
            try:
                cur.execute("SELECT version FROM schema_version")
            except Exception:  # noqa: BLE001 - no table yet: no schema
                return None
            row = cur.fetchone()
            return int(row[0]) if row else None

    @staticmethod
    def _commit(conn: Any) -> None:
        # sqlite3 in autocommit mode (isolation_level=None) has nothing to commit.
        if getattr(conn, "in_transaction", True):
            conn.commit()

    # ---- accounts -------------------------------------------------------
    def login(self, name: str, password: str, register: bool) -> LoginResult:
        """Check a password, or create the account when the name is new and registration is open.

        Blocking; the gateway runs the same steps (login_steps) across its
        database and CPU thread pools instead, so a 50 ms scrypt never holds a
        database thread.
        """
        return run_steps(login_steps(self, name, password, register))

    def find_account(self, name: str) -> tuple[int, str] | None:
        """(id, password hash) of an account, or None."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT id, password_hash FROM accounts WHERE name = ?", (name,))
            row = cur.fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def create_account(self, name: str, password_hash: str) -> int | None:
        """The new account's id, or None if the name was taken a moment ago."""
        try:
            with self.pool.connection() as conn:
                cur = conn.cursor()
                player_id = self.dialect.insert_returning_id(
                    cur,
                    "INSERT INTO accounts (name, password_hash, last_login_at) VALUES (?, ?, CURRENT_TIMESTAMP)",
                    (name, password_hash),
                )
                self._commit(conn)
        except Exception as exc:
            if self.dialect.is_unique_violation(exc):
                return None
            raise
        return player_id

    def touch_login(self, player_id: int) -> None:
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("UPDATE accounts SET last_login_at = CURRENT_TIMESTAMP WHERE id = ?", (player_id,))
            self._commit(conn)

    # ---- rooms ----------------------------------------------------------
    def allocate_room(self, name: str, creator_id: int) -> int:
        """A new room id, unique across the cluster and never handed out again."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            room_id = self.dialect.insert_returning_id(
                cur, "INSERT INTO rooms (name, creator_id) VALUES (?, ?)", (name, creator_id)
            )
            self._commit(conn)
        return room_id

    def close_room(self, room_id: int) -> None:
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("UPDATE rooms SET closed_at = CURRENT_TIMESTAMP WHERE id = ? AND closed_at IS NULL",
                        (room_id,))
            self._commit(conn)


# ---- the login procedure, once ---------------------------------------------
DB = "db"    # a step for a database thread
CPU = "cpu"  # a step for a CPU thread (password hashing)
Step = tuple[str, Callable[..., Any], tuple]


def login_steps(db: Database, name: str, password: str, register: bool) -> Generator[Step, Any, LoginResult]:
    """The login procedure as steps, each tagged with the kind of thread it needs.

    A driver sends each step's result back in: run_steps() runs them inline,
    the gateway runs DB steps on its database pool and CPU steps on its
    hashing pool. An unknown name under closed registration still costs a
    hash, so timing does not tell which names exist.
    """
    row = yield (DB, db.find_account, (name,))
    if row is None:
        if not register:
            yield (CPU, passwords.burn_time, (password, db.scrypt_n))
            return LoginResult(False, message="unknown name, and registration is closed")
        stored = yield (CPU, passwords.hash_password, (password, db.scrypt_n))
        player_id = yield (DB, db.create_account, (name, stored))
        if player_id is not None:
            return LoginResult(True, player_id, "Login successful. New account created.", registered=True)
        # Someone registered the same name a moment ago: log in against theirs.
        row = yield (DB, db.find_account, (name,))
        if row is None:
            raise RuntimeError(f"account {name!r} is neither creatable nor found")
    player_id, stored = row
    if not (yield (CPU, passwords.verify_password, (password, stored))):
        return LoginResult(False, message="wrong password")
    yield (DB, db.touch_login, (player_id,))
    return LoginResult(True, player_id, "Login successful.")


def run_steps(steps: Generator[Step, Any, LoginResult]) -> LoginResult:
    """Drive login_steps on the calling thread."""
    value: Any = None
    while True:
        try:
            _, fn, args = steps.send(value)
        except StopIteration as done:
            return done.value
        value = fn(*args)


def open_database(url: str, pool_size: int = 4, scrypt_n: int = passwords.DEFAULT_N) -> Database:
    """Open and make sure the schema is there (created on first start)."""
    started = time.perf_counter()
    db = Database(url, pool_size, scrypt_n)
    version = db.init_schema()
    log.info(" database %s ready (schema v%d, pool %d, %.0f ms)",
             db.describe(), version, pool_size, (time.perf_counter() - started) * 1000)
    return db
