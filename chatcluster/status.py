"""`chatctl status`: one row per process of a running cluster, from each control endpoint."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from chatcluster.common.config import ClusterConfig
from chatcluster.common.control import fetch_status


def collect(config: ClusterConfig) -> list[dict[str, Any]]:
    """Every gateway's and shard's /status; a process that does not answer is a row saying so."""
    targets = [("gateway", g.id, g.control_host, g.control_port) for g in config.gateways]
    targets += [("shard", s.id, s.control_host, s.control_port) for s in config.shards]
    rows = []
    for role, node_id, host, port in targets:
        try:
            row = fetch_status((host, port))
            row["state"] = "up"
        except (OSError, ValueError) as exc:
            row = {"role": role, "id": node_id, "state": "unreachable", "error": str(exc)}
        row["control"] = f"http://{host}:{port}"
        row["metrics"] = f"http://{host}:{port}/metrics"
        rows.append(row)
    return rows


def _num(value: Any, fmt: str = ",.0f") -> str:
    return "-" if value is None else format(value, fmt)


def _get(row: dict, *path: str) -> Any:
    for key in path:
        if not isinstance(row, dict):
            return None
        row = row.get(key)
    return row


def _figure(header: str, *path: str) -> tuple[str, str, Callable[[dict], str]]:
    """A right-aligned column of the figure at `path` in a process's /status ("-" where it has none)."""
    return header, "right", lambda r: _num(_get(r, *path))


NAME = ("process", "left", lambda r: f"{r['role']} {r['id']}")
STATE = ("state", "left", lambda r: r["state"])

#: Two tables, one row per process each: the traffic, then the queues behind it.
TRAFFIC = [
    NAME, STATE,
    ("pid", "right", lambda r: _num(r.get("pid"), "d")),
    ("uptime", "right", lambda r: f"{r['uptime_s']:.0f}s" if "uptime_s" in r else "-"),
    _figure("sessions", "sessions"),
    _figure("rooms", "rooms"),
    _figure("members", "members"),
    _figure("msgs in/s", "msgs_in_per_s"),
    _figure("deliv/s", "deliveries_per_s"),
    _figure("send/s", "writes_per_s"),
    ("deliv/send", "right", lambda r: _num(r["deliveries_per_s"] / r["writes_per_s"], ".2f")
        if r.get("writes_per_s") else "-"),
    ("sendbuf KB (sess)", "right", lambda r: "-" if "send_buffer_bytes" not in r else
        f"{r['send_buffer_bytes'] / 1024:,.0f} ({r['send_buffer_sessions']})"),
    ("peak KB (sess)", "right", lambda r: "-" if "send_buffer_peak_bytes" not in r else
        f"{r['send_buffer_peak_bytes'] / 1024:,.0f} ({r['send_buffer_peak_sessions']})"),
    ("RSS MB", "right", lambda r: _num(r.get("rss_bytes") and r["rss_bytes"] / 1e6, ",.1f")),
    _figure("CPU%", "cpu_percent"),
]
QUEUES = [
    NAME, STATE,
    _figure("zmq in/s", "zmq_in_per_s"),
    _figure("zmq out/s", "zmq_out_per_s"),
    _figure("zmq queue", "zmq", "backlog"),
    _figure("writer blocked", "writer", "blocked_now"),  # sessions with a full socket
    # A gateway's jobs are the client frames it takes in, a shard's the envelopes it executes.
    ("jobs/s", "right", lambda r: _num(r.get("envelopes_per_s", r.get("frames_in_per_s")))),
    _figure("q-peak", "jobs_peak"),
    ("db use/size", "right", lambda r: _pool(r)),
    ("db wait max ms", "right", lambda r: _num(_pool_stat(r, "acquire_wait_max_ms"), ".1f")),
    _figure("chatlog backlog", "chatlog", "backlog"),
    ("history MB (msgs)", "right", lambda r: "-" if not isinstance(r.get("history"), dict) else
        f"{r['history']['bytes'] / 1e6:,.1f} ({r['history']['messages']:,})"),
    ("gc pauses (max ms)", "right", lambda r: "-" if "gc" not in r else
        f"{r['gc']['pauses']:,} ({r['gc']['pause_max_ms']:.0f})"),
    ("metrics", "left", lambda r: r["metrics"]),
]


