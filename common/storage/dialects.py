"""What differs between database backends, and nothing else.

One schema, one set of queries (qmark `?` parameters through DB-API); a
Dialect supplies the rest: how to connect, column types, the current time,
how a new row's id comes back, how a batch skips rows it already holds, how
to page, and which errors mean "duplicate key" or "this connection is dead"
(by SQLSTATE, not by exception class: drivers disagree on classes).

Backends: SQLite through the stdlib (the zero-setup default), and over ODBC
with pyodbc: PostgreSQL (psqlODBC), MariaDB/MySQL (MariaDB Connector/ODBC),
Microsoft SQL Server (FreeTDS or Microsoft's driver).

Traps measured on this machine's drivers, and what we do about them:
- pyodbc's fast_executemany crashes the process on the SQLite ODBC driver and
  silently skips the rows after a duplicate on MariaDB's: never used. Batches
  are multi-row VALUES statements that skip duplicates in the dialect's own way.
- psqlODBC wraps every statement in a SAVEPOINT unless told otherwise: we add
  `Protocol=7.4-1` (roll back the transaction, not the statement) to its
  connection string; and `CommLog=0`, because Debian's driver registration
  logs every statement to /tmp otherwise.
- MariaDB's driver returns long TEXT in pieces that pyodbc's default UTF-16
  decoding garbles: MariaDBDialect.configure reads and writes UTF-8.
- A connection that outlived a server restart fails on first use (SQLSTATE
  08xxx, or 57P01 from PostgreSQL): is_disconnect() says so and the pool
  replaces it.
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from chatcluster.common.storage.schema import (
    BIGINT,
    CREATED,
    ID,
    LABEL,
    MIGRATIONS,
    NAME,
    SECRET,
    TEXT,
    TIMESTAMP,
    VERSION_TABLE,
    Table,
)

COLUMNS = ("room_id", "seq", "sender_id", "text", "server_time_us", "client_msg_id", "idempotency_key")


class Dialect:
    name = "generic"
    #: Rows per multi-row INSERT (7 parameters each; SQL Server takes at most 2100 parameters).
    batch_rows = 1000
    #: The current time in UTC, as the dialect writes it in SQL.
    now = "CURRENT_TIMESTAMP"

    def connect(self) -> Any:
        raise NotImplementedError

    #: How this backend spells each column kind of common/storage/schema.py.
    types: dict[str, str] = {}
    #: Appended to every CREATE TABLE (engine, character set).
    table_options = ""

    def create_table(self, table: Table) -> str:
        """CREATE TABLE for one table of the schema, doing nothing if it exists."""
        parts = []
        for column in table.columns:
            spec = f"{column.name} {self.types[column.kind]}"
            if column.kind != ID:
                spec += " NULL" if column.null else " NOT NULL"
            if column.unique:
                spec += " UNIQUE"
            parts.append(spec)
        if table.primary_key:
            parts.append(f"PRIMARY KEY ({', '.join(table.primary_key)})")
        body = ",\n    ".join(parts)
        return f"CREATE TABLE IF NOT EXISTS {table.name} (\n    {body}\n){self.table_options}"

    def render(self, step: Table | str) -> str:
        return self.create_table(step) if isinstance(step, Table) else step

    def migrations(self) -> dict[int, list[str]]:
        """Schema version -> the statements that bring the version before it to it."""
        return {version: [self.render(step) for step in steps] for version, steps in MIGRATIONS.items()}

    @property
    def version_table(self) -> str:
        """The one-row table that records which schema version the database has."""
        return self.create_table(VERSION_TABLE)

    def insert_returning_id(self, cursor: Any, sql: str, params: tuple) -> int:
        raise NotImplementedError

    def insert_chat_sql(self, rows: int) -> str:
        """A multi-row INSERT into chat_log that skips rows whose (room_id, seq) is already there."""
        raise NotImplementedError

    def limit(self, sql: str) -> str:
        """sql (which ends in ORDER BY) limited to `?` rows, the last parameter."""
        return sql + " LIMIT ?"

    def is_unique_violation(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def is_disconnect(self, exc: BaseException) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        """Where the data is, with nothing secret in it, for logs and status."""
        raise NotImplementedError

    @staticmethod
    def _values(rows: int) -> str:
        return ",".join(["(?,?,?,?,?,?,?)"] * rows)


# ---------------------------------------------------------------------------- SQLite
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
        return conn

    # AUTOINCREMENT: SQLite never hands out an id again, even after deletes.
    types = {ID: "INTEGER PRIMARY KEY AUTOINCREMENT", BIGINT: "INTEGER", NAME: "TEXT", LABEL: "TEXT", SECRET: "TEXT",
             TEXT: "TEXT", CREATED: "TIMESTAMP DEFAULT CURRENT_TIMESTAMP", TIMESTAMP: "TIMESTAMP"}

    def insert_returning_id(self, cursor: Any, sql: str, params: tuple) -> int:
        cursor.execute(sql, params)
        return int(cursor.lastrowid)

    def insert_chat_sql(self, rows: int) -> str:
        return f"INSERT OR IGNORE INTO chat_log ({','.join(COLUMNS)}) VALUES {self._values(rows)}"

    def is_unique_violation(self, exc: BaseException) -> bool:
        if isinstance(exc, sqlite3.IntegrityError):
            code = getattr(exc, "sqlite_errorname", "")
            return code in ("SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY") or "UNIQUE" in str(exc)
        return False

    def is_disconnect(self, exc: BaseException) -> bool:
        # A file has no connection to lose; a failed statement leaves the connection usable.
        return False

    def describe(self) -> str:
        return f"sqlite:///{self.path}"  # an absolute path gives the four-slash form


# ---------------------------------------------------------------------------- ODBC
def sqlstate(exc: BaseException) -> str:
    """The SQLSTATE of a pyodbc error ('' for anything else)."""
    args = getattr(exc, "args", ())
    if args and isinstance(args[0], str) and len(args[0]) == 5:
        return args[0]
    return ""


class OdbcDialect(Dialect):
    """Common to every ODBC backend: pyodbc, autocommit, login and query timeouts."""

    #: SQLSTATEs that mean the connection is gone: class 08 (connection exception) plus the backend's own.
    disconnect_states: frozenset[str] = frozenset()
    #: Messages of 'general error' (HY000) that mean the same.
    disconnect_messages: tuple[str, ...] = ()

    def __init__(self, connection_string: str, login_timeout: int = 5, query_timeout: int = 30) -> None:
        self.connection_string = self.tune(connection_string)
        self.login_timeout = login_timeout
        self.query_timeout = query_timeout

    def tune(self, connection_string: str) -> str:
        """Driver options we rely on, added unless the operator set them."""
        return connection_string

    def connect(self) -> Any:
        import pyodbc  # needs unixODBC's libodbc; imported only for odbc:// databases

        conn = pyodbc.connect(self.connection_string, autocommit=True, timeout=self.login_timeout)
        self.configure(conn, pyodbc)
        for statement in self.session_setup():
            conn.execute(statement)
        return conn

    def configure(self, conn: Any, pyodbc: Any) -> None:
        """pyodbc settings a driver needs (text encodings)."""

    def session_setup(self) -> list[str]:
        """Statements run on each new connection: the query timeout and the time zone, server-side
        (psqlODBC refuses pyodbc's connection-level timeout attribute)."""
        return []

    def is_unique_violation(self, exc: BaseException) -> bool:
        return sqlstate(exc) in ("23000", "23505")

    def is_disconnect(self, exc: BaseException) -> bool:
        state = sqlstate(exc)
        if state.startswith("08") or state in self.disconnect_states:
            return True
        text = str(exc)
        return state in ("HY000", "") and any(m in text for m in self.disconnect_messages)

    def describe(self) -> str:
        # Never show a password: drop PWD=/Password= from what we print.
        shown = re.sub(r"(?i)(pwd|password)=(\{[^}]*\}|[^;]*)", r"\1=***", self.connection_string)
        return f"odbc://{shown}"


def _with_option(connection_string: str, key: str, value: str) -> str:
    if re.search(rf"(?i)(^|;)\s*{re.escape(key)}\s*=", connection_string):
        return connection_string
    sep = "" if connection_string.endswith(";") or not connection_string else ";"
    return f"{connection_string}{sep}{key}={value}"


class PostgresDialect(OdbcDialect):
    name = "postgresql"
    disconnect_states = frozenset({"57P01", "57P02", "57P03"})  # admin shutdown, crash shutdown, cannot connect now
    disconnect_messages = ("connection lost", "server closed the connection", "could not connect")

    def tune(self, connection_string: str) -> str:
        # 7.4-1: roll back the transaction on error instead of a SAVEPOINT around every statement.
        # CommLog/Debug: Debian's odbcinst.ini turns the driver's communication log on, which writes
        # every statement to /tmp/psqlodbc_*.log: slow, and it fills the disk.
        connection_string = _with_option(connection_string, "Protocol", "7.4-1")
        connection_string = _with_option(connection_string, "CommLog", "0")
        return _with_option(connection_string, "Debug", "0")

    def session_setup(self) -> list[str]:
        return [f"SET statement_timeout = {self.query_timeout * 1000}", "SET TIME ZONE 'UTC'"]

    types = {ID: "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", BIGINT: "BIGINT", NAME: "VARCHAR(64)",
             LABEL: "VARCHAR(256)", SECRET: "VARCHAR(255)", TEXT: "TEXT",
             CREATED: "TIMESTAMPTZ DEFAULT CURRENT_TIMESTAMP", TIMESTAMP: "TIMESTAMPTZ"}

    def insert_returning_id(self, cursor: Any, sql: str, params: tuple) -> int:
        cursor.execute(sql + " RETURNING id", params)
        return int(cursor.fetchone()[0])

    def insert_chat_sql(self, rows: int) -> str:
        return (f"INSERT INTO chat_log ({','.join(COLUMNS)}) VALUES {self._values(rows)} "
                "ON CONFLICT (room_id, seq) DO NOTHING")


class MariaDBDialect(OdbcDialect):
    name = "mariadb"
    now = "UTC_TIMESTAMP(6)"
    disconnect_messages = ("gone away", "Lost connection", "(2006)", "(2013)", "Can't connect")

    def tune(self, connection_string: str) -> str:
        return _with_option(connection_string, "CHARSET", "utf8mb4")

    def configure(self, conn: Any, pyodbc: Any) -> None:
        # MariaDB Connector/ODBC hands long TEXT back in pieces that pyodbc's default (UTF-16) decoding
        # garbles: the last characters of a 1,000-character text came back as CJK noise. UTF-8 both ways.
        conn.setdecoding(pyodbc.SQL_CHAR, encoding="utf-8")
        conn.setdecoding(pyodbc.SQL_WCHAR, encoding="utf-8")
        conn.setencoding(encoding="utf-8")

    def session_setup(self) -> list[str]:
        # time_zone: DATETIME defaults in UTC, as on the other backends.
        return [f"SET SESSION max_statement_time = {self.query_timeout}", "SET time_zone = '+00:00'"]

    types = {ID: "BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY", BIGINT: "BIGINT", NAME: "VARCHAR(64)",
             LABEL: "VARCHAR(256)", SECRET: "VARCHAR(255)", TEXT: "TEXT",
             CREATED: "DATETIME(6) DEFAULT CURRENT_TIMESTAMP(6)", TIMESTAMP: "DATETIME(6)"}
    table_options = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"  # _bin: names compare exactly

    def insert_returning_id(self, cursor: Any, sql: str, params: tuple) -> int:
        cursor.execute(sql, params)
        cursor.execute("SELECT LAST_INSERT_ID()")  # per connection, so no other insert can interfere
        return int(cursor.fetchone()[0])

    def insert_chat_sql(self, rows: int) -> str:
        # Not INSERT IGNORE: that also turns truncation and other errors into warnings.
        return (f"INSERT INTO chat_log ({','.join(COLUMNS)}) VALUES {self._values(rows)} "
                "ON DUPLICATE KEY UPDATE seq = seq")


class SQLServerDialect(OdbcDialect):
    name = "sqlserver"

    batch_rows = 300  # 2100 parameters: SQL Server takes at most 2100 per statement
    now = "SYSUTCDATETIME()"
    disconnect_messages = ("Communication link failure", "connection is broken", "Adaptive Server connection")

    types = {ID: "BIGINT IDENTITY(1,1) PRIMARY KEY", BIGINT: "BIGINT", NAME: "NVARCHAR(64) COLLATE Latin1_General_BIN2",
             LABEL: "NVARCHAR(256)", SECRET: "VARCHAR(255)", TEXT: "NVARCHAR(MAX)",
             CREATED: "DATETIME2 DEFAULT SYSUTCDATETIME()", TIMESTAMP: "DATETIME2"}

    def create_table(self, table: Table) -> str:
        # No CREATE TABLE IF NOT EXISTS in T-SQL.
        create = super().create_table(table).replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE", 1)
        return f"IF OBJECT_ID('{table.name}', 'U') IS NULL {create}"

    def insert_returning_id(self, cursor: Any, sql: str, params: tuple) -> int:
        # INSERT INTO t (cols) VALUES (...)  ->  INSERT INTO t (cols) OUTPUT INSERTED.id VALUES (...)
        head, values = sql.split(" VALUES ", 1)
        cursor.execute(f"{head} OUTPUT INSERTED.id VALUES {values}", params)
        return int(cursor.fetchone()[0])

    def insert_chat_sql(self, rows: int) -> str:
        cols = ",".join(COLUMNS)
        return (f"INSERT INTO chat_log ({cols}) SELECT {cols} FROM (VALUES {self._values(rows)}) AS v ({cols}) "
                "WHERE NOT EXISTS (SELECT 1 FROM chat_log c WHERE c.room_id = v.room_id AND c.seq = v.seq)")

    def limit(self, sql: str) -> str:
        return sql + " OFFSET 0 ROWS FETCH NEXT ? ROWS ONLY"

    def session_setup(self) -> list[str]:
        return [f"SET LOCK_TIMEOUT {self.query_timeout * 1000}"]

    def is_unique_violation(self, exc: BaseException) -> bool:
        # 23000 covers every integrity error; 2627/2601 are the unique-key ones.
        return sqlstate(exc) == "23000" and ("2627" in str(exc) or "2601" in str(exc) or "duplicate" in str(exc))


ODBC_DIALECTS: dict[str, type[OdbcDialect]] = {
    "postgres": PostgresDialect,
    "mariadb": MariaDBDialect,
    "mysql": MariaDBDialect,
    "freetds": SQLServerDialect,
    "sql server": SQLServerDialect,
    "tds": SQLServerDialect,
}


def odbc_dialect(connection_string: str) -> OdbcDialect:
    """The dialect named by the connection string's DRIVER, or, for a DSN, by the server itself."""
    match = re.search(r"(?i)(?:^|;)\s*driver\s*=\s*(\{[^}]*\}|[^;]*)", connection_string)
    driver = match.group(1).strip("{} ").lower() if match else ""
    for needle, cls in ODBC_DIALECTS.items():
        if needle in driver:
            return cls(connection_string)
    if driver:
        raise ValueError(f"unknown ODBC driver {driver!r}: use PostgreSQL, MariaDB/MySQL or SQL Server (FreeTDS)")
    import pyodbc

    with pyodbc.connect(connection_string, timeout=5) as conn:  # a DSN: ask the server what it is
        dbms = conn.getinfo(pyodbc.SQL_DBMS_NAME).lower()
    for needle, cls in (("postgres", PostgresDialect), ("maria", MariaDBDialect), ("mysql", MariaDBDialect),
                        ("microsoft", SQLServerDialect)):
        if needle in dbms:
            return cls(connection_string)
    raise ValueError(f"unsupported database {dbms!r} behind {connection_string!r}")


def dialect_for(url: str) -> Dialect:
    """The dialect of a --db URL: sqlite:///path or odbc://<ODBC connection string>.

    ${NAME} in the URL is read from the environment here, at use, so that a
    password kept in a secret never lands in a config or run file.
    """
    url = os.path.expandvars(url)
    if url.startswith("sqlite:///"):
        # As SQLAlchemy: sqlite:///relative/chat.db, sqlite:////absolute/chat.db
        path = unquote(url[len("sqlite:///"):])
        if not path:
            raise ValueError(f"no file in database URL {url!r}; use sqlite:///path/to/chat.db")
        return SQLiteDialect(Path(path))
    if url.startswith("odbc://"):
        connection_string = url[len("odbc://"):]
        if not connection_string:
            raise ValueError("odbc:// needs an ODBC connection string, e.g. "
                             "odbc://DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;DATABASE=chat;UID=chat")
        return odbc_dialect(connection_string)
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///path or odbc://<connection string>")
