"""promtool, the Prometheus project's own checker, run on an exposition: for the metrics tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def promtool_problems(exposition: bytes) -> str:
    """What `promtool check metrics` says about an exposition: "" when nothing.

    Fails (never skips) where promtool is missing: the check is the point.
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (Debian's package has /usr/bin/promtool)")
    out = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60)
    text = (out.stdout + out.stderr).decode().strip()
    return text or ("" if out.returncode == 0 else f"promtool exited {out.returncode}")
