"""What a gateway checks before a login or a room name costs the database anything.

Every refusal here is answered at once, on the loop, with a message the
player can act on; only a request that passes reaches the database and the
password hash (off the loop).
"""

from __future__ import annotations

from typing import Any

from chatcluster.common.config import Limits
from chatcluster.gateway.guard import LoginGuard
from chatcluster.proto import chat_pb2


def check_name(name: str, limit: int, what: str) -> str | None:
    """Why a player or room name is unusable, or None."""
    if not name:
        return f"{what} must not be empty"
    if len(name.encode("utf-8")) > limit:
        return f"{what} longer than {limit} bytes"
    if not name.isprintable() or name != name.strip():
        return f"{what} has control characters or surrounding spaces"
    return None


class LoginGate:
    """Refuses logins that must not reach the database: bad input, password guessing, overload."""

    def __init__(self, limits: Limits, stats: Any) -> None:
        self.limits = limits
        self.stats = stats  # counts login_throttled and logins_refused_busy
        self.guard = LoginGuard(limits.login_failures_per_name, limits.login_failures_per_address)
        self.in_flight = 0

    def refusal(self, req: chat_pb2.C_LOGIN_REQ, address: str, now: float) -> str | None:
        """Why this login is refused before any work, or None to go ahead."""
        limits = self.limits
        problem = check_name(req.name, limits.max_name, "name")
        if problem is None and not req.password:
            problem = "password must not be empty"
        if problem is None and len(req.password.encode("utf-8")) > limits.max_password:
            problem = f"password longer than {limits.max_password} bytes"
        if problem is None and (wait := self.guard.wait(req.name, address, now)) > 0:
            self.stats.login_throttled += 1
            problem = f"too many failed logins; try again in {wait:.0f} s"
        if problem is None and self.in_flight >= limits.max_logins_in_flight:
            self.stats.logins_refused_busy += 1
            problem = "the server is busy with other logins; try again in a moment"
        return problem

    def started(self) -> None:
        self.in_flight += 1

    def done(self, name: str, address: str, ok: bool | None, now: float) -> None:
        """A login's outcome: True, False (bad credentials), None (no answer: database error)."""
        self.in_flight -= 1
        if ok:
            self.guard.succeeded(name)
        elif ok is False:
            self.guard.failed(name, address, now)
