"""What a gateway checks before a login or a room name costs the database anything.

Every refusal here is answered at once, on the loop, with a message the
player can act on; only a request that passes reaches the database and the
password hash (off the loop).
"""

from __future__ import annotations

import heapq
from typing import Any

from chatcluster.common.config import Limits
from chatcluster.common.tokens import MAX_TOKEN
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

    def token_refusal(self, token: str, address: str, now: float) -> str | None:
        """Why this token login is refused before any work, or None to go ahead."""
        if len(token) > MAX_TOKEN:  # refused unparsed, whatever it holds
            return f"token longer than {MAX_TOKEN} bytes"
        if (wait := self.guard.wait("", address, now)) > 0:
            self.stats.login_throttled += 1
            return f"too many failed logins; try again in {wait:.0f} s"
        if self.in_flight >= self.limits.max_logins_in_flight:
            self.stats.logins_refused_busy += 1
            return "the server is busy with other logins; try again in a moment"
        return None

    def started(self) -> None:
        self.in_flight += 1

    def done(self, name: str, address: str, ok: bool | None, now: float) -> None:
        """A login's outcome: True, False (bad credentials), None (no answer: database error)."""
        self.in_flight -= 1
        if ok:
            self.guard.succeeded(name)
        elif ok is False:
            self.guard.failed(name, address, now)


class TokenExpiries:
    """When each token-logged-in session's token runs out, soonest first.

    A refresh pushes the new deadline; the old entry is recognised as stale
    when it comes up (the session's deadline moved on), so nothing is searched.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int]] = []

    def add(self, deadline: float, session_id: int) -> None:
        heapq.heappush(self._heap, (deadline, session_id))

    def due(self, now: float) -> list[tuple[float, int]]:
        """(deadline, session id) of every entry whose deadline has passed."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap))
        return due
