"""The rooms a shard owns: membership, per-room seq, and what each change must tell whom.

Sans-I/O: RoomBook takes decoded envelopes from gateways (a chat as its
fixed header's fields and the client's body, untouched) and writes the
envelopes to send back into an Outbox, keyed by gateway. It never touches
ZeroMQ, so every rule here (seq from 1 without gaps, one frame per broadcast
serialized once and sent once per gateway, membership checked before a chat
is accepted, empty rooms removed) is tested with plain objects.

A member is a gateway session: (gateway routing id, session id). The
gateway guarantees a session is in at most one room cluster-wide; the book
still refuses to let one session sit in two of its own rooms.

History (PROTOCOL.md 1.1): each room keeps the frames it sent in a ring
(shards/history.py) and has an epoch that changes exactly when the room can no
longer replay its past without a hole (a restart that the chat log cannot make
good). A room whose last member left rests, unlisted, for `history_grace`
seconds, so that a resuming join can bring it back whole. What must come from
the database (pages older than the ring, a restarted room's recent messages)
is queued as a read (shards/store.py) and answered by read_done(), never
waited for here.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from heapq import nsmallest
from typing import Any

from google.protobuf.message import DecodeError

from chatcluster.common import logs
from chatcluster.common.config import Limits
from chatcluster.common.envelope import Batch, Kind, pack_deliver
from chatcluster.common.frames import MAX_FRAME, ErrorCode, encode, error_frame
from chatcluster.proto import chat_pb2, cluster_pb2
from chatcluster.shards.history import BadResume, History, Ring, new_epoch, replay_for_join
from chatcluster.shards.mutes import Mutes
from chatcluster.shards.store import Page, PageRead, Read, RestoreRead, Tail

log = logging.getLogger("chatcluster.shard")

#: A room list never carries more than this many rooms per shard (a client frame holds fewer).
LIST_CAP = 8192

#: The sender of operators' system messages (PROTOCOL.md, "Operators' words"): no account has id 0.
SYSTEM = chat_pb2.Player(player_id=0, name="system")

MemberKey = tuple[bytes, int]


@dataclass(slots=True)
class Member:
    gateway: bytes
    session: int
    player: chat_pb2.Player

    @property
    def key(self) -> MemberKey:
        return (self.gateway, self.session)


class Room:
    __slots__ = ("room_id", "name", "seq", "members", "gateways", "restored", "epoch", "ring", "restoring",
                 "waiting", "to_tell", "resting_since")

    def __init__(self, room_id: int, name: str, epoch: int, ring: Ring) -> None:
        self.room_id = room_id
        self.name = name
        self.seq = ring.last  # the newest message's seq; the ring always ends there
        self.epoch = epoch
        self.ring = ring
        self.restored = False  # created by a rebuild: the members it takes back are told
        self.restoring = False  # waiting for the chat log's answer: no seq is handed out meanwhile
        self.waiting: list[tuple[Callable[..., None], bytes, Any]] = []  # requests held until then, in order
        self.to_tell: list[Member] = []  # members a rebuild brought back, told once the restore is done
        self.resting_since = 0  # µs: when its last member left (while it rests)
        self.members: dict[MemberKey, Member] = {}
        self.gateways: dict[bytes, int] = {}  # members per gateway: where a broadcast must go

    def add(self, member: Member) -> None:
        self.members[member.key] = member
        self.gateways[member.gateway] = self.gateways.get(member.gateway, 0) + 1

    def remove(self, key: MemberKey) -> Member | None:
        member = self.members.pop(key, None)
        if member is not None:
            left = self.gateways[member.gateway] - 1
            if left:
                self.gateways[member.gateway] = left
            else:
                del self.gateways[member.gateway]
        return member

    def info(self) -> chat_pb2.RoomInfo:
        return chat_pb2.RoomInfo(room_id=self.room_id, name=self.name, member_count=len(self.members))


class Outbox:
    """Envelopes produced while handling input, one Batch per gateway."""

    __slots__ = ("batches",)

    def __init__(self) -> None:
        self.batches: dict[bytes, Batch] = {}

    def add(self, gateway: bytes, kind: int, payload: bytes) -> None:
        batch = self.batches.get(gateway)
        if batch is None:
            batch = self.batches[gateway] = Batch()
        batch.add(kind, payload)

    def reply(self, gateway: bytes, request: int, session: int, ok: bool, room_id: int, frame: bytes,
              **flags: object) -> None:
        """A Reply; flags: not_member, room_unknown, room_name (see cluster.proto)."""
        msg = cluster_pb2.Reply(request=request, session=session, ok=ok, room_id=room_id, frame=frame, **flags)
        self.add(gateway, Kind.REPLY, msg.SerializeToString())

    def operated(self, gateway: bytes, request: int, ok: bool = True, **fields: object) -> None:
        """The answer to an operator's action (Operated): ok with its figures, or error= and message=."""
        msg = cluster_pb2.Operated(request=request, ok=ok, **fields)
        self.add(gateway, Kind.OPERATED, msg.SerializeToString())

    def take(self) -> list[tuple[bytes, bytes]]:
        """(gateway, batch bytes) for every gateway with something to send; empties the outbox."""
        out = [(gateway, batch.take()) for gateway, batch in self.batches.items() if batch]
        self.batches.clear()
        return out


