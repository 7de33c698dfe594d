"""One client connection's state: connected -> logged in (lobby) -> in room -> closed.

A Session handles at most one request that needs an answer from elsewhere
(the database for a login or a room id, a shard for a join) at a time; until
that answer comes it is `busy` and the gateway stops reading its socket, so a
client that pipelines `join` and `chat` still has its chat go to the room it
joined, and a flooding client is held back by TCP instead of by our memory.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from chatcluster.common.frames import FrameDecoder
from chatcluster.gateway.guard import TokenBucket
from chatcluster.proto import chat_pb2

if TYPE_CHECKING:
    from chatcluster.gateway.requests import Request


class State(enum.Enum):
    CONNECTED = "connected"   # no player yet: only C_LOGIN_REQ is accepted
    LOBBY = "lobby"           # logged in, in no room
    IN_ROOM = "in_room"
    CLOSED = "closed"


class InvalidTransition(RuntimeError):
    """A bug: the gateway tried a state change the state machine does not allow."""


class Session:
    __slots__ = (
        "id", "state", "player", "room_id", "room_shard", "pending", "decoder",
        "out", "dirty", "paused", "transport", "outlet", "peer", "address", "bucket", "refused_streak",
        "token_deadline",
    )

    def __init__(self, session_id: int, decoder: FrameDecoder, transport: Any = None, peer: str = "") -> None:
        self.id = session_id
        self.state = State.CONNECTED
        self.player: chat_pb2.Player | None = None
        self.room_id = 0
        self.room_shard = -1
        self.pending: Request | None = None  # the request it waits for (gateway/requests.py)
        self.decoder = decoder
        self.out: list[bytes] = []   # frames to write at the end of this loop pass
        self.dirty = False           # already on the gateway's list of sessions to flush
        self.paused = False          # reading paused while busy
        self.transport = transport
        self.outlet: Any = None      # gateway/outlets.Outlet once the writer thread writes for it
        self.peer = peer
        self.address = peer.rsplit(":", 1)[0]  # the client's host, for per-address login limits
        self.bucket: TokenBucket | None = None  # the request rate limit, from login on
        self.refused_streak = 0  # requests refused for rate in a row (a flood is dropped)
        self.token_deadline = 0.0  # a token login's expiry on the core's clock (0: no token)

    # ---- queries ----------------------------------------------------------
    @property
    def player_id(self) -> int:
        return self.player.player_id if self.player is not None else 0

    @property
    def busy(self) -> bool:
        return self.pending is not None

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    # ---- transitions ------------------------------------------------------
    def bind(self, player: chat_pb2.Player) -> None:
        """Login succeeded: the session speaks for this player from now on."""
        self._require(State.CONNECTED)
        self.player = player
        self.state = State.LOBBY

    def enter(self, room_id: int, shard: int) -> None:
        self._require(State.LOBBY, State.IN_ROOM)
        self.room_id = room_id
        self.room_shard = shard
        self.state = State.IN_ROOM

    def to_lobby(self) -> None:
        self._require(State.IN_ROOM)
        self.room_id = 0
        self.room_shard = -1
        self.state = State.LOBBY

    def close(self) -> None:
        self.state = State.CLOSED

    # ---- output -----------------------------------------------------------
    def take_out(self) -> bytes:
        """Everything queued for this session as one bytes object (one write), leaving `out` empty."""
        out = self.out
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def _require(self, *states: State) -> None:
        if self.state not in states:
            allowed = ", ".join(s.value for s in states)
            raise InvalidTransition(f"session {self.id:04x} is {self.state.value}, expected {allowed}")
