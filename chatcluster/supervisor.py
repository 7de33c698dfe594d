"""`chatctl up`: start the cluster's processes, restart the ones that die, stop them all cleanly.

Each child is `python -m chatcluster up --config <run file> --role R --id K`,
the same command an operator uses to run one process of a multi-host
cluster. Children die with the supervisor (see procutil.die_with_parent), so
even a `kill -9` of `chatctl up` leaves no orphan.
"""

from __future__ import annotations

import http.client
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from chatcluster.common.config import ClusterConfig
from chatcluster.common.control import fetch_status

log = logging.getLogger("chatcluster.supervisor")

SUPERVISED_ENV = "CHATCLUSTER_SUPERVISED"
STOP_GRACE = 6.0          # seconds children get to drain before SIGKILL
FIRST_RESTART_DELAY = 0.2
MAX_RESTART_DELAY = 10.0
STABLE_AFTER = 30.0       # a child up this long has its restart back-off reset


@dataclass
class Child:
    role: str
    id: int
    control: tuple[str, int]
    proc: subprocess.Popen | None = None
    started: float = 0.0
    restarts: int = 0
    delay: float = FIRST_RESTART_DELAY
    restart_at: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.role} {self.id}"


class Supervisor:
    def __init__(self, config: ClusterConfig, config_path: Path) -> None:
        self.config = config
        self.config_path = config_path
        self.children = [Child("shard", s.id, (s.control_host, s.control_port)) for s in config.shards]
        self.children += [Child("gateway", g.id, (g.control_host, g.control_port)) for g in config.gateways]
        self.stopping = False

    # ---- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def _spawn(self, child: Child) -> None:
        cmd = [sys.executable, "-m", "chatcluster", "up", "--config", str(self.config_path),
               "--role", child.role, "--id", str(child.id)]
        env = dict(os.environ, **{SUPERVISED_ENV: str(os.getpid())})
        child.proc = subprocess.Popen(cmd, env=env)
        child.started = time.monotonic()

    def wait_ready(self, timeout: float = 30.0) -> list[Child]:
        """Wait until every child answers on its control port; returns the ones that did not.

        The answer must come from the child itself (its pid), not from some
        other process that happens to hold the port; a child that exits
        during start-up fails the start at once.
        """
        deadline = time.monotonic() + timeout
        waiting = list(self.children)
        while waiting and time.monotonic() < deadline and not self.stopping:
            if any(c.proc is None or c.proc.poll() is not None for c in waiting):
                break
            waiting = [c for c in waiting if not self._answers(c)]
            if waiting:
                time.sleep(0.1)
        return waiting

    @staticmethod
    def _answers(child: Child) -> bool:
        try:
            return fetch_status(child.control, timeout=0.5).get("pid") == child.proc.pid
        except (OSError, ValueError, http.client.HTTPException):  # not up yet, or not our process answering
            return False

    def request_stop(self) -> None:
        self.stopping = True

    def run(self) -> None:
        """Watch the children until asked to stop."""
        while not self.stopping:
            now = time.monotonic()
            for child in self.children:
                proc = child.proc
                if proc is not None and proc.poll() is not None:
                    if now - child.started > STABLE_AFTER:
                        child.delay = FIRST_RESTART_DELAY
                    log.warning(" %s (pid %d) exited with status %s; restarting in %.1f s (restart #%d)",
                                child.name, proc.pid, proc.returncode, child.delay, child.restarts + 1)
                    child.proc = None
                    child.restart_at = now + child.delay
                    child.delay = min(child.delay * 2, MAX_RESTART_DELAY)
                elif proc is None and now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                    log.info(" %s restarted (pid %d)", child.name, child.proc.pid)
            time.sleep(0.1)

    def stop(self) -> None:
        """Gateways first (clients get SHUTTING_DOWN), then shards; SIGKILL whoever outstays the grace."""
        self.stopping = True
        for role in ("gateway", "shard"):
            group = [c for c in self.children if c.role == role and c.proc is not None and c.proc.poll() is None]
            for child in group:
                child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            for child in group:
                try:
                    child.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning(" %s (pid %d) did not stop in %.0f s; killing it", child.name, child.proc.pid,
                                STOP_GRACE)
                    child.proc.kill()
                    child.proc.wait()

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.children if c.proc is not None}
