"""Start a whole cluster as a child process, on free ports: for `chatctl bench --spawn` and the tests.

`python -m chatcluster up ...` exactly as a user would run it, its output in
`<data-dir>/chatctl-up.log`, waited for until it says it is up, and stopped
with SIGTERM (SIGKILL to the whole process group if it lingers).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from chatcluster.common.config import RUN_FILE, ClusterConfig
from chatcluster.common.control import fetch_status

READY_LINE = "is up"  # what `chatctl up` prints once every process answers


class SpawnError(RuntimeError):
    """The cluster did not start; the message carries its log."""


def _below_ephemeral(count: int) -> tuple[int, int]:
    """Where to look for listening ports: below the kernel's ephemeral range where it leaves room.

    A port inside that range can be taken as the source port of one of our own
    connections to it before anything listens there: a TCP self-connect, which
    answers a readiness probe with its own request (seen in CI).
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 49152  # the IANA dynamic range, Windows' and macOS' default
    if low - count > 10000:
        return 10000, low - count
    return 20000, 60000 - count


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """A base port such that base..base+count-1 are all free on host."""
    first, last = _below_ephemeral(count)
    for _ in range(200):
        base = random.randint(first, last)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                s.bind((host, port))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise SpawnError("no free block of ports for the cluster")


def _die_with_parent() -> None:
    """preexec_fn (Linux): the spawned `chatctl up` gets SIGTERM when its parent dies, even by SIGKILL."""
    from chatcluster.common.procutil import set_parent_death_signal

    set_parent_death_signal()


class SpawnedCluster:
    def __init__(self, proc: subprocess.Popen, host: str, port: int, data_dir: Path, http_port: int = 0) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.http_port = http_port  # the web page and WebSocket /ws
        self.data_dir = data_dir
        self.log_path = data_dir / "chatctl-up.log"

    @classmethod
    def start(cls, data_dir: Path, *args: str, shards: int = 2, gateways: int = 1, host: str = "127.0.0.1",
              timeout: float = 60.0, tied: bool = False) -> SpawnedCluster:
        """Start it and wait until it is up; tied: it dies with this process."""
        data_dir.mkdir(parents=True, exist_ok=True)
        # The client port, one control port per process, then the HTTP port.
        port = free_port_block(2 + gateways + shards, host)
        http_port = port + 1 + gateways + shards
        cmd = [sys.executable, "-m", "chatcluster", "up", "--shards", str(shards), "--gateways", str(gateways),
               "--host", host, "--port", str(port), "--http-port", str(http_port), "--data-dir", str(data_dir),
               *args]
        with open(data_dir / "chatctl-up.log", "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=_die_with_parent if tied else None)
        cluster = cls(proc, host, port, data_dir, http_port)
        deadline = time.monotonic() + timeout
        while READY_LINE not in cluster.log():
            if proc.poll() is not None or time.monotonic() > deadline:
                log = cluster.log()
                cluster.crash()
                raise SpawnError(f"the cluster did not start:\n{log}")
            time.sleep(0.05)
        return cluster

    # ---- looking at it ----------------------------------------------------------------------------
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def config(self) -> ClusterConfig:
        return ClusterConfig.load(self.data_dir / RUN_FILE)

    def status(self) -> list[dict]:
        config = self.config
        return self.gateway_statuses() + [fetch_status((s.control_host, s.control_port)) for s in config.shards]

    def gateway_statuses(self) -> list[dict]:
        return [fetch_status((g.control_host, g.control_port)) for g in self.config.gateways]

    def shard_status(self) -> list[dict]:
        return [fetch_status((s.control_host, s.control_port)) for s in self.config.shards]

    def gateway_status(self) -> dict:
        g = self.config.gateways[0]
        return fetch_status((g.control_host, g.control_port))

    # ---- stopping it ------------------------------------------------------------------------------
    def crash(self) -> None:
        """SIGKILL every process of the cluster at once."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode

    def remove(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
