"""Everything a shard owns, driven by envelopes: its rooms, its players' presence, its gateways.

Sans-I/O: the worker (shards/worker.py) feeds it what arrives over ZeroMQ and
sends what it puts in the Outbox; the logic tests feed it directly.
"""

from __future__ import annotations

import logging

from chatcluster.common.config import Limits
from chatcluster.common.envelope import Kind
from chatcluster.proto import cluster_pb2
from chatcluster.shards.peers import GatewayPeers
from chatcluster.shards.presence import Presence
from chatcluster.shards.rooms import Outbox, RoomBook

log = logging.getLogger("chatcluster.shard")


class Shard:
    def __init__(self, shard_id: int, incarnation: int, limits: Limits | None = None, **book_hooks: object) -> None:
        self.shard_id = shard_id
        self.incarnation = incarnation
        self.limits = limits or Limits()
        self.book = RoomBook(self.limits, **book_hooks)  # type: ignore[arg-type]
        self.presence = Presence()
        self.peers = GatewayPeers(self.limits.gateway_timeout)

    def handle(self, gateway: bytes, kind: int, msg: object, out: Outbox, now: float) -> None:
        """One decoded envelope from a gateway."""
        if kind == Kind.CHAT or kind in (Kind.JOIN, Kind.LEAVE, Kind.CREATE, Kind.LIST, Kind.REBUILD):
            self.book.handle(gateway, kind, msg, out)
        elif kind == Kind.HELLO:
            self._hello(gateway, msg, out, now)  # type: ignore[arg-type]
        elif kind == Kind.CLAIM:
            self.presence.claim(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.RELEASE:
            self.presence.release(gateway, msg)  # type: ignore[arg-type]
        else:
            raise ValueError(f"a shard does not take envelopes of kind {kind}")

    def _hello(self, gateway: bytes, hello: cluster_pb2.Hello, out: Outbox, now: float) -> None:
        """A gateway's heartbeat: answer it; if the gateway restarted, its old sessions are gone."""
        known = self.peers.hello(gateway, hello.incarnation, now)
        if known == "restarted":
            gone = self.drop_gateway(gateway, out)
            log.warning(" gateway %s restarted: its %d old session(s) left their rooms",
                        gateway.decode(errors="replace"), gone)
        answer = cluster_pb2.Hello(node=f"shard{self.shard_id}", incarnation=self.incarnation, sent_us=hello.sent_us,
                                   rebuild=known != "same")
        out.add(gateway, Kind.HELLO, answer.SerializeToString())

    def expire(self, now: float, out: Outbox) -> None:
        """Drop the sessions of gateways silent for too long."""
        for gateway in self.peers.expired(now):
            gone = self.drop_gateway(gateway, out)
            log.warning(" gateway %s silent for %.0f s: its %d session(s) left their rooms",
                        gateway.decode(errors="replace"), self.peers.timeout, gone)

    def drop_gateway(self, gateway: bytes, out: Outbox) -> int:
        self.presence.drop_gateway(gateway)
        return self.book.drop_gateway(gateway, out)
