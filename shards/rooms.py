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
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from heapq import nsmallest

from google.protobuf.message import DecodeError

from chatcluster.common import logs
from chatcluster.common.config import Limits
from chatcluster.common.envelope import Batch, Kind, pack_deliver
from chatcluster.common.frames import MAX_FRAME, ErrorCode, encode, error_frame
from chatcluster.proto import chat_pb2, cluster_pb2

log = logging.getLogger("chatcluster.shard")

#: A room list never carries more than this many rooms per shard (a client frame holds fewer).
LIST_CAP = 8192

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
    __slots__ = ("room_id", "name", "seq", "members", "gateways", "restored")

    def __init__(self, room_id: int, name: str) -> None:
        self.room_id = room_id
        self.name = name
        self.seq = 0
        self.restored = False  # created by a rebuild: the members it takes back are told
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
        on_chat: Callable[[int, int, int, str, int], None] | None = None,
        on_room_closed: Callable[[int], None] | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.clock_us = clock_us
        self.on_chat = on_chat                # (room_id, seq, sender_id, text, server_time_us): the chat log
        self.on_room_closed = on_room_closed  # (room_id): the rooms table
        self.rooms: dict[int, Room] = {}
        self.where: dict[MemberKey, int] = {}  # session -> the room it is in here
        # figures
        self.chats = 0
        self.deliveries = 0
        self.refused = 0
        self.rooms_created = 0
        self.rooms_closed = 0
        self.rebuilt = 0
        self._silenced: bytes | None = None  # a gateway being dropped: no notices go to it
        self.verbose = log.isEnabledFor(logging.DEBUG)

    @property
    def members(self) -> int:
        return len(self.where)

    # ---- operations -------------------------------------------------------
    def create(self, gateway: bytes, msg: cluster_pb2.CreateRoom, out: Outbox) -> None:
        member = Member(gateway, msg.member.session, msg.member.player)
        if msg.room_id in self.rooms or msg.room_id == 0:
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
        room = self.rooms[msg.room_id] = Room(msg.room_id, msg.name)
        self.rooms_created += 1
        self._enter(room, member)
        if self.verbose:
            log.debug("%sRoomManager.AddRoom name=%r; Enter OK members=1",
                      logs.ctx(member.session, member.player.player_id, room.room_id), room.name)
        res = chat_pb2.S_CREATE_ROOM_RES(success=True, room=room.info(), members=[member.player],
                                         message="Room created.")
        out.reply(gateway, msg.request, member.session, True, room.room_id, encode(res), room_name=room.name)

    def join(self, gateway: bytes, msg: cluster_pb2.JoinRoom, out: Outbox) -> None:
        member = Member(gateway, msg.member.session, msg.member.player)
        room = self.rooms.get(msg.room_id)
        if room is None:
            self.refused += 1
            res = chat_pb2.S_JOIN_ROOM_RES(success=False, message=f"room {msg.room_id} not found")
            out.reply(gateway, msg.request, member.session, False, msg.room_id, encode(res))
            return
        if member.key not in room.members:
            if len(room.members) >= self.limits.max_members:
                self.refused += 1
                frame = error_frame(ErrorCode.LIMIT, f"room {room.room_id} is full ({self.limits.max_members} members)")
                out.reply(gateway, msg.request, member.session, False, room.room_id, frame)
                return
            self._leave_current(member.key, out)
            self._enter(room, member)
            if self.verbose:
                log.debug("%sEnter OK members=%d", logs.ctx(member.session, member.player.player_id, room.room_id),
                          len(room.members))
            ntf = encode(chat_pb2.S_JOIN_ROOM_NTF(room_id=room.room_id, player=member.player))
            self._broadcast(room, ntf, out, except_member=member)
        res = chat_pb2.S_JOIN_ROOM_RES(success=True, room=room.info(),
                                       members=[m.player for m in room.members.values()], message="Joined.")
        out.reply(gateway, msg.request, member.session, True, room.room_id, encode(res), room_name=room.name)

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
        it is answered to the client like any other refused chat.
        """
        room = self.rooms.get(room_id)
        if room is None:
            # The gateway has the session in a room this shard does not have: we restarted and lost it.
            self.refused += 1
            frame = error_frame(ErrorCode.UNAVAILABLE, f"room {room_id} is being restored after a restart; "
                                                       "this message was not delivered, send it again")
            out.reply(gateway, 0, session, False, room_id, frame, room_unknown=True)
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
        text = req.text
        if not text:
            self._refuse_chat(gateway, room_id, session, out, ErrorCode.BAD_REQUEST, "empty text")
            return
        max_text = self.limits.max_text
        if len(text) > max_text or (len(text) * 4 > max_text and len(text.encode("utf-8")) > max_text):
            self._refuse_chat(gateway, room_id, session, out, ErrorCode.TOO_LARGE, f"text over {max_text} bytes")
            return
        room.seq += 1
        now = self.clock_us()
        ntf = chat_pb2.S_ROOM_CHAT_NTF(room_id=room.room_id, sender=member.player, text=text, seq=room.seq,
                                       client_msg_id=req.client_msg_id, server_time_us=now)
        self._broadcast(room, encode(ntf), out, seq=room.seq)
        self.chats += 1
        if self.verbose:
            log.debug("%sBroadcast seq=%d members=%d gateways=%d", logs.ctx(room=room.room_id), room.seq,
                      len(room.members), len(room.gateways))
        if self.on_chat is not None:
            self.on_chat(room.room_id, room.seq, member.player.player_id, text, now)

    def list_rooms(self, gateway: bytes, msg: cluster_pb2.ListRooms, out: Outbox) -> None:
        rooms = self.rooms.values()
        if len(self.rooms) > LIST_CAP:
            rooms = nsmallest(LIST_CAP, rooms, key=lambda r: r.room_id)
        reply = cluster_pb2.RoomList(request=msg.request, rooms=[r.info() for r in rooms])
        out.add(gateway, Kind.ROOMS, reply.SerializeToString())

    def rebuild(self, gateway: bytes, msg: cluster_pb2.Rebuild, out: Outbox) -> None:
        """Take back a room after a restart, as one gateway knew it: its members there, its last seq.

        Repeats and several gateways' parts merge; the seq goes on from the
        highest one seen. Only the members this restores hear of it (nobody
        joined, so no join notices): a gateway rebuilds after any sign that the
        shard lost state, and a room that was not lost changes nothing.
        """
        room = self.rooms.get(msg.room_id)
        if room is None:
            room = self.rooms[msg.room_id] = Room(msg.room_id, msg.name)
            room.restored = True
            self.rebuilt += 1
        room.seq = max(room.seq, msg.last_seq)
        notice = b""
        for m in msg.members:
            member = Member(gateway, m.session, m.player)
            if member.key in room.members or len(room.members) >= self.limits.max_members:
                continue
            if self.where.get(member.key) not in (None, room.room_id):
                self._leave_current(member.key, out)  # a stale membership here: the gateway knows best
            self._enter(room, member)
            if room.restored:
                notice = notice or error_frame(
                    ErrorCode.UNAVAILABLE, f"room {room.room_id} was restored after its server restarted; "
                                           "messages sent in the last moments may not have been delivered")
                out.reply(gateway, 0, member.session, True, room.room_id, notice)

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
            self.rooms_closed += 1
            if self.on_room_closed is not None:
                self.on_room_closed(room_id)
        elif member is not None:
            ntf = encode(chat_pb2.S_LEAVE_ROOM_NTF(room_id=room_id, player=member.player))
            self._broadcast(room, ntf, out, except_member=member)
        return True

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
