"""An in-memory cluster for logic tests: real GatewayCores and RoomBooks, no sockets, no loop.

Envelopes and database answers are queued and delivered when the test calls
run(), so a test can also look at the state in between (a session busy while
its join is in flight, say). With chat_log=True every shard writes its chats
to the cluster's SQLite database at once and reads history back from it
(shards/store.py's serve, run as a database job like a login).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from chatcluster.common.config import Limits
from chatcluster.common.envelope import iter_items
from chatcluster.common.frames import MAX_FRAME, SERVER_IDS, FrameDecoder, decode_body, encode
from chatcluster.common.storage import Database, run_steps, token_login_steps
from chatcluster.gateway.core import GatewayCore
from chatcluster.gateway.operations import account_step
from chatcluster.gateway.output import (
    Account,
    AllocateRoom,
    Answered,
    Close,
    Effect,
    Login,
    PauseReading,
    ResumeReading,
    TokenLogin,
)
from chatcluster.gateway.session import Session
from chatcluster.proto import chat_pb2
from chatcluster.shards.rooms import Outbox, RoomBook
from chatcluster.shards.shard import Shard
from chatcluster.shards.store import serve


class Client:
    """The far end of one session: what it was sent, decoded."""

    def __init__(self, gateway: Gateway, session: Session) -> None:
        self.gateway = gateway
        self.session = session
        self.decoder = FrameDecoder(MAX_FRAME, SERVER_IDS)
        self.inbox: deque = deque()
        self.closed = False
        self._msg_ids = 0

    def send(self, *messages) -> None:
        self.gateway.core.on_data(self.session, b"".join(encode(m) for m in messages))

    def send_raw(self, data: bytes) -> None:
        self.gateway.core.on_data(self.session, data)

    def receive(self, data: bytes) -> None:
        self.decoder.feed(data)
        for msg_id, body in self.decoder.frames():
            self.inbox.append(decode_body(msg_id, body))

    def take(self) -> list:
        out = list(self.inbox)
        self.inbox.clear()
        return out

    def one(self, cls):
        got = self.take()
        assert len(got) == 1 and isinstance(got[0], cls), f"expected one {cls.__name__}, got {got}"
        return got[0]

    def chat(self, text: str, client_msg_id: int | None = None) -> int:
        self._msg_ids += 1
        mid = client_msg_id if client_msg_id is not None else self._msg_ids
        self.send(chat_pb2.C_ROOM_CHAT_REQ(text=text, client_msg_id=mid))
        return mid


class Gateway:
    """Drives one GatewayCore as the asyncio adapter does: inputs in, then its outputs taken and carried out."""

    def __init__(self, cluster: MemCluster, name: bytes, **core_options) -> None:
        self.cluster = cluster
        self.name = name
        self.core = GatewayCore(list(range(len(cluster.shards))), cluster.limits, **core_options)
        self.clients: dict[int, Client] = {}
        self.paused: set[int] = set()
        self.answers: dict[int, object] = {}  # operator API calls' responses, by call id
        self._calls = 0

    def call(self, call: object) -> int:
        """An operator's API call (gateway/api.py), as the HTTP thread hands it over; its answer lands in
        answers[the id returned] once the cluster has run."""
        self._calls += 1
        self.core.on_api_call(self._calls, call)
        return self._calls

    def connect(self) -> Client:
        session = self.core.open_session(peer="test")
        client = self.clients[session.id] = Client(self, session)
        self.flush()  # a refused connection gets its S_ERROR and its close now
        return client

    def flush(self) -> bool:
        """Carry out what the core queued, in the adapter's order; False if there was nothing."""
        if not self.core.has_output:
            return False
        output = self.core.take_output()
        for shard, data in output.envelopes:
            self.cluster.to_shards.append((self, shard, data))
        for session in output.writes:
            if session.out:
                self.clients[session.id].receive(session.take_out())
        for effect in output.effects:
            self._carry_out(effect)
        return True

    def _carry_out(self, effect: Effect) -> None:
        core, cluster = self.core, self.cluster
        if isinstance(effect, Close):
            client = self.clients[effect.session.id]
            if effect.session.out and not effect.abort:
                client.receive(effect.session.take_out())
            effect.session.out.clear()
            client.closed = True
        elif isinstance(effect, PauseReading):
            self.paused.add(effect.session.id)
        elif isinstance(effect, ResumeReading):
            self.paused.discard(effect.session.id)
        elif isinstance(effect, Login):
            name, password = effect.name, effect.password
            cluster.db_jobs.append((core.on_login_done, effect.request,
                                    lambda: cluster.db.login(name, password, core.registration_open)))
        elif isinstance(effect, TokenLogin):
            token = effect.token
            cluster.db_jobs.append((core.on_login_done, effect.request,
                                    lambda: run_steps(token_login_steps(cluster.db, cluster.token_key, token))))
        elif isinstance(effect, AllocateRoom):
            name, creator = effect.name, effect.creator_id
            cluster.db_jobs.append((core.on_room_allocated, effect.request,
                                    lambda: cluster.db.allocate_room(name, creator)))
        elif isinstance(effect, Account):
            cluster.db_jobs.append((core.on_account_done, effect.request, lambda: account_step(cluster.db, effect)))
        elif isinstance(effect, Answered):
            self.answers[effect.call] = effect.response
        else:
            raise TypeError(f"unknown effect {effect!r}")


