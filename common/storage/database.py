"""The cluster's database: accounts, room ids, chat log, behind one connection pool.

Every method blocks and is meant for a worker thread (the gateway's and the
shards' thread pools); none may be called on an event loop.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from chatcluster.common.storage import passwords
from chatcluster.common.storage.dialects import Dialect, dialect_for
from chatcluster.common.storage.pool import ConnectionPool
from chatcluster.common.timefmt import until_text
from chatcluster.common.tokens import TokenError, TokenKey

SCHEMA_VERSION = 3
log = logging.getLogger("chatcluster.db")


class SchemaError(Exception):
    """The database holds a schema this version cannot use."""


@dataclass(frozen=True)
class Ban:
    """An account's ban (the `bans` table): until when (0: until lifted), and why."""

    account_id: int
    until_us: int
    reason: str

    def refusal(self) -> str:
        """What a refused login is told: until when, and the operator's reason."""
        return f"this account is banned {until_text(self.until_us)}" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class LoginResult:
    ok: bool
    player_id: int = 0
    message: str = ""
    registered: bool = False
    name: str = ""            # the account's name, where the login did not say it (a token login)
    expires_in: float = 0.0   # a token login: seconds until the token expires (0: never, a password login)


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
    def migrate(self) -> int:
        """Create the schema, or bring an older one up to SCHEMA_VERSION; returns the version now."""
        migrations = self.dialect.migrations()
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute(self.dialect.version_table)
            cur.execute("SELECT version FROM schema_version")
            row = cur.fetchone()
            version = int(row[0]) if row else 0
            existing = version > 0  # a new database is created, not "migrated"
            if version > SCHEMA_VERSION:
                raise SchemaError(f"database schema version {version} is newer than this chatcluster "
                                  f"(which knows up to {SCHEMA_VERSION}); upgrade chatcluster")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in migrations[target]:
                    cur.execute(statement)
                if version == 0:
                    cur.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
                else:
                    cur.execute("UPDATE schema_version SET version = ?", (target,))
                self._commit(conn)
                if existing:
                    log.info(" database schema migrated from v%d to v%d", version, target)
                version = target
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

    def check(self) -> dict[str, Any]:
        """What an operator needs to know the database is usable: version and row counts."""
        version = self.schema_version()
        report: dict[str, Any] = {"database": self.describe(), "dialect": self.dialect.name,
                                  "schema_version": version, "expected_version": SCHEMA_VERSION}
        if version is not None:
            with self.pool.connection() as conn:
                cur = conn.cursor()
                for table in ("accounts", "rooms", "chat_log"):
                    cur.execute(f"SELECT COUNT(*) FROM {table}")  # noqa: S608 - fixed table names
                    report[f"{table}_rows"] = int(cur.fetchone()[0])
        report["ok"] = version == SCHEMA_VERSION
        return report

    @staticmethod
    def _commit(conn: Any) -> None:
        # Connections run in autocommit mode; a backend that still opened a transaction gets it committed.
        if getattr(conn, "in_transaction", False) or not getattr(conn, "autocommit", True):
            conn.commit()

    # ---- accounts -------------------------------------------------------
    def login(self, name: str, password: str, register: bool) -> LoginResult:
        """Check a password, or create the account when the name is new and registration is open.

        Blocking; the gateway runs the same steps (login_steps) across its
        database and CPU thread pools instead, so a password hash never holds
        a database thread.
        """
        return run_steps(login_steps(self, name, password, register))

    def find_account(self, name: str) -> tuple[int, str] | None:
        """(id, password hash) of an account, or None."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT id, password_hash FROM accounts WHERE name = ?", (name,))
            row = cur.fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def token_account(self, sub: str, wanted_name: str) -> tuple[int, str, bool]:
        """(id, name, created) of the account of a token's sub, created on its first login.

        Token accounts have no password (an empty hash never verifies). Names
        are unique: where the wanted one is taken, the new account's name gets
        a suffix made from its sub, so the same user always gets the same name.
        """
        for _ in range(2):
            with self.pool.connection() as conn:
                cur = conn.cursor()
                cur.execute("SELECT id, name FROM accounts WHERE sub = ?", (sub,))
                row = cur.fetchone()
            if row:
                return int(row[0]), str(row[1]), False
            name = account_name(wanted_name, sub)
            for candidate in (name, f"{name[:23]}-{hashlib.sha256(sub.encode()).hexdigest()[:8]}"):
                try:
                    with self.pool.connection() as conn:
                        cur = conn.cursor()
                        player_id = self.dialect.insert_returning_id(
                            cur, "INSERT INTO accounts (name, password_hash, sub, last_login_at) "
                                 f"VALUES (?, '', ?, {self.dialect.now})", (candidate, sub))
                        self._commit(conn)
                    return player_id, candidate, True
                except Exception as exc:
                    if not self.dialect.is_unique_violation(exc):
                        raise
            # both names taken, or the same sub created a moment ago: look again
        raise RuntimeError("no account could be found or made for this token's sub")

    def create_account(self, name: str, password_hash: str) -> int | None:
        """The new account's id, or None if the name was taken a moment ago."""
        try:
            with self.pool.connection() as conn:
                cur = conn.cursor()
                player_id = self.dialect.insert_returning_id(
                    cur,
                    f"INSERT INTO accounts (name, password_hash, last_login_at) VALUES (?, ?, {self.dialect.now})",
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
            cur.execute(f"UPDATE accounts SET last_login_at = {self.dialect.now} WHERE id = ?", (player_id,))
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

    def close_rooms(self, room_ids: list[int]) -> None:
        """Mark rooms closed (they emptied); their ids stay taken."""
        if not room_ids:
            return
        marks = ",".join("?" * len(room_ids))
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute(f"UPDATE rooms SET closed_at = {self.dialect.now} "
                        f"WHERE id IN ({marks}) AND closed_at IS NULL", tuple(room_ids))
            self._commit(conn)

    # ---- chat log ---------------------------------------------------------
    def append_chat(self, rows: list[tuple]) -> int:
        """Write (room_id, seq, sender_id, text, server_time_us[, client_msg_id, idempotency_key]) rows;
        rows already there are skipped.

        Skipping makes a retry after a lost answer safe: (room_id, seq) is
        unique, so a batch that did commit is not written twice.
        """
        size = self.dialect.batch_rows
        with self.pool.connection() as conn:
            cur = conn.cursor()
            for start in range(0, len(rows), size):
                chunk = rows[start:start + size]
                values: list = []
                for row in chunk:
                    values.extend(row[:5])
                    values.append(_signed(row[5]) if len(row) > 5 else 0)
                    values.append(_signed(row[6]) if len(row) > 6 else 0)
                cur.execute(self.dialect.insert_chat_sql(len(chunk)), values)
            self._commit(conn)
        return len(rows)

    def history(self, room_id: int, last: int = 50) -> list[tuple[int, int, str, str, int]]:
        """The last `last` messages of a room, oldest first: (seq, sender_id, sender name, text, time_us)."""
        return [row[:5] for row in self.chat_before(room_id, 2**63 - 1, last)]

    def chat_before(self, room_id: int, before_seq: int, count: int) -> list[tuple[int, int, str, str, int, int, int]]:
        """The newest `count` messages of a room with seq < before_seq, oldest first: (seq, sender_id, sender
        name, text, time_us, client_msg_id, idempotency_key). The shard's history reads use it (shards/store.py)."""
        sql = self.dialect.limit(
            "SELECT c.seq, c.sender_id, a.name, c.text, c.server_time_us, c.client_msg_id, c.idempotency_key "
            "FROM chat_log c LEFT JOIN accounts a ON a.id = c.sender_id WHERE c.room_id = ? AND c.seq < ? "
            "ORDER BY c.seq DESC")
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute(sql, (room_id, before_seq, count))
            rows = cur.fetchall()
        return [(int(r[0]), int(r[1]), r[2] or _unknown_sender(int(r[1])), r[3], int(r[4]), _unsigned(int(r[5])),
                 _unsigned(int(r[6]))) for r in reversed(rows)]

    def chat_summary(self) -> dict[int, tuple[int, int, int]]:
        """Per room: (rows, lowest seq, highest seq), to check a log has no gaps."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT room_id, COUNT(*), MIN(seq), MAX(seq) FROM chat_log GROUP BY room_id")
            return {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in cur.fetchall()}

    def last_seq(self, room_id: int) -> int:
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT MAX(seq) FROM chat_log WHERE room_id = ?", (room_id,))
            row = cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ---- bans (operators: gateway/operations.py) ------------------------------
    def account_id(self, name: str) -> int | None:
        """The id of the account with this name, or None."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("SELECT id FROM accounts WHERE name = ?", (name,))
            row = cur.fetchone()
        return int(row[0]) if row else None

    def ban(self, account_id: int, until_us: int, reason: str) -> None:
        """Ban an account until a time (0: until lifted), replacing a ban it had."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            for _ in range(2):  # two operators banning the same account at once: the second updates
                cur.execute("UPDATE bans SET until_us = ?, reason = ? WHERE account_id = ?",
                            (until_us, reason, account_id))
                if cur.rowcount:
                    break
                try:
                    cur.execute("INSERT INTO bans (account_id, until_us, reason) VALUES (?, ?, ?)",
                                (account_id, until_us, reason))
                    break
                except Exception as exc:
                    if not self.dialect.is_unique_violation(exc):
                        raise
            self._commit(conn)

    def unban(self, account_id: int) -> bool:
        """Lift an account's ban; False if it had none (or only one that had ended)."""
        now_us = time.time_ns() // 1000
        with self.pool.connection() as conn:
            cur = conn.cursor()
            cur.execute("DELETE FROM bans WHERE account_id = ? AND (until_us = 0 OR until_us > ?)",
                        (account_id, now_us))
            lifted = cur.rowcount > 0
            cur.execute("DELETE FROM bans WHERE account_id = ?", (account_id,))
            self._commit(conn)
        return lifted

    def active_ban(self, account_id: int, now_us: int | None = None) -> Ban | None:
        """The account's ban if it has one that has not ended."""
        with self.pool.connection() as conn:
            return self._active_ban(conn.cursor(), account_id, now_us)

    def admit(self, account_id: int) -> Ban | None:
        """The last step of a password login: the account's ban if one is on (the login is refused), else
        the login is recorded; on one connection, so checking bans costs a login no extra step."""
        with self.pool.connection() as conn:
            cur = conn.cursor()
            ban = self._active_ban(cur, account_id, None)
            if ban is None:
                cur.execute(f"UPDATE accounts SET last_login_at = {self.dialect.now} WHERE id = ?", (account_id,))
                self._commit(conn)
        return ban

    @staticmethod
    def _active_ban(cur: Any, account_id: int, now_us: int | None) -> Ban | None:
        now_us = time.time_ns() // 1000 if now_us is None else now_us
        cur.execute("SELECT until_us, reason FROM bans WHERE account_id = ? AND (until_us = 0 OR until_us > ?)",
                    (account_id, now_us))
        row = cur.fetchone()
        return Ban(account_id, int(row[0]), row[1] or "") if row else None


def _signed(value: int) -> int:
    """A client's uint64 as the signed BIGINT every backend has (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def _unknown_sender(sender_id: int) -> str:
    """The name of a sender with no account: player 0 is the system (PROTOCOL.md), anyone else a bare id."""
    return "system" if sender_id == 0 else f"#{sender_id}"


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
    ban = yield (DB, db.admit, (player_id,))  # after the password: only the account's owner learns of a ban
    if ban is not None:
        return LoginResult(False, message=ban.refusal())
    return LoginResult(True, player_id, "Login successful.")


def token_login_steps(db: Database, key: TokenKey, token: str) -> Generator[Step, Any, LoginResult]:
    """A token login as steps: the signature on a CPU thread, the account (found or made) on a database one."""
    try:
        claims = yield (CPU, key.verify, (token,))
    except TokenError as exc:
        return LoginResult(False, message=str(exc))
    player_id, name, created = yield (DB, db.token_account, (claims.sub, claims.name or claims.sub))
    if not created:
        ban = yield (DB, db.admit, (player_id,))  # bans hold for token accounts as for any other
        if ban is not None:
            return LoginResult(False, message=ban.refusal())
    return LoginResult(True, player_id, "Login successful." + (" New account created." if created else ""),
                       registered=created, name=name, expires_in=claims.expires_in)


def account_name(wanted: str, sub: str) -> str:
    """A usable player name (printable, no surrounding spaces, 32 bytes at most) from a token's name or sub."""
    name = "".join(ch for ch in wanted if ch.isprintable()).strip()
    while len(name.encode()) > 32:
        name = name[:-1].rstrip()
    return name or f"user-{hashlib.sha256(sub.encode()).hexdigest()[:8]}"


def drive_steps(steps: Generator[Step, Any, LoginResult], run: Callable[[str, Callable[..., Any], tuple,
                                                                     Callable[[Any], None]], None],
                done: Callable[[LoginResult | BaseException], None]) -> None:
    """Drive login_steps: run(kind, fn, args, resume) does a step, now or later, and calls resume with
    its value or the exception it raised; done gets the outcome. One driver for every caller: the
    gateway's thread pools answer later, run_steps() answers at once."""

    def resume(value: Any) -> None:
        try:
            if isinstance(value, BaseException):
                kind, fn, args = steps.throw(value)
            else:
                kind, fn, args = steps.send(value)
        except StopIteration as finished:
            done(finished.value)
            return
        except Exception as exc:  # noqa: BLE001 - the step's own failure is the outcome
            done(exc)
            return
        run(kind, fn, args, resume)

    resume(None)


def run_steps(steps: Generator[Step, Any, LoginResult]) -> LoginResult:
    """Drive login_steps on the calling thread."""
    outcome: list[LoginResult | BaseException] = []

    def run(kind: str, fn: Callable[..., Any], args: tuple, resume: Callable[[Any], None]) -> None:
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed back into the steps, as a pool would
            value = exc
        resume(value)

    drive_steps(steps, run, outcome.append)
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def open_database(url: str, pool_size: int = 4, scrypt_n: int = passwords.DEFAULT_N) -> Database:
    """Open and make sure the schema is there (created on first start)."""
    started = time.perf_counter()
    db = Database(url, pool_size, scrypt_n)
    try:
        version = db.migrate()
    except BaseException:
        db.close()
        raise
    log.info(" database %s ready (schema v%d, pool %d, %.0f ms)",
             db.describe(), version, pool_size, (time.perf_counter() - started) * 1000)
    return db
