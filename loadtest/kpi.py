"""From the processes' counters and histograms to the seed's tables and KPIs (sans-I/O).

Each load-generator process reports, once a second on a common clock
("tick" k at start + k s), its cumulative counters and a histogram of the
latencies recorded since its last tick. The Aggregator here lines the ticks
of all processes up, turns differences into rates, merges histograms into
the rows printed every interval and into the whole measured window, and
finally adds the processes' end-of-run accounting (lost messages, ...).
"""

from __future__ import annotations

import os
from dataclasses import asdict

from hdrh.histogram import HdrHistogram

from .accounting import (
    CHURN_FIELDS,
    ERROR_FIELDS,
    add_counts,
    correctness_failures,
    decode_histogram,
    every_resume_in_window,
    latency_buckets,
    latency_summary,
    new_histogram,
    sub_counts,
)
from .profile import Profile

#: The seed's table, in its order, then what we add (p99.9, max).
ROW_RATES = (
    ("io_r_s", "io_r"),
    ("io_s_s", "io_s"),
    ("app_in_s", "app_in"),
    ("app_out_s", "deliveries"),
    ("bytes_r_s", "bytes_r"),
    ("bytes_s_s", "bytes_s"),
    ("bc_deliv_s", "deliveries"),
)
#: The load generator is behind when more than this share of its sends are late, or it sent too little.
LATE_SHARE_LIMIT = 0.01
SENT_RATIO_LIMIT = 0.99
CPU_SATURATED = 90.0  # % of one core


def rate_row(delta: dict[str, int], seconds: float, hist: HdrHistogram) -> dict:
    """One line of the seed's table: per-second rates of the counters, latency of the measured copies."""
    seconds = max(seconds, 1e-9)
    row: dict = {name: delta.get(field, 0) / seconds for name, field in ROW_RATES}
    lat = latency_summary(hist)
    row.update({"avg": lat["avg"], "p50": lat["p50"], "p90": lat["p90"], "p99": lat["p99"],
                "p99.9": lat["p99.9"], "max": lat["max"], "latency_count": lat["count"]})
    return row


def lag_figures(delta: dict[str, int]) -> dict[str, float]:
    sends = delta.get("app_in", 0)
    return {
        "lag_avg_us": delta.get("lag_sum_us", 0) / sends if sends else 0.0,
        "late": delta.get("late", 0),
        "late_share": delta.get("late", 0) / sends if sends else 0.0,
    }


def headline(window: dict[str, int], seconds: float, server_writes_per_s: float | None,
             final: dict[str, int] | None = None) -> dict:
    """The seed's headline KPIs over the measured window.

    send ops/s and the SG efficiency (deliveries per send op) are about the
    server's writes: the gateway's `writes` counter when its status is known,
    else the clients' reads (each read takes at least one server write, so
    that proxy can only overstate the ops and understate the efficiency).
    The fan-out is per measured message (its deliveries, whenever they came,
    over the messages), `final` being the end-of-run counts; `window` holds
    what happened between the window's first and last second.
    """
    final = final if final is not None else window
    seconds = max(seconds, 1e-9)
    throughput = window.get("app_in", 0) / seconds
    deliveries = window.get("deliveries", 0) / seconds
    if server_writes_per_s:
        send_ops, source = server_writes_per_s, "gateway writes"
    else:
        send_ops, source = window.get("io_r", 0) / seconds, "client reads (no server status)"
    measured = final.get("measured_sent", 0)
    churn = bool(final.get("drops", 0))
    return {
        "throughput_msgs_s": throughput,
        "bc_deliveries_s": deliveries,
        "bandwidth_out_MB_s": window.get("bytes_r", 0) / seconds / 1e6,
        "bandwidth_in_MB_s": window.get("bytes_s", 0) / seconds / 1e6,
        "fanout": final.get("delivered", 0) / measured if measured else None,
        # under churn: every bench client of the room, live or replayed (the live count is fanout_live_expected)
        "fanout_expected": (final.get("expected_all" if churn else "expected", 0) / measured
                            if measured else None),
        "fanout_live_expected": final.get("expected", 0) / measured if measured else None,
        "send_ops_s": send_ops,
        "send_ops_source": source,
        "sg_efficiency": deliveries / send_ops if send_ops else None,
    }


