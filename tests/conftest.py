"""Fixtures that start real clusters: `python -m chatcluster up` as a user would, on free ports."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatcluster.common.config import RUN_FILE, ClusterConfig
from chatcluster.supervisor import fetch_status

READY_LINE = "is up"


def free_port_block(count: int) -> int:
    """A base port such that base..base+count-1 are all free on 127.0.0.1."""
    for _ in range(200):
        base = random.randint(20000, 60000 - count)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


@dataclass
class RunningCluster:
    proc: subprocess.Popen
    host: str
    port: int
    data_dir: Path
    log_path: Path

    @property
    def config(self) -> ClusterConfig:
        return ClusterConfig.load(self.data_dir / RUN_FILE)

    def status(self) -> list[dict]:
        config = self.config
        rows = [fetch_status((g.control_host, g.control_port)) for g in config.gateways]
        rows += [fetch_status((s.control_host, s.control_port)) for s in config.shards]
        return rows

    def shard_status(self) -> list[dict]:
        return [r for r in self.status() if r["role"] == "shard"]

    def gateway_status(self) -> dict:
        return next(r for r in self.status() if r["role"] == "gateway")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def crash(self) -> None:
        """SIGKILL every process of the cluster at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def start_cluster(data_dir: Path, *args: str, shards: int = 2, timeout: float = 40.0) -> RunningCluster:
    port = free_port_block(shards + 3)
    log_path = data_dir / "chatctl-up.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "chatcluster", "up", "--shards", str(shards), "--port", str(port),
           "--data-dir", str(data_dir), "--scrypt-n", "1024", *args]
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    cluster = RunningCluster(proc, "127.0.0.1", port, data_dir, log_path)
    deadline = time.monotonic() + timeout
    while READY_LINE not in cluster.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            cluster.stop(signal.SIGKILL)
            raise RuntimeError(f"cluster did not start:\n{cluster.log()}")
        time.sleep(0.05)
    return cluster


@pytest.fixture
def cluster_factory(tmp_path):
    """Start clusters with chosen flags; all are stopped (and checked for orphans) at the end."""
    started: list[RunningCluster] = []

    def factory(*args: str, shards: int = 2) -> RunningCluster:
        cluster = start_cluster(tmp_path / f"cluster{len(started)}", *args, shards=shards)
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
