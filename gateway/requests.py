"""Requests a gateway waits on: one typed entry per kind, one table.

A session has at most one request whose answer it waits for (its
`pending`); while it waits, its later frames stay unread, so they keep their
order. Leaving a room is also a request: the shard's answer says when the
session is off the room's delivery list, whether or not the client asked
(joining another room, a disconnect).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatcluster.gateway.session import Session


@dataclass(slots=True, eq=False)
class Request:
    id: int
    session: Session  # None only for an ApiRequest
    deadline: float


@dataclass(slots=True, eq=False)
class LoginRequest(Request):
    name: str = ""
    refresh: bool = False  # a token login on a logged-in session: only its expiry may change


@dataclass(slots=True, eq=False)
class CreateRequest(Request):
    name: str = ""
    shard: int = -1  # known once the database gave the room its id


@dataclass(slots=True, eq=False)
class JoinRequest(Request):
    shard: int = -1


@dataclass(slots=True, eq=False)
class HistoryRequest(Request):
    shard: int = -1


@dataclass(slots=True, eq=False)
class ListRequest(Request):
    waiting: set[int] = field(default_factory=set)  # shards yet to answer
    rooms: list[Any] = field(default_factory=list)  # RoomInfo collected so far


@dataclass(slots=True, eq=False)
class LeaveRequest(Request):
    room_id: int = 0
    acked: bool = False  # the client asked, and waits for S_LEAVE_ROOM_ACK


@dataclass(slots=True, eq=False)
class ApiRequest(Request):
    """An operator's API call in flight (gateway/operations.py). It has no session: `session` is None."""

    call_id: int = 0                                  # the adapter's id of the HTTP request waiting for it
    call: Any = None                                  # the gateway/api.py call
    waiting: set[int] = field(default_factory=set)    # shards yet to answer
    missing: set[int] = field(default_factory=set)    # shards it could not be sent to (down)
    answers: list[Any] = field(default_factory=list)  # Operated answers so far
    rooms: list[Any] = field(default_factory=list)    # the rooms call: RoomInfo collected so far
    account_id: int = 0                               # disconnect, ban, unban: the account, once known
    lifted: bool = False                              # unban: whether a ban was on
    until_us: int = 0                                 # ban, mute: until when (0: until lifted)


class Requests:
    """Every request in flight, by id; ids are unique for the gateway's lifetime."""

    __slots__ = ("_table", "_ids")

    def __init__(self) -> None:
        self._table: dict[int, Request] = {}
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, request: Request, waits: bool = True) -> Request:
        """Track a request; `waits`: the session reads nothing more until it is answered."""
        self._table[request.id] = request
        if waits:
            request.session.pending = request
        return request

    def get(self, request_id: int) -> Request | None:
        return self._table.get(request_id)

    def finish(self, request_id: int) -> Request | None:
        """Forget a request; its session waits no more."""
        request = self._table.pop(request_id, None)
        if request is not None and request.session is not None and request.session.pending is request:
            request.session.pending = None
        return request

    def expired(self, now: float) -> list[Request]:
        return [r for r in self._table.values() if r.deadline <= now]

    def leaves_of(self, session: Session) -> list[LeaveRequest]:
        return [r for r in self._table.values() if isinstance(r, LeaveRequest) and r.session is session]

    def __len__(self) -> int:
        return len(self._table)
