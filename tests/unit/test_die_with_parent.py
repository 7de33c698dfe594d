"""A supervised child whose supervisor is already gone when it starts must not stay behind as an orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_child_whose_supervisor_died_before_it_started_exits():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that is no longer anybody's parent
    code = (f"from chatcluster.common.procutil import die_with_parent; die_with_parent({gone.pid}); "
            "import time; time.sleep(10); print('still alive')")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert child.returncode == -signal.SIGTERM and "still alive" not in child.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_child_of_a_live_supervisor_keeps_running():
    code = (f"from chatcluster.common.procutil import die_with_parent; die_with_parent({os.getpid()}); "
            "print('alive')")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    assert child.returncode == 0 and child.stdout.strip() == "alive"
