"""How a bench run looks: rich tables (live in a terminal, plain lines in a log), JSON and a plot.

The tables are the seed's: the workload table (sec, io r/s, io s/s, app in/s,
app out/s, bytes r/s, bytes s/s, bc-deliv/s, avg, p50, p90, p99 in us, plus
p99.9 and max), the headline KPIs, the latency bins, and the server's queues
and buffers.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .accounting import BUCKETS_US, OVER_LABEL
from .profile import PayloadMix, Profile

WORKLOAD_COLUMNS = (
    ("sec", "sec"), ("io r/s", "io_r_s"), ("io s/s", "io_s_s"), ("app in/s", "app_in_s"),
    ("app out/s", "app_out_s"), ("bytes r/s", "bytes_r_s"), ("bytes s/s", "bytes_s_s"),
    ("bc-deliv/s", "bc_deliv_s"), ("avg(µs)", "avg"), ("p50(µs)", "p50"), ("p90(µs)", "p90"),
    ("p99(µs)", "p99"), ("p99.9(µs)", "p99.9"), ("max(µs)", "max"),
)
SERVER_COLUMNS = (
    ("sec", "sec"), ("job enq/s", "job_enq_s"), ("job exec/s", "job_exec_s"), ("q-peak", "q_peak"),
    ("zmq backlog", "zmq_backlog_max"), ("sendbuf KiB", "sendbuf_inuse_bytes"),
    ("sendbuf peak KiB", "sendbuf_peak_bytes"), ("db in use", "db_in_use_peak"), ("db size", "db_pool_size"),
    ("db waits", "db_waits"), ("chat-log backlog", "chatlog_backlog_peak"), ("loop lag ms", "loop_lag_ms_peak"),
    ("GC ms", "gc_pause_ms"), ("gw writes/s", "gw_writes_s"), ("srv CPU %", "cpu_percent"),
)
KIB_KEYS = {"sendbuf_inuse_bytes", "sendbuf_peak_bytes"}
#: --transport values and how the report names them.
TRANSPORTS = {
    "tcp": "TCP",
    "ws": "WebSocket binary (chatcluster.v1)",
    "ws-json": "WebSocket JSON (chatcluster.json.v1)",
}


def transport_label(transport: str, tls: bool) -> str:
    """What the clients spoke, for the headings: "TCP", "WebSocket JSON (chatcluster.json.v1) with TLS"..."""
    return TRANSPORTS[transport] + (" with TLS" if tls else "")


def fmt(value: object, key: str = "") -> str:
    """A figure as the tables show it: thousands separators, '-' for a figure the server does not report."""
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if key in KIB_KEYS:
        return f"{value / 1024:,.1f}"  # type: ignore[operator]
    if key in ("loop_lag_ms_peak", "cpu_percent", "gc_pause_ms"):
        return f"{value:,.1f}"
    if key == "sec":
        return f"{value}s"
    if isinstance(value, float):
        return f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def workload_table(rows: list[dict], total: dict | None = None, title: str = "Workload & performance") -> Table:
    table = Table(title=title, title_justify="left", show_lines=False, header_style="bold")
    for label, _ in WORKLOAD_COLUMNS:
        table.add_column(label, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(fmt(row.get(key), key) for _, key in WORKLOAD_COLUMNS))
    if total is not None:
        table.add_row(*(("total" if key == "sec" else fmt(total.get(key), key)) for _, key in WORKLOAD_COLUMNS),
                      style="bold")
    return table


def server_table(rows: list[dict], total: dict | None = None) -> Table:
    table = Table(title="Server queues & buffers (from /status)", title_justify="left", header_style="bold")
    for label, _ in SERVER_COLUMNS:
        table.add_column(label, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(fmt(row.get(key), key) for _, key in SERVER_COLUMNS))
    if total is not None:
        table.add_row(*(("total" if key == "sec" else fmt(total.get(key), key)) for _, key in SERVER_COLUMNS),
                      style="bold")
    return table


def _ms(us: object) -> str:
    return "-" if us is None else f"{us / 1000:.3f} ms"  # type: ignore[operator]


def render_result(console: Console, result: dict) -> None:
    """The end-of-run report: tables, KPIs, latency bins, correctness (red when anything is off), warnings."""
    p = result["profile"]
    run = result.get("run", {})
    mix = PayloadMix.parse(p["mix"]).describe()
    console.print(Text(f"Transport: {run.get('via', 'TCP')}", style="bold"))
    console.print(Text(
        f"Workload: {p['clients']} clients, {p['rooms']} rooms, {p['rps']:g} msgs/s per client "
        f"(target {p['target_msgs_s']:,.0f} msgs/s, {p['target_deliveries_s']:,.0f} deliveries/s), "
        f"payload {mix}; warmup {p['warmup']} s, measured {p['duration']} s; "
        f"{result['procs']} load-generator process(es); setup {run.get('setup_s', 0):.1f} s", style="bold"))
    console.print(workload_table(result["rows"], result["total"]))

    k = result["kpi"]
    lat = result["latency"]
    kpi = Table(title="Headline KPIs", title_justify="left", show_header=False, box=None)
    kpi.add_column(style="bold")
    kpi.add_column(justify="right")
    kpi.add_row("Throughput (app in/s)", f"{k['throughput_msgs_s']:,.2f}")
    kpi.add_row("Broadcast (bc-deliv/s)", f"{k['bc_deliveries_s']:,.0f}")
    kpi.add_row("Bandwidth (out MB/s)", f"{k['bandwidth_out_MB_s']:,.2f}")
    fan = k["fanout"]
    kpi.add_row("Fan-out", "-" if fan is None else f"x{fan:.2f}"
                + ("" if k["fanout_expected"] is None else f" (expected x{k['fanout_expected']:.2f})"))
    kpi.add_row("I/O send ops/s", f"{k['send_ops_s']:,.0f} ({k['send_ops_source']})")
    sg = k["sg_efficiency"]
    kpi.add_row("SG efficiency (deliveries per send op)", "-" if sg is None else f"{sg:.3f}")
    kpi.add_row("Latency avg | p50 | p90 | p99 | p99.9 | max",
                " | ".join(_ms(lat[x]) for x in ("avg", "p50", "p90", "p99", "p99.9", "max")))
    console.print(kpi)
    b = result["latency_buckets"]
    labels = [label for _, label in BUCKETS_US] + [OVER_LABEL]
    console.print("Latency bins: " + " | ".join(f"{label}: {b.get(label, 0):,}" for label in labels)
                  + f"  ({lat['count']:,} measured messages over {p['duration']} s)")

    server = result.get("server", {})
    if server.get("endpoints"):
        console.print(server_table(server.get("rows", []), server.get("total")))
    else:
        console.print(Text("Server queues & buffers: no status endpoints (pass --data-dir)", style="yellow"))

    hist = [h for h in server.get("history", []) if isinstance(h, dict)]
    if hist:
        console.print("Shards' history at the end (/status): " + ", ".join(
            f"{h.get('bytes', 0) / 1e6:.1f} MB ({h.get('messages', 0):,} msgs, evicted {h.get('evicted', 0):,})"
            for h in hist))
    c = result["correctness"]
    ok = result["ok"]
    style = "green" if ok else "bold red"
    completeness = c["completeness"]
    console.print(Text(
        f"Correctness: lost {c['lost']}, gaps {c['gaps']}, reorders {c['reorders']}, duplicates {c['duplicates']}, "
        f"deliveries {c['delivered']:,} of {c['expected_deliveries']:,} expected"
        + ("" if completeness is None else f" ({100 * completeness:.3f} %)")
        + f", S_ERROR {c['errors']}, dead {c['dead']}, unknown own ids {c['unknown_own']}, "
          f"wrong room {c['wrong_room']}, undecodable {c['undecodable']}, unsent {c['unsent']}", style=style))
    churn = c.get("churn")
    if churn is not None:
        bad = any(result["failures"].get(k) for k in ("missed", "resumes_in_window_not_recovered", "duplicates",
                                                       "missing_deliveries", "extra_deliveries"))
        console.print(Text(
            f"Churn ({run.get('churn', 0):g}/s): {churn['drops']:,} drops, {churn['resumes']:,} resumes "
            f"({churn['resumes_recovered']:,} recovered, {churn['resumes_not_recovered']:,} not, of which "
            f"{churn['resumes_in_window_not_recovered']:,} within the window), missed {churn['missed']:,}, "
            f"duplicates {c['duplicates']}, replayed {churn['replayed']:,}, resent {churn['resent']:,} "
            f"({churn['lost_at_drop']:,} went down with their connection), "
            f"resend echoes {churn['resend_echoes']:,}; retries: resume {churn['resume_retries']:,}, login "
            f"{churn['relogin_retries']:,}; sends skipped while away {churn['skipped_offline']:,}",
            style="bold red" if bad else "green"))
        console.print(Text(
            f"  judged under churn: {churn['judged']} (live fan-out from the notices: "
            f"{c.get('expected_live_deliveries', 0):,}); own copies that came by a replay or a resend are not "
            f"timed ({churn['own_recovered']:,})"
            + ("" if churn["every_resume_in_window"] else
               "; some resumes were outside the window (recovered = false for a reason of their own): misses "
               "and missing deliveries are reported, not failed"), style="dim"))
    for name, value in result["failures"].items():
        console.print(Text(f"FAIL: {name} = {value:,}", style="bold red"))
    for line in result.get("errors_sample", []):
        console.print(Text(f"  {line}", style="red"))

    lg = result["loadgen"]
    cpu = ", ".join(f"#{w} {v:.0f} %" for w, v in lg["cpu_percent"].items()) or "-"
    per_delivery = ""
    if lg.get("cpu_us_per_delivery") is not None:
        per_delivery = (f" ({lg['cpu_us_per_delivery']:.2f} µs per delivery, "
                        f"{100 * (lg['sys_share'] or 0):.0f} % of it in the kernel)")
    console.print(f"Load generator: sent {100 * lg['sent_ratio']:.2f} % of target, send lag avg "
                  f"{lg['lag_avg_us'] / 1000:.2f} ms, max {lg['lag_max_us'] / 1000:.1f} ms, "
                  f"{lg['late']:,} sends > 10 ms late; CPU {cpu} of a core{per_delivery}")
    for warning in lg["warnings"]:
        console.print(Text(f"WARNING: {warning}", style="bold yellow"))
    if ok and churn is not None and not churn["every_resume_in_window"]:
        console.print(Text("OK, as far as the resumes could recover: no gap, reorder, duplicate or error; "
                           f"{churn['resumes_not_recovered']:,} resumes were outside the window, and what they "
                           "missed is reported above, not failed.", style="bold yellow"))
    elif ok:
        console.print(Text("OK: every measured message came back; no gap, reorder, duplicate or error.",
                           style="bold green"))


def write_json(path: str | Path, result: dict) -> None:
    Path(path).write_text(json.dumps(result, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")


def write_plot(path: str | Path, result: dict) -> None:
    """Throughput and latency percentiles per second over the run (matplotlib: the optional `plot` extra)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError("--plot needs matplotlib: pip install 'chatcluster[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ticks = [t for t in result["ticks"] if t["k"] > 0]
    xs = [t["t"] for t in ticks]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    ax1.plot(xs, [t["app_in_s"] for t in ticks], label="app in/s (msgs sent)")
    ax1.set_ylabel("msgs/s")
    ax1b = ax1.twinx()
    ax1b.plot(xs, [t["bc_deliv_s"] for t in ticks], color="tab:orange", label="bc-deliv/s")
    ax1b.set_ylabel("deliveries/s")
    ax1.set_ylim(bottom=0)   # from zero: a steady rate must look steady, not like noise magnified
    ax1b.set_ylim(bottom=0)
    lines = ax1.get_legend_handles_labels()
    lines2 = ax1b.get_legend_handles_labels()
    ax1.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="lower right")
    ax1.axvline(0, color="grey", linestyle=":", linewidth=1)
    ax1.set_title(_plot_title(result))
    for key in ("p50", "p90", "p99", "p99.9", "max"):
        ys = [t[key] / 1000 if t[key] is not None else float("nan") for t in ticks]
        ax2.plot(xs, ys, label=key)
    ax2.set_yscale("log")
    ax2.set_ylabel("latency (ms)")
    ax2.set_xlabel("seconds since the measured window began (warmup < 0)")
    ax2.axvline(0, color="grey", linestyle=":", linewidth=1)
    ax2.legend(loc="upper right")
    ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_title(result: dict) -> str:
    p = result["profile"]
    via = result.get("run", {}).get("via", "TCP")
    return (f"chatctl bench ({via}): {p['clients']} clients, {p['rooms']} rooms, {p['rps']:g} rps "
            f"-> {result['kpi']['bc_deliveries_s']:,.0f} deliveries/s, p99 {_ms(result['latency']['p99'])}")


