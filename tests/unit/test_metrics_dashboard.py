"""deploy/grafana/chatcluster.json: import-ready, and every query asks for metrics the exporter defines.

A dashboard whose query names a metric nobody exports shows "No data" and
nobody notices; so every PromQL expression is parsed for the metric names it
uses, and each must be in common/metrics.py's table (or a standard collector's).
promtool then parses every expression as Prometheus would (as recording rules).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chatcluster.common.metrics import exported_names

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
            "inf", "nan"}


def generator():
    spec = importlib.util.spec_from_file_location("grafana_dashboard", GRAFANA / "dashboard.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def board() -> dict:
    return json.loads((GRAFANA / "chatcluster.json").read_text(encoding="utf-8"))


def expressions(board: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query, the template variables' included."""
    out = [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        match = re.fullmatch(r"label_values\((\w+), *\w+\)", var["query"]["query"])
        assert match, var["query"]
        out.append((f"variable {var['name']}", match.group(1)))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and durations taken out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                # strings
    text = re.sub(r"\{[^}]*\}", "", text)                          # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                         # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word, rest = match.group(), text[match.end():].lstrip()
        if rest.startswith("(") or word.lower() in KEYWORDS or re.fullmatch(r"\d.*", word):
            continue  # a function call, a keyword
        names.add(word)
    return names


def test_the_name_parser_finds_metrics_and_nothing_else():
    expr = ('histogram_quantile(0.99, sum by (le, pool) (rate(x_seconds_bucket{job=~"$job", a="b{}"}'
            '[$__rate_interval]))) / on (job) group_left (role, id) y_info{job=~"$job"} > bool 0 and z')
    assert metric_names(expr) == {"x_seconds_bucket", "y_info", "z"}


def test_every_query_names_only_metrics_the_exporter_defines(board):
    defined = exported_names()
    used = set()
    for title, expr in expressions(board):
        names = metric_names(expr)
        assert names, f"{title}: no metric in {expr!r}"
        assert names <= defined, f"{title}: {sorted(names - defined)} are not exported (common/metrics.py)"
        used |= names
    # The dashboard covers the seed's KPI tables: these must each be on it.
    for name in ("chatcluster_gateway_sessions", "chatcluster_shard_rooms", "chatcluster_shard_chats_total",
                 "chatcluster_gateway_deliveries_total", "chatcluster_gateway_flush_duration_seconds_bucket",
                 "chatcluster_gateway_loop_lag_seconds_bucket", "chatcluster_gateway_send_buffer_bytes",
                 "chatcluster_gateway_slow_consumers_total", "chatcluster_zmq_backlog_messages",
                 "chatcluster_db_pool_in_use", "chatcluster_db_pool_acquire_wait_seconds_bucket",
                 "chatcluster_gc_pause_seconds_bucket", "process_cpu_seconds_total", "process_resident_memory_bytes",
                 "chatcluster_websocket_sessions", "chatcluster_chatlog_backlog_messages",
                 "chatcluster_shard_batch_duration_seconds_bucket"):
        assert name in used, f"{name} has no panel"


def test_latency_percentiles_come_from_summed_buckets(board):
    quantile_exprs = [e for _, e in expressions(board) if "histogram_quantile" in e]
    assert len(quantile_exprs) >= 10
    for expr in quantile_exprs:
        assert re.search(r"histogram_quantile\([\d.]+, sum by \(le[,)]", expr), expr
        assert "_bucket{" in expr and "rate(" in expr, expr


def test_every_expression_parses_as_promql(board, tmp_path):
    """promtool parses them as recording rules, Grafana's variables given values as Grafana would."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (Debian's package has /usr/bin/promtool)")
    rules = [{"record": f"chatcluster:dashboard_query_{n}:check",
              "expr": expr.replace("$__rate_interval", "1m").replace("$job", ".*")}
             for n, (_, expr) in enumerate(expressions(board))]
    rule_file = tmp_path / "dashboard-rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules)} rules found" in out.stdout


def test_it_is_import_ready(board):
    assert board["__inputs"] == [{"name": "DS_PROMETHEUS", "label": "Prometheus",
                                  "description": "Where chatcluster is scraped", "type": "datasource",
                                  "pluginId": "prometheus", "pluginName": "Prometheus"}]
    assert board["id"] is None and board["uid"] and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    kinds = {p["type"] for p in board["panels"]}
    assert {r["id"] for r in board["__requires"] if r["type"] == "panel"} == kinds - {"row"}
    for p in board["panels"]:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and all(t["datasource"] == p["datasource"] for t in p["targets"])
    cells = set()
    for p in board["panels"]:  # no two panels cover the same cell
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine


def test_the_file_is_what_the_generator_writes(board):
    assert (GRAFANA / "chatcluster.json").read_text(encoding="utf-8") == generator().render(), \
        "deploy/grafana/chatcluster.json is stale: run python deploy/grafana/dashboard.py"
