"""Prometheus metrics of a process: the figures of its /status, named and typed by hand, on the same control port.

The main loop publishes a snapshot of its figures once a second (common/control.py);
when /metrics is scraped, the collector here reads that snapshot through METRICS,
the one table of every metric this project exports: its name, type, HELP text and
where its value is in the /status dict. The names follow Prometheus' conventions,
so an operator's Prometheus and Grafana (and `promtool check metrics`) take them
as they are:

- base units in the name (`_seconds`, `_bytes`), `_total` on counters;
- ids as labels, never in a name: the shard a gateway watches (`shard`), the
  gateway a shard hears from (`gateway`), the pool (`pool`), a refusal's `reason`;
  every metric also carries the process's `role` and `id`;
- waits, pass times and latencies as histograms (common/histogram.py, recorded
  where they happen), which add up across processes, not as averages or maxima;
- CPU, memory, file descriptors and the collector's generations from
  prometheus_client's standard process, platform and GC collectors.

A figure of /status is either in METRICS or in LEFT_OUT with the reason (rates,
averages and maxima that `chatctl status` shows but Prometheus computes better
itself, text); tests/e2e/test_metrics_live.py holds every running process's /status to
that, so a new figure gets a deliberate name instead of a mechanical one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from chatcluster.common.control import Snapshot

COUNTER, GAUGE, HISTOGRAM, INFO = "counter", "gauge", "histogram", "info"
GATEWAY, SHARD = ("gateway",), ("shard",)
BOTH = ("gateway", "shard")


@dataclass(frozen=True)
class Def:
    """One metric family.

    source: where its value is in the process's /status: a dotted path
    ("db_pool.in_use"), or {label spec: path} for a family whose samples differ by
    a label ({"pool=db": "db_threads.run_seconds", "pool=hash": ...}). A path
    element `{name}` runs over a dict (its keys become label `name`) or a list
    (each item's field `name` becomes the label). For INFO, {label: path} of texts
    and the value is 1. A path that is missing or None (no writer thread, no chat
    log) gives no sample.
    """

    name: str
    kind: str
    help: str
    source: str | dict[str, str]
    roles: tuple[str, ...] = BOTH
    scale: float = 1.0
    convert: Callable[[Any], float] | None = field(default=None, compare=False)

    def sources(self) -> list[tuple[dict[str, str], str]]:
        """(constant labels, path) of each place its samples come from."""
        if isinstance(self.source, str):
            return [({}, self.source)]
        if self.kind == INFO:
            return [({}, path) for path in self.source.values()]
        out = []
        for spec, path in self.source.items():
            labels = dict(part.split("=", 1) for part in spec.split(",")) if spec else {}
            out.append((labels, path))
        return out

    @property
    def label_names(self) -> list[str]:
        """Its labels besides role and id, in a fixed order."""
        if self.kind == INFO:
            return list(self.source)  # type: ignore[arg-type]
        names: list[str] = []
        for labels, path in self.sources():
            for name in [*labels, *(p[1:-1] for p in path.split(".") if p.startswith("{"))]:
                if name not in names:
                    names.append(name)
        return names


def _up(state: Any) -> float:
    return 1.0 if state == "up" else 0.0


def _pools(leaf: str) -> dict[str, str]:
    """The gateway's database pool (logins, room ids) and a shard's chat-log pool, as one family by `pool`."""
    return {"pool=db": f"db_pool.{leaf}", "pool=chatlog": f"chatlog.db_pool.{leaf}"}


def _threads(leaf: str) -> dict[str, str]:
    return {"pool=db": f"db_threads.{leaf}", "pool=hash": f"hash_threads.{leaf}"}


def _refused(**reasons: str) -> dict[str, str]:
    return {f"reason={reason}": f"websocket.{key}" for reason, key in reasons.items()}


#: Every metric /metrics exports, in the order it exports them.
METRICS: tuple[Def, ...] = (
    # ---- every process ------------------------------------------------------------------------
    Def("chatcluster_process_info", INFO,
        "Always 1, one series per process with its role and id: the standard process_* and python_* metrics "
        "have no such labels, so join them to it on instance.", {}),
    Def("chatcluster_gc_pause_seconds", HISTOGRAM,
        "Pauses of the whole process for Python's cyclic garbage collector while serving "
        "(start-up collections excluded).", "gc.pause_seconds"),
    Def("chatcluster_gc_start_up_pause_seconds", GAUGE,
        "Time the process spent in garbage collection before it started serving (imports, the collection "
        "before gc.freeze()).", "gc.start_up_ms", scale=0.001),
    Def("chatcluster_zmq_sent_messages_total", COUNTER,
        "ZeroMQ messages (each a batch of envelopes) handed to the peers' sockets.", "zmq.sent"),
    Def("chatcluster_zmq_sent_bytes_total", COUNTER,
        "Bytes of the ZeroMQ messages handed to the peers' sockets.", "zmq.bytes_sent"),
    Def("chatcluster_zmq_received_messages_total", COUNTER,
        "ZeroMQ messages (each a batch of envelopes) received from peers.", "zmq.received"),
    Def("chatcluster_zmq_received_bytes_total", COUNTER,
        "Bytes of the ZeroMQ messages received from the shards.", "zmq.bytes_received", roles=GATEWAY),
    Def("chatcluster_zmq_backpressure_total", COUNTER,
        "Sends ZeroMQ refused because a peer's queue was at its high-water mark (the message was held).",
        "zmq.backpressure"),
    Def("chatcluster_zmq_backlog_messages", GAUGE,
        "Messages held back for peers whose ZeroMQ queue is full, now.", "zmq.backlog"),
    Def("chatcluster_zmq_backlog_peak_messages", GAUGE,
        "The most messages ever held back at once for full ZeroMQ queues, since the process started.",
        "zmq.backlog_peak"),
    Def("chatcluster_zmq_dropped_messages_total", COUNTER,
        "Messages dropped because a peer's held backlog was at its bound.", "zmq.dropped"),
    Def("chatcluster_db_pool_size", GAUGE,
        "Connections a database pool may open (its fixed size).", _pools("size")),
    Def("chatcluster_db_pool_open", GAUGE,
        "Connections a database pool has open now.", _pools("open")),
    Def("chatcluster_db_pool_in_use", GAUGE,
        "Connections of a database pool lent to a caller now.", _pools("in_use")),
    Def("chatcluster_db_pool_waiting", GAUGE,
        "Callers blocked waiting for a free connection of a database pool now.", _pools("waiting")),
    Def("chatcluster_db_pool_acquire_wait_seconds", HISTOGRAM,
        "How long taking a connection from a database pool waited for one to be free (0 when one was).",
        _pools("acquire_wait_seconds")),
    Def("chatcluster_db_pool_waits_total", COUNTER,
        "Connection acquisitions that had to wait because every connection of the pool was in use.",
        _pools("waits")),
    Def("chatcluster_db_pool_queries_total", COUNTER,
        "Database operations that completed on a pooled connection.", _pools("queries")),
    Def("chatcluster_db_pool_errors_total", COUNTER,
        "Database operations that failed, and connections that could not be opened.", _pools("errors")),
    Def("chatcluster_db_pool_reconnects_total", COUNTER,
        "Pooled connections found dead (server restarted, link cut) and replaced.", _pools("reconnects")),

    # ---- gateways ---------------------------------------------------------------------------
    Def("chatcluster_gateway_info", INFO,
        "Always 1: how this gateway runs, in its labels (its node name towards the shards, the event loop, "
        "who writes to clients, the ZeroMQ bridge, TLS).",
        {"node": "node", "loop": "loop", "writer": "writer_mode", "zmq_bridge": "zmq_bridge", "tls": "tls"},
        roles=GATEWAY),
    Def("chatcluster_gateway_connections_accepted_total", COUNTER,
        "Client connections accepted (TCP and WebSocket).", "accepted", roles=GATEWAY),
    Def("chatcluster_gateway_connections_refused_total", COUNTER,
        "Client connections refused because the gateway held its maximum of connections.",
        "connections_refused", roles=GATEWAY),
    Def("chatcluster_gateway_sessions_closed_total", COUNTER,
        "Client sessions that ended, for any reason.", "closed", roles=GATEWAY),
    Def("chatcluster_gateway_sessions", GAUGE,
        "Client sessions open now, logged in or not.", "sessions", roles=GATEWAY),
    Def("chatcluster_gateway_players", GAUGE,
        "Logged-in players with a session on this gateway now.", "players", roles=GATEWAY),
    Def("chatcluster_gateway_rooms", GAUGE,
        "Rooms with at least one member on this gateway now.", "rooms", roles=GATEWAY),
    Def("chatcluster_gateway_members", GAUGE,
        "Room memberships of this gateway's sessions now.", "members", roles=GATEWAY),
    Def("chatcluster_gateway_pending_requests", GAUGE,
        "Client requests waiting for a shard's answer now.", "pending_requests", roles=GATEWAY),
    Def("chatcluster_gateway_frames_received_total", COUNTER,
        "Frames received from clients (every request, chats included).", "frames_in", roles=GATEWAY),
    Def("chatcluster_gateway_chats_received_total", COUNTER,
        "Room chat messages received from clients and routed to the room's shard.", "chats_in", roles=GATEWAY),
    Def("chatcluster_gateway_broadcasts_received_total", COUNTER,
        "Room broadcasts (one per message and gateway with members) received from the shards.",
        "bcast_in", roles=GATEWAY),
    Def("chatcluster_gateway_deliveries_total", COUNTER,
        "Broadcast frames queued for a room member's connection (one per message and recipient).",
        "deliveries", roles=GATEWAY),
    Def("chatcluster_gateway_frames_sent_total", COUNTER,
        "Frames queued for clients other than room broadcasts: replies, notices and errors.",
        "frames_out", roles=GATEWAY),
    Def("chatcluster_gateway_errors_sent_total", COUNTER,
        "S_ERROR frames sent to clients.", "errors_sent", roles=GATEWAY),
    Def("chatcluster_gateway_writes_total", COUNTER,
        "Socket writes to clients, each carrying every frame a session got in one loop pass "
        "(with --writer thread, the writer thread's sends).", "writes", roles=GATEWAY),
    Def("chatcluster_gateway_sent_bytes_total", COUNTER,
        "Bytes handed to client connections for sending.", "bytes_out", roles=GATEWAY),
    Def("chatcluster_gateway_mid_pass_answers_total", COUNTER,
        "Write phases that took in the shards' answers arrived meanwhile, so they went out the same pass.",
        "mid_pass_answers", roles=GATEWAY),
    Def("chatcluster_gateway_flush_duration_seconds", HISTOGRAM,
        "Time the gateway took to carry out one loop pass's output: envelopes to the shards, writes to the "
        "clients, then closes, pauses and offloaded work.", "flush_seconds", roles=GATEWAY),
    Def("chatcluster_gateway_loop_lag_seconds", HISTOGRAM,
        "How late the gateway's event loop woke a 20 ms timer (sampled every 20 ms): what any callback "
        "waited beyond its turn.", "loop_lag_seconds", roles=GATEWAY),
    Def("chatcluster_gateway_send_buffer_bytes", GAUGE,
        "Bytes accepted for clients that the kernel has not taken yet, summed over sessions "
        "(sampled once a second).", "send_buffer_bytes", roles=GATEWAY),
    Def("chatcluster_gateway_send_buffer_sessions", GAUGE,
        "Sessions with bytes not yet taken by the kernel (sampled once a second).", "send_buffer_sessions",
        roles=GATEWAY),
    Def("chatcluster_gateway_send_buffer_peak_bytes", GAUGE,
        "The most unsent bytes held for clients at one sample, since the process started.",
        "send_buffer_peak_bytes", roles=GATEWAY),
    Def("chatcluster_gateway_send_buffer_peak_sessions", GAUGE,
        "The most sessions with unsent bytes at one sample, since the process started.",
        "send_buffer_peak_sessions", roles=GATEWAY),
    Def("chatcluster_gateway_slow_consumers_total", COUNTER,
        "Clients disconnected because more than the write buffer limit was queued for them.",
        "slow_consumers", roles=GATEWAY),
    Def("chatcluster_gateway_logins_total", COUNTER,
        "Logins that succeeded.", "logins", roles=GATEWAY),
    Def("chatcluster_gateway_login_failures_total", COUNTER,
        "Logins refused: wrong password, unknown name with registration closed, throttled, busy, "
        "database errors.", "login_failures", roles=GATEWAY),
    Def("chatcluster_gateway_logins_in_flight", GAUGE,
        "Logins being checked on the thread pools now.", "logins_in_flight", roles=GATEWAY),
    Def("chatcluster_gateway_login_duration_seconds", HISTOGRAM,
        "Time from a login request to its outcome: the database steps and the password hash on the "
        "thread pools, with their queueing.", "login_seconds", roles=GATEWAY),
    Def("chatcluster_gateway_login_throttled_total", COUNTER,
        "Logins refused before any hash because the name or address had failed too often.",
        "login_throttled", roles=GATEWAY),
    Def("chatcluster_gateway_logins_refused_busy_total", COUNTER,
        "Logins refused because the gateway already had its maximum of logins in flight.",
        "logins_refused_busy", roles=GATEWAY),
    Def("chatcluster_gateway_login_timeouts_total", COUNTER,
        "Connections closed for not logging in within the login timeout.", "login_timeouts", roles=GATEWAY),
    Def("chatcluster_gateway_tokens_expired_total", COUNTER,
        "Sessions closed (AUTH_FAILED) because their login token expired and was not refreshed.",
        "tokens_expired", roles=GATEWAY),
    Def("chatcluster_gateway_replaced_sessions_total", COUNTER,
        "Sessions closed because their player logged in again elsewhere.", "replaced", roles=GATEWAY),
    Def("chatcluster_gateway_protocol_errors_total", COUNTER,
        "Client connections closed for a frame that broke the protocol (unknown message id, size out of bounds).",
        "protocol_errors",
        roles=GATEWAY),
    Def("chatcluster_gateway_bad_requests_total", COUNTER,
        "Requests answered S_ERROR BAD_REQUEST (the session goes on).", "bad_requests", roles=GATEWAY),
    Def("chatcluster_gateway_rate_limited_total", COUNTER,
        "Requests refused for exceeding the per-session request rate.", "rate_limited", roles=GATEWAY),
    Def("chatcluster_gateway_floods_total", COUNTER,
        "Sessions disconnected after too many rate-limited requests in a row.", "floods", roles=GATEWAY),
    Def("chatcluster_gateway_unavailable_total", COUNTER,
        "Requests answered UNAVAILABLE because their room's shard was marked down.", "unavailable",
        roles=GATEWAY),
    Def("chatcluster_gateway_request_timeouts_total", COUNTER,
        "Requests a shard did not answer within the request timeout.", "timeouts", roles=GATEWAY),
    Def("chatcluster_gateway_undone_total", COUNTER,
        "Late successful answers from a shard undone because nobody waited for them any more.", "undone",
        roles=GATEWAY),
    Def("chatcluster_gateway_shard_errors_total", COUNTER,
        "Malformed envelopes or batches received from shards (counted and skipped).", "shard_errors",
        roles=GATEWAY),
    Def("chatcluster_gateway_rebuilds_total", COUNTER,
        "Times this gateway gave a restarted or forgetful shard its rooms and sessions back.", "rebuilds",
        roles=GATEWAY),
    Def("chatcluster_gateway_shard_up", GAUGE,
        "1 while the shard answers this gateway's heartbeats, 0 while it is marked down or not heard yet.",
        "shards.{shard}.state", roles=GATEWAY, convert=_up),
    Def("chatcluster_gateway_shard_silence_seconds", GAUGE,
        "Time since this gateway last heard from the shard.", "shards.{shard}.silent_s", roles=GATEWAY),
    Def("chatcluster_gateway_shard_downs_total", COUNTER,
        "Times this gateway marked the shard down after silent heartbeats.", "shards.{shard}.downs",
        roles=GATEWAY),
    Def("chatcluster_gateway_shard_restarts_total", COUNTER,
        "Restarts of the shard (a new incarnation) this gateway noticed.", "shards.{shard}.restarts",
        roles=GATEWAY),
    Def("chatcluster_gateway_thread_pool_queue_wait_seconds", HISTOGRAM,
        "How long work offloaded to a gateway thread pool (db: database steps, hash: password hashing) "
        "queued for a thread.", _threads("queue_wait_seconds"), roles=GATEWAY),
    Def("chatcluster_gateway_thread_pool_run_seconds", HISTOGRAM,
        "How long work offloaded to a gateway thread pool (db: database steps, hash: password hashing) ran "
        "on its thread.", _threads("run_seconds"), roles=GATEWAY),
    Def("chatcluster_gateway_writer_sends_total", COUNTER,
        "Buffers the writer thread sent (--writer thread).", "writer.sends", roles=GATEWAY),
    Def("chatcluster_gateway_writer_calls_total", COUNTER,
        "GIL-free send calls of the writer thread, each over many sockets.", "writer.calls", roles=GATEWAY),
    Def("chatcluster_gateway_writer_sent_bytes_total", COUNTER,
        "Bytes the writer thread sent.", "writer.bytes", roles=GATEWAY),
    Def("chatcluster_gateway_writer_would_block_total", COUNTER,
        "Sends of the writer thread that found a client's socket buffer full.", "writer.would_block",
        roles=GATEWAY),
    Def("chatcluster_gateway_writer_failed_total", COUNTER,
        "Client sockets the writer thread found failed.", "writer.failed", roles=GATEWAY),
    Def("chatcluster_gateway_writer_blocked_sessions", GAUGE,
        "Sessions whose socket buffer is full, waiting for the client to read, now.", "writer.blocked_now",
        roles=GATEWAY),
    Def("chatcluster_gateway_writer_close_timeouts_total", COUNTER,
        "Closing sessions whose unsent bytes the writer thread gave up on.", "writer.close_timeouts",
        roles=GATEWAY),
    Def("chatcluster_gateway_writer_batch_peak_sockets", GAUGE,
        "The most sockets one send call of the writer thread served, since the process started.",
        "writer.batch_peak", roles=GATEWAY),
    Def("chatcluster_gateway_operator_actions_total", COUNTER,
        "Sessions this gateway sent back to the lobby (kick) or closed (disconnect, ban) because an operator "
        "said so, by action.",
        {"action=kick": "operator_kicks", "action=disconnect": "operator_disconnects", "action=ban": "operator_bans"},
        roles=GATEWAY),
    Def("chatcluster_api_calls_total", COUNTER,
        "Operator API calls carried out, by outcome: ok, failed (an error answer), timeout (no answer in time).",
        {"outcome=ok": "api.ok", "outcome=failed": "api.failed", "outcome=timeout": "api.timeouts"},
        roles=GATEWAY),
    Def("chatcluster_api_refused_total", COUNTER,
        "Operator API requests refused before anything was done, by reason: no valid key, a malformed request, "
        "a body over the size bound, over the call rate.",
        {"reason=unauthorized": "api.unauthorized", "reason=bad_request": "api.bad_requests",
         "reason=too_large": "api.too_large", "reason=rate_limited": "api.rate_limited",
         "reason=unauthorized_throttled": "api.unauthorized_throttled"}, roles=GATEWAY),
    Def("chatcluster_http_connections", GAUGE,
        "Connections open on the HTTP port now (page requests and WebSocket sessions).",
        "websocket.connections", roles=GATEWAY),
    Def("chatcluster_http_requests_total", COUNTER,
        "HTTP requests on the HTTP port: pages, WebSocket handshakes and anything else.",
        "websocket.http_requests", roles=GATEWAY),
    Def("chatcluster_http_pages_total", COUNTER,
        "Files of the web chat page served.", "websocket.pages", roles=GATEWAY),
    Def("chatcluster_http_not_found_total", COUNTER,
        "HTTP requests answered 404.", "websocket.not_found", roles=GATEWAY),
    Def("chatcluster_websocket_sessions", GAUGE,
        "WebSocket sessions open now.", "websocket.open", roles=GATEWAY),
    Def("chatcluster_websocket_handshakes_total", COUNTER,
        "WebSocket handshakes accepted.", "websocket.handshakes", roles=GATEWAY),
    Def("chatcluster_websocket_handshakes_refused_total", COUNTER,
        "WebSocket handshakes refused, by reason: a foreign origin (403), a bad request or subprotocol (400), "
        "headers over the size bound (431), too slow.",
        _refused(origin="refused_origin", bad_request="refused_handshake", too_large="handshake_too_large",
                 timeout="handshake_timeouts"), roles=GATEWAY),
    Def("chatcluster_websocket_messages_received_total", COUNTER,
        "WebSocket messages received from clients.", "websocket.messages_in", roles=GATEWAY),
    Def("chatcluster_websocket_messages_sent_total", COUNTER,
        "WebSocket messages sent to clients (one per session and loop pass, however many frames).",
        "websocket.messages_out", roles=GATEWAY),
    Def("chatcluster_websocket_received_bytes_total", COUNTER,
        "Bytes of WebSocket messages received from clients.", "websocket.bytes_in", roles=GATEWAY),
    Def("chatcluster_websocket_sent_bytes_total", COUNTER,
        "Bytes of WebSocket messages sent to clients.", "websocket.bytes_out", roles=GATEWAY),
    Def("chatcluster_websocket_bad_messages_total", COUNTER,
        "WebSocket messages refused, by reason: JSON that is no frame, a frame cut short, the wrong message "
        "type, invalid UTF-8, over the size bound, protocol violations.",
        _refused(json="json_bad", split_frame="split_frames", wrong_type="wrong_message_type",
                 invalid_utf8="invalid_utf8", too_big="too_big", protocol="protocol_errors"), roles=GATEWAY),
    Def("chatcluster_websocket_pings_total", COUNTER,
        "Keepalive pings sent to idle WebSocket clients.", "websocket.pings", roles=GATEWAY),
    Def("chatcluster_websocket_ping_timeouts_total", COUNTER,
        "WebSocket sessions closed because a keepalive ping went unanswered.", "websocket.ping_timeouts",
        roles=GATEWAY),
    Def("chatcluster_websocket_close_timeouts_total", COUNTER,
        "WebSocket connections dropped because the closing handshake did not finish in time.",
        "websocket.close_timeouts", roles=GATEWAY),
    Def("chatcluster_websocket_json_conversions_total", COUNTER,
        "Frames converted to JSON for chatcluster.json.v1 sessions (once per frame and loop pass, however many "
        "sessions get it).", "websocket.json_conversions", roles=GATEWAY),

    # ---- shards -------------------------------------------------------------------------------
    Def("chatcluster_shard_rooms", GAUGE,
        "Rooms this shard holds now.", "rooms", roles=SHARD),
    Def("chatcluster_shard_members", GAUGE,
        "Members of this shard's rooms now.", "members", roles=SHARD),
    Def("chatcluster_shard_players_present", GAUGE,
        "Logged-in players whose presence (one session cluster-wide) this shard keeps now.", "players_present",
        roles=SHARD),
    Def("chatcluster_shard_chats_total", COUNTER,
        "Room chat messages this shard accepted, sequenced and broadcast.", "chats", roles=SHARD),
    Def("chatcluster_shard_deliveries_total", COUNTER,
        "Recipients of this shard's broadcasts (one per message and member, over all gateways).",
        "deliveries", roles=SHARD),
    Def("chatcluster_shard_refused_total", COUNTER,
        "Requests this shard refused: not a member, room full or gone, too many rooms, restoring.", "refused",
        roles=SHARD),
    Def("chatcluster_shard_rooms_created_total", COUNTER,
        "Rooms created on this shard.", "rooms_created", roles=SHARD),
    Def("chatcluster_shard_rooms_closed_total", COUNTER,
        "Rooms closed on this shard.", "rooms_closed", roles=SHARD),
    Def("chatcluster_shard_rooms_rebuilt_total", COUNTER,
        "Rooms a gateway gave back to this shard after a restart or a silence.", "rooms_rebuilt", roles=SHARD),
    Def("chatcluster_shard_kicks_total", COUNTER,
        "Older sessions of a player this shard had closed because the player logged in again.", "kicks",
        roles=SHARD),
    Def("chatcluster_shard_wakeups_total", COUNTER,
        "Waits of the shard's loop that ended with work to do.", "wakeups", roles=SHARD),
    Def("chatcluster_shard_envelopes_total", COUNTER,
        "Envelopes (requests, chats, heartbeats) this shard executed.", "envelopes", roles=SHARD),
    Def("chatcluster_shard_batch_envelopes", HISTOGRAM,
        "Envelopes the shard handled in one wake-up.", "batch_envelopes", roles=SHARD),
    Def("chatcluster_shard_batch_duration_seconds", HISTOGRAM,
        "Time the shard took to handle one wake-up's batches: execute their envelopes and hand the answers "
        "to ZeroMQ.", "batch_seconds", roles=SHARD),
    Def("chatcluster_shard_bad_batches_total", COUNTER,
        "ZeroMQ messages that were no valid batch of envelopes (counted and skipped).", "bad_batches",
        roles=SHARD),
    Def("chatcluster_shard_bad_envelopes_total", COUNTER,
        "Malformed envelopes in otherwise valid batches (counted and skipped).", "bad_envelopes", roles=SHARD),
    Def("chatcluster_shard_unroutable_messages_total", COUNTER,
        "Messages for a gateway ZeroMQ could not route (the gateway is gone).", "zmq_unroutable", roles=SHARD),
    Def("chatcluster_shard_gateway_silence_seconds", GAUGE,
        "Time since this shard last heard from the gateway.", "gateways.{gateway}.silent_s", roles=SHARD),
    Def("chatcluster_shard_gateway_restarts_total", COUNTER,
        "Gateway restarts (a new incarnation) this shard noticed.", "gateway_restarts", roles=SHARD),
    Def("chatcluster_shard_gateway_timeouts_total", COUNTER,
        "Times this shard dropped a gateway's sessions after hearing nothing from it for the gateway timeout.",
        "gateway_timeouts", roles=SHARD),
    Def("chatcluster_chatlog_accepted_messages_total", COUNTER,
        "Chat messages handed to the shard's chat log.", "chatlog.accepted", roles=SHARD),
    Def("chatcluster_chatlog_file_lines_total", COUNTER,
        "Chat messages written to the shard's chat-log file.", "chatlog.file_lines", roles=SHARD),
    Def("chatcluster_chatlog_db_rows_total", COUNTER,
        "Chat messages written to the database's chat_log table.", "chatlog.db_rows", roles=SHARD),
    Def("chatcluster_chatlog_db_write_duration_seconds", HISTOGRAM,
        "Time one batch of chat-log rows took to write to the database (successful batches).",
        "chatlog.write_seconds", roles=SHARD),
    Def("chatcluster_chatlog_db_errors_total", COUNTER,
        "Chat-log database writes that failed (the rows are kept and written again).", "chatlog.db_errors",
        roles=SHARD),
    Def("chatcluster_chatlog_backlog_messages", GAUGE,
        "Chat messages accepted but not yet in the database, now.", "chatlog.backlog", roles=SHARD),
    Def("chatcluster_chatlog_backlog_peak_messages", GAUGE,
        "The largest chat-log database backlog seen at a sample, since the process started.",
        "chatlog.backlog_peak", roles=SHARD),
    Def("chatcluster_chatlog_backlog_limit_messages", GAUGE,
        "The bound on the chat-log backlog; past it messages go to the file log only.", "chatlog.max_backlog",
        roles=SHARD),
    Def("chatcluster_chatlog_dropped_messages_total", COUNTER,
        "Chat messages not kept for the database because the backlog was at its bound (still in the file log).",
        "chatlog.db_dropped", roles=SHARD),
    Def("chatcluster_chatlog_db_down_seconds", GAUGE,
        "How long the chat log's database writes have been failing (0 while they succeed).",
        "chatlog.db_down_s", roles=SHARD),
    Def("chatcluster_history_bytes", GAUGE,
        "Bytes the rooms' kept history costs now (frames plus per-message overhead).", "history.bytes",
        roles=SHARD),
    Def("chatcluster_history_peak_bytes", GAUGE,
        "The most bytes the rooms' history held, since the process started.", "history.bytes_peak",
        roles=SHARD),
    Def("chatcluster_history_limit_bytes", GAUGE,
        "The bound on the history's bytes per shard (history_bytes).", "history.max_bytes", roles=SHARD),
    Def("chatcluster_history_messages", GAUGE,
        "Messages kept in the rooms' history now.", "history.messages", roles=SHARD),
    Def("chatcluster_history_rooms", GAUGE,
        "Rooms with kept history now.", "history.rooms", roles=SHARD),
    Def("chatcluster_history_resting_rooms", GAUGE,
        "Emptied rooms resting, resumable, for the history grace now.", "history.rooms_resting", roles=SHARD),
    Def("chatcluster_history_expired_messages_total", COUNTER,
        "Kept messages let go for being beyond both the message and the age minimum.", "history.expired",
        roles=SHARD),
    Def("chatcluster_history_evicted_messages_total", COUNTER,
        "Kept messages evicted to keep the history within its byte bound.", "history.evicted", roles=SHARD),
    Def("chatcluster_history_evictions_total", COUNTER,
        "Eviction passes that brought the history back under its byte bound.", "history.evictions",
        roles=SHARD),
    Def("chatcluster_history_resumes_total", COUNTER,
        "Resuming joins served.", "history.resumes", roles=SHARD),
    Def("chatcluster_history_resumes_recovered_total", COUNTER,
        "Resuming joins that got every message they missed (recovered = true).", "history.resumes_recovered",
        roles=SHARD),
    Def("chatcluster_history_replayed_messages_total", COUNTER,
        "Kept messages replayed to joining, resuming or paging clients.", "history.replayed", roles=SHARD),
    Def("chatcluster_history_resends_answered_total", COUNTER,
        "Chats sent again with a known idempotency key, answered with the original instead of a broadcast.",
        "history.resent", roles=SHARD),
    Def("chatcluster_history_pages_total", COUNTER,
        "History pages served (C_ROOM_HISTORY_REQ).", "history.pages", roles=SHARD),
    Def("chatcluster_history_pages_from_db_total", COUNTER,
        "History pages that had to be read from the chat log in the database.", "history.pages_from_db",
        roles=SHARD),
    Def("chatcluster_history_restores_kept_total", COUNTER,
        "Rooms restored after a shard restart that kept their epoch and history.", "history.restores_kept",
        roles=SHARD),
    Def("chatcluster_history_restores_lost_total", COUNTER,
        "Rooms restored after a shard restart that got a new epoch (their history could not be made whole).",
        "history.restores_lost", roles=SHARD),
    Def("chatcluster_history_db_reads_total", COUNTER,
        "Chat-log reads (pages, restores) done on the shard's reader threads.", "history.db_reads", roles=SHARD),
    Def("chatcluster_history_db_read_failures_total", COUNTER,
        "Chat-log reads that failed.", "history.db_read_failures", roles=SHARD),
)

#: Figures of /status that are deliberately not metrics, and why (paths as in Def.source; `*` is any key).
LEFT_OUT: dict[str, str] = {
    "id": "the `id` label", "pid": "process collector", "uptime_s": "process_start_time_seconds",
    "rss_bytes": "process_resident_memory_bytes", "cpu_percent": "rate(process_cpu_seconds_total)",
    "*_per_s": "Prometheus computes rates from the counters",
    "gc.collections": "python_gc_collections_total", "gc.gen2": "python_gc_collections_total{generation=\"2\"}",
    "gc.pauses": "chatcluster_gc_pause_seconds_count", "gc.pause_total_ms": "chatcluster_gc_pause_seconds_sum",
    "gc.pause_max_ms": "a maximum: chatcluster_gc_pause_seconds' buckets",
    "incarnation": "a random id, no quantity", "shards.*.incarnation": "a random id, no quantity",
    "gateways.*.incarnation": "a random id, no quantity", "room_ids": "a list of ids, no quantity",
    "loop_lag_ms": "chatcluster_gateway_loop_lag_seconds", "loop_lag_max_ms": "chatcluster_gateway_loop_lag_seconds",
    "db_threads.jobs": "chatcluster_gateway_thread_pool_run_seconds_count",
    "hash_threads.jobs": "chatcluster_gateway_thread_pool_run_seconds_count",
    "*_threads.queue_wait_avg_ms": "chatcluster_gateway_thread_pool_queue_wait_seconds",
    "*_threads.queue_wait_max_ms": "chatcluster_gateway_thread_pool_queue_wait_seconds",
    "*_threads.run_avg_ms": "chatcluster_gateway_thread_pool_run_seconds",
    "*db_pool.acquires": "chatcluster_db_pool_acquire_wait_seconds_count",
    "*db_pool.acquire_wait_avg_ms": "chatcluster_db_pool_acquire_wait_seconds",
    "*db_pool.acquire_wait_max_ms": "chatcluster_db_pool_acquire_wait_seconds",
    "chatlog.db_batches": "chatcluster_chatlog_db_write_duration_seconds_count",
    "chatlog.last_batch_ms": "chatcluster_chatlog_db_write_duration_seconds",
    "jobs_peak": "a per-second maximum: chatcluster_shard_batch_envelopes",
    "api.calls": "the sum of chatcluster_api_calls_total's outcomes",
    "api.max_body": "configuration (the api_max_body limit)", "api.rate": "configuration (the api_rate limit)",
    "api.burst": "configuration (the api_burst limit)",
    "shard:zmq.bytes_received": "not counted by shards (gateways count theirs)",
    "shard:zmq_in": "chatcluster_zmq_received_messages_total (a shard's zmq.received)",
}


def _pattern(path: str) -> str:
    """A Def path or LEFT_OUT key as an fnmatch pattern over a figure's dotted path."""
    return re.sub(r"\{[a-z_]+\}", "*", path)


def unexplained(data: dict[str, Any]) -> list[str]:
    """The figures of a /status that are neither exported by METRICS nor in LEFT_OUT (for the process's role).

    A figure is a number, or a histogram (a dict with "counts"); texts and nulls are none.
    """
    role = str(data.get("role", "?"))
    exported = [_pattern(path) for d in METRICS if role in d.roles and d.kind != INFO for _, path in d.sources()]
    exported += [_pattern(path) for d in METRICS if role in d.roles and d.kind == INFO
                 for path in d.source.values()]  # type: ignore[union-attr]
    left = [key.split(":", 1)[-1] for key in LEFT_OUT if ":" not in key or key.startswith(role + ":")]
    out = []

    def walk(node: Any, path: str) -> None:
        if path and any(fnmatchcase(path, p) for p in left):
            return  # the whole of it, a list or a dict, is left out
        if isinstance(node, dict) and "counts" not in node:
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list):
            for item in node:
                walk(item, f"{path}.*")
        elif (isinstance(node, dict) or (isinstance(node, int | float) and not isinstance(node, bool))) and \
                not any(fnmatchcase(path, p) for p in exported + left):
            out.append(path)

    walk(data, "")
    return out