# ---------------------------------------------------------------------------- during the run

def _started_line(profile: Profile, procs: int, host: str, port: int, via: str) -> str:
    return (f"bench: {profile.clients} clients, {profile.rooms} rooms, {profile.rps:g} rps against {host}:{port} "
            f"over {via}, {procs} load-generator process(es), run tag {profile.runtag}")


class PlainDisplay:
    """Line by line, for logs and CI: setup steps, then a workload row every interval."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._last_setup: tuple[str, int] | None = None
        self._last_print = 0.0
        self._header = False
        self._warned_late = False

    def setup(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if (done == total or now - self._last_print >= 5.0) and self._last_setup != (phase, done):
            self.console.print(f"setup: {phase} {done}/{total}")
            self._last_print = now
            self._last_setup = (phase, done)

    def started(self, profile: Profile, procs: int, host: str, port: int, via: str = "TCP") -> None:
        self.console.print(_started_line(profile, procs, host, port, via))

    def tick(self, tick: dict) -> None:
        if tick["phase"] == "measured" and tick["late_share"] > 0.01 and not self._warned_late:
            self._warned_late = True
            self.console.print(Text(
                f"WARNING: the load generator is behind its send schedule ({100 * tick['late_share']:.0f} % of "
                f"sends > 10 ms late, CPU {tick['cpu_percent']} %)", style="bold yellow"))

    def row(self, row: dict, server: dict) -> None:
        if not self._header:
            self._header = True
            self.console.print("  ".join(label for label, _ in WORKLOAD_COLUMNS))
        self.console.print("  ".join(fmt(row.get(key), key) for _, key in WORKLOAD_COLUMNS))

    def note(self, text: str, style: str = "") -> None:
        self.console.print(Text(text, style=style))

    def close(self) -> None:
        pass


class RichDisplay:
    """A live view in a terminal: a progress bar for setup and for the run, the rows so far, the last second."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f}/"
                                 "{task.total:,.0f}"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        self.tasks: dict[str, TaskID] = {}
        self.rows: list[dict] = []
        self.server_rows: list[dict] = []
        self.last_tick: dict | None = None
        self.warning: str | None = None
        self.run_total = 0
        self.live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
        self.live.start()

    def _render(self) -> Group:
        parts: list = [self.progress]
        if self.rows:
            parts.append(workload_table(self.rows[-12:], title="Workload & performance (every interval)"))
            if any(r.get("samples") for r in self.server_rows):
                parts.append(server_table(self.server_rows[-12:]))
        if self.last_tick is not None:
            t = self.last_tick
            parts.append(Text(
                f"last second ({t['phase']}): app in/s {t['app_in_s']:,.0f}, bc-deliv/s {t['bc_deliv_s']:,.0f}, "
                f"p50 {fmt(t['p50'])} µs, p99 {fmt(t['p99'])} µs, send lag avg {t['lag_avg_us'] / 1000:.2f} ms, "
                f"load-gen CPU {t['cpu_percent']} %"))
        if self.warning:
            parts.append(Text(self.warning, style="bold yellow"))
        return Group(*parts)

    def _task(self, name: str, total: float) -> TaskID:
        if name not in self.tasks:
            self.tasks[name] = self.progress.add_task(name, total=total)
        return self.tasks[name]

    def setup(self, phase: str, done: int, total: int) -> None:
        self.progress.update(self._task(f"setup: {phase}", max(total, 1)), completed=done)
        self.live.update(self._render())

    def started(self, profile: Profile, procs: int, host: str, port: int, via: str = "TCP") -> None:
        self.run_total = profile.send_seconds
        self.console.print(_started_line(profile, procs, host, port, via))

    def tick(self, tick: dict) -> None:
        self.last_tick = tick
        self.progress.update(self._task("run (s)", self.run_total), completed=tick["k"])
        if tick["phase"] == "measured" and tick["late_share"] > 0.01:
            self.warning = (f"WARNING: the load generator is behind its send schedule "
                            f"({100 * tick['late_share']:.0f} % of sends > 10 ms late at {tick['t']} s)")
        self.live.update(self._render())

    def row(self, row: dict, server: dict) -> None:
        self.rows.append(row)
        self.server_rows.append({"sec": row["sec"], **server})
        self.live.update(self._render())

    def note(self, text: str, style: str = "") -> None:
        self.console.print(Text(text, style=style))

    def close(self) -> None:
        self.live.stop()
