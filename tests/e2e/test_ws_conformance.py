"""The Autobahn|Testsuite's cases 1-10 (framing, pings, reserved bits, opcodes, fragmentation, UTF-8,
close handling, limits) against the gateway's WebSocket adapter, run by kosoku, a suite nobody here wrote.

The adapter runs with the echo sink (gateway/wsecho.py): the same HttpConnection
code as chat sessions, answering every message with itself, as the suite expects.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from waiting import wait_for

from chatcluster.spawn import free_port_block

pytestmark = pytest.mark.e2e

KOSOKU = Path(sys.executable).parent / "kosoku"
PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def test_autobahn_cases_1_to_10(tmp_path):
    port = free_port_block(1)
    echo = subprocess.Popen([sys.executable, "-m", "chatcluster.gateway.wsecho", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() or True, 15,
                 "the echo server", tolerate=(OSError,))
        run = subprocess.run([str(KOSOKU), f"127.0.0.1:{port}", "-x", "12.*", "-x", "13.*", "-o", str(tmp_path)],
                             capture_output=True, text=True, timeout=240)
    finally:
        echo.kill()
        echo.wait()
    report = json.loads((tmp_path / "index.json").read_text())
    verdicts = Counter()
    failed = []
    for cases in report.values():
        for case, result in cases.items():
            verdicts[result["behavior"]] += 1
            if result["behavior"] not in PASSING or result["behaviorClose"] not in PASSING:
                failed.append((case, result["behavior"], result["behaviorClose"]))
    print(f"autobahn 1-10 via kosoku: {dict(verdicts)}")
    assert not failed, failed
    assert sum(verdicts.values()) >= 300
    assert run.returncode == 0, run.stdout[-2000:]
