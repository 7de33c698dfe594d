"""The gateway's logic: sessions, requests, routing to shards, fan-out to local members.

Sans-I/O. GatewayCore is driven by calls (bytes from a client, a batch from
a shard, a database answer, the clock) and never calls out: what it wants
done (envelopes to send, frames to write, connections to close, logins to
check) accumulates in its Outbox, and the adapter takes it all once per
loop pass with take_output() (gateway/output.py says in what order it is
carried out). gateway/server.py is the asyncio/ZeroMQ adapter; the logic
tests drive the core with real RoomBooks and no sockets.

What a peer (a shard) got wrong raises PeerError below us, is counted and
logged, and the rest of the batch goes on; any other exception is a bug
and surfaces.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable

from google.protobuf.message import DecodeError

from chatcluster.common import logs
from chatcluster.common.config import Limits
from chatcluster.common.counters import Counters
from chatcluster.common.envelope import Kind, iter_items, parse, unpack_deliver
from chatcluster.common.errors import PeerError
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
from chatcluster.common.storage import LoginResult
from chatcluster.gateway.guard import TokenBucket
from chatcluster.gateway.login import LoginGate, TokenExpiries, check_name
from chatcluster.gateway.operations import Operations
from chatcluster.gateway.output import (
    AllocateRoom,
    Close,
    Login,
    Outbox,
    Output,
    PauseReading,
    ResumeReading,
    TokenLogin,
)
from chatcluster.gateway.requests import (
    ApiRequest,
    CreateRequest,
    HistoryRequest,
    JoinRequest,
    LeaveRequest,
    ListRequest,
    LoginRequest,
    Request,
    Requests,
)
from chatcluster.gateway.rooms import LocalRooms
from chatcluster.gateway.session import Session, State
from chatcluster.gateway.shards import ShardWatch
from chatcluster.proto import chat_pb2, cluster_pb2

log = logging.getLogger("chatcluster.gateway")

C_ROOM_CHAT_REQ = int(MsgId.C_ROOM_CHAT_REQ)
IN_ROOM = State.IN_ROOM
CLOSED = State.CLOSED
DELIVER = int(Kind.DELIVER)
PEER_CLOSED = "connection closed by peer"
NEVER = float("inf")


def _describe(request: object) -> str:
    """A request's fields for a log line; never the password."""
    if isinstance(request, (chat_pb2.C_LOGIN_REQ, chat_pb2.C_CREATE_ROOM_REQ)):
        return f"name={request.name!r}"
    if isinstance(request, chat_pb2.C_JOIN_ROOM_REQ):
        if request.resume:
            return f"roomId={request.room_id} resume sinceSeq={request.since_seq} epoch={request.epoch}"
        return f"roomId={request.room_id}" + (f" history={request.history}" if request.history else "")
    if isinstance(request, chat_pb2.C_ROOM_HISTORY_REQ):
        return f"beforeSeq={request.before_seq} limit={request.limit}"
    return ""


class GatewayStats(Counters):
    __slots__ = (
        "accepted", "closed", "frames_in", "logins", "login_failures", "replaced", "tokens_expired",
        "protocol_errors", "bad_requests",
        "chats_in", "bcast_in", "deliveries", "frames_out", "errors_sent", "slow_consumers", "timeouts",
        "shard_errors", "undone", "rate_limited", "floods", "connections_refused",
        "login_timeouts", "unavailable", "login_throttled", "logins_refused_busy", "rebuilds",
    )


