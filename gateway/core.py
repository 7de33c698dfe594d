"""The gateway's logic: sessions, requests, routing to shards, fan-out to local members.

Sans-I/O. GatewayCore is driven by calls (bytes from a client, a batch from
a shard, a database answer, the clock) and acts through a GatewayIO port
(queue an envelope for a shard, start a login, schedule a flush, close a
connection). The asyncio/ZeroMQ adapter in gateway/server.py implements the
port; tests drive the core with a recording port and real RoomBooks.

Writes are coalesced: a frame for a session is appended to its `out` list and
the session goes on the `dirty` list once; the adapter writes each dirty
session once per event-loop pass, so one send carries many deliveries.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from google.protobuf.message import DecodeError

from chatcluster.common import logs
from chatcluster.common.config import Limits
from chatcluster.common.envelope import EnvelopeError, Kind, iter_items, parse
from chatcluster.common.frames import (
    MAX_FRAME,
    ErrorCode,
    FrameDecoder,
    MsgId,
    ProtocolError,
    decode_body,
    encode,
    error_frame,
)
from chatcluster.common.hashing import owner
from chatcluster.common.storage import LoginResult
from chatcluster.gateway.guard import LoginGuard, TokenBucket
from chatcluster.gateway.health import Event as HealthEvent
from chatcluster.gateway.health import ShardHealth
from chatcluster.gateway.session import Pending, Session, State
from chatcluster.proto import chat_pb2, cluster_pb2

log = logging.getLogger("chatcluster.gateway")

C_ROOM_CHAT_REQ = int(MsgId.C_ROOM_CHAT_REQ)
PEER_CLOSED = "connection closed by peer"


def _describe(request: object) -> str:
    """A request's fields for a log line; never the password."""
    if isinstance(request, chat_pb2.C_LOGIN_REQ):
        return f"name={request.name!r}"
    if isinstance(request, chat_pb2.C_CREATE_ROOM_REQ):
        return f"name={request.name!r}"
    if isinstance(request, chat_pb2.C_JOIN_ROOM_REQ):
        return f"roomId={request.room_id}"
    if isinstance(request, chat_pb2.C_ROOM_CHAT_REQ):
        return f"bytes={len(request.text.encode())}"
    return ""


class GatewayIO(Protocol):
    """What the core asks of the world. Every call returns at once."""

    def to_shard(self, shard: int, kind: int, payload: bytes) -> None:
        """Queue an envelope for a shard (sent with the others at the end of the pass)."""

    def login(self, session_id: int, name: str, password: str) -> None:
        """Check credentials off the loop; answer with core.on_login_done(session_id, result)."""

    def allocate_room(self, request: int, name: str, creator_id: int) -> None:
        """Get a new room id off the loop; answer with core.on_room_allocated(request, room_id)."""

    def schedule_flush(self) -> None:
        """Make sure flush_dirty() runs at the end of this loop pass."""

    def close(self, session: Session, abort: bool = False) -> None:
        """Close the connection, after writing what is queued unless abort."""

    def pause_reading(self, session: Session) -> None: ...

    def resume_reading(self, session: Session) -> None: ...


