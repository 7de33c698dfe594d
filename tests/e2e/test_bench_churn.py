"""chatctl bench --churn end to end: clients dropped while the load runs come back without a miss or a duplicate.

A short run against a spawned cluster: clients drop their connections at
random, log in again and resume their rooms (PROTOCOL.md 1.1); the bench's
own JSON must show resumes that all recovered, nothing missed, nothing
twice, every measured message delivered to every member (live or replayed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_churn_resumes_recover_everything_with_no_miss_and_no_duplicate(tmp_path: Path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "chatcluster", "bench", "--no-live", "--spawn", "--shards", "2", "--clients", "20",
         "--rooms", "2", "--rps", "10", "--duration", "8", "--warmup", "1", "--interval", "4", "--churn", "5",
         "--json", str(out)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r = json.loads(out.read_text())
    c = r["correctness"]
    churn = c["churn"]
    assert churn["drops"] > 0 and churn["resumes"] == churn["drops"] > 0
    assert churn["resumes_recovered"] == churn["resumes"]
    assert churn["resumes_not_recovered"] == churn["resumes_in_window_not_recovered"] == 0
    assert churn["missed"] == 0 and c["duplicates"] == 0 and c["gaps"] == 0 and c["reorders"] == 0
    assert c["lost"] == 0 and c["errors"] == 0 and c["dead"] == 0 and c["unsent"] == 0
    assert churn["replayed"] > 0  # the drops fell while the room was talking
    assert churn["resent"] >= churn["lost_at_drop"] > 0  # sent again after the replay, broadcast once (below)
    # Every member of a room (10) got every measured message once, live or replayed.
    assert c["delivered"] == c["expected_deliveries"] == churn["expected_all"] == c["measured_sent"] * 10
    assert r["ok"] and r["failures"] == {} and r["exit_status"] == 0
    assert r["run"]["churn"] == 5 and r["run"]["reconnecting_at_end"] == 0 and r["run"]["members_mismatch"] == 0
    # The shards counted the same resumes; they replayed at least what arrived (a drop may cut a replay short).
    shard_history = [h for h in r["server"]["history"] if h]
    assert sum(h["resumes"] for h in shard_history) == churn["resumes"]
    assert sum(h["resumes_recovered"] for h in shard_history) == churn["resumes_recovered"]
    assert sum(h["replayed"] for h in shard_history) >= churn["replayed"]
    assert "Churn (5/s)" in proc.stdout and "judged under churn" in proc.stdout
