"""Which gateways are alive, from what they send: heartbeats and any other traffic.

A gateway that restarts comes back under the same ZeroMQ identity with a new
incarnation; one that dies stays silent. Either way its old sessions must
leave their rooms, or the rooms keep ghost members. Sans-I/O; the clock is
passed in.
"""

from __future__ import annotations


class GatewayPeers:
    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.incarnations: dict[bytes, int] = {}
        self.last_seen: dict[bytes, float] = {}
        self.restarts = 0
        self.timeouts = 0

    def seen(self, gateway: bytes, now: float) -> None:
        self.last_seen[gateway] = now

    def hello(self, gateway: bytes, incarnation: int, now: float) -> str:
        """Record a heartbeat: 'new' (a gateway we hold nothing of), 'same', or 'restarted' (a new incarnation)."""
        self.last_seen[gateway] = now
        before = self.incarnations.get(gateway)
        self.incarnations[gateway] = incarnation
        if before is None:
            return "new"
        if before != incarnation:
            self.restarts += 1
            return "restarted"
        return "same"

    def grace(self, now: float) -> None:
        """We were not running (stopped, frozen): nobody's silence meanwhile is their fault."""
        for gateway in self.last_seen:
            self.last_seen[gateway] = now

    def expired(self, now: float) -> list[bytes]:
        """Gateways silent for longer than the timeout; they are forgotten."""
        gone = [gw for gw, seen in self.last_seen.items() if now - seen > self.timeout]
        for gw in gone:
            del self.last_seen[gw]
            self.incarnations.pop(gw, None)
            self.timeouts += 1
        return gone

    def as_list(self, now: float) -> list[dict]:
        return [{"gateway": gw.decode(errors="replace"), "incarnation": self.incarnations.get(gw, 0),
                 "silent_s": round(now - seen, 2)} for gw, seen in self.last_seen.items()]
