"""/metrics of real processes, after real traffic, is what Prometheus and `promtool check metrics` accept.

A cluster (one gateway, two shards, chat log on, the operator API on, the writer
thread where it can run so its figures exist too) gets TCP and WebSocket sessions,
binary and JSON, a failed login, rooms, chats and API calls; then every process's
/metrics must have every family the definition table gives its role, values that
agree with what the clients did, nothing promtool objects to, and no /status
figure left unnamed.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from chatwire import WireClient, WsClient, pair_in_room
from promcheck import promtool_problems
from prometheus_client.parser import text_string_to_metric_families
from test_cluster_flow import unique
from waiting import wait_for

from chatcluster.common.control import fetch_status
from chatcluster.common.metrics import HISTOGRAM, METRICS, unexplained
from chatcluster.gateway import outlets
from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e

CHATS = 12  # per chatting client
ADD_IT = ("figures in /status with no metric: give each a row in common/metrics.py's METRICS (a name in "
          "Prometheus' conventions, its type, a HELP that says what it counts), or a reason in LEFT_OUT")


def scrape(host: str, port: int) -> tuple[bytes, dict]:
    """(the raw exposition, {series name with labels: value}) of one process's /metrics."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=")  # the text format
        raw = resp.read()
    series = {}
    for family in text_string_to_metric_families(raw.decode()):
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k not in ("role", "id")}
            series[(s.name, tuple(sorted(labels.items())))] = s.value
    return raw, series


def value(series: dict, name: str, **labels: str) -> float:
    return series[(name, tuple(sorted(labels.items())))]


def names(series: dict) -> set[str]:
    return {name for name, _ in series}