class RoomBook:
    def __init__(
        self,
        limits: Limits | None = None,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        on_chat: Callable[[int, int, int, str, int, int, int], None] | None = None,
        on_room_closed: Callable[[int], None] | None = None,
        can_read: bool = False,
        epochs: Callable[[int], int] = new_epoch,
    ) -> None:
        self.limits = limits or Limits()
        self.clock_us = clock_us
        self.on_chat = on_chat  # (room_id, seq, sender_id, text, server_time_us, client_msg_id, key): the chat log
        self.on_room_closed = on_room_closed  # (room_id): the rooms table
        self.can_read = can_read              # a chat log database answers reads (else memory is all there is)
        self.epochs = epochs                  # a new epoch, unlike the one given
        self.rooms: dict[int, Room] = {}
        self.resting: dict[int, Room] = {}    # emptied rooms within their grace, oldest first
        self.where: dict[MemberKey, int] = {}  # session -> the room it is in here
        self.history = History(self.limits)
        self.mutes = Mutes()                  # operators' mutes of the rooms here (and everywhere)
        self.started_us = clock_us()
        self.reads: list[Read] = []           # for the driver to run off the loop; answered by read_done()
        self._waiting_reads: dict[int, tuple[Callable[..., None], tuple]] = {}
        self._tokens = itertools.count(1)
        # figures
        self.chats = 0
        self.deliveries = 0
        self.refused = 0
        self.rooms_created = 0
        self.rooms_closed = 0
        self.rebuilt = 0
        self.restores_kept = 0     # rebuilt rooms whose history the chat log gave back: same epoch
        self.restores_lost = 0     # rebuilt rooms that could not be made whole: a new epoch
        self.resumes = 0
        self.resumes_recovered = 0
        self.replayed = 0          # frames sent again after a join (history and resumes)
        self.resent = 0            # idempotent resends answered with the original
        self.pages = 0
        self.pages_from_db = 0
        self.published = 0         # operators' system messages
        self.kicked = 0            # members operators removed
        self._silenced: bytes | None = None  # a gateway being dropped: no notices go to it
        self.verbose = log.isEnabledFor(logging.DEBUG)

    @property
    def members(self) -> int:
        return len(self.where)

    # ---- operations -------------------------------------------------------
    def create(self, gateway: bytes, msg: cluster_pb2.CreateRoom, out: Outbox) -> None:
        member = Member(gateway, msg.member.session, msg.member.player)
        if msg.room_id in self.rooms or msg.room_id in self.resting or msg.room_id == 0:
            self.refused += 1
            out.reply(gateway, msg.request, member.session, False, msg.room_id,
                      encode(chat_pb2.S_CREATE_ROOM_RES(success=False, message=f"room id {msg.room_id} is taken")))
            return
        if len(self.rooms) >= self.limits.max_rooms:
            self.refused += 1
            frame = error_frame(ErrorCode.LIMIT, f"no more rooms here ({self.limits.max_rooms} per shard)")
            out.reply(gateway, msg.request, member.session, False, msg.room_id, frame)
            return
        self._leave_current(member.key, out)
        room = self.rooms[msg.room_id] = Room(msg.room_id, msg.name, self.epochs(0), self.history.ring())
        self.rooms_created += 1
        self._enter(room, member)
        if self.verbose:
            log.debug("%sRoomManager.AddRoom name=%r; Enter OK members=1",
                      logs.ctx(member.session, member.player.player_id, room.room_id), room.name)
        res = chat_pb2.S_CREATE_ROOM_RES(success=True, room=room.info(), members=[member.player],
                                         message="Room created.", epoch=room.epoch, head_seq=room.seq)
        out.reply(gateway, msg.request, member.session, True, room.room_id, encode(res), room_name=room.name,
                  epoch=room.epoch, head_seq=room.seq)

    def join(self, gateway: bytes, msg: cluster_pb2.JoinRoom, out: Outbox) -> None:
        """Enter a room; the answer carries the history or the resume it asked for (PROTOCOL.md 1.1).

        A resting room (emptied, within its grace) takes only a resuming join;
        a restoring one holds the join until its chat log answered.
        """
        member = Member(gateway, msg.member.session, msg.member.player)
        room = self.rooms.get(msg.room_id)
        if room is None and msg.resume:
            room = self.resting.get(msg.room_id)
        if room is None:
            self.refused += 1
            if msg.resume and self.clock_us() - self.started_us < self.limits.gateway_timeout * 1_000_000:
                # This shard has just started: the room may be one the gateways are about to give back.
                frame = error_frame(ErrorCode.UNAVAILABLE, f"room {msg.room_id} may be being restored after a "
                                                           "restart; try again in a moment")
            else:
                frame = encode(chat_pb2.S_JOIN_ROOM_RES(success=False, message=f"room {msg.room_id} not found"))
            out.reply(gateway, msg.request, member.session, False, msg.room_id, frame)
            return
        if room.restoring:
            room.waiting.append((self.join, gateway, msg))
            return
        limits = self.limits
        try:
            replay, recovered = replay_for_join(
                room.ring, room.epoch, resume=msg.resume, since_seq=msg.since_seq, client_epoch=msg.epoch,
                history=msg.history, max_history=limits.history_replay, max_bytes=limits.write_buffer // 2)
        except BadResume as exc:
            self.refused += 1
            out.reply(gateway, msg.request, member.session, False, room.room_id,
                      error_frame(ErrorCode.BAD_REQUEST, str(exc)))
            return
        if member.key not in room.members:
            if len(room.members) >= limits.max_members:
                self.refused += 1
                frame = error_frame(ErrorCode.LIMIT, f"room {room.room_id} is full ({limits.max_members} members)")
                out.reply(gateway, msg.request, member.session, False, room.room_id, frame)
                return
            self._leave_current(member.key, out)
            if self.resting.pop(room.room_id, None) is not None:
                self.rooms[room.room_id] = room  # a resume brought it back
            self._enter(room, member)
            if self.verbose:
                log.debug("%sEnter OK members=%d", logs.ctx(member.session, member.player.player_id, room.room_id),
                          len(room.members))
            ntf = encode(chat_pb2.S_JOIN_ROOM_NTF(room_id=room.room_id, player=member.player))
            self._broadcast(room, ntf, out, except_member=member)
        if msg.resume:
            self.resumes += 1
            self.resumes_recovered += recovered
        self.replayed += len(replay)
        res = chat_pb2.S_JOIN_ROOM_RES(success=True, room=room.info(),
                                       members=[m.player for m in room.members.values()],
                                       message="Resumed." if recovered else "Joined.", epoch=room.epoch,
                                       head_seq=room.seq, oldest_seq=room.ring.oldest, recovered=recovered)
        frame = encode(res)
        if replay:
            frame = b"".join([frame, *replay])  # after the answer, before anything live: the reply goes first
        out.reply(gateway, msg.request, member.session, True, room.room_id, frame, room_name=room.name,
                  epoch=room.epoch, head_seq=room.seq)

    def leave(self, gateway: bytes, msg: cluster_pb2.LeaveRoom, out: Outbox) -> None:
        key = (gateway, msg.session)
        left = self.where.get(key) == msg.room_id and self._leave_current(key, out)
        if msg.request:
            # The gateway answers the client itself; this reply only marks where the leave fell in the room's order.
            out.reply(gateway, msg.request, msg.session, left, msg.room_id, b"",
                      room_unknown=msg.room_id not in self.rooms and not left)

    def chat(self, gateway: bytes, room_id: int, session: int, body: bytes, out: Outbox) -> None:
        """A CHAT envelope: body is the client's C_ROOM_CHAT_REQ as it sent it, decoded (and judged) only here.

        A body that does not decode is the client's fault, not the gateway's:
        it is answered to the client like any other refused chat. A non-zero
        idempotency key the room still holds is answered with the original,
        to the sender alone.
        """
        room = self.rooms.get(room_id)
        if room is None or room.restoring:
            # We restarted and lost the room (or are still getting it back from the chat log).
            self.refused += 1
            frame = error_frame(ErrorCode.UNAVAILABLE, f"room {room_id} is being restored after a restart; "
                                                       "this message was not delivered, send it again")
            out.reply(gateway, 0, session, False, room_id, frame, room_unknown=room is None)
            return
        member = room.members.get((gateway, session))
        if member is None:
            self.refused += 1
            frame = error_frame(ErrorCode.NOT_IN_ROOM, f"not in room {room_id}")
            out.reply(gateway, 0, session, False, room_id, frame, not_member=True)
            return
        req = chat_pb2.C_ROOM_CHAT_REQ()
        try:
            req.ParseFromString(body)
        except DecodeError:
            self._refuse_chat(gateway, room_id, session, out, ErrorCode.BAD_REQUEST, "C_ROOM_CHAT_REQ does not decode")
            return
        key = None
        if req.idempotency_key:
            key = (member.player.player_id, req.idempotency_key)
            original = room.ring.find(key)
            if original is not None:
                self.resent += 1
                out.reply(gateway, 0, session, True, room_id, original[1])
                return
        if self.mutes.by_player:  # one truth test per chat while nobody is muted
            muted = self.mutes.refusal(member.player.player_id, room_id, self.clock_us())
            if muted is not None:
                self._refuse_chat(gateway, room_id, session, out, ErrorCode.MUTED, muted)
                return
        text = req.text
        if not text:
            self._refuse_chat(gateway, room_id, session, out, ErrorCode.BAD_REQUEST, "empty text")
            return
        max_text = self.limits.max_text
        if len(text) > max_text or (len(text) * 4 > max_text and len(text.encode("utf-8")) > max_text):
            self._refuse_chat(gateway, room_id, session, out, ErrorCode.TOO_LARGE, f"text over {max_text} bytes")
            return
        seq = room.seq = room.seq + 1
        now = self.clock_us()
        frame = encode(chat_pb2.S_ROOM_CHAT_NTF(room_id=room_id, sender=member.player, text=text, seq=seq,
                                                client_msg_id=req.client_msg_id, server_time_us=now))
        self._broadcast(room, frame, out, seq=seq)
        self.history.append(room.ring, seq, frame, now, key)
        self.chats += 1
        if self.verbose:
            log.debug("%sBroadcast seq=%d members=%d gateways=%d", logs.ctx(room=room_id), seq,
                      len(room.members), len(room.gateways))
        if self.on_chat is not None:
            self.on_chat(room_id, seq, member.player.player_id, text, now, req.client_msg_id, req.idempotency_key)

    def page(self, gateway: bytes, msg: cluster_pb2.RoomHistory, out: Outbox) -> None:
        """A page of older messages for a member: from the ring where it reaches, else the chat log first."""
        room = self.rooms.get(msg.room_id)
        if room is not None and room.restoring:
            room.waiting.append((self.page, gateway, msg))
            return
        if room is None or (gateway, msg.session) not in room.members:
            self.refused += 1
            frame = (error_frame(ErrorCode.NOT_IN_ROOM, f"not in room {msg.room_id}") if room is not None else
                     error_frame(ErrorCode.UNAVAILABLE, f"room {msg.room_id} is being restored; try again"))
            out.reply(gateway, msg.request, msg.session, False, 0, frame)
            return
        self.pages += 1
        cap = self.limits.history_replay
        count = min(msg.limit, cap) if msg.limit else cap
        before = msg.before_seq if 0 < msg.before_seq <= room.seq else room.seq + 1
        low, high = max(1, before - count), before - 1
        ring = room.ring
        kept = ring.between(low, high)
        first_kept = max(low, ring.oldest) if kept else high + 1  # the ring's part is first_kept .. high
        if first_kept <= low or not self.can_read or high < 1:
            more = kept != [] and first_kept > (1 if self.can_read else ring.oldest)
            self._answer_page(gateway, msg, [(first_kept + i, f) for i, f in enumerate(kept)], more, out)
            return
        self.pages_from_db += 1
        read = PageRead(next(self._tokens), room.room_id, first_kept, first_kept - low)
        self._read(read, self._paged, gateway, msg, [(first_kept + i, f) for i, f in enumerate(kept)])

    def list_rooms(self, gateway: bytes, msg: cluster_pb2.ListRooms, out: Outbox) -> None:
        rooms = self.rooms.values()
        if len(self.rooms) > LIST_CAP:
            rooms = nsmallest(LIST_CAP, rooms, key=lambda r: r.room_id)
        reply = cluster_pb2.RoomList(request=msg.request, rooms=[r.info() for r in rooms])
        out.add(gateway, Kind.ROOMS, reply.SerializeToString())

    def rebuild(self, gateway: bytes, msg: cluster_pb2.Rebuild, out: Outbox) -> None:
        """Take back a room after a restart, as one gateway knew it: its members there, its last seq, its epoch.

        Repeats and several gateways' parts merge; the seq goes on from the
        highest one seen, or the chat log's if higher, so no seq is handed out
        twice. A room this shard did not have is restored: its recent history
        comes back from the chat log (the epoch stays) or cannot (a new epoch),
        and only then are its members told and its held requests served. Only
        the members this restores hear of it (nobody joined, so no join
        notices): a gateway rebuilds after any sign that the shard lost state,
        and a room that was not lost changes nothing.
        """
        room = self.rooms.get(msg.room_id)
        if room is None and msg.room_id in self.resting:
            room = self.rooms[msg.room_id] = self.resting.pop(msg.room_id)  # its gateway was cut off, not gone
            self.rebuilt += 1  # taken back from a gateway, as a lost room would be (its history never left)
        if room is None:
            room = self.rooms[msg.room_id] = Room(msg.room_id, msg.name, msg.epoch, self.history.ring(msg.last_seq))
            room.restored = True
            self.rebuilt += 1
            self._restore(room, out)
        elif room.restoring:
            room.seq = max(room.seq, msg.last_seq)
            room.epoch = room.epoch or msg.epoch
        elif msg.last_seq > room.seq:
            # Messages this shard never sent: what it keeps no longer leads to the head, and positions in
            # its epoch mean nothing now.
            room.seq = msg.last_seq
            self.history.reset(room.ring, room.seq)
            room.epoch = self.epochs(room.epoch)
        for m in msg.members:
            member = Member(gateway, m.session, m.player)
            if member.key in room.members or len(room.members) >= self.limits.max_members:
                continue
            if self.where.get(member.key) not in (None, room.room_id):
                self._leave_current(member.key, out)  # a stale membership here: the gateway knows best
            self._enter(room, member)
            if room.restoring:
                room.to_tell.append(member)
            elif room.restored:
                self._tell_restored(room, member, out)

    def drop_gateway(self, gateway: bytes, out: Outbox) -> int:
        """Every session of a gateway that is gone leaves its room; returns how many.

        The other gateways' members are told; the gone gateway is not (if it was
        only cut off, its sessions get their rooms back by a rebuild, and leave
        notices about themselves would be ghosts).
        """
        keys = [key for key in self.where if key[0] == gateway]
        self._silenced = gateway
        try:
            for key in keys:
                self._leave_current(key, out)
        finally:
            self._silenced = None
        return len(keys)

    def expire(self) -> int:
        """Close the rooms that rested past their grace; returns how many."""
        cutoff = self.clock_us() - int(self.limits.history_grace * 1_000_000)
        gone = [room for room in self.resting.values() if room.resting_since <= cutoff]
        for room in gone:
            del self.resting[room.room_id]
            self._close(room)
        return len(gone)

    # ---- operators (gateway/operations.py sends these; docs/API.md) ----------------
    def _open_room(self, handler: Callable[..., None], gateway: bytes, msg: cluster_pb2.Operate,
                   out: Outbox) -> Room | None:
        """The open room an operator's action is about; None if it was answered already (or held until the
        room's restore is done, like a client's request)."""
        room = self.rooms.get(msg.room_id)
        if room is None:
            out.operated(gateway, msg.request, False, error="not_found", message=f"no open room {msg.room_id}")
            return None
        if room.restoring:
            room.waiting.append((handler, gateway, msg))
            return None
        return room

    def publish(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        """A system message: sender id 0, the room's next seq, to every member on every gateway, kept in
        history and the chat log like any chat (so a resume or a page replays it too)."""
        room = self._open_room(self.publish, gateway, msg, out)
        if room is None:
            return
        text, max_text = msg.text, self.limits.max_text
        if not text or len(text.encode("utf-8")) > max_text:
            out.operated(gateway, msg.request, False, error="bad_request",
                         message=f"text must be 1 to {max_text} bytes of UTF-8")
            return
        room_id = room.room_id
        seq = room.seq = room.seq + 1
        now = self.clock_us()
        frame = encode(chat_pb2.S_ROOM_CHAT_NTF(room_id=room_id, sender=SYSTEM, text=text, seq=seq,
                                                server_time_us=now))
        self._broadcast(room, frame, out, seq=seq)
        self.history.append(room.ring, seq, frame, now)
        self.published += 1
        if self.on_chat is not None:
            self.on_chat(room_id, seq, 0, text, now, 0, 0)
        log.info("%soperator: system message seq=%d members=%d", logs.ctx(room=room_id), seq, len(room.members))
        out.operated(gateway, msg.request, seq=seq)

    def describe(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        """An open room's name, newest seq, and members with the gateway that holds each."""
        room = self._open_room(self.describe, gateway, msg, out)
        if room is None:
            return
        members = [cluster_pb2.RoomMember(player=m.player, gateway=m.gateway.decode(errors="replace"),
                                          session=m.session) for m in room.members.values()]
        out.operated(gateway, msg.request, seq=room.seq, room_name=room.name, members=members)

    def kick(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        """Take a player out of a room: the others see it leave, its gateway is told to send it back to the
        lobby with S_ERROR KICKED (msg.reason is that error's message)."""
        room = self._open_room(self.kick, gateway, msg, out)
        if room is None:
            return
        targets = [m for m in room.members.values() if m.player.player_id == msg.player_id]
        if not targets:
            out.operated(gateway, msg.request, False, error="not_found",
                         message=f"player {msg.player_id} is not in room {room.room_id}")
            return
        for member in targets:
            self._leave_current(member.key, out)  # the others get S_LEAVE_ROOM_NTF; the room may rest now
            kick = cluster_pb2.Kick(player_id=msg.player_id, session=member.session, code=ErrorCode.KICKED,
                                    reason=msg.reason, room_id=room.room_id)
            out.add(member.gateway, Kind.KICK, kick.SerializeToString())
        self.kicked += len(targets)
        log.info("%soperator: kicked from the room (%d session(s))", logs.ctx(player=msg.player_id, room=room.room_id),
                 len(targets))
        out.operated(gateway, msg.request, count=len(targets))

    def recent(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        """A room's messages for an operator: after since_seq (or the newest), at most `limit`, oldest first.

        What the room keeps comes from memory; what is older, or a room that is
        no longer open, comes from the chat log.
        """
        room = self.rooms.get(msg.room_id) or self.resting.get(msg.room_id)
        if room is not None and room.restoring:
            room.waiting.append((self.recent, gateway, msg))
            return
        limit, since = max(1, msg.limit), msg.since_seq
        if room is None:
            if not self.can_read:
                out.operated(gateway, msg.request, False, error="not_found",
                             message=f"no open room {msg.room_id}, and no chat log to read")
                return
            before = since + limit + 1 if since else 2**63 - 1
            self._read(PageRead(next(self._tokens), msg.room_id, before, limit), self._recent_read, gateway, msg,
                       [], 0)
            return
        head = room.seq
        low, high = (since + 1, min(head, since + limit)) if since else (max(1, head - limit + 1), head)
        if high < low:
            out.operated(gateway, msg.request, seq=head, more=False)
            return
        ring = room.ring
        kept = ring.between(low, high)
        first_kept = max(low, ring.oldest) if kept else high + 1
        entries = [(first_kept + i, f) for i, f in enumerate(kept)]
        if first_kept <= low or not self.can_read:
            self._answer_recent(gateway, msg, entries, head, out)
            return
        read = PageRead(next(self._tokens), room.room_id, first_kept, first_kept - low)
        self._read(read, self._recent_read, gateway, msg, entries, head)

    def _recent_read(self, result: object, gateway: bytes, msg: cluster_pb2.Operate,
                     kept: list[tuple[int, bytes]], head: int, out: Outbox) -> None:
        if not isinstance(result, Page):
            out.operated(gateway, msg.request, False, error="unavailable",
                         message="the chat log cannot be read right now (database error)")
            return
        entries = result.entries + kept
        if not head and msg.since_seq == 0:  # a room that is not open: older rows are what "more" means
            out.operated(gateway, msg.request, frames=[f for _, f in entries], more=result.more,
                         seq=entries[-1][0] if entries else 0)
            return
        self._answer_recent(gateway, msg, entries, head, out)

    def _answer_recent(self, gateway: bytes, msg: cluster_pb2.Operate, entries: list[tuple[int, bytes]], head: int,
                       out: Outbox) -> None:
        if msg.since_seq:
            last = entries[-1][0] if entries else msg.since_seq
            more = last < head if head else len(entries) >= msg.limit
        else:
            more = bool(entries) and entries[0][0] > 1
        out.operated(gateway, msg.request, frames=[f for _, f in entries], more=more, seq=head)

    def mute(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        """Mute a player in a room of this shard, or (room 0) in every room here, until msg.until_us."""
        self.mutes.mute(msg.player_id, msg.room_id, msg.until_us, msg.reason)
        out.operated(gateway, msg.request, count=1)

    def unmute(self, gateway: bytes, msg: cluster_pb2.Operate, out: Outbox) -> None:
        out.operated(gateway, msg.request, count=self.mutes.unmute(msg.player_id, msg.room_id))

    # ---- reads from the chat log ---------------------------------------------
    def read_done(self, token: int, result: object, out: Outbox) -> None:
        """The answer to a read this book queued (a Page, a Tail, or the exception the read raised)."""
        waiting = self._waiting_reads.pop(token, None)
        if waiting is None:
            raise KeyError(f"no read {token} is waiting")  # a bug of the driver: each read is answered once
        handler, args = waiting
        handler(result, *args, out)

    def _read(self, read: Read, handler: Callable[..., None], *args: object) -> None:
        self._waiting_reads[read.token] = (handler, args)
        self.reads.append(read)

    def take_reads(self) -> list[Read]:
        reads, self.reads = self.reads, []
        return reads

    def _paged(self, result: object, gateway: bytes, msg: cluster_pb2.RoomHistory,
               kept: list[tuple[int, bytes]], out: Outbox) -> None:
        if not isinstance(result, Page):
            res = chat_pb2.S_ROOM_HISTORY_RES(success=False, room_id=msg.room_id,
                                              message="older messages are unavailable right now (database error)")
            out.reply(gateway, msg.request, msg.session, False, 0, encode(res))
            return
        self._answer_page(gateway, msg, result.entries + kept, result.more, out)

    def _answer_page(self, gateway: bytes, msg: cluster_pb2.RoomHistory, entries: list[tuple[int, bytes]],
                     more: bool, out: Outbox) -> None:
        res = chat_pb2.S_ROOM_HISTORY_RES(success=True, room_id=msg.room_id, more=more,
                                          first_seq=entries[0][0] if entries else 0,
                                          last_seq=entries[-1][0] if entries else 0)
        self.replayed += len(entries)
        frame = b"".join([*(f for _, f in entries), encode(res)])
        out.reply(gateway, msg.request, msg.session, True, 0, frame)

    def _restore(self, room: Room, out: Outbox) -> None:
        """A rebuilt room: ask the chat log for its newest seq and recent messages (or do without one)."""
        if not self.can_read:
            self._restored(None, room.room_id, out)
            return
        room.restoring = True
        limits = self.limits
        since = self.clock_us() - int(limits.history_age * 1_000_000)
        self._read(RestoreRead(next(self._tokens), room.room_id, limits.history_messages, since),
                   self._restored, room.room_id)

    def _restored(self, result: object, room_id: int, out: Outbox) -> None:
        """The chat log's answer for a rebuilt room: refill its ring and keep its epoch if the log has every
        message up to the head, else a new epoch; then tell its members and serve what waited."""
        room = self.rooms.get(room_id) or self.resting.get(room_id)
        if room is None:
            return  # it rested past its grace meanwhile
        room.restoring = False
        tail = result if isinstance(result, Tail) else None
        if isinstance(result, BaseException):
            log.warning("%sthe chat log could not give the room back (%s); a new epoch",
                        logs.ctx(room=room_id), result)
        head = max(room.seq, tail.max_seq if tail else 0)
        run = _top_run(tail.entries, head) if tail else []
        room.seq = head
        if room.epoch and (head == 0 or run):
            self.history.reset(room.ring, head - len(run))
            self.history.load(room.ring, run, self.clock_us())
            self.restores_kept += 1
        else:
            self.history.reset(room.ring, head)
            room.epoch = self.epochs(room.epoch)
            self.restores_lost += 1
        for member in room.to_tell:
            if room.members.get(member.key) is member:
                self._tell_restored(room, member, out)
        room.to_tell = []
        waiting, room.waiting = room.waiting, []
        for handler, gateway, msg in waiting:
            handler(gateway, msg, out)

    def _tell_restored(self, room: Room, member: Member, out: Outbox) -> None:
        notice = error_frame(ErrorCode.UNAVAILABLE, f"room {room.room_id} was restored after its server "
                                                    "restarted; messages sent in the last moments may not have "
                                                    "been delivered")
        out.reply(member.gateway, 0, member.session, True, room.room_id, notice, epoch=room.epoch,
                  head_seq=room.seq)

    # ---- internals --------------------------------------------------------
    def _enter(self, room: Room, member: Member) -> None:
        room.add(member)
        self.where[member.key] = room.room_id

    def _leave_current(self, key: MemberKey, out: Outbox) -> bool:
        """Take a session out of its room here, telling the others; False if it was in none."""
        room_id = self.where.pop(key, None)
        if room_id is None:
            return False
        room = self.rooms[room_id]
        member = room.remove(key)
        if self.verbose:
            log.debug("%sLeave OK members=%d", logs.ctx(key[1], member.player.player_id if member else 0, room_id),
                      len(room.members))
        if not room.members:
            del self.rooms[room_id]
            if self.limits.history_grace > 0:
                room.resting_since = self.clock_us()
                self.resting[room_id] = room  # unlisted; a resuming join can still bring it back
            else:
                self._close(room)
        elif member is not None:
            ntf = encode(chat_pb2.S_LEAVE_ROOM_NTF(room_id=room_id, player=member.player))
            self._broadcast(room, ntf, out, except_member=member)
        return True

    def _close(self, room: Room) -> None:
        self.history.forget(room.ring)
        self.rooms_closed += 1
        if self.on_room_closed is not None:
            self.on_room_closed(room.room_id)

    def _broadcast(self, room: Room, frame: bytes, out: Outbox, except_member: Member | None = None,
                   seq: int = 0) -> None:
        """One DELIVER per gateway with members here.

        The frame is built once by the caller and the payload once here, the
        same bytes for every gateway; only the excepted member's own gateway
        gets a payload of its own (session ids are per gateway).
        """
        room_id = room.room_id
        payload = pack_deliver(room_id, 0, seq, frame)
        for gateway, count in room.gateways.items():
            if gateway == self._silenced:
                continue
            if except_member is not None and gateway == except_member.gateway:
                if except_member.key in room.members:
                    count -= 1
                out.add(gateway, Kind.DELIVER, pack_deliver(room_id, except_member.session, seq, frame))
            else:
                out.add(gateway, Kind.DELIVER, payload)
            self.deliveries += count

    def _refuse_chat(self, gateway: bytes, room_id: int, session: int, out: Outbox, code: int, text: str) -> None:
        self.refused += 1
        out.reply(gateway, 0, session, False, room_id, error_frame(code, text))

    def figures(self) -> dict[str, Any]:
        """The history's part of a shard's /status."""
        return {
            **self.history.figures(),
            "rooms_resting": len(self.resting),
            "resumes": self.resumes,
            "resumes_recovered": self.resumes_recovered,
            "replayed": self.replayed,
            "resent": self.resent,
            "pages": self.pages,
            "pages_from_db": self.pages_from_db,
            "restores_kept": self.restores_kept,
            "restores_lost": self.restores_lost,
        }


def _top_run(entries: list[tuple[int, bytes, int, Any]], head: int) -> list[tuple[int, bytes, int, Any]]:
    """The entries (seq order) that end at `head` with no hole; [] if the newest is not the head."""
    if not entries or entries[-1][0] != head:
        return []
    start = len(entries) - 1
    while start > 0 and entries[start - 1][0] == entries[start][0] - 1:
        start -= 1
    return entries[start:]


def max_member_list_frame(limits: Limits) -> int:
    """Bytes of the largest S_JOIN_ROOM_RES the limits allow; must stay within MAX_FRAME."""
    name = "\U0010ffff" * (limits.max_name // 4)
    room = chat_pb2.RoomInfo(room_id=2**64 - 1, name="\U0010ffff" * (limits.max_room_name // 4),
                             member_count=limits.max_members)
    players = [chat_pb2.Player(player_id=2**64 - 1, name=name) for _ in range(limits.max_members)]
    res = chat_pb2.S_JOIN_ROOM_RES(success=True, room=room, members=players, message="Joined.")
    return len(res.SerializeToString()) + 4


def check_limits(limits: Limits) -> None:
    """Refuse limits under which a member list could overflow one frame."""
    size = max_member_list_frame(limits)
    if size > MAX_FRAME:
        raise ValueError(f"max_members={limits.max_members} with names of {limits.max_name} bytes makes a "
                         f"member list of {size} bytes, over one frame ({MAX_FRAME}); lower one of them")
