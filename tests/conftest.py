"""Fixtures that start real clusters: `python -m chatcluster up` as a user would, on free ports."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from chatcluster.spawn import SpawnedCluster, SpawnError, free_port_block  # noqa: F401 - tests import it from here

RunningCluster = SpawnedCluster


def start_cluster(data_dir: Path, *args: str, shards: int = 2, gateways: int = 1,
                  timeout: float = 40.0) -> SpawnedCluster:
    """A cluster of its own for a test; the fast scrypt cost keeps many logins quick."""
    try:
        return SpawnedCluster.start(data_dir, "--scrypt-n", "1024", *args, shards=shards, gateways=gateways,
                                    timeout=timeout)
    except SpawnError as exc:
        raise RuntimeError(str(exc)) from None


@pytest.fixture
def cluster_factory(tmp_path):
    """Start clusters with chosen flags; all are stopped (and checked for orphans) at the end."""
    started: list[RunningCluster] = []

    def factory(*args: str, shards: int = 2, gateways: int = 1) -> RunningCluster:
        cluster = start_cluster(tmp_path / f"cluster{len(started)}", *args, shards=shards, gateways=gateways)
        started.append(cluster)
        return cluster

    yield factory
    for cluster in started:
        cluster.stop()


@pytest.fixture
def cluster(cluster_factory):
    return cluster_factory()


@pytest.fixture
def chat_server(cluster):
    """(host, port) of a running cluster, for tests that only need somewhere to chat."""
    return cluster.host, cluster.port


@pytest.fixture
def stop_chat_server(cluster):
    """Kill the whole cluster abruptly, as a crash would (clients get no goodbye)."""
    return cluster.crash


# ---------------------------------------------------------------------------- database backends
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


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db_url(request, tmp_path) -> Iterator[str]:
    """The URL of an empty database on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chat.db'}"
        return
    with scratch_database(request.param) as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with scratch_database("postgresql") as url:
        yield url


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
