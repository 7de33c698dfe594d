"""Times as operators and players read them: UTC, to the second, the same wherever they are."""

from __future__ import annotations

import time


def utc_text(time_us: int) -> str:
    """`2026-12-05 10:00:00 UTC` for a time in µs since the epoch."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(time_us / 1_000_000))


def until_text(until_us: int) -> str:
    """How long a ban or mute lasts, in words: `until 2026-12-05 10:00:00 UTC`, or `until lifted` (0)."""
    return f"until {utc_text(until_us)}" if until_us else "until lifted"
