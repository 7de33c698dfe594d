"""Process plumbing shared by the gateway and the shards: dying with the supervisor, stop signals, figures."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from chatcluster.common.histogram import LOOP_SECONDS, Histogram

PR_SET_PDEATHSIG = 1


def set_parent_death_signal(sig: int = signal.SIGTERM) -> None:
    """Linux: the kernel sends `sig` to this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def die_with_parent(parent: int | None = None) -> None:
    """Make sure this child never outlives the supervisor that started it.

    On Linux the kernel sends SIGTERM when the parent dies (prctl
    PR_SET_PDEATHSIG); elsewhere a watchdog thread notices the parent pid
    change. Either way a `kill -9` of `chatctl up` leaves no orphan behind.

    parent: the pid of the process that started us, as it told us. Without
    it, a supervisor that died before this call (CI saw one crash during
    start-up) would look like our parent already changed to init, and the
    child would watch the wrong pid forever.
    """
    if parent is None:
        parent = os.getppid()
    set_parent_death_signal()
    if os.getppid() != parent:  # died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def on_stop_signals(handler: Callable[[], None]) -> None:
    """Call handler on SIGTERM or SIGINT (Ctrl-C reaches every process of the terminal's group)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: handler())


def rss_bytes() -> int:
    """Resident set size of this process."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, AttributeError, ValueError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the peak, where nothing better exists
    return usage if sys.platform == "darwin" else usage * 1024


def tune_runtime(gc_watch: GcWatch, switch_interval: float = 0.0005) -> None:
    """Settings for a latency-sensitive process, called once start-up is done.

    - The GIL switch interval: a thread that wants the GIL waits for whoever
      holds it up to this long. The default 5 ms let a chat-log or database
      thread delay the main loop by 5 ms at a time.
    - gc.freeze(): everything allocated during start-up (modules, config,
      generated protobuf classes) moves out of the collector's way for good.
    - A larger first-generation threshold: the hot path allocates many
      short-lived objects that reference counting frees anyway.

    From here on `gc_watch` counts pauses as pauses of a serving process: the
    collection of start-up itself (tens of ms) served no one.
    """
    sys.setswitchinterval(switch_interval)
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    gc_watch.serving()


class Rates:
    """Per-second rates of growing counters, from one reading to the next."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, float]] | None = None

    def per_second(self, counters: dict[str, float]) -> dict[str, float]:
        """{name_per_s: rate} since the previous call (nothing on the first)."""
        now = time.monotonic()
        rates = {}
        if self._last is not None:
            then, before = self._last
            dt = max(now - then, 1e-6)
            rates = {f"{name}_per_s": (value - before.get(name, value)) / dt for name, value in counters.items()}
        self._last = (now, dict(counters))
        return rates


class GcWatch:
    """Collections and the pauses they cause, from gc.callbacks.

    CPython's cyclic collector stops the whole process; a chat server's tail
    latency is where its pauses show, so each process counts them. Pauses
    before serving() (imports, the deliberate collection before gc.freeze())
    are summed apart, in `start_up_ms`, so that `pause_max_ms` on an idle
    process is not its own start-up collection. The serving pauses also go
    into a histogram (`pause_seconds`), the form /metrics exports: a tail that
    adds up across processes. Collections never overlap, so this callback is
    its only writer whichever thread triggered it.
    """

    def __init__(self) -> None:
        self.collections = [0, 0, 0]
        self.pauses = 0
        self.pause_total = 0.0
        self.pause_max = 0.0
        self.pause_histogram = Histogram(LOOP_SECONDS)
        self.start_up = 0.0
        self._serving = False
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def serving(self) -> None:
        self._serving = True

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.collections[info.get("generation", 0)] += 1
        if not self._serving:
            self.start_up += pause
            return
        self.pauses += 1
        self.pause_total += pause
        self.pause_max = max(self.pause_max, pause)
        self.pause_histogram.observe(pause)

    def as_dict(self) -> dict[str, object]:
        return {"collections": sum(self.collections), "gen2": self.collections[2], "pauses": self.pauses,
                "pause_total_ms": self.pause_total * 1000, "pause_max_ms": self.pause_max * 1000,
                "start_up_ms": self.start_up * 1000, "pause_seconds": self.pause_histogram.as_dict()}


class ProcessFigures:
    """What every process reports about itself: pid, uptime, memory, CPU, GC."""

    def __init__(self) -> None:
        self.started = time.time()
        self.cpu = CpuMeter()
        self.gc = GcWatch()
        self.rates = Rates()

    def read(self) -> dict[str, object]:
        return {"pid": os.getpid(), "uptime_s": time.time() - self.started, "rss_bytes": rss_bytes(),
                "cpu_percent": self.cpu.read(), "gc": self.gc.as_dict()}


class CpuMeter:
    """CPU use of this process since the last reading, in percent of one core."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def read(self) -> float:
        cpu, wall = time.process_time(), time.monotonic()
        used = (cpu - self._cpu) / max(wall - self._wall, 1e-6) * 100
        self._cpu, self._wall = cpu, wall
        return used