#: What the bounds refused or dropped, and the faults handled, since each process started.
LIMITS = [
    NAME, STATE,
    _figure("slow cons.", "slow_consumers"),
    _figure("rate ltd", "rate_limited"),
    _figure("floods", "floods"),
    _figure("login thr.", "login_throttled"),
    _figure("login busy", "logins_refused_busy"),
    _figure("conn ref.", "connections_refused"),
    _figure("login t/o", "login_timeouts"),
    _figure("proto err", "protocol_errors"),
    _figure("refused", "refused"),
    _figure("unavail.", "unavailable"),
    ("rebuilds", "right", lambda r: _num(r.get("rebuilds", r.get("rooms_rebuilt")))),
    _figure("zmq drop", "zmq", "dropped"),
    _figure("log drop", "chatlog", "db_dropped"),
    _figure("hist evicted", "history", "evicted"),
]


#: The gateways' HTTP ports: WebSocket sessions, what their handshakes and messages ran into.
WEB = [
    NAME, STATE,
    ("http", "left", lambda r: (r.get("http_listen") or "-") + (" tls" if r.get("tls") else "")),
    _figure("ws open", "websocket", "open"),
    _figure("ws handshakes", "websocket", "handshakes"),
    ("ws refused", "right", lambda r: _num(_sum(r, "refused_origin", "refused_handshake", "handshake_too_large",
                                               "handshake_timeouts"))),
    _figure("ws msgs in", "websocket", "messages_in"),
    _figure("ws msgs out", "websocket", "messages_out"),
    ("ws bad msgs", "right", lambda r: _num(_sum(r, "json_bad", "split_frames", "wrong_message_type",
                                                "invalid_utf8", "too_big", "protocol_errors"))),
    _figure("pings", "websocket", "pings"),
    _figure("ping t/o", "websocket", "ping_timeouts"),
    _figure("pages", "websocket", "pages"),
]


#: The gateways' operator API (docs/API.md): calls answered, and requests refused before they did anything.
API = [
    NAME, STATE,
    ("api", "left", lambda r: "on" if _get(r, "api", "enabled") else "off"),
    _figure("calls", "api", "calls"),
    _figure("ok", "api", "ok"),
    _figure("failed", "api", "failed"),
    _figure("t/o (504)", "api", "timeouts"),
    _figure("no key (401)", "api", "unauthorized"),
    _figure("bad (400)", "api", "bad_requests"),
    _figure("too big (413)", "api", "too_large"),
    _figure("rate (429)", "api", "rate_limited"),
]


def _sum(row: dict, *keys: str) -> int | None:
    web = row.get("websocket")
    return sum(web[k] for k in keys) if web else None


def _pool_stat(row: dict, key: str) -> Any:
    pool = row.get("db_pool") or _get(row, "chatlog", "db_pool")
    return pool.get(key) if pool else None


def _pool(row: dict) -> str:
    pool = row.get("db_pool") or _get(row, "chatlog", "db_pool")
    return f"{pool['in_use']}/{pool['size']}" if pool else "-"


def table(rows: list[dict[str, Any]], columns: list, title: str = "") -> Table:
    out = Table(title=title, title_justify="left", header_style="bold")
    for header, justify, _ in columns:
        out.add_column(header, justify=justify, no_wrap=True)
    for row in rows:
        if row["state"] != "up":  # shown, not hidden: which process, and why
            cells = [f"{row['role']} {row['id']}", row["state"]]
            cells += [row.get("error", "")[:60]] + ["-"] * (len(columns) - 3)
            out.add_row(*cells[:len(columns)], style="red")
        else:
            out.add_row(*(get(row) for _, _, get in columns))
    return out


def tables(rows: list[dict[str, Any]], title: str = "") -> Group:
    gateways = [r for r in rows if r["role"] == "gateway"]
    parts = [table(rows, TRAFFIC, title), table(rows, QUEUES), table(rows, LIMITS), table(gateways, WEB)]
    if any(_get(r, "api", "enabled") for r in gateways):  # only where an operator turned the API on
        parts.append(table(gateways, API))
    return Group(*parts)


def run(config_path: Path, as_json: bool, watch: bool, interval: float = 1.0) -> int:
    """Print the status once (or, with watch, refresh it in place until Ctrl-C); 1 if a process is down."""
    config = ClusterConfig.load(config_path)
    console = Console() if Console().is_terminal else Console(width=200)
    if as_json and not watch:
        rows = collect(config)
        print(json.dumps({"processes": rows}, indent=2))
        return 0 if all(r["state"] == "up" for r in rows) else 1
    if not watch:
        rows = collect(config)
        console.print(tables(rows))
        return 0 if all(r["state"] == "up" for r in rows) else 1
    try:
        with Live(console=console, auto_refresh=False) as live:
            while True:
                rows = collect(config)
                live.update(tables(rows, title=time.strftime("%H:%M:%S  (Ctrl-C to stop)")), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        return 0
