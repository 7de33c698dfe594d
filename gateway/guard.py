"""Limits on what one client can do: chat rate, and how fast it may guess passwords.

Plain objects (sans-I/O) with the clock passed in, so they are tested without
waiting: GatewayCore asks them before doing the work.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; one token per chat."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class LoginGuard:
    """Failed logins per account name and per client address, with back-off.

    After `free` failures in a row, each further failure locks the name (or
    the address) for a doubling time, up to `max_lock` seconds; a locked
    attempt is refused before any password is hashed, so guessing is slow and
    cheap for us. A success clears the name's record (not the address's: one
    good account must not unlock guessing at others from the same place).
    The records are bounded (least recently used dropped first).
    """

    def __init__(self, free_per_name: int = 5, free_per_address: int = 20, first_lock: float = 1.0,
                 max_lock: float = 300.0, max_records: int = 100_000) -> None:
        self.free = {"name": free_per_name, "address": free_per_address}
        self.first_lock = first_lock
        self.max_lock = max_lock
        self.max_records = max_records
        self._records: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    def wait(self, name: str, address: str, now: float) -> float:
        """Seconds until this name may try again from this address (0: go ahead)."""
        waits = [record.locked_until - now for key in _keys(name, address)
                 if (record := self._records.get(key)) is not None]
        return max([0.0, *waits])

    def failed(self, name: str, address: str, now: float) -> None:
        for key in _keys(name, address):
            record = self._records.pop(key, None) or _Failures()
            record.count += 1
            over = record.count - self.free[key[0]]
            if over > 0:
                record.locked_until = now + min(self.max_lock, self.first_lock * 2 ** (over - 1))
            self._records[key] = record
        while len(self._records) > self.max_records:
            self._records.popitem(last=False)

    def succeeded(self, name: str) -> None:
        self._records.pop(("name", name), None)


def _keys(name: str, address: str) -> list[tuple[str, str]]:
    """What a failure counts against: the name and the address; a token login has no name before it is checked."""
    return [("name", name), ("address", address)] if name else [("address", address)]
