"""What a gateway knows of each shard's health, from the heartbeats it answers.

Sans-I/O. A shard is `up` while it answers; `down` once it has been silent for
`timeout` (its rooms then answer S_ERROR UNAVAILABLE at once instead of
hanging); a changed incarnation means it restarted and lost its rooms, which
the gateway then rebuilds.
"""

from __future__ import annotations

import enum


class Event(enum.Enum):
    FIRST = "first"          # the first answer from this shard
    SAME = "same"            # a heartbeat, nothing new
    BACK = "back"            # answering again after it was down, same incarnation: state intact
    RESTARTED = "restarted"  # a new incarnation: its rooms are gone


class ShardHealth:
    __slots__ = ("timeout", "incarnation", "last_reply", "down", "downs", "restarts", "last_rebuild")

    def __init__(self, timeout: float, now: float) -> None:
        self.timeout = timeout
        self.incarnation = 0
        self.last_reply = now  # a grace period from start-up
        self.down = False
        self.downs = 0
        self.restarts = 0
        self.last_rebuild = float("-inf")

    def hello(self, incarnation: int, now: float) -> Event:
        self.last_reply = now
        was_down, self.down = self.down, False
        before, self.incarnation = self.incarnation, incarnation
        if before == 0:
            return Event.FIRST
        if before != incarnation:
            self.restarts += 1
            return Event.RESTARTED
        return Event.BACK if was_down else Event.SAME

    def check(self, now: float) -> bool:
        """True when the shard has just gone silent for too long."""
        if not self.down and now - self.last_reply > self.timeout:
            self.down = True
            self.downs += 1
            return True
        return False

    def as_dict(self, now: float) -> dict:
        return {"state": "down" if self.down else ("up" if self.incarnation else "unknown"),
                "incarnation": self.incarnation, "silent_s": round(now - self.last_reply, 2),
                "downs": self.downs, "restarts": self.restarts}
