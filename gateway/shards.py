"""The gateway's side of its shards: heartbeats, health, and giving a restarted shard its rooms back.

Sans-I/O, like the core it serves: it reads the clock it is given and
queues envelopes in the core's Outbox. A shard that restarts (a new
incarnation) or that dropped this gateway after a silence holds none of our
sessions; the gateway then tells it the rooms it has members in (members and
last `seq`) and re-claims its players' presence, so service goes on without
anyone logging in again.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from chatcluster.common.config import Limits
from chatcluster.common.envelope import Kind
from chatcluster.common.hashing import owner
from chatcluster.gateway.health import Event, ShardHealth
from chatcluster.gateway.output import Outbox
from chatcluster.gateway.rooms import LocalRooms
from chatcluster.gateway.session import Session
from chatcluster.proto import cluster_pb2

log = logging.getLogger("chatcluster.gateway")

REBUILD_EVERY = 1.0  # s: a burst of 'room unknown' answers needs one rebuild, not one each


class ShardWatch:
    def __init__(self, shard_ids: list[int], limits: Limits, outbox: Outbox, stats: Any, node: str, now: float,
                 clock_us: Callable[[], int]) -> None:
        self.shard_ids = list(shard_ids)
        self.limits = limits
        self.outbox = outbox
        self.stats = stats  # counts rebuilds
        self.node = node
        self.clock_us = clock_us
        self.incarnation = secrets.randbits(63) | 1  # shards tell a restarted gateway by this
        self.health = [ShardHealth(limits.shard_timeout, now) for _ in self.shard_ids]
        self._next_heartbeat = 0.0

    def owner(self, key: int) -> int:
        """Index (into shard_ids) of the shard that owns a room id or a player id."""
        return owner(key, self.shard_ids)

    def down(self, shard: int) -> bool:
        return self.health[shard].down

    def name(self, shard: int) -> int:
        return self.shard_ids[shard]

    # ---- heartbeats ---------------------------------------------------------------
    def heartbeat(self, now: float) -> None:
        hello = cluster_pb2.Hello(node=self.node, incarnation=self.incarnation, sent_us=self.clock_us())
        payload = hello.SerializeToString()
        for shard in range(len(self.shard_ids)):
            self.outbox.to_shard(shard, Kind.HELLO, payload)
        self._next_heartbeat = now + self.limits.heartbeat

    def tick(self, now: float) -> None:
        """Heartbeat when due; mark shards silent for too long as down."""
        if now >= self._next_heartbeat:
            self.heartbeat(now)
        for shard, health in enumerate(self.health):
            if health.check(now):
                log.warning(" shard %d silent for %.1f s: its rooms answer UNAVAILABLE until it is back",
                            self.shard_ids[shard], self.limits.shard_timeout)

    def hello(self, shard: int, hello: cluster_pb2.Hello, now: float) -> str | None:
        """A shard's answer; returns why it needs its rooms back, or None."""
        event = self.health[shard].hello(hello.incarnation, now)
        if event is Event.BACK:
            log.info(" shard %d answers again", self.shard_ids[shard])
        if not hello.rebuild:
            return None
        return "it restarted" if event is Event.RESTARTED else "it holds none of our sessions"

    # ---- presence and rebuilds ----------------------------------------------------
    def claim(self, session: Session) -> None:
        """One session per player cluster-wide: the player's presence shard kicks any other."""
        claim = cluster_pb2.Claim(player_id=session.player_id, session=session.id)
        self.outbox.to_shard(self.owner(session.player_id), Kind.CLAIM, claim.SerializeToString())

    def release(self, session: Session) -> None:
        release = cluster_pb2.Release(player_id=session.player_id, session=session.id)
        self.outbox.to_shard(self.owner(session.player_id), Kind.RELEASE, release.SerializeToString())

    def rebuild(self, shard: int, why: str, rooms: LocalRooms, players: Iterable[Session], now: float) -> None:
        """Give a shard that lost its rooms the ones we have members in, and our players' presence."""
        health = self.health[shard]
        if now - health.last_rebuild < REBUILD_EVERY:
            return
        for session in players:
            if self.owner(session.player_id) == shard:
                self.claim(session)
        mine = [room for room in rooms if self.owner(room.room_id) == shard]
        if not mine:
            return
        health.last_rebuild = now
        log.warning(" shard %d lost its rooms (%s): rebuilding %d room(s) from this gateway",
                    self.shard_ids[shard], why, len(mine))
        for room in mine:
            rebuild = cluster_pb2.Rebuild(
                room_id=room.room_id, name=room.name, last_seq=room.last_seq, epoch=room.epoch,
                members=[cluster_pb2.Member(session=s.id, player=s.player) for s in room.members.values()])
            self.outbox.to_shard(shard, Kind.REBUILD, rebuild.SerializeToString())
            self.stats.rebuilds += 1

    def as_dict(self, now: float) -> dict[str, dict]:
        return {str(self.shard_ids[k]): h.as_dict(now) for k, h in enumerate(self.health)}
