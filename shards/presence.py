"""Where each player is logged in, cluster-wide: one session per player, on any gateway.

A player's presence lives on the shard that owns its player id (the same
rendezvous hashing as rooms), so every gateway asks the same place. When a
second session claims a player, the first is kicked (S_ERROR REPLACED), even
on another gateway. Sans-I/O: KICK envelopes go into the Outbox.
"""

from __future__ import annotations

from chatcluster.common.envelope import Kind
from chatcluster.proto import cluster_pb2
from chatcluster.shards.rooms import Outbox

Holder = tuple[bytes, int]  # (gateway, session)


class Presence:
    def __init__(self) -> None:
        self.holders: dict[int, Holder] = {}
        self.kicks = 0

    def claim(self, gateway: bytes, msg: cluster_pb2.Claim, out: Outbox) -> None:
        holder = (gateway, msg.session)
        previous = self.holders.get(msg.player_id)
        self.holders[msg.player_id] = holder
        if previous is not None and previous != holder:
            self.kicks += 1
            kick = cluster_pb2.Kick(player_id=msg.player_id, session=previous[1])
            out.add(previous[0], Kind.KICK, kick.SerializeToString())

    def release(self, gateway: bytes, msg: cluster_pb2.Release) -> None:
        if self.holders.get(msg.player_id) == (gateway, msg.session):
            del self.holders[msg.player_id]

    def drop_gateway(self, gateway: bytes) -> int:
        gone = [player for player, (gw, _) in self.holders.items() if gw == gateway]
        for player in gone:
            del self.holders[player]
        return len(gone)