class GatewayStats:
    __slots__ = (
        "accepted", "closed", "frames_in", "logins", "login_failures", "logins_refused_busy", "replaced",
        "protocol_errors", "bad_requests",
        "chats_in", "bcast_in", "deliveries", "frames_out", "errors_sent", "slow_consumers", "timeouts",
        "shard_errors", "undone", "rate_limited", "floods", "login_throttled", "connections_refused",
        "login_timeouts", "rebuilds", "unavailable",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class GatewayCore:
    def __init__(
        self,
        io: GatewayIO,
        shard_ids: list[int],
        limits: Limits | None = None,
        registration_open: bool = True,
        clock: Callable[[], float] = time.monotonic,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        node: str = "gw0",
    ) -> None:
        self.io = io
        self.shard_ids = list(shard_ids)
        self.limits = limits or Limits()
        self.registration_open = registration_open
        self.clock = clock
        self.clock_us = clock_us
        self.sessions: dict[int, Session] = {}
        self.players: dict[int, Session] = {}          # player id -> its one live session
        self.rooms: dict[int, dict[int, Session]] = {}  # room id -> local members by session id
        self.pending: dict[int, tuple[Session, Pending]] = {}  # request id -> waiting session
        self.leaving: dict[int, tuple[Session, int, float]] = {}  # request id -> (session, room, deadline)
        self.dirty: list[Session] = []
        self.stats = GatewayStats()
        self.verbose = log.isEnabledFor(logging.DEBUG)
        self.shutting_down = False
        self.logins_in_flight = 0
        self.node = node
        self.incarnation = secrets.randbits(63) | 1  # shards tell a restarted gateway by this
        self.health = [ShardHealth(self.limits.shard_timeout, self.clock()) for _ in self.shard_ids]
        self.room_names: dict[int, str] = {}  # local rooms: what a rebuild needs to tell a restarted shard
        self.room_seq: dict[int, int] = {}    # local rooms: the last seq delivered here
        self._next_heartbeat = 0.0
        self.unbound: dict[int, float] = {}  # sessions not logged in yet -> when they connected
        self.login_guard = LoginGuard(self.limits.login_failures_per_name, self.limits.login_failures_per_address)
        self._session_ids = itertools.count(1)
        self._request_ids = itertools.count(1)

    def start(self) -> None:
        """Greet every shard before anything else goes out, so each sees this incarnation first."""
        self._heartbeat()

    def _heartbeat(self) -> None:
        hello = cluster_pb2.Hello(node=self.node, incarnation=self.incarnation, sent_us=self.clock_us())
        payload = hello.SerializeToString()
        for shard in range(len(self.shard_ids)):
            self.io.to_shard(shard, Kind.HELLO, payload)
        self._next_heartbeat = self.clock() + self.limits.heartbeat

    def shard_down(self, shard: int) -> bool:
        return self.health[shard].down

    # ---- connections --------------------------------------------------------
    def open_session(self, transport: object = None, peer: str = "") -> Session:
        session = Session(next(self._session_ids), FrameDecoder(self.limits.max_frame), transport, peer)
        full = len(self.sessions) >= self.limits.max_connections
        self.sessions[session.id] = session
        self.unbound[session.id] = self.clock()
        self.stats.accepted += 1
        if self.verbose:
            log.debug("%sOnConnected() peer=%s", logs.ctx(session.id), peer)
        if self.shutting_down:
            self.send_error(session, ErrorCode.SHUTTING_DOWN, "the server is shutting down")
            self._drop(session, "shutting down")
        elif full:
            self.stats.connections_refused += 1
            self.send_error(session, ErrorCode.LIMIT, f"server full ({self.limits.max_connections} connections)")
            self._drop(session, "connection limit")
        return session

    def connection_lost(self, session: Session) -> None:
        if not session.closed:
            self._drop(session, PEER_CLOSED)

    def on_data(self, session: Session, data: bytes) -> None:
        if session.closed:
            return
        session.decoder.feed(data)
        self._pump(session)

    def _pump(self, session: Session) -> None:
        """Handle buffered frames until none is left or the session must wait for an answer."""
        decoder = session.decoder
        stats = self.stats
        try:
            while session.pending is None and session.state is not State.CLOSED:
                frame = decoder.next_frame()
                if frame is None:
                    break
                msg_id, body = frame
                stats.frames_in += 1
                bucket = session.bucket
                if bucket is not None:
                    if not bucket.take(self.clock()):
                        self._rate_limited(session)
                        continue
                    if session.refused_streak:
                        session.refused_streak = 0
                if msg_id == C_ROOM_CHAT_REQ and session.state is State.IN_ROOM:
                    # The hot path: the shard decodes and checks the body; we only route it.
                    if self.health[session.room_shard].down:
                        self._unavailable(session, session.room_shard)
                        continue
                    if self.verbose:
                        log.debug("%sC_ROOM_CHAT_REQ body=%d", logs.ctx(session.id, session.player_id,
                                                                          session.room_id), len(body))
                    chat = cluster_pb2.ChatIn(room_id=session.room_id, session=session.id, body=body)
                    self.io.to_shard(session.room_shard, Kind.CHAT, chat.SerializeToString())
                    stats.chats_in += 1
                else:
                    self._request(session, msg_id, body)
        except ProtocolError as exc:
            self.stats.protocol_errors += 1
            log.info("%sprotocol error: %s; closing", logs.ctx(session.id, session.player_id), exc.message)
            self.send_error(session, exc.code, exc.message)
            self._drop(session, "protocol error")
            return
        if session.closed:
            return
        if session.pending is not None and decoder.buffered:
            if not session.paused:
                session.paused = True
                self.io.pause_reading(session)
        elif session.paused:
            session.paused = False
            self.io.resume_reading(session)

    # ---- requests -----------------------------------------------------------
    def _request(self, session: Session, msg_id: int, body: bytes) -> None:
        if session.state is State.CONNECTED and msg_id != MsgId.C_LOGIN_REQ:
            self.send_error(session, ErrorCode.NOT_LOGGED_IN, "log in first")
            return
        try:
            request = decode_body(msg_id, body)
        except DecodeError:
            self.stats.bad_requests += 1
            self.send_error(session, ErrorCode.BAD_REQUEST, f"{MsgId(msg_id).name} does not decode")
            return
        if self.verbose:
            log.debug("%s%s %s", logs.ctx(session.id, session.player_id, session.room_id), MsgId(msg_id).name,
                      _describe(request))
        handler = self._handlers[msg_id]
        handler(self, session, request)

    def _on_login(self, session: Session, req: chat_pb2.C_LOGIN_REQ) -> None:
        if session.state is not State.CONNECTED:
            self.send(session, encode(chat_pb2.S_LOGIN_RES(success=False, message="already logged in")))
            return
        problem = self._check_name(req.name, self.limits.max_name, "name")
        if problem is None and not req.password:
            problem = "password must not be empty"
        if problem is None and len(req.password.encode("utf-8")) > self.limits.max_password:
            problem = f"password longer than {self.limits.max_password} bytes"
        if problem is None and (wait := self.login_guard.wait(req.name, session.address, self.clock())) > 0:
            self.stats.login_throttled += 1
            problem = f"too many failed logins; try again in {wait:.0f} s"
        if problem is None and self.logins_in_flight >= self.limits.max_logins_in_flight:
            self.stats.logins_refused_busy += 1
            problem = "the server is busy with other logins; try again in a moment"
        if problem is not None:
            self.stats.login_failures += 1
            self.send(session, encode(chat_pb2.S_LOGIN_RES(success=False, message=problem)))
            return
        session.pending = Pending("login", 0, float("inf"), name=req.name)
        self.logins_in_flight += 1
        self.io.login(session.id, req.name, req.password)

    def on_login_done(self, session_id: int, result: LoginResult | BaseException) -> None:
        self.logins_in_flight -= 1
        session = self.sessions.get(session_id)
        if session is None or session.closed:
            return
        name = session.pending.name if session.pending else ""
        session.pending = None
        if isinstance(result, BaseException):
            self.stats.login_failures += 1
            log.error("%slogin of %r failed: database error: %s", logs.ctx(session.id), name, result)
            self.send(session, encode(chat_pb2.S_LOGIN_RES(
                success=False, message="login is unavailable right now (database error); try again later")))
        elif not result.ok:
            self.stats.login_failures += 1
            self.login_guard.failed(name, session.address, self.clock())
            if self.verbose:
                log.debug("%sS_LOGIN_RES success=false name=%r (%s)", logs.ctx(session.id), name, result.message)
            self.send(session, encode(chat_pb2.S_LOGIN_RES(success=False, message=result.message)))
        else:
            previous = self.players.get(result.player_id)
            if previous is not None and previous is not session:
                self.stats.replaced += 1
                log.info("%slogged in again from another connection (sess:%04x); replacing",
                         logs.ctx(previous.id, result.player_id), session.id)
                self.send_error(previous, ErrorCode.REPLACED, "logged in on another connection")
                self._drop(previous, "replaced")
            session.bind(chat_pb2.Player(player_id=result.player_id, name=name))
            session.bucket = TokenBucket(self.limits.chat_rate, self.limits.chat_burst, self.clock())
            self.unbound.pop(session.id, None)
            self.login_guard.succeeded(name)
            self.players[result.player_id] = session
            self._claim(session)  # one session per player across gateways: the presence shard kicks others
            self.stats.logins += 1
            if self.verbose:
                log.debug("%sS_LOGIN_RES success=true name=%r", logs.ctx(session.id, result.player_id), name)
            self.send(session, encode(chat_pb2.S_LOGIN_RES(success=True, player_id=result.player_id,
                                                           message=result.message)))
        self._pump(session)

    def _on_create(self, session: Session, req: chat_pb2.C_CREATE_ROOM_REQ) -> None:
        problem = self._check_name(req.name, self.limits.max_room_name, "room name")
        if problem is not None:
            self.send(session, encode(chat_pb2.S_CREATE_ROOM_RES(success=False, message=problem)))
            return
        request = next(self._request_ids)
        pending = Pending("create", request, self.clock() + self.limits.request_timeout, name=req.name)
        self._wait(session, pending)
        self.io.allocate_room(request, req.name, session.player_id)

    def on_room_allocated(self, request: int, room_id: int | BaseException) -> None:
        entry = self.pending.get(request)
        if entry is None:
            return  # timed out already; the unused id is simply never used
        session, pending = entry
        if isinstance(room_id, BaseException):
            log.error("%sroom id allocation failed: database error: %s", logs.ctx(session.id, session.player_id),
                      room_id)
            self._finish(request)
            self.send(session, encode(chat_pb2.S_CREATE_ROOM_RES(
                success=False, message="rooms cannot be created right now (database error)")))
            self._pump(session)
            return
        if session.closed:
            self._finish(request)
            return
        pending.shard = self.owner(room_id)
        if self.health[pending.shard].down:
            self._finish(request)
            self._unavailable(session, pending.shard)
            self._pump(session)
            return
        pending.deadline = self.clock() + self.limits.request_timeout
        create = cluster_pb2.CreateRoom(request=request, room_id=room_id, name=pending.name,
                                        member=cluster_pb2.Member(session=session.id, player=session.player))
        self.io.to_shard(pending.shard, Kind.CREATE, create.SerializeToString())

    def _on_join(self, session: Session, req: chat_pb2.C_JOIN_ROOM_REQ) -> None:
        shard = self.owner(req.room_id)
        if self.health[shard].down:
            self._unavailable(session, shard)
            return
        request = next(self._request_ids)
        self._wait(session, Pending("join", request, self.clock() + self.limits.request_timeout, shard=shard))
        join = cluster_pb2.JoinRoom(request=request, room_id=req.room_id,
                                    member=cluster_pb2.Member(session=session.id, player=session.player))
        self.io.to_shard(shard, Kind.JOIN, join.SerializeToString())

    def _on_chat(self, session: Session, req: chat_pb2.C_ROOM_CHAT_REQ) -> None:
        # Chats in a room never get here (see _pump); this is a chat from the lobby.
        self.send_error(session, ErrorCode.NOT_IN_ROOM, "not in a room")

    def _on_leave(self, session: Session, req: chat_pb2.C_LEAVE_ROOM_REQ) -> None:
        if session.state is not State.IN_ROOM:
            self.send(session, encode(chat_pb2.S_LEAVE_ROOM_ACK(success=False, message="not in a room")))
            return
        # The ack waits for the shard, so chats the session sent before leaving still echo back to it first.
        request = self._leave_room(session)
        self._wait(session, Pending("leave", request, self.clock() + self.limits.request_timeout))

    def _on_list(self, session: Session, req: chat_pb2.C_ROOM_LIST_REQ) -> None:
        request = next(self._request_ids)
        up = {k for k in range(len(self.shard_ids)) if not self.health[k].down}  # the down ones' rooms are not listed
        pending = Pending("list", request, self.clock() + self.limits.list_timeout, waiting=up)
        self._wait(session, pending)
        if not up:
            self._answer_list(session, pending)
            return
        payload = cluster_pb2.ListRooms(request=request).SerializeToString()
        for shard in up:
            self.io.to_shard(shard, Kind.LIST, payload)

    def _on_ping(self, session: Session, req: chat_pb2.C_PING) -> None:
        self.send(session, encode(chat_pb2.S_PONG(client_time_us=req.client_time_us, server_time_us=self.clock_us())))

    _handlers: dict[int, Callable[[GatewayCore, Session, object], None]] = {
        MsgId.C_LOGIN_REQ: _on_login,
        MsgId.C_CREATE_ROOM_REQ: _on_create,
        MsgId.C_JOIN_ROOM_REQ: _on_join,
        MsgId.C_ROOM_CHAT_REQ: _on_chat,
        MsgId.C_LEAVE_ROOM_REQ: _on_leave,
        MsgId.C_ROOM_LIST_REQ: _on_list,
        MsgId.C_PING: _on_ping,
    }

    # ---- shards -------------------------------------------------------------
    def owner(self, room_id: int) -> int:
        """Index (into shard_ids) of the shard that owns a room."""
        return owner(room_id, self.shard_ids)

    def on_shard_batch(self, shard: int, data: bytes) -> None:
        """Everything one ZeroMQ message from a shard carries."""
        try:
            for kind, payload in iter_items(data):
                if kind == Kind.DELIVER:
                    self._deliver(payload)
                elif kind == Kind.REPLY:
                    self._reply(shard, parse(kind, payload))
                elif kind == Kind.ROOMS:
                    self._rooms(shard, parse(kind, payload))
                elif kind == Kind.HELLO:
                    self._shard_hello(shard, parse(kind, payload))
                elif kind == Kind.KICK:
                    self._kick(parse(kind, payload))
                else:
                    raise EnvelopeError(f"a gateway does not take envelopes of kind {kind}")
        except EnvelopeError as exc:
            self.stats.shard_errors += 1
            log.error(" bad batch from shard %d: %s", self.shard_ids[shard], exc)

    def _deliver(self, payload: bytes) -> None:
        msg = cluster_pb2.Deliver()
        msg.ParseFromString(payload)
        members = self.rooms.get(msg.room_id)
        if not members:
            return
        if msg.seq:
            self.room_seq[msg.room_id] = msg.seq
        frame = msg.frame
        skip = msg.except_session
        dirty = self.dirty
        count = 0
        for session in members.values():
            if session.id == skip:
                continue
            session.out.append(frame)
            count += 1
            if not session.dirty:
                session.dirty = True
                dirty.append(session)
        self.stats.bcast_in += 1
        self.stats.deliveries += count
        if count:
            self.io.schedule_flush()

    def _reply(self, shard: int, msg: cluster_pb2.Reply) -> None:
        if msg.request == 0:
            session = self.sessions.get(msg.session)
            if session is None or session.closed:
                return
            if msg.room_unknown and msg.room_id in self.rooms:
                # The shard lost the room (it restarted before we noticed): give it back what we know.
                self._rebuild(shard, "it did not know a room of ours")
            elif msg.not_member and msg.room_id == session.room_id and session.state is State.IN_ROOM:
                # The shard does not have this session in the room: stop routing it there.
                self._forget_room(session)
            self.send(session, msg.frame)
            return
        leaving = self.leaving.pop(msg.request, None)
        if leaving is not None:
            self._left(msg.request, leaving[0], leaving[1])
            return
        entry = self.pending.get(msg.request)
        if entry is None or entry[0].closed:
            # Nobody waits for this answer any more (timed out, or the client left).
            self._finish(msg.request)
            if msg.ok and msg.room_id:
                self.stats.undone += 1
                undo = cluster_pb2.LeaveRoom(request=0, room_id=msg.room_id, session=msg.session)
                self.io.to_shard(shard, Kind.LEAVE, undo.SerializeToString())
            return
        session, pending = entry
        self._finish(msg.request)
        if msg.ok and pending.op in ("create", "join"):
            previous = session.room_id if session.state is State.IN_ROOM else 0
            if previous != msg.room_id:
                if previous:
                    self._leave_room(session)
                self.rooms.setdefault(msg.room_id, {})[session.id] = session
                self.room_names[msg.room_id] = msg.room_name
                session.enter(msg.room_id, shard)
            if self.verbose:
                log.debug("%s%s OK local_members=%d", logs.ctx(session.id, session.player_id, msg.room_id),
                          "Enter" if pending.op == "join" else "Create", len(self.rooms[msg.room_id]))
        self.send(session, msg.frame)
        self._pump(session)

    def _rooms(self, shard: int, msg: cluster_pb2.RoomList) -> None:
        entry = self.pending.get(msg.request)
        if entry is None:
            return
        session, pending = entry
        pending.rooms.extend(msg.rooms)
        pending.waiting.discard(shard)
        if not pending.waiting:
            self._answer_list(session, pending)

    def _answer_list(self, session: Session, pending: Pending) -> None:
        self._finish(pending.request)
        rooms = sorted(pending.rooms, key=lambda r: r.room_id)
        res = chat_pb2.S_ROOM_LIST_RES()
        size = 4
        for room in rooms:
            entry = room.ByteSize() + 3  # tag + length varint (rooms are < 16 KiB)
            if size + entry > MAX_FRAME:
                break
            res.rooms.append(room)
            size += entry
        if pending.waiting:
            missing = ", ".join(str(self.shard_ids[i]) for i in sorted(pending.waiting))
            log.warning("%sroom list without shard(s) %s: no answer in %.1f s",
                        logs.ctx(session.id, session.player_id), missing, self.limits.list_timeout)
        self.send(session, encode(res))
        self._pump(session)

    # ---- time ---------------------------------------------------------------
    def tick(self) -> None:
        """Expire requests whose shard did not answer; call a few times a second."""
        now = self.clock()
        if now >= self._next_heartbeat:
            self._heartbeat()
        for shard, health in enumerate(self.health):
            if health.check(now):
                log.warning(" shard %d silent for %.1f s: its rooms answer UNAVAILABLE until it is back",
                            self.shard_ids[shard], self.limits.shard_timeout)
        late = now - self.limits.login_timeout
        for session_id in [sid for sid, since in self.unbound.items() if since <= late]:
            session = self.sessions.get(session_id)
            if session is None or session.pending is not None:  # gone, or its login is being checked
                continue
            self.stats.login_timeouts += 1
            self.send_error(session, ErrorCode.NOT_LOGGED_IN, f"no login within {self.limits.login_timeout:.0f} s")
            self._drop(session, "login timeout")
        for request in [r for r, leaving in self.leaving.items() if leaving[2] <= now]:
            # The shard is unreachable; the session is out of the room here whatever it says later.
            self.stats.timeouts += 1
            session, room_id, _ = self.leaving.pop(request)
            self._left(request, session, room_id)
        expired = [(req, s, p) for req, (s, p) in self.pending.items() if p.deadline <= now]
        for request, session, pending in expired:
            if pending.op == "list":
                self._answer_list(session, pending)
                continue
            self.stats.timeouts += 1
            # Keep no entry: a late success is undone in _reply.
            self._finish(request)
            if session.closed:
                continue
            shard = self.shard_ids[pending.shard] if pending.shard >= 0 else "?"
            log.warning("%s%s: shard %s did not answer in %.1f s", logs.ctx(session.id, session.player_id),
                        pending.op, shard, self.limits.request_timeout)
            self.send_error(session, ErrorCode.UNAVAILABLE, "the room service did not answer in time; try again")
            self._pump(session)

    # ---- shutdown -----------------------------------------------------------
    def shutdown(self) -> None:
        """Tell every client we are going and close them (after their queued frames)."""
        self.shutting_down = True
        for session in list(self.sessions.values()):
            if not session.closed:
                self.send_error(session, ErrorCode.SHUTTING_DOWN, "the server is shutting down")
                self._drop(session, "shutting down")

    # ---- output ---------------------------------------------------------------
    def send(self, session: Session, frame: bytes) -> None:
        if session.closed:
            return
        session.out.append(frame)
        self.stats.frames_out += 1
        if not session.dirty:
            session.dirty = True
            self.dirty.append(session)
            self.io.schedule_flush()

    def send_error(self, session: Session, code: int, message: str) -> None:
        self.stats.errors_sent += 1
        if self.verbose:
            log.debug("%sS_ERROR %s %s", logs.ctx(session.id, session.player_id, session.room_id),
                      ErrorCode.Name(code), message)
        self.send(session, error_frame(code, message))

    def take_dirty(self) -> list[Session]:
        """The sessions with frames to write, each once; their `out` lists are the caller's to drain."""
        dirty, self.dirty = self.dirty, []
        for session in dirty:
            session.dirty = False
        return dirty

    def on_slow_consumer(self, session: Session, queued: int) -> None:
        """The client stopped reading and its queue passed the bound: drop it, not the room."""
        if session.closed:
            return
        self.stats.slow_consumers += 1
        log.warning("%sslow consumer: %d bytes queued > limit %d; disconnecting",
                    logs.ctx(session.id, session.player_id, session.room_id), queued, self.limits.write_buffer)
        session.out.clear()
        self._drop(session, "slow consumer", abort=True)

    def _claim(self, session: Session) -> None:
        claim = cluster_pb2.Claim(player_id=session.player_id, session=session.id)
        self.io.to_shard(self.owner(session.player_id), Kind.CLAIM, claim.SerializeToString())

    def _kick(self, kick: cluster_pb2.Kick) -> None:
        """The player logged in again, maybe on another gateway: this older session goes."""
        session = self.sessions.get(kick.session)
        if session is None or session.closed or session.player_id != kick.player_id:
            return
        self.stats.replaced += 1
        log.info("%slogged in again elsewhere; replacing", logs.ctx(session.id, session.player_id))
        self.send_error(session, ErrorCode.REPLACED, "logged in on another connection")
        self._drop(session, "replaced")

    def _shard_hello(self, shard: int, hello: cluster_pb2.Hello) -> None:
        event = self.health[shard].hello(hello.incarnation, self.clock())
        if event is HealthEvent.BACK:
            log.info(" shard %d answers again", self.shard_ids[shard])
        if hello.rebuild:  # it restarted, or dropped us after a silence: it holds none of our sessions
            self._rebuild(shard, "it restarted" if event is HealthEvent.RESTARTED else "it holds none of our sessions")

    def _rebuild(self, shard: int, why: str) -> None:
        """Give a shard that lost its rooms the ones we have members in, and tell those members."""
        health = self.health[shard]
        now = self.clock()
        if now - health.last_rebuild < 1.0:  # a burst of 'room unknown' answers needs one rebuild
            return
        for session in self.players.values():  # the players whose presence it keeps
            if self.owner(session.player_id) == shard:
                self._claim(session)
        rooms = [room_id for room_id in self.rooms if self.owner(room_id) == shard]
        if not rooms:
            return
        health.last_rebuild = now
        log.warning(" shard %d lost its rooms (%s): rebuilding %d room(s) from this gateway",
                    self.shard_ids[shard], why, len(rooms))
        for room_id in rooms:
            members = self.rooms[room_id]
            rebuild = cluster_pb2.Rebuild(
                room_id=room_id, name=self.room_names.get(room_id, ""), last_seq=self.room_seq.get(room_id, 0),
                members=[cluster_pb2.Member(session=s.id, player=s.player) for s in members.values()])
            self.io.to_shard(shard, Kind.REBUILD, rebuild.SerializeToString())
            self.stats.rebuilds += 1

    def _unavailable(self, session: Session, shard: int) -> None:
        self.stats.unavailable += 1
        self.send_error(session, ErrorCode.UNAVAILABLE,
                        f"the room service (shard {self.shard_ids[shard]}) is unavailable; try again shortly")

    def _rate_limited(self, session: Session) -> None:
        self.stats.rate_limited += 1
        session.refused_streak += 1
        if session.refused_streak >= self.limits.flood_after:
            self.stats.floods += 1
            log.warning("%sflooding: %d requests refused for rate in a row; disconnecting",
                        logs.ctx(session.id, session.player_id, session.room_id), session.refused_streak)
            self._drop(session, "flooding", abort=True)
            return
        self.send_error(session, ErrorCode.RATE_LIMITED,
                        f"slow down: at most {self.limits.chat_rate:.0f} requests a second")

    # ---- internals ------------------------------------------------------------
    def _wait(self, session: Session, pending: Pending) -> None:
        session.pending = pending
        self.pending[pending.request] = (session, pending)

    def _finish(self, request: int) -> None:
        entry = self.pending.pop(request, None)
        if entry is not None and entry[0].pending is entry[1]:
            entry[0].pending = None

    def _leave_room(self, session: Session) -> int:
        """Leave the current room; returns the request id of the shard's answer.

        Chats go to no room from now on, but the session stays on the room's
        local delivery list until the shard answers: the shard orders the
        leave after every broadcast it sequenced before it, so the session
        still gets those (its own chats' echoes among them) and nothing after.
        """
        room_id, shard = session.room_id, session.room_shard
        session.to_lobby()
        request = next(self._request_ids)
        # A down shard cannot order anything: the deadline is now, so the next tick completes the leave.
        deadline = self.clock() + (0.0 if self.health[shard].down else self.limits.request_timeout)
        self.leaving[request] = (session, room_id, deadline)
        leave = cluster_pb2.LeaveRoom(request=request, room_id=room_id, session=session.id)
        self.io.to_shard(shard, Kind.LEAVE, leave.SerializeToString())
        return request

    def _left(self, request: int, session: Session, room_id: int) -> None:
        """The shard has the session out of room_id (or never answered): stop delivering it here."""
        self._remove_local(session, room_id)
        if request in self.pending:  # the client asked to leave and waits for the ack
            self._finish(request)
            self.send(session, encode(chat_pb2.S_LEAVE_ROOM_ACK(success=True, message="Left the room.")))
            self._pump(session)

    def _remove_local(self, session: Session, room_id: int) -> None:
        members = self.rooms.get(room_id)
        if members is not None and members.get(session.id) is session:
            del members[session.id]
            if not members:
                del self.rooms[room_id]
                self.room_names.pop(room_id, None)
                self.room_seq.pop(room_id, None)

    def _forget_room(self, session: Session) -> None:
        """Out of the current room at once (the shard does not have it, or the connection is gone)."""
        self._remove_local(session, session.room_id)
        session.to_lobby()

    def _drop(self, session: Session, reason: str, abort: bool = False) -> None:
        """Close from our side (after the frames already queued for it, unless abort), or after the peer did."""
        if session.closed:
            return
        if session.state is State.IN_ROOM:
            room_id, shard = session.room_id, session.room_shard
            self._forget_room(session)
            leave = cluster_pb2.LeaveRoom(request=0, room_id=room_id, session=session.id)
            self.io.to_shard(shard, Kind.LEAVE, leave.SerializeToString())
        for request in [r for r, leaving in self.leaving.items() if leaving[0] is session]:
            self._remove_local(session, self.leaving.pop(request)[1])
        if session.player is not None:
            if self.players.get(session.player_id) is session:
                del self.players[session.player_id]
            release = cluster_pb2.Release(player_id=session.player_id, session=session.id)
            self.io.to_shard(self.owner(session.player_id), Kind.RELEASE, release.SerializeToString())
        session.close()
        self.sessions.pop(session.id, None)
        self.unbound.pop(session.id, None)
        self.stats.closed += 1
        level = logging.DEBUG if reason == PEER_CLOSED else logging.INFO
        if level == logging.INFO or self.verbose:
            log.log(level, "%sOnDisconnected() %s", logs.ctx(session.id, session.player_id), reason)
        self.io.close(session, abort)

    @staticmethod
    def _check_name(name: str, limit: int, what: str) -> str | None:
        if not name:
            return f"{what} must not be empty"
        if len(name.encode("utf-8")) > limit:
            return f"{what} longer than {limit} bytes"
        if not name.isprintable() or name != name.strip():
            return f"{what} has control characters or surrounding spaces"
        return None
