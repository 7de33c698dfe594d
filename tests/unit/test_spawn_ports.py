"""Ports for spawned clusters stay out of the kernel's ephemeral range (a probe could self-connect there)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from chatcluster.spawn import free_port_block


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's ip_local_port_range")
def test_port_blocks_are_below_the_ephemeral_range():
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        base = free_port_block(8)
        assert base + 8 <= low or low - 8 <= 10000
