"""Writes chatcluster.json, the Grafana dashboard of a chatcluster, from the panel list below.

    python deploy/grafana/dashboard.py        # after editing a panel; tests/unit/test_metrics_dashboard.py
                                              # fails while chatcluster.json is not what this writes

A generator rather than hand-edited JSON: Grafana's JSON is mostly layout and
defaults, so the queries (the part that must match common/metrics.py) would drown
in it. The file it writes is import-ready: Dashboards > New > Import asks for the
Prometheus data source (`${DS_PROMETHEUS}`), and a `job` variable picks the scrape
jobs of one cluster. The panels follow the load test's KPI tables (loadtest/report.py):
traffic, latency (server-side, from the histograms), queues and buffers, the limits
that bit, then links, processes, WebSocket, the operator API and history.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).with_name("chatcluster.json")
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
SEL = '{job=~"$job"}'
RATE = "$__rate_interval"
WHO = "{{role}} {{id}}"


def sel(extra: str = "") -> str:
    """A series selector of the chosen jobs, with more matchers if given."""
    return f'{{job=~"$job"{", " + extra if extra else ""}}}'


def rate(metric: str, extra: str = "", by: str = "") -> str:
    inner = f"rate({metric}{sel(extra)}[{RATE}])"
    return f"sum by ({by}) ({inner})" if by else f"sum({inner})"


def quantiles(metric: str, qs: tuple[float, ...] = (0.5, 0.9, 0.99), by: str = "",
              legend: str = "") -> list[dict]:
    """histogram_quantile over every process's buckets summed: the cluster's percentile, not an average of them."""
    group = f"le, {by}" if by else "le"
    return [target(f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{SEL}[{RATE}])))",
                   f"p{q * 100:g}" + (f" {legend}" if legend else "")) for q in qs]


def per_process(expr: str) -> str:
    """A standard process_* series (no role/id labels) with its process's role and id, from chatcluster_process_info."""
    return (f"sum by (role, id) ({expr} * on (job, instance) group_left (role, id) "
            f"chatcluster_process_info{SEL})")


def target(expr: str, legend: str = "") -> dict:
    return {"expr": expr, "legendFormat": legend or "__auto"}


def timeseries(title: str, targets: list[dict], unit: str = "short", description: str = "", w: int = 8,
               h: int = 8, stack: bool = False, min_zero: bool = True) -> dict:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": False,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    defaults: dict = {"unit": unit, "custom": custom}
    if min_zero:
        defaults["min"] = 0
    return {"type": "timeseries", "title": title, "description": description, "targets": targets, "w": w, "h": h,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}}}


def stat(title: str, expr: str, unit: str = "short", description: str = "", w: int = 4, h: int = 4) -> dict:
    return {"type": "stat", "title": title, "description": description, "targets": [target(expr, title)],
            "w": w, "h": h,
            "fieldConfig": {"defaults": {"unit": unit, "decimals": 0 if unit == "short" else None,
                                         "thresholds": {"mode": "absolute",
                                                        "steps": [{"color": "green", "value": None}]}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                        "colorMode": "value", "graphMode": "area", "justifyMode": "auto", "textMode": "auto"}}


def heatmap(title: str, metric: str, description: str = "", w: int = 8, h: int = 8) -> dict:
    expr = f"sum by (le) (increase({metric}_bucket{SEL}[{RATE}]))"
    return {"type": "heatmap", "title": title, "description": description, "w": w, "h": h,
            "targets": [{**target(expr, "{{le}}"), "format": "heatmap"}],
            "fieldConfig": {"defaults": {"unit": "s"}, "overrides": []},
            "options": {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1,
                        "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
                        "tooltip": {"show": True, "yHistogram": True}}}


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "w": 24, "h": 1}


