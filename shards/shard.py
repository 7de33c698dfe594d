"""Everything a shard owns, driven by envelopes: its rooms, its players' presence, its gateways.

Sans-I/O: the worker (shards/worker.py) feeds it what arrives over ZeroMQ and
sends what it puts in the Outbox; the logic tests feed it directly.

What a gateway got wrong (a PeerError: a batch that does not frame, a payload
that does not decode, a kind a shard does not take) is counted and logged, and
costs only what it spoils; any other exception is a bug of ours and surfaces.
"""

from __future__ import annotations

import logging

from chatcluster.common.config import Limits
from chatcluster.common.envelope import EnvelopeError, Kind, iter_items, parse, unpack_chat
from chatcluster.common.errors import PeerError
from chatcluster.proto import cluster_pb2
from chatcluster.shards.peers import GatewayPeers
from chatcluster.shards.presence import Presence
from chatcluster.shards.rooms import Outbox, RoomBook

log = logging.getLogger("chatcluster.shard")

Action = cluster_pb2.Operate.Action


class Shard:
    def __init__(self, shard_id: int, incarnation: int, limits: Limits | None = None, **book_hooks: object) -> None:
        self.shard_id = shard_id
        self.incarnation = incarnation
        self.limits = limits or Limits()
        self.book = RoomBook(self.limits, **book_hooks)  # type: ignore[arg-type]
        self.presence = Presence(self.book.clock_us)
        self.peers = GatewayPeers(self.limits.gateway_timeout)
        # figures: what gateways got wrong
        self.bad_envelopes = 0  # skipped: a payload that does not decode, a kind a shard does not take
        self.bad_batches = 0    # cut short: an item header that does not frame (nothing after it can be found)

    def receive(self, gateway: bytes, data: bytes, out: Outbox, now: float) -> int:
        """Every envelope of one batch from a gateway, in order; returns how many were handled.

        A bad payload inside a well-framed item skips that item only; a broken
        item header ends the batch, since the items after it cannot be found.
        """
        handled = 0
        try:
            for kind, payload in iter_items(data):
                try:
                    self.handle(gateway, kind, payload, out, now)
                except PeerError as exc:
                    self.bad_envelopes += 1
                    log.error(" bad envelope (kind %d, %d bytes) from %r, skipped: %s", kind, len(payload), gateway,
                              exc)
                    continue
                handled += 1
        except EnvelopeError as exc:  # raised by iter_items: the handler's own are caught above
            self.bad_batches += 1
            log.error(" bad batch from %r, the rest of it dropped: %s", gateway, exc)
        return handled

    def handle(self, gateway: bytes, kind: int, payload: bytes, out: Outbox, now: float) -> None:
        """One envelope from a gateway; PeerError if its kind or payload makes no sense."""
        book = self.book
        if kind == Kind.CHAT:
            room_id, session, body = unpack_chat(payload)
            book.chat(gateway, room_id, session, body, out)
            return
        msg = parse(kind, payload)
        if kind == Kind.JOIN:
            book.join(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.LEAVE:
            book.leave(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.CREATE:
            book.create(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.LIST:
            book.list_rooms(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.HISTORY:
            book.page(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.REBUILD:
            book.rebuild(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.HELLO:
            self._hello(gateway, msg, out, now)  # type: ignore[arg-type]
        elif kind == Kind.CLAIM:
            self.presence.claim(gateway, msg, out)  # type: ignore[arg-type]
        elif kind == Kind.RELEASE:
            self.presence.release(gateway, msg)  # type: ignore[arg-type]
        elif kind == Kind.OPERATE:
            self._operate(gateway, msg, out)  # type: ignore[arg-type]
        else:
            raise PeerError(f"a shard does not take envelopes of kind {kind}")

    def _operate(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        """An operator's action (docs/API.md); every one is answered with an Operated, even one we do not know."""
        handler = self._operators.get(msg.action)
        if handler is None:
            out.operated(gateway, msg.request, False, error="bad_request",
                         message=f"shard {self.shard_id} does not know operator action {msg.action}")
            return
        owner = self.presence if msg.action in (Action.DISCONNECT, Action.UNBAN) else self.book
        handler(owner, gateway, msg, out)

    _operators = {
        Action.PUBLISH: RoomBook.publish,
        Action.ROOM: RoomBook.describe,
        Action.KICK: RoomBook.kick,
        Action.HISTORY: RoomBook.recent,
        Action.MUTE: RoomBook.mute,
        Action.UNMUTE: RoomBook.unmute,
        Action.DISCONNECT: Presence.disconnect,
        Action.UNBAN: Presence.unban,
    }

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
        """Drop the sessions of gateways silent for too long, and close the rooms that rested past their grace."""
        self.book.expire()
        for gateway in self.peers.expired(now):
            gone = self.drop_gateway(gateway, out)
            log.warning(" gateway %s silent for %.0f s: its %d session(s) left their rooms",
                        gateway.decode(errors="replace"), self.peers.timeout, gone)

    def drop_gateway(self, gateway: bytes, out: Outbox) -> int:
        self.presence.drop_gateway(gateway)
        return self.book.drop_gateway(gateway, out)