def lookup(data: Any, path: str) -> Iterator[tuple[dict[str, str], Any]]:
    """(labels from `{name}` elements, value) for every value at `path` in data; nothing where it is missing."""
    parts = path.split(".")

    def walk(node: Any, i: int, labels: dict[str, str]) -> Iterator[tuple[dict[str, str], Any]]:
        if node is None:
            return
        if i == len(parts):
            yield labels, node
            return
        part = parts[i]
        if part.startswith("{"):
            label = part[1:-1]
            if isinstance(node, dict):
                for key, item in node.items():
                    yield from walk(item, i + 1, {**labels, label: str(key)})
            elif isinstance(node, list):
                for item in node:
                    if isinstance(item, dict) and label in item:
                        yield from walk(item, i + 1, {**labels, label: str(item[label])})
        elif isinstance(node, dict) and part in node:
            yield from walk(node[part], i + 1, labels)

    yield from walk(data, 0, {})


def families(data: dict[str, Any]) -> Iterator[Metric]:
    """The metric families of one process's /status snapshot, as METRICS defines them."""
    role = str(data.get("role", "?"))
    base = {"role": role, "id": str(data.get("id", "?"))}
    for d in METRICS:
        if role not in d.roles:
            continue
        names = ["role", "id", *d.label_names]
        family = _family(d, names)
        samples = 0
        if d.kind == INFO:
            texts = {label: next((str(v).lower() if isinstance(v, bool) else str(v)
                                  for _, v in lookup(data, path)), "")
                     for label, path in d.source.items()}  # type: ignore[union-attr]
            family.add_metric([*base.values(), *texts.values()], 1.0)
            yield family
            continue
        for constant, path in d.sources():
            for found, value in lookup(data, path):
                labels = {**base, **constant, **found}
                values = [labels.get(n, "") for n in names]
                if d.kind == HISTOGRAM:
                    if not isinstance(value, dict):
                        continue
                    family.add_metric(values, buckets=_cumulative(value), sum_value=value["sum"])
                else:
                    if d.convert is not None:
                        value = d.convert(value)
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        continue
                    family.add_metric(values, value * d.scale)
                samples += 1
        if samples:
            yield family


