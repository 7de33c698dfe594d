"""Fixtures that start real clusters: `python -m chatcluster up` as a user would, on free ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clusters import start_cluster
from databases import scratch_database

from chatcluster.spawn import SpawnedCluster

RunningCluster = SpawnedCluster


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