def api_call(control: tuple[str, int], method: str, key: str) -> int:
    """POST /api/<method> {} on a gateway's control port; the HTTP status."""
    request = urllib.request.Request(f"http://{control[0]}:{control[1]}/api/{method}", data=b"{}", method="POST",
                                     headers={"Authorization": f"apikey {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_every_process_exports_clean_prometheus_metrics_after_real_traffic(cluster_factory, tmp_path):
    writer = ["--writer", "thread"] if outlets.available() else []
    key = "metrics-test-key-0123456789abcdef"
    (tmp_path / "api.key").write_text(key + "\n")
    cluster = cluster_factory(*writer, "--api-key-file", str(tmp_path / "api.key"))
    host = cluster.host
    a, b, room = pair_in_room(host, cluster.port, "metrics", (unique("ma"), unique("mb")))
    ws = WsClient(host, cluster.http_port)
    js = WsClient(host, cluster.http_port, json=True)
    for client in (ws, js):
        assert client.login(unique("mw")).success
        client.send(pb.C_JOIN_ROOM_REQ(room_id=room))
        client.expect(pb.S_JOIN_ROOM_RES)
    stranger = WireClient(host, cluster.port)
    assert not stranger.login(a.name, "not the password").success
    js.send_raw('{"type": "C_NO_SUCH_THING"}')  # a bad JSON message: counted by reason, the session goes on
    with urllib.request.urlopen(f"http://{host}:{cluster.http_port}/", timeout=5) as page:
        assert page.status == 200
    for n in range(CHATS):
        for client in (a, ws, js):
            client.chat(f"{client.name} says {n}")
    chats = 3 * CHATS

    config = cluster.config
    gw_control = (config.gateways[0].control_host, config.gateways[0].control_port)
    shard_controls = [(s.control_host, s.control_port) for s in config.shards]
    assert api_call(gw_control, "rooms", key) == 200
    assert api_call(gw_control, "rooms", "not the key at all, but long") == 401

    def settled() -> bool:
        gw = fetch_status(gw_control)
        shards = [fetch_status(c) for c in shard_controls]
        return (gw["chats_in"] == chats and gw["deliveries"] >= chats * 3 and gw["logins"] == 4
                and gw["api"]["ok"] == 1 and gw["api"]["unauthorized"] == 1
                and sum(s["chats"] for s in shards) == chats
                and sum((s["chatlog"] or {}).get("db_rows", 0) for s in shards) == chats)

    # /metrics reads the same snapshot as /status (published once a second): once /status shows it all, so will it.
    wait_for(settled, timeout=20, what="the chats in every process's published figures and in the database")
    gw_raw, gw = scrape(*gw_control)
    gw_status = fetch_status(gw_control)

    # ---- the gateway -------------------------------------------------------------------------
    assert promtool_problems(gw_raw) == "", promtool_problems(gw_raw)
    assert unexplained(gw_status) == [], ADD_IT
    expected = {d.name.removesuffix("_total") for d in METRICS if "gateway" in d.roles}
    if not writer:
        expected = {n for n in expected if "_writer_" not in n}
    families = {f.name for f in text_string_to_metric_families(gw_raw.decode())}
    assert expected <= families, f"families without values: {expected - families}"
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_gc_collections"} <= families
    assert value(gw, "chatcluster_gateway_sessions") == 5 and value(gw, "chatcluster_gateway_members") == 4
    assert value(gw, "chatcluster_gateway_logins_total") == 4
    assert value(gw, "chatcluster_gateway_login_failures_total") == 1
    assert value(gw, "chatcluster_gateway_login_duration_seconds_count") == 5  # every password login, refused too
    assert value(gw, "chatcluster_gateway_login_duration_seconds_bucket", le="+Inf") == 5
    assert value(gw, "chatcluster_gateway_thread_pool_run_seconds_count", pool="hash") >= 5
    assert value(gw, "chatcluster_gateway_flush_duration_seconds_count") > 0
    assert value(gw, "chatcluster_gateway_loop_lag_seconds_count") > 0
    assert value(gw, "chatcluster_db_pool_acquire_wait_seconds_count", pool="db") >= 6  # 5 logins, 1 room
    assert value(gw, "chatcluster_websocket_sessions") == 2
    assert value(gw, "chatcluster_websocket_bad_messages_total", reason="json") == 1
    assert value(gw, "chatcluster_http_pages_total") >= 1
    assert value(gw, "chatcluster_api_calls_total", outcome="ok") == 1
    assert value(gw, "chatcluster_api_refused_total", reason="unauthorized") == 1
    assert value(gw, "chatcluster_gateway_operator_actions_total", action="kick") == 0
    for shard in config.shards:
        assert value(gw, "chatcluster_gateway_shard_up", shard=str(shard.id)) == 1
    info = [k for k in gw if k[0] == "chatcluster_gateway_info"]
    assert dict(info[0][1])["writer"] == ("thread" if writer else "loop")
    if writer:
        assert value(gw, "chatcluster_gateway_writer_sends_total") > 0

    # ---- the shards --------------------------------------------------------------------------
    total_chats = 0
    for shard, control in zip(config.shards, shard_controls, strict=True):
        raw, series = scrape(*control)
        status = fetch_status(control)
        assert promtool_problems(raw) == "", f"shard {shard.id}:\n{promtool_problems(raw)}"
        assert unexplained(status) == [], f"shard {shard.id}: {ADD_IT}"
        expected = {d.name.removesuffix("_total") for d in METRICS if "shard" in d.roles}
        families = {f.name for f in text_string_to_metric_families(raw.decode())}
        assert expected <= families, f"shard {shard.id}: families without values: {expected - families}"
        assert value(series, "chatcluster_shard_gateway_silence_seconds", gateway="gw0") < 5
        assert value(series, "chatcluster_shard_batch_duration_seconds_count") == \
            value(series, "chatcluster_shard_batch_envelopes_count") > 0
        assert value(series, "chatcluster_zmq_received_messages_total") > 0
        assert value(series, "chatcluster_db_pool_size", pool="chatlog") == 1
        chats_here = value(series, "chatcluster_shard_chats_total")
        if chats_here:
            assert value(series, "chatcluster_chatlog_db_write_duration_seconds_count") >= 1
            assert value(series, "chatcluster_chatlog_db_rows_total") == chats_here
        total_chats += chats_here
        for d in METRICS:  # no family of the other role leaks into a shard's output
            assert d.name.removesuffix("_total") not in families or "shard" in d.roles, d.name
    assert total_chats == chats

    hist_names = {d.name for d in METRICS if d.kind == HISTOGRAM}
    assert all(f"{n}_bucket" not in names(gw) or f"{n}_count" in names(gw) for n in hist_names)
    for client in (a, b, ws, js, stranger):
        client.close()
