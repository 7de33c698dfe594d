"""The rooms a gateway has members in: who gets each broadcast here, and what a rebuild needs.

The shard owns a room; a gateway keeps only its local view: the sessions it
delivers the room's broadcasts to, the room's name, the last `seq` it
delivered (or heard of in a join's answer) and the room's epoch, so a
restarted shard can be given the room back where it was, in the same epoch
if its chat log makes the room whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatcluster.gateway.session import Session


class LocalRoom:
    __slots__ = ("room_id", "name", "members", "last_seq", "epoch")

    def __init__(self, room_id: int, name: str) -> None:
        self.room_id = room_id
        self.name = name
        self.members: dict[int, Session] = {}  # by session id
        self.last_seq = 0
        self.epoch = 0  # as the shard last said (0: not known)

    def heard(self, epoch: int, head_seq: int) -> None:
        """The shard gave the room's epoch and newest seq (a join's answer, a restore's notice)."""
        if epoch:
            self.epoch = epoch
        self.last_seq = max(self.last_seq, head_seq)


class LocalRooms:
    __slots__ = ("_rooms",)

    def __init__(self) -> None:
        self._rooms: dict[int, LocalRoom] = {}

    def get(self, room_id: int) -> LocalRoom | None:
        return self._rooms.get(room_id)

    def add(self, room_id: int, name: str, session: Session) -> LocalRoom:
        room = self._rooms.get(room_id)
        if room is None:
            room = self._rooms[room_id] = LocalRoom(room_id, name)
        room.name = name or room.name
        room.members[session.id] = session
        return room

    def remove(self, room_id: int, session: Session) -> None:
        """Stop delivering room_id's broadcasts to session; a room with no member here is forgotten."""
        room = self._rooms.get(room_id)
        if room is not None and room.members.get(session.id) is session:
            del room.members[session.id]
            if not room.members:
                del self._rooms[room_id]

    def heard(self, room_id: int, epoch: int, head_seq: int) -> None:
        room = self._rooms.get(room_id)
        if room is not None:
            room.heard(epoch, head_seq)

    @property
    def members(self) -> int:
        return sum(len(room.members) for room in self._rooms.values())

    def __contains__(self, room_id: int) -> bool:
        return room_id in self._rooms

    def __iter__(self) -> Iterator[LocalRoom]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)
