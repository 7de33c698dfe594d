"""Where each player is logged in, cluster-wide: one session per player, on any gateway.

A player's presence lives on the shard that owns its player id (the same
rendezvous hashing as rooms), so every gateway asks the same place. When a
second session claims a player, the first is kicked (S_ERROR REPLACED), even
on another gateway. Sans-I/O: KICK envelopes go into the Outbox.

The same place is where an operator's disconnect or ban finds the player
(gateway/operations.py): whichever gateway holds its session is told to close
it. A ban is also remembered here until it ends: a login whose database check
passed a moment before the ban was written still claims the player here, and
is closed at once instead of slipping through.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from chatcluster.common.envelope import Kind
from chatcluster.common.frames import ErrorCode
from chatcluster.proto import cluster_pb2
from chatcluster.shards.rooms import Outbox

Holder = tuple[bytes, int]  # (gateway, session)


class Presence:
    def __init__(self, clock_us: Callable[[], int] = lambda: time.time_ns() // 1000) -> None:
        self.clock_us = clock_us
        self.holders: dict[int, Holder] = {}
        self.banned: dict[int, tuple[int, str]] = {}  # player -> (until_us (0: until lifted), the S_ERROR message)
        self.kicks = 0
        self.disconnects = 0  # sessions closed for operators (disconnects and bans)

    def claim(self, gateway: bytes, msg: cluster_pb2.Claim, out: Outbox) -> None:
        holder = (gateway, msg.session)
        previous = self.holders.get(msg.player_id)
        self.holders[msg.player_id] = holder
        if previous is not None and previous != holder:
            self.kicks += 1
            kick = cluster_pb2.Kick(player_id=msg.player_id, session=previous[1])
            out.add(previous[0], Kind.KICK, kick.SerializeToString())
        ban = self.banned.get(msg.player_id)
        if ban is not None:
            until_us, message = ban
            if until_us and until_us <= self.clock_us():
                del self.banned[msg.player_id]
            else:
                self._close(msg.player_id, holder, ErrorCode.BANNED, message, out)

    def release(self, gateway: bytes, msg: cluster_pb2.Release) -> None:
        if self.holders.get(msg.player_id) == (gateway, msg.session):
            del self.holders[msg.player_id]

    def disconnect(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        """An operator's disconnect (code KICKED) or ban (code BANNED, remembered until msg.until_us): the
        player's session, wherever it is, is closed with that code and msg.reason as the message."""
        if msg.code == ErrorCode.BANNED:
            self.banned[msg.player_id] = (msg.until_us, msg.reason)
        holder = self.holders.get(msg.player_id)
        if holder is not None:
            self._close(msg.player_id, holder, msg.code, msg.reason, out)
        out.operated(gateway, msg.request, count=int(holder is not None))

    def unban(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        gone = self.banned.pop(msg.player_id, None) is not None
        out.operated(gateway, msg.request, count=int(gone))

    def _close(self, player_id: int, holder: Holder, code: int, message: str, out: Outbox) -> None:
        self.disconnects += 1
        kick = cluster_pb2.Kick(player_id=player_id, session=holder[1], code=code, reason=message)
        out.add(holder[0], Kind.KICK, kick.SerializeToString())

    def drop_gateway(self, gateway: bytes) -> int:
        gone = [player for player, (gw, _) in self.holders.items() if gw == gateway]
        for player in gone:
            del self.holders[player]
        return len(gone)