LIMITS = (  # (counter, legend): the seed's limits counters, what `chatctl status` shows in its third table
    ("chatcluster_gateway_slow_consumers_total", "slow consumers"),
    ("chatcluster_gateway_rate_limited_total", "rate limited"),
    ("chatcluster_gateway_floods_total", "floods"),
    ("chatcluster_gateway_login_throttled_total", "logins throttled"),
    ("chatcluster_gateway_logins_refused_busy_total", "logins busy"),
    ("chatcluster_gateway_connections_refused_total", "connections refused"),
    ("chatcluster_gateway_login_timeouts_total", "login timeouts"),
    ("chatcluster_gateway_protocol_errors_total", "protocol errors"),
    ("chatcluster_gateway_unavailable_total", "unavailable"),
    ("chatcluster_gateway_request_timeouts_total", "shard answer timeouts"),
    ("chatcluster_shard_refused_total", "refused by shards"),
    ("chatcluster_gateway_rebuilds_total", "rebuilds"),
    ("chatcluster_zmq_dropped_messages_total", "zmq dropped"),
    ("chatcluster_chatlog_dropped_messages_total", "chat log dropped"),
    ("chatcluster_history_evicted_messages_total", "history evicted"),
)


def panels() -> list[dict]:
    """Every panel, top to bottom; rows start a new line, panels fill 24 columns left to right."""
    return [
        row("Traffic (the load test's workload table)"),
        stat("Sessions", f"sum(chatcluster_gateway_sessions{SEL})", description="Client sessions on every gateway."),
        stat("Rooms", f"sum(chatcluster_shard_rooms{SEL})", description="Rooms held by the shards."),
        stat("Members", f"sum(chatcluster_shard_members{SEL})", description="Room memberships, all rooms."),
        stat("Messages in/s", rate("chatcluster_shard_chats_total"), "short",
             "Chats the shards accepted and broadcast, per second (app in/s)."),
        stat("Deliveries/s", rate("chatcluster_gateway_deliveries_total"), "short",
             "Broadcast frames queued for members, per second (bc-deliv/s)."),
        stat("Processes", f"count(chatcluster_process_info{SEL})", description="Gateways and shards scraped."),
        timeseries("Messages per second", [
            target(rate("chatcluster_gateway_chats_received_total"), "chats from clients (job enq/s)"),
            target(rate("chatcluster_shard_chats_total"), "chats broadcast by shards"),
            target(rate("chatcluster_shard_envelopes_total"), "envelopes executed by shards (job exec/s)"),
        ], "short", "What the clients sent, what the shards sequenced, and all the work the shards did."),
        timeseries("Deliveries and socket writes per second", [
            target(rate("chatcluster_gateway_deliveries_total"), "deliveries (bc-deliv/s)"),
            target(rate("chatcluster_gateway_writes_total"), "socket writes (I/O send ops/s)"),
            target(rate("chatcluster_websocket_messages_sent_total"), "WebSocket messages sent"),
        ], "short", "Each write carries every frame a session got in one loop pass."),
        timeseries("Deliveries per socket write (SG efficiency)", [
            target(f"{rate('chatcluster_gateway_deliveries_total')} / {rate('chatcluster_gateway_writes_total')}",
                   "deliveries per write"),
        ], "short", "The load test's scatter-gather efficiency: above 1, writes are coalesced."),
        timeseries("Bandwidth", [
            target(rate("chatcluster_gateway_sent_bytes_total"), "to clients"),
            target(rate("chatcluster_zmq_sent_bytes_total", by="role"), "ZeroMQ out: {{role}}s"),
            target(rate("chatcluster_websocket_received_bytes_total"), "WebSocket in"),
        ], "Bps", "Bytes per second handed to client connections and to ZeroMQ."),
        timeseries("Logins per second", [
            target(rate("chatcluster_gateway_logins_total"), "succeeded"),
            target(rate("chatcluster_gateway_login_failures_total"), "refused"),
            target(rate("chatcluster_gateway_connections_accepted_total"), "connections accepted"),
            target(rate("chatcluster_gateway_sessions_closed_total"), "sessions closed"),
        ], "short"),
        timeseries("Sessions, players and members", [
            target(f"sum by (role, id) (chatcluster_gateway_sessions{SEL})", "sessions: gateway {{id}}"),
            target(f"sum by (role, id) (chatcluster_gateway_players{SEL})", "players: gateway {{id}}"),
            target(f"sum by (role, id) (chatcluster_shard_members{SEL})", "members: shard {{id}}"),
        ], "short"),

        row("Latency (server side, from the histograms, every process's buckets together)"),
        timeseries("Gateway loop pass (flush) duration",
                   quantiles("chatcluster_gateway_flush_duration_seconds", (0.5, 0.9, 0.99, 0.999)), "s",
                   "Time to carry out one loop pass's output: envelopes to the shards, writes, effects."),
        heatmap("Gateway loop pass duration (heatmap)", "chatcluster_gateway_flush_duration_seconds"),
        timeseries("Gateway event-loop lag",
                   quantiles("chatcluster_gateway_loop_lag_seconds", (0.5, 0.99, 0.999)), "s",
                   "How late a 20 ms timer fires: what any callback waits beyond its turn."),
        timeseries("Shard wake-up handling time",
                   quantiles("chatcluster_shard_batch_duration_seconds", (0.5, 0.9, 0.99, 0.999)), "s",
                   "Time a shard takes to execute one wake-up's envelopes and hand the answers to ZeroMQ."),
        timeseries("Envelopes per shard wake-up (q-peak)",
                   quantiles("chatcluster_shard_batch_envelopes", (0.5, 0.99, 1.0)), "short",
                   "How much work one wake-up carries; p100 is the bucket of the largest."),
        timeseries("Login duration", quantiles("chatcluster_gateway_login_duration_seconds", (0.5, 0.9, 0.99)), "s",
                   "From a login request to its answer: database steps and the password hash on the thread pools."),
        timeseries("Thread pools: queue wait and run time", [
            *quantiles("chatcluster_gateway_thread_pool_queue_wait_seconds", (0.99,), "pool", "wait {{pool}}"),
            *quantiles("chatcluster_gateway_thread_pool_run_seconds", (0.5, 0.99), "pool", "run {{pool}}"),
        ], "s", "db: database steps of logins and room ids; hash: password hashing."),
        timeseries("DB pool acquire wait",
                   quantiles("chatcluster_db_pool_acquire_wait_seconds", (0.5, 0.99), "pool", "{{pool}}"), "s",
                   "How long a caller waited for a free database connection (db: gateways, chatlog: shards)."),
        timeseries("Chat-log database batch write",
                   quantiles("chatcluster_chatlog_db_write_duration_seconds", (0.5, 0.99)), "s",
                   "Time one multi-row batch of the chat log took to write to the database."),

        row("Queues and buffers (the load test's server table)"),
        timeseries("ZeroMQ backlog", [
            target(f"sum by (role, id) (chatcluster_zmq_backlog_messages{SEL})", WHO),
        ], "short", "Messages held back because a peer's ZeroMQ queue was full."),
        timeseries("ZeroMQ messages per second", [
            target(rate("chatcluster_zmq_sent_messages_total", by="role, id"), "sent: " + WHO),
            target(rate("chatcluster_zmq_received_messages_total", by="role, id"), "received: " + WHO),
            target(rate("chatcluster_zmq_backpressure_total"), "backpressure"),
        ], "short"),
        timeseries("Send buffers", [
            target(f"sum(chatcluster_gateway_send_buffer_bytes{SEL})", "unsent bytes (sendbuf)"),
            target(f"max(chatcluster_gateway_send_buffer_peak_bytes{SEL})", "peak (one gateway)"),
        ], "bytes", "Bytes accepted for clients the kernel has not taken yet (sampled once a second)."),
        timeseries("Sessions with unsent bytes", [
            target(f"sum(chatcluster_gateway_send_buffer_sessions{SEL})", "sessions"),
            target(f"sum(chatcluster_gateway_writer_blocked_sessions{SEL})", "blocked in the writer thread"),
        ], "short"),
        timeseries("DB pool connections", [
            target(f"sum by (pool) (chatcluster_db_pool_in_use{SEL})", "in use: {{pool}}"),
            target(f"sum by (pool) (chatcluster_db_pool_size{SEL})", "size: {{pool}}"),
            target(f"sum by (pool) (chatcluster_db_pool_waiting{SEL})", "waiting: {{pool}}"),
        ], "short"),
        timeseries("DB pool waits and errors per second", [
            target(rate("chatcluster_db_pool_waits_total", by="pool"), "waits: {{pool}}"),
            target(rate("chatcluster_db_pool_errors_total", by="pool"), "errors: {{pool}}"),
            target(rate("chatcluster_db_pool_reconnects_total", by="pool"), "reconnects: {{pool}}"),
        ], "short"),
        timeseries("Chat-log backlog", [
            target(f"sum by (id) (chatcluster_chatlog_backlog_messages{SEL})", "shard {{id}}"),
            target(f"max(chatcluster_chatlog_backlog_limit_messages{SEL})", "bound"),
        ], "short", "Chats accepted but not yet in the database."),
        timeseries("Requests waiting for a shard", [
            target(f"sum by (id) (chatcluster_gateway_pending_requests{SEL})", "gateway {{id}}"),
            target(f"sum by (id) (chatcluster_gateway_logins_in_flight{SEL})", "logins in flight: gateway {{id}}"),
        ], "short"),
        timeseries("GC pauses", [
            *quantiles("chatcluster_gc_pause_seconds", (0.99, 1.0)),
            target(f"sum by (role, id) (rate(chatcluster_gc_pause_seconds_sum{SEL}[{RATE}]))",
                   "paused s/s: " + WHO),
        ], "s", "Pauses of a whole process for Python's cyclic garbage collector, and the share of time they take."),

        row("Limits and faults (what the bounds refused, per interval)"),
        timeseries("Limits that bit", [target(f"sum(increase({m}{SEL}[{RATE}]))", legend) for m, legend in LIMITS],
                   "short", "Counts over each interval; all zero on a healthy cluster.", w=16, h=9),
        timeseries("Errors", [
            target(rate("chatcluster_gateway_errors_sent_total"), "S_ERROR sent"),
            target(rate("chatcluster_gateway_bad_requests_total"), "bad requests"),
            target(rate("chatcluster_gateway_shard_errors_total"), "bad envelopes from shards"),
            target(rate("chatcluster_shard_bad_envelopes_total"), "bad envelopes at shards"),
            target(rate("chatcluster_chatlog_db_errors_total"), "chat-log database errors"),
        ], "short", w=8, h=9),

        row("Links between gateways and shards"),
        timeseries("Shard up, as each gateway sees it", [
            target(f"min by (id, shard) (chatcluster_gateway_shard_up{SEL})", "gateway {{id}} → shard {{shard}}"),
        ], "short", "1 while the shard answers heartbeats; 0 while it is marked down."),
        timeseries("Silence on the links", [
            target(f"max by (id, shard) (chatcluster_gateway_shard_silence_seconds{SEL})",
                   "gateway {{id}} hears shard {{shard}}"),
            target(f"max by (id, gateway) (chatcluster_shard_gateway_silence_seconds{SEL})",
                   "shard {{id}} hears {{gateway}}"),
        ], "s", "Time since the last heartbeat or message; 3 s marks a shard down, 5 s a gateway gone."),
        timeseries("Restarts and downs", [
            target(f"sum by (shard) (increase(chatcluster_gateway_shard_downs_total{SEL}[{RATE}]))",
                   "shard {{shard}} marked down"),
            target(f"max by (shard) (increase(chatcluster_gateway_shard_restarts_total{SEL}[{RATE}]))",
                   "shard {{shard}} restarted"),
            target(f"sum(increase(chatcluster_shard_gateway_restarts_total{SEL}[{RATE}]))", "gateway restarts"),
            target(f"sum(increase(chatcluster_shard_rooms_rebuilt_total{SEL}[{RATE}]))", "rooms rebuilt"),
        ], "short"),

        row("Processes"),
        timeseries("CPU per process", [
            target(per_process(f"rate(process_cpu_seconds_total{SEL}[{RATE}])"), WHO),
        ], "percentunit", "Share of one core (1 = 100 %), from the standard process collector."),
        timeseries("Resident memory per process", [
            target(per_process(f"process_resident_memory_bytes{SEL}"), WHO),
        ], "bytes"),
        timeseries("Garbage collections per second", [
            target(per_process(f"rate(python_gc_collections_total{SEL}[{RATE}])"), WHO),
        ], "short"),

        row("WebSocket and HTTP"),
        timeseries("WebSocket sessions", [
            target(f"sum by (id) (chatcluster_websocket_sessions{SEL})", "sessions: gateway {{id}}"),
            target(f"sum by (id) (chatcluster_http_connections{SEL})", "HTTP connections: gateway {{id}}"),
        ], "short"),
        timeseries("Handshakes per second", [
            target(rate("chatcluster_websocket_handshakes_total"), "accepted"),
            target(rate("chatcluster_websocket_handshakes_refused_total", by="reason"), "refused: {{reason}}"),
            target(rate("chatcluster_http_pages_total"), "page files served"),
        ], "short"),
        timeseries("WebSocket messages per second", [
            target(rate("chatcluster_websocket_messages_received_total"), "in"),
            target(rate("chatcluster_websocket_messages_sent_total"), "out"),
            target(rate("chatcluster_websocket_json_conversions_total"), "JSON conversions"),
        ], "short"),
        timeseries("Bad WebSocket messages per second", [
            target(rate("chatcluster_websocket_bad_messages_total", by="reason"), "{{reason}}"),
        ], "short"),
        timeseries("Keepalive", [
            target(rate("chatcluster_websocket_pings_total"), "pings"),
            target(rate("chatcluster_websocket_ping_timeouts_total"), "ping timeouts"),
            target(rate("chatcluster_websocket_close_timeouts_total"), "close timeouts"),
        ], "short"),

        row("Operators (the API on the gateways' control ports)"),
        timeseries("API calls per second", [
            target(rate("chatcluster_api_calls_total", by="outcome"), "{{outcome}}"),
            target(rate("chatcluster_api_refused_total", by="reason"), "refused: {{reason}}"),
        ], "short", "Calls carried out by outcome, and requests refused before anything was done."),
        timeseries("Operators' actions on sessions", [
            target(f"sum by (action) (increase(chatcluster_gateway_operator_actions_total{SEL}[{RATE}]))",
                   "{{action}}"),
        ], "short", "Sessions sent to the lobby (kick) or closed (disconnect, ban) per interval."),

        row("History"),
        timeseries("History memory", [
            target(f"sum by (id) (chatcluster_history_bytes{SEL})", "shard {{id}}"),
            target(f"max(chatcluster_history_limit_bytes{SEL})", "bound per shard"),
        ], "bytes"),
        timeseries("History messages per second", [
            target(rate("chatcluster_history_evicted_messages_total"), "evicted"),
            target(rate("chatcluster_history_expired_messages_total"), "expired"),
            target(rate("chatcluster_history_replayed_messages_total"), "replayed"),
        ], "short"),
        timeseries("Resumes", [
            target(rate("chatcluster_history_resumes_total"), "resumes"),
            target(rate("chatcluster_history_resumes_recovered_total"), "recovered"),
            target(rate("chatcluster_history_pages_from_db_total"), "pages from the database"),
        ], "short"),
    ]