class MemCluster:
    def __init__(self, tmp_path: Path, shards: int = 2, limits: Limits | None = None, chat_log: bool = False) -> None:
        self.limits = limits or Limits()
        self.db = Database(f"sqlite:///{tmp_path / 'chat.db'}", pool_size=2, scrypt_n=16)
        self.db.migrate()
        self.chat_log = chat_log
        self.states = [self._new_shard(k, 100 + k) for k in range(shards)]
        self.silent: set[int] = set()  # shards that swallow everything (down)
        self.to_shards: deque = deque()
        self.db_jobs: deque = deque()
        self.gateways: list[Gateway] = []
        self.db_down = False
        self.token_key = None  # a common.tokens.TokenKey, for gateways that take token logins

    def gateway(self, **core_options) -> Gateway:
        gw = Gateway(self, b"gw%d" % len(self.gateways), **core_options)
        self.gateways.append(gw)
        return gw

    def run(self, db: bool = True, shards: bool = True) -> None:
        """Deliver everything queued, until nothing moves."""
        progress = True
        while progress:
            progress = False
            while db and self.db_jobs:
                done, key, work = self.db_jobs.popleft()
                try:
                    result = RuntimeError("database is down") if self.db_down else work()
                except Exception as exc:  # noqa: BLE001
                    result = exc
                done(key, result)
                progress = True
            while shards and self.to_shards:
                gw, shard, data = self.to_shards.popleft()
                progress = True
                if shard in self.silent:
                    continue
                out = Outbox()
                state = self.states[shard]
                state.receive(gw.name, data, out, now=0.0)
                self._shard_output(state, shard, out)
            for gw in self.gateways:
                progress = gw.flush() or progress

    @property
    def shards(self) -> list[RoomBook]:
        return [state.book for state in self.states]

    def restart_shard(self, shard: int) -> None:
        """As a kill -9 and a restart would: a new, empty shard with a new incarnation."""
        self.states[shard] = self._new_shard(shard, self.states[shard].incarnation + 1)

    def _new_shard(self, shard: int, incarnation: int) -> Shard:
        if not self.chat_log:
            return Shard(shard, incarnation, self.limits)
        return Shard(shard, incarnation, self.limits, on_chat=lambda *row: self.db.append_chat([row]),
                     can_read=True)

    def _shard_output(self, state: Shard, shard: int, out: Outbox) -> None:
        """Deliver what a shard answered, and queue the chat-log reads it asked for."""
        self._deliver(shard, out)
        for read in state.book.take_reads():
            self.db_jobs.append((lambda token, result, state=state, shard=shard: self._read_done(state, shard, token,
                                                                                                 result),
                                 read.token, lambda read=read: serve(self.db, read)))

    def _read_done(self, state: Shard, shard: int, token: int, result: object) -> None:
        if state is not self.states[shard]:
            return  # the shard that asked was restarted meanwhile: nobody waits for this answer
        out = Outbox()
        state.book.read_done(token, result, out)
        self._shard_output(state, shard, out)

    def _deliver(self, shard: int, out: Outbox) -> None:
        by_name = {gw.name: gw for gw in self.gateways}
        for name, data in out.take():
            assert list(iter_items(data))  # a batch is never empty
            by_name[name].core.on_shard_batch(shard, data)


def rooms_on(cluster: MemCluster) -> list[list[int]]:
    return [sorted(book.rooms) for book in cluster.shards]
