"""chatctl bench over WebSocket (binary and JSON) and TLS, end to end: short runs against spawned clusters.

The same checks as test_bench.py's CI-sized run: every measured message
came back to every member once and in order, nothing was undecodable, and
the report says what the clients spoke. The codec itself is unit-tested in
tests/unit/test_bench_ws.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bench import run_bench

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("args, transport, tls, via", [
    (("--transport", "ws"), "ws", False, "WebSocket binary (chatcluster.v1)"),
    (("--transport", "ws-json"), "ws-json", False, "WebSocket JSON (chatcluster.json.v1)"),
    (("--transport", "ws", "--tls"), "ws", True, "WebSocket binary (chatcluster.v1) with TLS"),
    (("--tls",), "tcp", True, "TCP with TLS"),
], ids=["ws", "ws-json", "wss", "tcp-tls"])
def test_short_bench_over_websocket_and_tls_is_complete_and_in_order(tmp_path: Path, args: tuple, transport: str,
                                                                     tls: bool, via: str):
    out = tmp_path / "bench.json"
    proc = run_bench("--spawn", "--shards", "2", "--spawn-arg=--scrypt-n=1024", "--clients", "20", "--rooms", "2",
                     "--rps", "10", "--duration", "3", "--warmup", "1", "--interval", "1", "--json", str(out), *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    c = r["correctness"]
    assert c["lost"] == 0 and c["gaps"] == 0 and c["reorders"] == 0 and c["duplicates"] == 0
    assert c["errors"] == 0 and c["dead"] == 0 and c["unknown_own"] == 0 and c["wrong_room"] == 0
    assert c["undecodable"] == 0 and c["unsent"] == 0
    assert c["measured_sent"] > 0
    assert c["delivered"] == c["expected_deliveries"] == c["measured_sent"] * 10   # rooms of 10 members
    assert r["ok"] and r["failures"] == {} and r["exit_status"] == 0
    assert r["latency"]["count"] == c["measured_sent"]
    assert r["kpi"]["fanout"] == 10 and r["run"]["members_mismatch"] == 0
    assert r["kpi"]["throughput_msgs_s"] == pytest.approx(200, rel=0.1)
    run = r["run"]
    assert (run["transport"], run["tls"], run["via"]) == (transport, tls, via)
    assert (run["http_port"] is not None) == (transport != "tcp")
    assert f"Transport: {via}" in proc.stdout and f"over {via}," in proc.stdout
    for label in ("io r/s", "bc-deliv/s", "Throughput (app in/s)", "<=100us", "job enq/s", "OK:"):
        assert label in proc.stdout