class GatewayCore:
    def __init__(
        self,
        shard_ids: list[int],
        limits: Limits | None = None,
        registration_open: bool = True,
        auth: str = "password",
        clock: Callable[[], float] = time.monotonic,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        node: str = "gw0",
    ) -> None:
        self.limits = limits or Limits()
        self.registration_open = registration_open
        self.auth = auth  # password | token | both (token and both need a token key in the adapter)
        self.token_expiries = TokenExpiries()
        self.clock = clock
        self.clock_us = clock_us
        self.stats = GatewayStats()
        self.outbox = Outbox(len(shard_ids))
        self.shards = ShardWatch(shard_ids, self.limits, self.outbox, self.stats, node, clock(), clock_us)
        self.sessions: dict[int, Session] = {}
        self.players: dict[int, Session] = {}  # player id -> its one live session
        self.unbound: dict[int, float] = {}    # sessions not logged in yet -> when they connected
        self.rooms = LocalRooms()
        self.requests = Requests()
        self.logins = LoginGate(self.limits, self.stats)
        self.ops = Operations(self)  # operators' API calls (gateway/operations.py)
        self.verbose = log.isEnabledFor(logging.DEBUG)
        self.shutting_down = False
        self._session_ids = itertools.count(1)

    # ---- the output channel --------------------------------------------------------
    @property
    def has_output(self) -> bool:
        return self.outbox.ready

    def take_output(self) -> Output:
        """Everything queued since the last call; see gateway/output.py for what to do with it."""
        return self.outbox.take()

    def start(self) -> None:
        """Greet every shard before anything else goes out, so each sees this incarnation first."""
        self.shards.heartbeat(self.clock())

    # ---- connections -----------------------------------------------------------------
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
        if session.state is not CLOSED:
            session.decoder.feed(data)
            self._pump(session)

    def on_bad_message(self, session: Session, why: str) -> None:
        """A message the adapter could not turn into a frame (WebSocket JSON): an error, and the session goes on."""
        if session.state is not CLOSED:
            self._bad_request(session, why)

    def _bad_request(self, session: Session, why: str) -> None:
        self.stats.bad_requests += 1
        self.send_error(session, ErrorCode.BAD_REQUEST, why)

    def on_slow_consumer(self, session: Session, queued: int) -> None:
        """The client stopped reading and its queue passed the bound: drop it, not the room."""
        if session.closed:
            return
        self.stats.slow_consumers += 1
        log.warning("%sslow consumer: %d bytes queued > limit %d; disconnecting",
                    logs.ctx(session.id, session.player_id, session.room_id), queued, self.limits.write_buffer)
        self._drop(session, "slow consumer", abort=True)

    def _pump(self, session: Session) -> None:
        """Handle buffered frames until none is left or the session must wait for an answer."""
        decoder = session.decoder
        next_frame = decoder.next_frame
        stats = self.stats
        try:
            while session.pending is None and session.state is not CLOSED:
                frame = next_frame()
                if frame is None:
                    break
                msg_id, body = frame
                stats.frames_in += 1
                bucket = session.bucket
                if bucket is not None:
                    if not bucket.take(self.clock()):
                        self._rate_limited(session)
                        continue
                    session.refused_streak = 0
                if msg_id == C_ROOM_CHAT_REQ and session.state is IN_ROOM:
                    # The hot path: the shard decodes and checks the body; we only route it.
                    shard = session.room_shard
                    if self.shards.health[shard].down:
                        self._unavailable(session, shard)
                        continue
                    if self.verbose:
                        log.debug("%sC_ROOM_CHAT_REQ body=%d", logs.ctx(session.id, session.player_id,
                                                                          session.room_id), len(body))
                    self.outbox.batches[shard].add_chat(session.room_id, session.id, body)
                    stats.chats_in += 1
                else:
                    self._request(session, msg_id, body)
        except ProtocolError as exc:
            stats.protocol_errors += 1
            log.info("%sprotocol error: %s; closing", logs.ctx(session.id, session.player_id), exc.message)
            self.send_error(session, exc.code, exc.message)
            self._drop(session, "protocol error")
            return
        self.outbox.ready = True  # cheaper to say once than to ask whether a chat went out
        if session.state is CLOSED:
            return
        if session.pending is not None and decoder.buffered:
            if not session.paused:
                session.paused = True
                self.outbox.effect(PauseReading(session))
        elif session.paused:
            session.paused = False
            self.outbox.effect(ResumeReading(session))

    # ---- client requests -----------------------------------------------------------
    def _request(self, session: Session, msg_id: int, body: bytes) -> None:
        if session.state is State.CONNECTED and msg_id != MsgId.C_LOGIN_REQ:
            self.send_error(session, ErrorCode.NOT_LOGGED_IN, "log in first")
            return
        try:
            request = decode_body(msg_id, body)
        except DecodeError:
            self._bad_request(session, f"{MsgId(msg_id).name} does not decode")
            return
        if self.verbose:
            log.debug("%s%s %s", logs.ctx(session.id, session.player_id, session.room_id), MsgId(msg_id).name,
                      _describe(request))
        self._handlers[msg_id](self, session, request)

    def _deadline(self, timeout: float | None = None) -> float:
        return self.clock() + (self.limits.request_timeout if timeout is None else timeout)

    def _on_login(self, session: Session, req: chat_pb2.C_LOGIN_REQ) -> None:
        if req.token:
            self._on_token_login(session, req.token)
            return
        if session.state is not State.CONNECTED:
            self.send(session, encode(chat_pb2.S_LOGIN_RES(success=False, message="already logged in")))
            return
        if self.auth == "token":
            self._login_refused(session, "this server takes token logins only (C_LOGIN_REQ.token)")
            return
        problem = self.logins.refusal(req, session.address, self.clock())
        if problem is not None:
            self._login_refused(session, problem)
            return
        request = self.requests.add(LoginRequest(self.requests.next_id(), session, NEVER, name=req.name))
        self.logins.started()
        self.outbox.effect(Login(request.id, req.name, req.password))

    def _on_token_login(self, session: Session, token: str) -> None:
        """A token login, or on a token-logged-in session a refresh of its expiry (PROTOCOL.md: Token login)."""
        refresh = session.state is not State.CONNECTED
        if self.auth == "password":
            self._login_refused(session, "token login is not enabled on this server")
            return
        if refresh and not session.token_deadline:
            self._login_refused(session, "already logged in")
            return
        problem = self.logins.token_refusal(token, session.address, self.clock())
        if problem is not None:
            self._login_refused(session, problem)
            return
        request = self.requests.add(LoginRequest(self.requests.next_id(), session, NEVER, refresh=refresh))
        self.logins.started()
        self.outbox.effect(TokenLogin(request.id, token))

    def _login_refused(self, session: Session, message: str) -> None:
        self.stats.login_failures += 1
        self.send(session, encode(chat_pb2.S_LOGIN_RES(success=False, message=message)))

    def on_login_done(self, request_id: int, result: LoginResult | BaseException) -> None:
        request = self.requests.finish(request_id)
        if not isinstance(request, LoginRequest):
            raise KeyError(f"no login request {request_id}")  # a bug: every login is answered once
        session = request.session
        name = request.name or (result.name if isinstance(result, LoginResult) else "")
        ok = None if isinstance(result, BaseException) else result.ok
        self.logins.done(request.name, session.address, ok, self.clock())
        if session.closed:
            return
        if request.refresh and isinstance(result, LoginResult) and result.ok:
            self._refreshed(session, result)
            self._pump(session)
            return
        if isinstance(result, BaseException):
            log.error("%slogin of %r failed: database error: %s", logs.ctx(session.id), name, result)
            self._login_refused(session, "login is unavailable right now (database error); try again later")
        elif not result.ok:
            if self.verbose:
                log.debug("%sS_LOGIN_RES success=false name=%r (%s)", logs.ctx(session.id), name, result.message)
            self._login_refused(session, result.message)
        else:
            self._bind(session, result.player_id, name)
            if result.expires_in:
                self._token_expires(session, result.expires_in)
            self.send(session, encode(chat_pb2.S_LOGIN_RES(success=True, player_id=result.player_id,
                                                           message=result.message, name=name)))
        self._pump(session)

    def _refreshed(self, session: Session, result: LoginResult) -> None:
        if result.player_id != session.player_id:
            self._login_refused(session, "this token is for another account; log in on a new connection")
            return
        self._token_expires(session, result.expires_in)
        self.send(session, encode(chat_pb2.S_LOGIN_RES(success=True, player_id=session.player_id,
                                                       name=session.player.name, message="token refreshed")))

    def _token_expires(self, session: Session, expires_in: float) -> None:
        session.token_deadline = self.clock() + expires_in
        self.token_expiries.add(session.token_deadline, session.id)

    def _bind(self, session: Session, player_id: int, name: str) -> None:
        previous = self.players.get(player_id)
        if previous is not None and previous is not session:
            self._replace(previous, f"logged in again from another connection (sess:{session.id:04x}); replacing")
        session.bind(chat_pb2.Player(player_id=player_id, name=name))
        session.bucket = TokenBucket(self.limits.chat_rate, self.limits.chat_burst, self.clock())
        self.unbound.pop(session.id, None)
        self.players[player_id] = session
        self.shards.claim(session)  # one session per player across gateways: the presence shard kicks others
        self.stats.logins += 1
        if self.verbose:
            log.debug("%sS_LOGIN_RES success=true name=%r", logs.ctx(session.id, player_id), name)

    def _on_create(self, session: Session, req: chat_pb2.C_CREATE_ROOM_REQ) -> None:
        problem = check_name(req.name, self.limits.max_room_name, "room name")
        if problem is not None:
            self.send(session, encode(chat_pb2.S_CREATE_ROOM_RES(success=False, message=problem)))
            return
        request = self.requests.add(CreateRequest(self.requests.next_id(), session, self._deadline(), name=req.name))
        self.outbox.effect(AllocateRoom(request.id, req.name, session.player_id))

    def on_room_allocated(self, request_id: int, room_id: int | BaseException) -> None:
        request = self.requests.get(request_id)
        if not isinstance(request, CreateRequest):
            return  # timed out already; the unused id is simply never used
        session = request.session
        if isinstance(room_id, BaseException):
            log.error("%sroom id allocation failed: database error: %s", logs.ctx(session.id, session.player_id),
                      room_id)
            self.requests.finish(request_id)
            self.send(session, encode(chat_pb2.S_CREATE_ROOM_RES(
                success=False, message="rooms cannot be created right now (database error)")))
            self._pump(session)
            return
        if session.closed:
            self.requests.finish(request_id)
            return
        request.shard = self.shards.owner(room_id)
        if self.shards.down(request.shard):
            self.requests.finish(request_id)
            self._unavailable(session, request.shard)
            self._pump(session)
            return
        request.deadline = self._deadline()
        create = cluster_pb2.CreateRoom(request=request_id, room_id=room_id, name=request.name,
                                        member=cluster_pb2.Member(session=session.id, player=session.player))
        self.outbox.to_shard(request.shard, Kind.CREATE, create.SerializeToString())

    def _on_join(self, session: Session, req: chat_pb2.C_JOIN_ROOM_REQ) -> None:
        if req.resume and not req.epoch:
            self._bad_request(session, "a resuming join needs the room's epoch")
            return
        shard = self.shards.owner(req.room_id)
        if self.shards.down(shard):
            self._unavailable(session, shard)
            return
        request = self.requests.add(JoinRequest(self.requests.next_id(), session, self._deadline(), shard=shard))
        # The shard decides what the join replays (history, or a resume's missed messages) and sends it
        # after its answer, in the room's order: the gateway only passes the fields on.
        join = cluster_pb2.JoinRoom(request=request.id, room_id=req.room_id,
                                    member=cluster_pb2.Member(session=session.id, player=session.player),
                                    history=req.history, resume=req.resume, since_seq=req.since_seq,
                                    epoch=req.epoch)
        self.outbox.to_shard(shard, Kind.JOIN, join.SerializeToString())

    def _on_chat(self, session: Session, req: chat_pb2.C_ROOM_CHAT_REQ) -> None:
        # Chats in a room never get here (see _pump); this is a chat from the lobby.
        self.send_error(session, ErrorCode.NOT_IN_ROOM, "not in a room")

    def _on_leave(self, session: Session, req: chat_pb2.C_LEAVE_ROOM_REQ) -> None:
        if session.state is not State.IN_ROOM:
            self.send(session, encode(chat_pb2.S_LEAVE_ROOM_ACK(success=False, message="not in a room")))
            return
        # The ack waits for the shard, so chats the session sent before leaving still echo back to it first.
        self._leave_room(session, acked=True)

    def _on_list(self, session: Session, req: chat_pb2.C_ROOM_LIST_REQ) -> None:
        up = {k for k in range(len(self.shards.health)) if not self.shards.down(k)}  # down shards' rooms: unlisted
        request = self.requests.add(ListRequest(self.requests.next_id(), session,
                                                self._deadline(self.limits.list_timeout), waiting=up))
        if not up:
            self._answer_list(request)
            return
        payload = cluster_pb2.ListRooms(request=request.id).SerializeToString()
        for shard in up:
            self.outbox.to_shard(shard, Kind.LIST, payload)

    def _on_ping(self, session: Session, req: chat_pb2.C_PING) -> None:
        self.send(session, encode(chat_pb2.S_PONG(client_time_us=req.client_time_us, server_time_us=self.clock_us())))

    def _on_history(self, session: Session, req: chat_pb2.C_ROOM_HISTORY_REQ) -> None:
        """A page of the current room's older messages: the room's shard answers, from memory or its chat log."""
        if session.state is not IN_ROOM:
            self.send_error(session, ErrorCode.NOT_IN_ROOM, "join a room first")
            return
        shard = session.room_shard
        if self.shards.down(shard):
            self._unavailable(session, shard)
            return
        request = self.requests.add(HistoryRequest(self.requests.next_id(), session, self._deadline(), shard=shard))
        page = cluster_pb2.RoomHistory(request=request.id, room_id=session.room_id, session=session.id,
                                       before_seq=req.before_seq, limit=req.limit)
        self.outbox.to_shard(shard, Kind.HISTORY, page.SerializeToString())

    _handlers: dict[int, Callable[[GatewayCore, Session, object], None]] = {
        MsgId.C_LOGIN_REQ: _on_login,
        MsgId.C_CREATE_ROOM_REQ: _on_create,
        MsgId.C_JOIN_ROOM_REQ: _on_join,
        MsgId.C_ROOM_CHAT_REQ: _on_chat,
        MsgId.C_LEAVE_ROOM_REQ: _on_leave,
        MsgId.C_ROOM_LIST_REQ: _on_list,
        MsgId.C_PING: _on_ping,
        MsgId.C_ROOM_HISTORY_REQ: _on_history,
    }

    # ---- operators (gateway/api.py, gateway/operations.py) -------------------------------
    def on_api_call(self, call_id: int, call: object) -> None:
        """An operator's API call, checked already; answered by an Answered effect carrying call_id."""
        self.ops.start(call_id, call)  # type: ignore[arg-type]

    def on_account_done(self, request_id: int, result: object) -> None:
        """The answer to an Account effect (gateway/operations.py account_step, or the exception it raised)."""
        self.ops.account_done(request_id, result)  # type: ignore[arg-type]

    # ---- shards ------------------------------------------------------------------------
    def owner(self, room_id: int) -> int:
        """Index (into the shard list) of the shard that owns a room."""
        return self.shards.owner(room_id)

    def on_shard_batch(self, shard: int, data: bytes) -> None:
        """Everything one ZeroMQ message from a shard carries.

        An envelope that does not parse is skipped, counted and logged, and the
        rest goes on; a broken item header ends the batch (nothing after it can
        be framed).
        """
        try:
            for kind, payload in iter_items(data):
                try:
                    if kind == DELIVER:
                        self._deliver(payload)
                    else:
                        self._control(shard, kind, payload)
                except PeerError as exc:
                    self._peer_error(shard, exc)
        except PeerError as exc:
            self._peer_error(shard, exc)

    def _peer_error(self, shard: int, exc: PeerError) -> None:
        self.stats.shard_errors += 1
        log.error(" bad envelope from shard %d: %s", self.shards.name(shard), exc)

    def _control(self, shard: int, kind: int, payload: bytes) -> None:
        if kind == Kind.REPLY:
            self._reply(shard, parse(kind, payload))
        elif kind == Kind.ROOMS:
            self._rooms(shard, parse(kind, payload))
        elif kind == Kind.HELLO:
            why = self.shards.hello(shard, parse(kind, payload), self.clock())
            if why is not None:  # it restarted, or dropped us after a silence: it holds none of our sessions
                self.shards.rebuild(shard, why, self.rooms, self.players.values(), self.clock())
        elif kind == Kind.KICK:
            self._kick(parse(kind, payload))
        elif kind == Kind.OPERATED:
            self.ops.operated(shard, parse(kind, payload))
        else:
            raise PeerError(f"a gateway does not take envelopes of kind {kind}")

    def _deliver(self, payload: bytes) -> None:
        room_id, skip, seq, frame = unpack_deliver(payload)
        room = self.rooms.get(room_id)
        if room is None:
            return
        if seq:
            room.last_seq = seq
        writes = self.outbox.writes
        count = 0
        for session in room.members.values():
            if session.id == skip:
                continue
            session.out.append(frame)
            count += 1
            if not session.dirty:
                session.dirty = True
                writes.append(session)
        stats = self.stats
        stats.bcast_in += 1
        stats.deliveries += count
        if count:
            self.outbox.ready = True

    def _reply(self, shard: int, msg: cluster_pb2.Reply) -> None:
        if msg.request == 0:
            self._unsolicited(shard, msg)
            return
        request = self.requests.finish(msg.request)
        if isinstance(request, LeaveRequest):
            self._left(request)
            return
        if request is None or request.session.closed:
            # Nobody waits for this answer any more (timed out, or the client left).
            if msg.ok and msg.room_id:
                self.stats.undone += 1
                undo = cluster_pb2.LeaveRoom(request=0, room_id=msg.room_id, session=msg.session)
                self.outbox.to_shard(shard, Kind.LEAVE, undo.SerializeToString())
            return
        session = request.session
        if msg.ok and isinstance(request, (CreateRequest, JoinRequest)):
            previous = session.room_id if session.state is State.IN_ROOM else 0
            if previous != msg.room_id:
                if previous:
                    self._leave_room(session)
                room = self.rooms.add(msg.room_id, msg.room_name, session)
                session.enter(msg.room_id, shard)
                if self.verbose:
                    log.debug("%s%s OK local_members=%d", logs.ctx(session.id, session.player_id, msg.room_id),
                              "Enter" if isinstance(request, JoinRequest) else "Create", len(room.members))
            self.rooms.heard(msg.room_id, msg.epoch, msg.head_seq)
        self.send(session, msg.frame)  # a join's answer and what it replays, or a page and its closing answer
        self._pump(session)

    def _unsolicited(self, shard: int, msg: cluster_pb2.Reply) -> None:
        """A shard's word about a session nobody asked for: a refused chat, a room it does not know."""
        session = self.sessions.get(msg.session)
        if session is None or session.closed:
            return
        if msg.room_unknown and msg.room_id in self.rooms:
            # The shard lost the room (it restarted before we noticed): give it back what we know.
            self.shards.rebuild(shard, "it did not know a room of ours", self.rooms, self.players.values(),
                                self.clock())
        elif msg.not_member and msg.room_id == session.room_id and session.state is State.IN_ROOM:
            # The shard does not have this session in the room: stop routing it there.
            self.rooms.remove(session.room_id, session)
            session.to_lobby()
        elif msg.epoch:
            self.rooms.heard(msg.room_id, msg.epoch, msg.head_seq)  # a restored room's epoch
        self.send(session, msg.frame)

    def _rooms(self, shard: int, msg: cluster_pb2.RoomList) -> None:
        request = self.requests.get(msg.request)
        if isinstance(request, ApiRequest):  # an operator's rooms call takes the same path
            self.ops.rooms_part(shard, request, msg)
            return
        if not isinstance(request, ListRequest):
            return
        request.rooms.extend(msg.rooms)
        request.waiting.discard(shard)
        if not request.waiting:
            self._answer_list(request)

    def _answer_list(self, request: ListRequest) -> None:
        self.requests.finish(request.id)
        session = request.session
        res = chat_pb2.S_ROOM_LIST_RES()
        size = 4
        for room in sorted(request.rooms, key=lambda r: r.room_id):
            entry = room.ByteSize() + 3  # tag + length varint (rooms are < 16 KiB)
            if size + entry > MAX_FRAME:
                break
            res.rooms.append(room)
            size += entry
        if request.waiting:
            missing = ", ".join(str(self.shards.name(i)) for i in sorted(request.waiting))
            log.warning("%sroom list without shard(s) %s: no answer in %.1f s",
                        logs.ctx(session.id, session.player_id), missing, self.limits.list_timeout)
        self.send(session, encode(res))
        self._pump(session)

    def _kick(self, kick: cluster_pb2.Kick) -> None:
        """The player logged in again, maybe on another gateway: this older session goes."""
        if kick.code not in (ErrorCode.UNKNOWN, ErrorCode.REPLACED):
            self.ops.kicked(kick)  # an operator's kick, disconnect or ban
            return
        session = self.sessions.get(kick.session)
        if session is None or session.closed or session.player_id != kick.player_id:
            return
        self._replace(session, "logged in again elsewhere; replacing")

    def _replace(self, session: Session, why: str) -> None:
        self.stats.replaced += 1
        log.info("%s%s", logs.ctx(session.id, session.player_id), why)
        self.send_error(session, ErrorCode.REPLACED, "logged in on another connection")
        self._drop(session, "replaced")

    # ---- time ----------------------------------------------------------------------------
    def tick(self) -> None:
        """Heartbeats, and whatever waited too long; call a few times a second."""
        now = self.clock()
        self.shards.tick(now)
        late = now - self.limits.login_timeout
        for session_id in [sid for sid, since in self.unbound.items() if since <= late]:
            session = self.sessions[session_id]
            if session.pending is not None:  # its login is being checked
                continue
            self.stats.login_timeouts += 1
            self.send_error(session, ErrorCode.NOT_LOGGED_IN, f"no login within {self.limits.login_timeout:.0f} s")
            self._drop(session, "login timeout")
        for request in self.requests.expired(now):
            self._expire(request)
        for deadline, session_id in self.token_expiries.due(now):
            session = self.sessions.get(session_id)
            if session is not None and session.token_deadline == deadline and not session.closed:
                self.stats.tokens_expired += 1
                self.send_error(session, ErrorCode.AUTH_FAILED, "token expired")
                self._drop(session, "token expired")

    def _expire(self, request: Request) -> None:
        if isinstance(request, ApiRequest):
            self.ops.expired(request)
            return
        if isinstance(request, ListRequest):
            self._answer_list(request)  # with what the shards that answered sent
            return
        self.stats.timeouts += 1
        self.requests.finish(request.id)  # a late success is undone in _reply
        if isinstance(request, LeaveRequest):
            # The shard is unreachable; the session is out of the room here whatever it says later.
            self._left(request)
            return
        session = request.session
        if session.closed:
            return
        shard = request.shard if isinstance(request, (CreateRequest, JoinRequest, HistoryRequest)) else -1
        log.warning("%s%s: shard %s did not answer in %.1f s", logs.ctx(session.id, session.player_id),
                    type(request).__name__, self.shards.name(shard) if shard >= 0 else "?",
                    self.limits.request_timeout)
        self.send_error(session, ErrorCode.UNAVAILABLE, "the room service did not answer in time; try again")
        self._pump(session)

    # ---- shutdown --------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Tell every client we are going and close them (after their queued frames)."""
        self.shutting_down = True
        for session in list(self.sessions.values()):
            self.send_error(session, ErrorCode.SHUTTING_DOWN, "the server is shutting down")
            self._drop(session, "shutting down")

    # ---- output ----------------------------------------------------------------------------
    def send(self, session: Session, frame: bytes) -> None:
        if not session.closed:
            self.stats.frames_out += 1
            self.outbox.send(session, frame)

    def send_error(self, session: Session, code: int, message: str) -> None:
        self.stats.errors_sent += 1
        if self.verbose:
            log.debug("%sS_ERROR %s %s", logs.ctx(session.id, session.player_id, session.room_id),
                      ErrorCode.Name(code), message)
        self.send(session, error_frame(code, message))

    def _unavailable(self, session: Session, shard: int) -> None:
        self.stats.unavailable += 1
        self.send_error(session, ErrorCode.UNAVAILABLE,
                        f"the room service (shard {self.shards.name(shard)}) is unavailable; try again shortly")

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

    # ---- rooms and closing ---------------------------------------------------------------------
    def _leave_room(self, session: Session, acked: bool = False) -> None:
        """Leave the current room, at once for chats, for deliveries once the shard answers.

        Chats go to no room from now on, but the session stays on the room's
        local delivery list until the shard answers: the shard orders the
        leave after every broadcast it sequenced before it, so the session
        still gets those (its own chats' echoes among them) and nothing after.
        acked: the client asked, and waits for S_LEAVE_ROOM_ACK.
        """
        room_id, shard = session.room_id, session.room_shard
        session.to_lobby()
        # A down shard cannot order anything: the deadline is now, so the next tick completes the leave.
        deadline = self.clock() if self.shards.down(shard) else self._deadline()
        request = LeaveRequest(self.requests.next_id(), session, deadline, room_id=room_id, acked=acked)
        self.requests.add(request, waits=acked)
        leave = cluster_pb2.LeaveRoom(request=request.id, room_id=room_id, session=session.id)
        self.outbox.to_shard(shard, Kind.LEAVE, leave.SerializeToString())

    def _left(self, request: LeaveRequest) -> None:
        """The shard has the session out of the room (or never answered): stop delivering it here."""
        session = request.session
        self.rooms.remove(request.room_id, session)
        if request.acked and not session.closed:
            self.send(session, encode(chat_pb2.S_LEAVE_ROOM_ACK(success=True, message="Left the room.")))
            self._pump(session)

    def _drop(self, session: Session, reason: str, abort: bool = False) -> None:
        """Close from our side (after the frames already queued for it, unless abort), or after the peer did."""
        if session.closed:
            return
        if session.state is State.IN_ROOM:
            room_id, shard = session.room_id, session.room_shard
            self.rooms.remove(room_id, session)
            session.to_lobby()
            leave = cluster_pb2.LeaveRoom(request=0, room_id=room_id, session=session.id)
            self.outbox.to_shard(shard, Kind.LEAVE, leave.SerializeToString())
        for leaving in self.requests.leaves_of(session):
            self.requests.finish(leaving.id)
            self.rooms.remove(leaving.room_id, session)
        if session.player is not None:
            if self.players.get(session.player_id) is session:
                del self.players[session.player_id]
            self.shards.release(session)
        if abort:
            session.out.clear()
        session.close()
        self.sessions.pop(session.id, None)
        self.unbound.pop(session.id, None)
        self.stats.closed += 1
        level = logging.DEBUG if reason == PEER_CLOSED else logging.INFO
        if level == logging.INFO or self.verbose:
            log.log(level, "%sOnDisconnected() %s", logs.ctx(session.id, session.player_id), reason)
        self.outbox.effect(Close(session, abort))

    # ---- figures ---------------------------------------------------------------------------------
    def figures(self) -> dict[str, object]:
        """The core's part of /status."""
        return {
            **self.stats.as_dict(),
            "logins_in_flight": self.logins.in_flight,
            "sessions": len(self.sessions),
            "players": len(self.players),
            "rooms": len(self.rooms),
            "members": self.rooms.members,
            "pending_requests": len(self.requests),
            "incarnation": self.shards.incarnation,
            "shards": self.shards.as_dict(self.clock()),
            **self.ops.stats.as_dict(),
        }
