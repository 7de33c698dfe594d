"""Starting a real cluster for a test: `python -m chatcluster up` as a user would, on free ports.

A module of its own (not conftest.py), so test modules and other folders'
fixtures import it by a name no folder's conftest.py can shadow.
"""

from __future__ import annotations

from pathlib import Path

from chatcluster.spawn import SpawnedCluster, SpawnError


def start_cluster(data_dir: Path, *args: str, shards: int = 2, gateways: int = 1,
                  timeout: float = 40.0) -> SpawnedCluster:
    """A cluster of its own for a test; the fast scrypt cost keeps many logins quick."""
    try:
        return SpawnedCluster.start(data_dir, "--scrypt-n", "1024", *args, shards=shards, gateways=gateways,
                                    timeout=timeout)
    except SpawnError as exc:
        raise RuntimeError(str(exc)) from None