def layout(items: list[dict]) -> list[dict]:
    """Grafana's panels with ids, gridPos and the data source, left to right within 24 columns."""
    out, x, y, line_h = [], 0, 0, 0
    for n, item in enumerate(items, start=1):
        panel = dict(item)
        w, h = panel.pop("w"), panel.pop("h")
        if panel["type"] == "row" or x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
        panel["id"] = n
        if panel["type"] != "row":
            panel["datasource"] = DS
            panel["targets"] = [{**t, "datasource": DS, "refId": chr(ord("A") + i)}
                                for i, t in enumerate(panel["targets"])]
        x, line_h = x + w, max(line_h, h)
        if panel["type"] == "row":
            x, y, line_h = 0, y + h, 0
        out.append(panel)
    return out


def dashboard() -> dict:
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "Where chatcluster is scraped",
                      "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__elements": {},
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
            {"type": "panel", "id": "timeseries", "name": "Time series", "version": ""},
            {"type": "panel", "id": "stat", "name": "Stat", "version": ""},
            {"type": "panel", "id": "heatmap", "name": "Heatmap", "version": ""},
        ],
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "description": "A chatcluster's gateways and shards: traffic, latency histograms, queues, limits, links, "
                       "processes, WebSocket, history (metrics of common/metrics.py).",
        "editable": True,
        "graphTooltip": 1,
        "id": None,
        "links": [],
        "panels": layout(panels()),
        "refresh": "10s",
        "schemaVersion": 38,
        "tags": ["chatcluster"],
        "templating": {"list": [{
            "name": "job", "label": "job", "type": "query", "datasource": DS,
            "query": {"query": "label_values(chatcluster_process_info, job)", "refId": "job"},
            "definition": "label_values(chatcluster_process_info, job)",
            "multi": True, "includeAll": True, "allValue": ".*", "refresh": 2, "sort": 1,
            "current": {}, "options": [], "hide": 0,
        }]},
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "title": "chatcluster",
        "uid": "chatcluster",
        "version": 1,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