class Aggregator:
    """Lines up the ticks of P processes and keeps the figures of the run.

    Feed it `add_tick(worker, report)` as reports arrive (in any order between
    processes); a tick is complete once every process has reported it. Rows
    close every `interval` ticks of the measured window and at its end.
    """

    def __init__(self, profile: Profile, procs: int, cpus: int | None = None) -> None:
        self.profile = profile
        self.procs = procs
        self.cpus = cpus or os.cpu_count() or 1
        self.last_tick = profile.warmup + profile.duration
        self._pending: dict[int, dict[int, dict]] = {}
        self._next_k = 0
        self._cum_prev: dict[str, int] | None = None
        self._cpu_prev: dict[int, float] = {}
        self._row_hist = new_histogram()
        self._row_delta: dict[str, int] = {}
        self._row_start = profile.warmup
        self.total_hist = new_histogram()
        self.cum_at: dict[int, dict[str, int]] = {}
        self.ticks: list[dict] = []
        self.rows: list[dict] = []
        self.new_rows: list[dict] = []
        self.cpu_peak: dict[int, float] = {}
        self.lag_max_us = 0
        self._cpu_at: dict[int, dict[int, float]] = {}
        self._sys_at: dict[int, float] = {}
        self._row_ends = frozenset(self.row_ends())

    @property
    def done(self) -> bool:
        return self._next_k > self.last_tick

    def row_ends(self) -> list[int]:
        """The ticks at which a table row closes: every interval after warmup, and the window's end."""
        p = self.profile
        ends = list(range(p.warmup + p.interval, self.last_tick + 1, p.interval))
        if not ends or ends[-1] != self.last_tick:
            ends.append(self.last_tick)
        return ends

    def add_tick(self, worker: int, report: dict) -> list[dict]:
        """Take one process's tick; returns the ticks that became complete (usually 0 or 1)."""
        self._pending.setdefault(report["k"], {})[worker] = report
        done = []
        while len(self._pending.get(self._next_k, {})) == self.procs:
            done.append(self._complete(self._pending.pop(self._next_k)))
            self._next_k += 1
        return done

    def _complete(self, reports: dict[int, dict]) -> dict:
        k = self._next_k
        p = self.profile
        cum = add_counts(r["counts"] for r in reports.values())
        self.cum_at[k] = cum
        delta = sub_counts(cum, self._cum_prev) if self._cum_prev is not None else dict.fromkeys(cum, 0)
        self._cum_prev = cum
        hist = new_histogram()
        for r in reports.values():
            if r.get("hist"):
                hist.add(decode_histogram(r["hist"]))
        cpu = {}
        for w, r in sorted(reports.items()):
            prev = self._cpu_prev.get(w)
            cpu[w] = 100.0 * (r["cpu_s"] - prev) if prev is not None else 0.0
            self._cpu_prev[w] = r["cpu_s"]
        if k in (p.warmup, self.last_tick):
            self._cpu_at[k] = {w: r["cpu_s"] for w, r in reports.items()}
            self._sys_at[k] = sum(r.get("cpu_sys_s", 0.0) for r in reports.values())
        lag_max = max((r.get("lag_max_us", 0) for r in reports.values()), default=0)
        tick = {"k": k, "t": k - p.warmup, "phase": "measured" if k > p.warmup else "warmup",
                **rate_row(delta, 1.0, hist), **lag_figures(delta), "lag_max_us": lag_max,
                "cpu_percent": [round(cpu[w], 1) for w in sorted(cpu)]}
        self.ticks.append(tick)
        if k > p.warmup:
            self.lag_max_us = max(self.lag_max_us, lag_max)
            for w, v in cpu.items():
                self.cpu_peak[w] = max(self.cpu_peak.get(w, 0.0), v)
            self._row_hist.add(hist)
            self.total_hist.add(hist)
            self._row_delta = add_counts([self._row_delta, delta])
            if k in self._row_ends:
                seconds = k - self._row_start
                row = {"sec": k - p.warmup, "seconds": seconds, **rate_row(self._row_delta, seconds, self._row_hist),
                       **lag_figures(self._row_delta)}
                self.rows.append(row)
                self.new_rows.append(row)
                self._row_hist = new_histogram()
                self._row_delta = {}
                self._row_start = k
        return tick

    def take_new_rows(self) -> list[dict]:
        rows, self.new_rows = self.new_rows, []
        return rows

    def finish(self, finals: dict[int, dict], server_writes_per_s: float | None = None) -> dict:
        """The run's figures once every process has sent its end-of-run accounting."""
        p = self.profile
        for f in finals.values():
            if f.get("hist"):
                self.total_hist.add(decode_histogram(f["hist"]))
        final_counts = add_counts(f["counts"] for f in finals.values())
        start = self.cum_at.get(p.warmup, {})
        end = self.cum_at.get(self.last_tick, final_counts)
        window = sub_counts(end, start)
        seconds = float(p.duration)
        total_row = {"sec": p.duration, "seconds": seconds, **rate_row(window, seconds, self.total_hist)}
        correctness = {k: final_counts.get(k, 0) for k in ERROR_FIELDS}
        correctness.update({
            "measured_sent": final_counts.get("measured_sent", 0),
            "expected_deliveries": final_counts.get("expected", 0),
            "delivered": final_counts.get("delivered", 0),
            "own_received": final_counts.get("own_received", 0),
            "warmup_lost": final_counts.get("warmup_lost", 0),
            "completeness": (final_counts.get("delivered", 0) / final_counts["expected"]
                             if final_counts.get("expected") else None),
        })
        churn = p.churn > 0
        if churn:
            correctness["churn"] = {k: final_counts.get(k, 0) for k in CHURN_FIELDS}
            correctness["churn"]["every_resume_in_window"] = every_resume_in_window(final_counts)
            correctness["churn"]["judged"] = (
                "deliveries (live + replayed) == measured messages x the room's bench clients, and each "
                "client's seq without a hole or repeat across its connections; the live fan-out from the "
                "join/leave notices is shown, not judged")
            correctness["expected_deliveries"] = final_counts.get("expected_all", 0)
            correctness["expected_live_deliveries"] = final_counts.get("expected", 0)
            correctness["completeness"] = (final_counts.get("delivered", 0) / final_counts["expected_all"]
                                           if final_counts.get("expected_all") else None)
        failures = correctness_failures(final_counts, churn)
        loadgen = self._loadgen_health(window, seconds)
        return {
            "profile": {**asdict(p), "target_msgs_s": p.target_msgs_per_s,
                        "target_deliveries_s": p.target_deliveries_per_s, "expected_fanout": p.expected_fanout},
            "procs": self.procs,
            "rows": self.rows,
            "total": total_row,
            "kpi": headline(window, seconds, server_writes_per_s, final_counts),
            "latency": latency_summary(self.total_hist),
            "latency_buckets": latency_buckets(self.total_hist),
            "window_counts": window,
            "final_counts": final_counts,
            "correctness": correctness,
            "failures": failures,
            "loadgen": loadgen,
            "ticks": self.ticks,
            "errors_sample": [e for f in finals.values() for e in f.get("errors_sample", [])][:20],
            "ok": not failures,
        }

    def cpu_window(self) -> dict[int, float]:
        """Each process's mean CPU use over the measured window, in % of one core."""
        start, end = self._cpu_at.get(self.profile.warmup), self._cpu_at.get(self.last_tick)
        if not start or not end:
            return {}
        return {w: 100.0 * (end[w] - start[w]) / self.profile.duration for w in end if w in start}

    def cpu_per_delivery_us(self, window: dict[str, int]) -> dict[str, float | None]:
        """The load generator's CPU cost per delivery received (all processes), and the kernel's share of it."""
        cpu = self.cpu_window()
        deliveries = window.get("deliveries", 0)
        if not cpu or not deliveries:
            return {"cpu_us_per_delivery": None, "sys_share": None}
        total_s = sum(cpu.values()) / 100.0 * self.profile.duration
        sys_s = self._sys_at.get(self.last_tick, 0.0) - self._sys_at.get(self.profile.warmup, 0.0)
        return {"cpu_us_per_delivery": round(1e6 * total_s / deliveries, 3),
                "sys_share": round(sys_s / total_s, 3) if total_s > 0 else None}

    def _loadgen_health(self, window: dict[str, int], seconds: float) -> dict:
        p = self.profile
        # sends due while a client was reconnecting (--churn) are not the load generator's lag
        target = p.target_msgs_per_s * seconds - window.get("skipped_offline", 0)
        sent_ratio = window.get("app_in", 0) / target if target else 1.0
        lag = lag_figures(window)
        cpu = self.cpu_window()
        warnings = []
        behind = sent_ratio < SENT_RATIO_LIMIT or lag["late_share"] > LATE_SHARE_LIMIT
        hot = {w: v for w, v in cpu.items() if v >= CPU_SATURATED}
        if behind:
            what = (f"the load generator is the bottleneck: it fell behind its send schedule (sent "
                    f"{100 * sent_ratio:.1f} % of target, {100 * lag['late_share']:.1f} % of sends more than 10 ms "
                    f"late, max lag {self.lag_max_us / 1000:.0f} ms)")
            if hot and self.procs < self.cpus:
                what += f"; its processes are saturated: try --procs {self.procs + 1}"
            elif hot:
                what += (f"; its processes are saturated and there are no more cores ({self.cpus}) to spread them "
                         f"over: lower the load, or run the bench on another machine")
            else:
                what += ("; its processes are not saturated (" + ", ".join(f"#{w} {v:.0f} %" for w, v in
                                                                           sorted(cpu.items()))
                         + " of a core), so the machine's CPUs are: the bench competes with the server for them, "
                           "and its latency includes that wait")
            warnings.append(what)
        if hot:
            warnings.append(
                "load-generator process(es) " + ", ".join(f"#{w} {v:.0f} %" for w, v in sorted(hot.items()))
                + " of a core: latency includes their queueing")
        return {
            "sent_ratio": sent_ratio,
            **lag,
            "lag_max_us": self.lag_max_us,
            "cpu_percent": {str(w): round(v, 1) for w, v in sorted(cpu.items())},
            "cpu_peak_percent": {str(w): round(v, 1) for w, v in sorted(self.cpu_peak.items())},
            **self.cpu_per_delivery_us(window),
            "behind_schedule": behind,
            "warnings": warnings,
        }