def _family(d: Def, labels: list[str]) -> Metric:
    if d.kind == COUNTER:
        return CounterMetricFamily(d.name, d.help, labels=labels)
    if d.kind == HISTOGRAM:
        return HistogramMetricFamily(d.name, d.help, labels=labels)
    return GaugeMetricFamily(d.name, d.help, labels=labels)


def _cumulative(hist: dict[str, Any]) -> list[tuple[str, float]]:
    """Per-bucket counts (common/histogram.py) as Prometheus' cumulative `le` buckets, +Inf last."""
    out, running = [], 0
    for le, count in zip([*hist["le"], float("inf")], hist["counts"], strict=True):
        running += count
        out.append((floatToGoString(le), running))
    return out


def standard_collectors(registry: CollectorRegistry) -> None:
    """prometheus_client's own collectors, whose metrics operators' dashboards already know."""
    ProcessCollector(registry=registry)   # process_cpu_seconds_total, process_resident_memory_bytes, fds, start time
    PlatformCollector(registry=registry)  # python_info{version, implementation}
    GCCollector(registry=registry)        # python_gc_collections_total{generation}, objects collected


def exported_names() -> set[str]:
    """Every series name /metrics can have: METRICS' (histograms with _bucket, _sum, _count) and the standard ones."""
    names = set()
    for d in METRICS:
        names.add(d.name)
        if d.kind == HISTOGRAM:
            names.update({f"{d.name}_bucket", f"{d.name}_sum", f"{d.name}_count"})
    registry = CollectorRegistry(auto_describe=False)
    standard_collectors(registry)
    for family in registry.collect():
        names.update(sample.name for sample in family.samples)
    return names


class SnapshotCollector:
    """A prometheus_client collector over a process's Snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return families(self.snapshot.data)


def metrics_route(snapshot: Snapshot):
    """A ControlServer route serving /metrics in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    standard_collectors(registry)

    def route() -> tuple[int, str, bytes]:
        return 200, CONTENT_TYPE_LATEST, generate_latest(registry)

    return route
