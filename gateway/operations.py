"""Operators' calls (gateway/api.py) carried out on the loop, as inputs of the GatewayCore.

Sans-I/O like the core it belongs to: a call comes in as on_api_call(), goes
out as OPERATE (or LIST) envelopes to the shards and Account effects for the
database, and its answer leaves as an Answered effect that the adapter hands
to the HTTP thread waiting for it. Each call is an ApiRequest in the core's
request table, so it has a deadline like any request (504 when a shard does
not answer).

Where each call goes, and why there (PROTOCOL.md, "Operators' words"):

- publish, room, kick, history, and a mute or unmute in one room: the shard
  that owns the room, which orders it with the room's chats;
- disconnect and ban: the player's presence shard, which knows which gateway
  holds its session (one per player cluster-wide) and tells that gateway to
  close it, wherever it is; a ban is first written to the database, so every
  later login is refused until it ends;
- rooms, and a mute or unmute everywhere: every shard.

A shard that is down makes a call that needs it answer 503 at once (and a
call to every shard names the shards it could not reach). Mutes live in the
shards' memory: a shard that restarts forgets the mutes it held.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from chatcluster.common import logs
from chatcluster.common.counters import Counters
from chatcluster.common.envelope import Kind
from chatcluster.common.frames import HEADER, ErrorCode, MsgId
from chatcluster.common.storage.database import Ban as BanRow
from chatcluster.common.timefmt import until_text, utc_text
from chatcluster.gateway import api
from chatcluster.gateway.api import Response, error
from chatcluster.gateway.output import Account, Answered
from chatcluster.gateway.requests import ApiRequest
from chatcluster.gateway.session import State
from chatcluster.proto import chat_pb2, cluster_pb2

if TYPE_CHECKING:
    from chatcluster.common.storage import Database
    from chatcluster.gateway.core import GatewayCore

log = logging.getLogger("chatcluster.gateway")

Action = cluster_pb2.Operate.Action
NEVER = float("inf")
STATUS_OF = {"not_found": 404, "bad_request": 400, "unavailable": 503}


class OperatorStats(Counters):
    # sessions this gateway sent back to the lobby or closed because an operator said so
    __slots__ = ("operator_kicks", "operator_disconnects", "operator_bans")


def account_step(db: Database, step: Account) -> tuple[int, bool] | None:
    """An Account effect, on a database thread: (account id, whether a ban was lifted), or None when no
    account has that name (then nothing is changed)."""
    account_id = db.account_id(step.name)
    if account_id is None:
        return None
    if step.op == "ban":
        db.ban(account_id, step.until_us, step.reason)
    elif step.op == "unban":
        return account_id, db.unban(account_id)
    return account_id, False


def chat_message(frame: bytes) -> dict[str, Any]:
    """A logged S_ROOM_CHAT_NTF frame as the history call shows it."""
    _, msg_id = HEADER.unpack_from(frame)
    if msg_id != MsgId.S_ROOM_CHAT_NTF:
        raise ValueError(f"a history frame of id {msg_id}")
    ntf = chat_pb2.S_ROOM_CHAT_NTF.FromString(frame[HEADER.size:])
    return {"seq": ntf.seq, "sender": {"player_id": ntf.sender.player_id, "name": ntf.sender.name},
            "text": ntf.text, "server_time_us": ntf.server_time_us, "time": utc_text(ntf.server_time_us)}


class Operations:
    """The core's operator calls in flight, from on_api_call to their Answered effect."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core
        self.stats = OperatorStats()

    # ---- inputs ------------------------------------------------------------------------------
    def start(self, call_id: int, call: api.Call) -> None:
        core = self.core
        request = ApiRequest(core.requests.next_id(), None, NEVER, call_id=call_id, call=call)
        core.requests.add(request, waits=False)
        self._starts[type(call)](self, request, call)

    def operated(self, shard: int, msg: cluster_pb2.Operated) -> None:
        """A shard's answer to an OPERATE of ours (a late one, for a call answered already, is dropped)."""
        request = self.core.requests.get(msg.request)
        if not isinstance(request, ApiRequest) or shard not in request.waiting:
            return
        request.waiting.discard(shard)
        if not msg.ok:
            self._answer(request, error(STATUS_OF.get(msg.error, 502), msg.error or "failed", msg.message))
            return
        request.answers.append(msg)
        if not request.waiting:
            self._done[type(request.call)](self, request)

    def rooms_part(self, shard: int, request: ApiRequest, msg: cluster_pb2.RoomList) -> None:
        """One shard's part of the rooms call (the room-list path a client's C_ROOM_LIST_REQ takes)."""
        if shard not in request.waiting:
            return
        request.rooms.extend(msg.rooms)
        request.waiting.discard(shard)
        if not request.waiting:
            self._rooms_done(request)

    def account_done(self, request_id: int, result: tuple[int, bool] | None | BaseException) -> None:
        """The database step of a disconnect by name, a ban or an unban."""
        request = self.core.requests.get(request_id)
        if not isinstance(request, ApiRequest):
            return
        call = request.call
        if isinstance(result, BaseException):
            log.error(" API %s: database error: %s", call.method, result)
            self._answer(request, error(503, "unavailable", "the database cannot be reached right now; nothing "
                                                            "was changed there, try again"))
            return
        if result is None:
            self._answer(request, error(404, "not_found", f"no account named {call.name!r}"))
            return
        request.account_id, request.lifted = result
        self._account_known[type(call)](self, request)

    def expired(self, request: ApiRequest) -> None:
        """A shard did not answer in time: a rooms call answers with what it has, any other with 504."""
        if isinstance(request.call, api.Rooms):
            self._rooms_done(request)
            return
        names = ", ".join(str(self.core.shards.name(k)) for k in sorted(request.waiting))
        log.warning(" API %s: shard %s did not answer in %.1f s", request.call.method, names,
                    self.core.limits.request_timeout)
        self._answer(request, error(504, "timeout", f"shard {names} did not answer in "
                                                    f"{self.core.limits.request_timeout:g} s; the action may still "
                                                    "take effect"))

    def kicked(self, kick: cluster_pb2.Kick) -> None:
        """A shard says an operator removed one of our sessions: from a room (KICKED with a room id: back to
        the lobby), or from the server (KICKED, BANNED: closed after the S_ERROR)."""
        core = self.core
        session = core.sessions.get(kick.session)
        if session is None or session.closed or session.player_id != kick.player_id:
            return
        if kick.code == ErrorCode.KICKED and kick.room_id:
            core.rooms.remove(kick.room_id, session)  # no broadcast of the room reaches it from now on
            if session.state is State.IN_ROOM and session.room_id == kick.room_id:
                session.to_lobby()
            self.stats.operator_kicks += 1
            log.info("%skicked from the room by an operator", logs.ctx(session.id, session.player_id, kick.room_id))
            core.send_error(session, ErrorCode.KICKED, kick.reason or f"removed from room {kick.room_id}")
            return
        banned = kick.code == ErrorCode.BANNED
        if banned:
            self.stats.operator_bans += 1
        else:
            self.stats.operator_disconnects += 1
        core.send_error(session, kick.code, kick.reason or "disconnected by an operator")
        core._drop(session, "banned by an operator" if banned else "disconnected by an operator")

    # ---- starting each call ---------------------------------------------------------------------
    def _publish(self, request: ApiRequest, call: api.Publish) -> None:
        self._operate(request, self.core.owner(call.room_id), Action.PUBLISH, room_id=call.room_id, text=call.text)

    def _room(self, request: ApiRequest, call: api.Room) -> None:
        self._operate(request, self.core.owner(call.room_id), Action.ROOM, room_id=call.room_id)

    def _kick(self, request: ApiRequest, call: api.Kick) -> None:
        message = f"removed from room {call.room_id} by an operator" + (f": {call.reason}" if call.reason else "")
        self._operate(request, self.core.owner(call.room_id), Action.KICK, room_id=call.room_id,
                      player_id=call.player_id, reason=message)

    def _history(self, request: ApiRequest, call: api.History) -> None:
        self._operate(request, self.core.owner(call.room_id), Action.HISTORY, room_id=call.room_id,
                      since_seq=call.since_seq, limit=call.limit)

    def _rooms(self, request: ApiRequest, call: api.Rooms) -> None:
        shards = self.core.shards
        up = {k for k in range(len(shards.health)) if not shards.down(k)}
        request.waiting = up
        request.missing = set(range(len(shards.health))) - up
        request.deadline = self.core.clock() + self.core.limits.list_timeout
        if not up:
            self._rooms_done(request)
            return
        payload = cluster_pb2.ListRooms(request=request.id).SerializeToString()
        for shard in up:
            self.core.outbox.to_shard(shard, Kind.LIST, payload)

    def _mute(self, request: ApiRequest, call: api.Mute) -> None:
        request.until_us = self.core.clock_us() + call.seconds * 1_000_000
        fields = dict(player_id=call.player_id, room_id=call.room_id, until_us=request.until_us, reason=call.reason)
        if call.room_id:
            self._operate(request, self.core.owner(call.room_id), Action.MUTE, **fields)
        else:
            self._operate_everywhere(request, Action.MUTE, **fields)

    def _unmute(self, request: ApiRequest, call: api.Unmute) -> None:
        if call.room_id:
            self._operate(request, self.core.owner(call.room_id), Action.UNMUTE, player_id=call.player_id,
                          room_id=call.room_id)
        else:
            self._operate_everywhere(request, Action.UNMUTE, player_id=call.player_id)

    def _disconnect(self, request: ApiRequest, call: api.Disconnect) -> None:
        if call.name:
            self.core.outbox.effect(Account(request.id, "find", call.name))
            return
        request.account_id = call.player_id
        self._disconnect_known(request)

    def _ban(self, request: ApiRequest, call: api.Ban) -> None:
        request.until_us = self.core.clock_us() + call.seconds * 1_000_000 if call.seconds else 0
        self.core.outbox.effect(Account(request.id, "ban", call.name, request.until_us, call.reason))

    def _unban(self, request: ApiRequest, call: api.Unban) -> None:
        self.core.outbox.effect(Account(request.id, "unban", call.name))

    _starts = {api.Publish: _publish, api.Room: _room, api.Kick: _kick, api.History: _history, api.Rooms: _rooms,
               api.Mute: _mute, api.Unmute: _unmute, api.Disconnect: _disconnect, api.Ban: _ban,
               api.Unban: _unban}

    # ---- after the database ---------------------------------------------------------------------
    def _disconnect_known(self, request: ApiRequest) -> None:
        call = request.call
        message = "disconnected by an operator" + (f": {call.reason}" if call.reason else "")
        self._operate(request, self.core.shards.owner(request.account_id), Action.DISCONNECT,
                      player_id=request.account_id, code=ErrorCode.KICKED, reason=message)

    def _ban_stored(self, request: ApiRequest) -> None:
        """The ban is in the database: every later login is refused. Now close the live session, if any."""
        call = request.call
        refusal = BanRow(request.account_id, request.until_us, call.reason).refusal()
        shard = self.core.shards.owner(request.account_id)
        if self.core.shards.down(shard):
            self._answer(request, Response(200, {"result": {
                **self._ban_result(request), "disconnected": False,
                "warning": f"the ban is stored and refuses every login, but the player's presence shard "
                           f"{self.core.shards.name(shard)} is unavailable: a session open now was not closed; "
                           "call disconnect once it is back"}}))
            return
        self._operate(request, shard, Action.DISCONNECT, player_id=request.account_id, code=ErrorCode.BANNED,
                      until_us=request.until_us, reason=refusal)

    def _unbanned(self, request: ApiRequest) -> None:
        # The presence shard forgets the ban it remembered; no answer is awaited (the database is what counts).
        unban = cluster_pb2.Operate(request=0, action=Action.UNBAN, player_id=request.account_id)
        shard = self.core.shards.owner(request.account_id)
        if not self.core.shards.down(shard):
            self.core.outbox.to_shard(shard, Kind.OPERATE, unban.SerializeToString())
        self._answer(request, Response(200, {"result": {"player_id": request.account_id, "name": request.call.name,
                                                        "lifted": request.lifted}}))

    _account_known = {api.Disconnect: _disconnect_known, api.Ban: _ban_stored, api.Unban: _unbanned}

    # ---- answers ------------------------------------------------------------------------------------
    def _published(self, request: ApiRequest) -> None:
        self._ok(request, {"room_id": request.call.room_id, "seq": request.answers[0].seq})

    def _described(self, request: ApiRequest) -> None:
        got = request.answers[0]
        members = [{"player_id": m.player.player_id, "name": m.player.name, "gateway": m.gateway}
                   for m in sorted(got.members, key=lambda m: m.player.player_id)]
        self._ok(request, {"room_id": request.call.room_id, "name": got.room_name, "seq": got.seq,
                           "members": members})

    def _kicked_done(self, request: ApiRequest) -> None:
        call = request.call
        self._ok(request, {"room_id": call.room_id, "player_id": call.player_id, "kicked": request.answers[0].count})

    def _history_done(self, request: ApiRequest) -> None:
        got = request.answers[0]
        self._ok(request, {"room_id": request.call.room_id, "messages": [chat_message(f) for f in got.frames],
                           "more": got.more})

    def _muted(self, request: ApiRequest) -> None:
        call = request.call
        self._ok(request, {"player_id": call.player_id, "room_id": call.room_id, "until_us": request.until_us,
                           "until": until_text(request.until_us), **self._missing(request)})

    def _unmuted(self, request: ApiRequest) -> None:
        call = request.call
        self._ok(request, {"player_id": call.player_id, "room_id": call.room_id,
                           "lifted": any(a.count for a in request.answers), **self._missing(request)})

    def _disconnected(self, request: ApiRequest) -> None:
        call = request.call
        if isinstance(call, api.Ban):
            self._ok(request, {**self._ban_result(request), "disconnected": request.answers[0].count > 0})
            return
        if not request.answers[0].count:
            self._answer(request, error(404, "not_found", f"player {request.account_id} is not online"))
            return
        self._ok(request, {"player_id": request.account_id, "disconnected": True})

    _done = {api.Publish: _published, api.Room: _described, api.Kick: _kicked_done, api.History: _history_done,
             api.Mute: _muted, api.Unmute: _unmuted, api.Disconnect: _disconnected, api.Ban: _disconnected}

    def _rooms_done(self, request: ApiRequest) -> None:
        rooms = [{"room_id": r.room_id, "name": r.name, "member_count": r.member_count}
                 for r in sorted(request.rooms, key=lambda r: r.room_id)]
        self._ok(request, {"rooms": rooms, **self._missing(request, always=True)})

    def _ban_result(self, request: ApiRequest) -> dict[str, Any]:
        return {"player_id": request.account_id, "name": request.call.name, "until_us": request.until_us,
                "until": until_text(request.until_us)}

    def _missing(self, request: ApiRequest, always: bool = False) -> dict[str, list[int]]:
        """The shards a call to every shard did not reach (down, or silent until the deadline)."""
        missing = sorted(self.core.shards.name(k) for k in request.missing | request.waiting)
        return {"unavailable_shards": missing} if missing or always else {}

    # ---- helpers -------------------------------------------------------------------------------------
    def _operate(self, request: ApiRequest, shard: int, action: int, **fields: Any) -> None:
        core = self.core
        if core.shards.down(shard):
            self._answer(request, error(503, "unavailable", f"shard {core.shards.name(shard)} is unavailable; "
                                                            "try again shortly"))
            return
        request.waiting = {shard}
        request.deadline = core.clock() + core.limits.request_timeout
        msg = cluster_pb2.Operate(request=request.id, action=action, **fields)
        core.outbox.to_shard(shard, Kind.OPERATE, msg.SerializeToString())

    def _operate_everywhere(self, request: ApiRequest, action: int, **fields: Any) -> None:
        core = self.core
        shards = core.shards
        request.waiting = {k for k in range(len(shards.health)) if not shards.down(k)}
        request.missing = {k for k in range(len(shards.health)) if shards.down(k)}
        if not request.waiting:
            self._answer(request, error(503, "unavailable", "no shard is available; try again shortly"))
            return
        request.deadline = core.clock() + core.limits.request_timeout
        payload = cluster_pb2.Operate(request=request.id, action=action, **fields).SerializeToString()
        for shard in request.waiting:
            core.outbox.to_shard(shard, Kind.OPERATE, payload)

    def _ok(self, request: ApiRequest, result: dict[str, Any]) -> None:
        self._answer(request, Response(200, {"result": result}))

    def _answer(self, request: ApiRequest, response: Response) -> None:
        self.core.requests.finish(request.id)
        self.core.outbox.effect(Answered(request.call_id, response))
