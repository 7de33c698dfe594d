"""What the gateway core asks of the world, handed over once per loop pass.

The core never calls out, as in websockets' and h11's protocol objects: its
input methods change its state and queue their consequences in an Outbox;
the adapter takes everything at once with GatewayCore.take_output() and
carries it out in this order: envelopes to the shards, bytes to the
sessions, then effects. Closes come after the bytes queued before them, so
a client reads its last S_ERROR before the connection ends.

Writes are coalesced: a frame for a session is appended to its `out` list
and the session is listed once per pass, so one send carries every frame
of that pass.

One subtlety the adapter relies on: while it writes the sessions of one
Output, it may feed the core what the shards answered meanwhile (see
GatewayServer.flush). Those frames land in the `out` lists of sessions
that may still be waiting their turn in the current Output, and such a
session is listed again in the next one; the adapter writes whatever a
session's `out` holds when its turn comes and skips a session whose `out`
is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatcluster.common.envelope import Batch

if TYPE_CHECKING:
    from chatcluster.gateway.session import Session


@dataclass(slots=True, frozen=True)
class Close:
    """Close the connection; after writing what is queued for it unless abort."""

    session: Session
    abort: bool = False


@dataclass(slots=True, frozen=True)
class PauseReading:
    """The session waits for an answer and has more frames buffered: let TCP hold the client back."""

    session: Session


@dataclass(slots=True, frozen=True)
class ResumeReading:
    session: Session


@dataclass(slots=True, frozen=True)
class Login:
    """Check credentials off the loop; answer with GatewayCore.on_login_done(request, result)."""

    request: int
    name: str
    password: str = field(repr=False)  # never in a log line or a traceback


@dataclass(slots=True, frozen=True)
class TokenLogin:
    """Check a login token off the loop (common/tokens.py); answer with GatewayCore.on_login_done."""

    request: int
    token: str = field(repr=False)  # a credential: never in a log line or a traceback


@dataclass(slots=True, frozen=True)
class AllocateRoom:
    """Get a new room id from the database off the loop; answer with GatewayCore.on_room_allocated."""

    request: int
    name: str
    creator_id: int


@dataclass(slots=True, frozen=True)
class Account:
    """An operator's database step off the loop (gateway/operations.py account_step): find the account
    named `name`, and ban it (until until_us, 0: until lifted) or lift its ban; answer with
    GatewayCore.on_account_done(request, result)."""

    request: int
    op: str  # find | ban | unban
    name: str
    until_us: int = 0
    reason: str = ""


@dataclass(slots=True, frozen=True)
class Answered:
    """An operator's API call is answered: hand the response to the HTTP thread waiting for call `call`."""

    call: int
    response: Any  # gateway/api.py Response


Effect = Close | PauseReading | ResumeReading | Login | AllocateRoom | Account | Answered


@dataclass(slots=True)
class Output:
    """One pass's worth of work for the adapter."""

    envelopes: list[tuple[int, bytes]]  # (shard index, one batch of envelopes)
    writes: list[Session]               # sessions whose `out` holds frames, each once
    effects: list[Effect]


class Outbox:
    """Collects a pass's outputs; `ready` says whether there is anything to take."""

    __slots__ = ("batches", "writes", "effects", "ready")

    def __init__(self, shards: int) -> None:
        self.batches = [Batch() for _ in range(shards)]
        self.writes: list[Session] = []
        self.effects: list[Effect] = []
        self.ready = False

    def send(self, session: Session, frame: bytes) -> None:
        """Queue one client frame for a session; the core sends nothing to a closed one."""
        session.out.append(frame)
        if not session.dirty:
            session.dirty = True
            self.writes.append(session)
            self.ready = True

    def to_shard(self, shard: int, kind: int, payload: bytes) -> None:
        self.batches[shard].add(kind, payload)
        self.ready = True

    def effect(self, effect: Effect) -> None:
        self.effects.append(effect)
        self.ready = True

    def take(self) -> Output:
        writes, self.writes = self.writes, []
        for session in writes:
            session.dirty = False
        effects, self.effects = self.effects, []
        envelopes = [(shard, batch.take()) for shard, batch in enumerate(self.batches) if batch]
        self.ready = False
        return Output(envelopes, writes, effects)
