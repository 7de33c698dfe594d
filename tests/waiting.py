"""Wait for a condition instead of sleeping: the one polling helper of the tests.

A test that sleeps "long enough" is slow when the machine is quiet and flaky
when it is busy; one that polls the condition it needs, with a generous
deadline, is neither. (tests/ is on sys.path through its conftest.py, so any
test imports this as `from waiting import wait_for`.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float = 5.0, what: str = "the condition", *,
             interval: float = 0.05, tolerate: tuple[type[BaseException], ...] = ()) -> T:
    """probe()'s first truthy value, polling until `timeout` seconds have passed.

    `tolerate` lists exceptions that mean "not yet" (e.g. OSError while a process is still
    starting or a link is cut); any other exception fails the test at once.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = probe()
        except tolerate:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)
