"""The machine's database servers for tests: scratch databases, and outages made on purpose.

A module of its own (not conftest.py) so that test modules import it by a
name no other folder's conftest can shadow.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

# The PostgreSQL and MariaDB servers of this machine (trust auth / root without password). Each test
# gets a scratch database of its own, dropped afterwards. In CI an unreachable backend fails the
# test; elsewhere it is skipped, saying why.
PG_ADMIN = "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1;PORT=5432;DATABASE=postgres;UID=postgres;CommLog=0;Debug=0"
MARIADB_ADMIN = "DRIVER={MariaDB Unicode};SERVER=127.0.0.1;PORT=3306;UID=root;PWD="


def _unreachable(backend: str, exc: BaseException) -> None:
    message = f"{backend} is not reachable ({type(exc).__name__}: {exc})"
    if os.environ.get("CI"):
        pytest.fail(message + "; CI requires every backend")
    pytest.skip(message)


def _admin(backend: str, connection_string: str):
    try:
        import pyodbc

        return pyodbc.connect(connection_string, autocommit=True, timeout=3)
    except Exception as exc:  # noqa: BLE001 - ImportError (no libodbc) or a pyodbc.Error
        _unreachable(backend, exc)


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A --db URL of a fresh, empty database on `backend` (sqlite is handled by the caller)."""
    name = f"chatcluster_test_{os.getpid()}_{secrets.token_hex(3)}"
    if backend == "postgresql":
        admin = _admin(backend, PG_ADMIN)
        admin.execute(f"CREATE DATABASE {name}")
        url = f"odbc://DRIVER={{PostgreSQL Unicode}};SERVER=127.0.0.1;PORT=5432;DATABASE={name};UID=postgres"
        drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    elif backend == "mariadb":
        admin = _admin(backend, MARIADB_ADMIN)
        admin.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        url = f"odbc://DRIVER={{MariaDB Unicode}};SERVER=127.0.0.1;PORT=3306;DATABASE={name};UID=root;PWD="
        drop = f"DROP DATABASE IF EXISTS {name}"
    else:
        raise ValueError(backend)
    try:
        yield url
    finally:
        admin.execute(drop)
        admin.close()


def _database_name(url: str) -> str:
    return next(part.split("=", 1)[1] for part in url.split(";") if part.upper().startswith("DATABASE="))


def kill_connections(url: str) -> None:
    """Drop every session of the scratch database server-side, as a server restart would."""
    import pyodbc
    name = _database_name(url)
    if "PostgreSQL" in url:
        with pyodbc.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ?", name)
    else:
        with pyodbc.connect(MARIADB_ADMIN, autocommit=True) as admin:
            ids = [r[0] for r in admin.execute(
                "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()", name)]
            for conn_id in ids:
                admin.execute(f"KILL {int(conn_id)}")


def refuse_connections(url: str, refuse: bool) -> None:
    """A PostgreSQL outage for this database only: no new connections, existing ones dropped."""
    import pyodbc
    name = _database_name(url)
    with pyodbc.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS {'false' if refuse else 'true'}")
    if refuse:
        kill_connections(url)
