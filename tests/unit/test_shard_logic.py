"""The shard as plain objects: batches in, batches out, no ZeroMQ.

What a gateway sends is built with the same helpers the gateway uses
(common/envelope.py), and what the shard answers is cut with the same
helpers the gateway cuts it with, so these tests pin the wire format of
CHAT and DELIVER as well as the room rules.
"""

from __future__ import annotations

import pytest
from waiting import wait_for

from chatcluster.common.config import ClusterConfig, Limits
from chatcluster.common.envelope import ITEM, Batch, Kind, iter_items, parse, unpack_deliver
from chatcluster.common.frames import HEADER, ErrorCode, MsgId, encode
from chatcluster.proto import chat_pb2 as pb
from chatcluster.proto import cluster_pb2
from chatcluster.shards import rooms as rooms_module
from chatcluster.shards.rooms import Outbox
from chatcluster.shards.shard import Shard

GW_A, GW_B, GW_C = b"gw-a", b"gw-b", b"gw-c"


def member(session: int) -> cluster_pb2.Member:
    return cluster_pb2.Member(session=session, player=pb.Player(player_id=1000 + session, name=f"p{session}"))


def chat_body(text: str, client_msg_id: int = 1) -> bytes:
    return encode(pb.C_ROOM_CHAT_REQ(text=text, client_msg_id=client_msg_id))[HEADER.size:]


class Harness:
    """A Shard and what it answered, envelope by envelope, per gateway."""

    def __init__(self, limits: Limits | None = None, **book_options: object) -> None:
        self.log: list[tuple[int, int, int, str, int, int, int]] = []
        self.now = 1_700_000_000_000_000  # µs; tests move it
        self.shard = Shard(0, 1, limits, clock_us=lambda: self.now, on_chat=lambda *row: self.log.append(row),
                           **book_options)
        self.out = Outbox()

    def send(self, gateway: bytes, batch: Batch) -> dict[bytes, list[tuple[int, bytes]]]:
        """Feed one batch; returns {gateway: [(kind, payload), ...]} of everything answered."""
        self.shard.receive(gateway, batch.take(), self.out, now=0.0)
        return {gw: list(iter_items(data)) for gw, data in self.out.take()}

    def one(self, gateway: bytes, kind: int, msg: object) -> dict[bytes, list[tuple[int, bytes]]]:
        batch = Batch()
        batch.add(kind, msg.SerializeToString())  # type: ignore[attr-defined]
        return self.send(gateway, batch)

    def room(self, room_id: int, *members: tuple[bytes, int]) -> None:
        (gw, session), *rest = members
        self.one(gw, Kind.CREATE, cluster_pb2.CreateRoom(request=1, room_id=room_id, name="r", member=member(session)))
        for gw, session in rest:
            self.one(gw, Kind.JOIN, cluster_pb2.JoinRoom(request=2, room_id=room_id, member=member(session)))

    def chats(self, gateway: bytes, *items: tuple[int, int, str]) -> dict[bytes, list[tuple[int, bytes]]]:
        batch = Batch()
        for n, (room_id, session, text) in enumerate(items, 1):
            batch.add_chat(room_id, session, chat_body(text, n))
        return self.send(gateway, batch)


def delivered(items: list[tuple[int, bytes]]) -> list[tuple[int, int, int, pb.S_ROOM_CHAT_NTF]]:
    """(room_id, except_session, seq, notification) of every DELIVER of a chat."""
    found = []
    for kind, payload in items:
        assert kind == Kind.DELIVER
        room_id, except_session, seq, frame = unpack_deliver(payload)
        size, msg_id = HEADER.unpack_from(frame)
        assert size == len(frame) and msg_id == MsgId.S_ROOM_CHAT_NTF
        found.append((room_id, except_session, seq, pb.S_ROOM_CHAT_NTF.FromString(frame[HEADER.size:])))
    return found


def replies(items: list[tuple[int, bytes]]) -> list[cluster_pb2.Reply]:
    assert all(kind == Kind.REPLY for kind, _ in items)
    return [parse(kind, payload) for kind, payload in items]  # type: ignore[misc]


def error_of(reply: cluster_pb2.Reply) -> pb.S_ERROR:
    _, msg_id = HEADER.unpack_from(reply.frame)
    assert msg_id == MsgId.S_ERROR
    return pb.S_ERROR.FromString(reply.frame[HEADER.size:])


@pytest.fixture
def h() -> Harness:
    return Harness()


# ---- the chat path -----------------------------------------------------------------------------
def test_chats_get_seq_from_1_and_one_deliver_per_gateway(h):
    h.room(7, (GW_A, 1), (GW_A, 2), (GW_B, 1))
    before = h.shard.book.deliveries  # the join notices
    out = h.chats(GW_A, (7, 1, "one"), (7, 2, "two"), (7, 1, "three"))
    assert set(out) == {GW_A, GW_B}
    for gw in (GW_A, GW_B):
        got = delivered(out[gw])
        assert [(room, exc, seq, n.seq, n.text) for room, exc, seq, n in got] == [
            (7, 0, 1, 1, "one"), (7, 0, 2, 2, "two"), (7, 0, 3, 3, "three")]
        assert [n.sender.player_id for *_, n in got] == [1001, 1002, 1001]
        assert [n.client_msg_id for *_, n in got] == [1, 2, 3]
    assert h.shard.book.deliveries - before == 9 and h.shard.book.chats == 3
    assert [(room, seq, sender, text) for room, seq, sender, text, *_ in h.log] == [
        (7, 1, 1001, "one"), (7, 2, 1002, "two"), (7, 3, 1001, "three")]


def test_a_chat_frame_and_its_deliver_payload_are_built_once(h, monkeypatch):
    """Serialize once, copy never: three gateways get the very same payload object."""
    h.room(3, (GW_A, 1), (GW_B, 1), (GW_C, 1))
    real_encode, real_pack, real_add = rooms_module.encode, rooms_module.pack_deliver, Batch.add
    frames, payloads, added = [], [], []

    def counting_encode(msg):
        frames.append(real_encode(msg))
        return frames[-1]

    def counting_pack(*args):
        payloads.append(real_pack(*args))
        return payloads[-1]

    def recording_add(batch, kind, payload):
        added.append(payload)
        real_add(batch, kind, payload)

    monkeypatch.setattr(rooms_module, "encode", counting_encode)
    monkeypatch.setattr(rooms_module, "pack_deliver", counting_pack)
    monkeypatch.setattr(Batch, "add", recording_add)
    batch = Batch()
    batch.add_chat(3, 1, chat_body("hi"))
    h.shard.receive(GW_A, batch.take(), h.out, now=0.0)
    assert len(frames) == 1 and len(payloads) == 1
    assert len(added) == 3 and all(payload is payloads[0] for payload in added)
    assert {gw for gw, _ in h.out.take()} == {GW_A, GW_B, GW_C}


def test_a_join_notice_skips_the_joiner_on_its_own_gateway_only(h):
    h.room(5, (GW_A, 1), (GW_B, 1))
    out = h.one(GW_A, Kind.JOIN, cluster_pb2.JoinRoom(request=9, room_id=5, member=member(2)))
    own = [unpack_deliver(p) for k, p in out[GW_A] if k == Kind.DELIVER]
    other = [unpack_deliver(p) for k, p in out[GW_B] if k == Kind.DELIVER]
    assert [(r, exc, seq) for r, exc, seq, _ in own] == [(5, 2, 0)]
    assert [(r, exc, seq) for r, exc, seq, _ in other] == [(5, 0, 0)]
    assert own[0][3] == other[0][3]  # the same notice frame
    assert pb.S_JOIN_ROOM_NTF.FromString(own[0][3][HEADER.size:]).player.player_id == 1002


def test_refused_chats_are_answered_and_take_no_seq(h):
    h.room(4, (GW_A, 1))
    h.room(6, (GW_A, 2))
    limit = h.shard.limits.max_text
    cases = [
        ((4, 2, "not a member of 4"), "not_member", ErrorCode.NOT_IN_ROOM),
        ((GW_B, 4, 1, "same session id, other gateway"), "not_member", ErrorCode.NOT_IN_ROOM),
        ((99, 1, "no such room"), "room_unknown", ErrorCode.UNAVAILABLE),
        ((4, 1, ""), None, ErrorCode.BAD_REQUEST),
        ((4, 1, "x" * (limit + 1)), None, ErrorCode.TOO_LARGE),
        ((4, 1, "é" * (limit // 2 + 1)), None, ErrorCode.TOO_LARGE),  # over the limit in UTF-8 bytes
    ]
    for args, flag, code in cases:
        gw = args[0] if isinstance(args[0], bytes) else GW_A
        room_id, session, text = args[-3:]
        reply, = replies(h.chats(gw, (room_id, session, text))[gw])
        assert not reply.ok and reply.session == session and reply.room_id == room_id and reply.request == 0
        assert (reply.not_member, reply.room_unknown) == (flag == "not_member", flag == "room_unknown")
        assert error_of(reply).code == code
    assert h.shard.book.rooms[4].seq == 0 and h.shard.book.refused == len(cases) and h.log == []
    assert h.shard.bad_envelopes == 0  # all of these are the client's doing, not the gateway's


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"\x0a\x02\xc3\x28"], ids=["not protobuf", "text not UTF-8"])
def test_a_chat_body_that_does_not_decode_is_the_clients_fault(h, body):
    """Answered to the client as BAD_REQUEST; the gateway did nothing wrong, the rest of its batch goes on."""
    h.room(4, (GW_A, 1))
    batch = Batch()
    batch.add_chat(4, 1, body)
    batch.add_chat(4, 1, chat_body("fine"))
    out = h.send(GW_A, batch)[GW_A]
    (kind, payload), deliver = out
    reply = parse(kind, payload)
    assert error_of(reply).code == ErrorCode.BAD_REQUEST and reply.session == 1
    assert [(seq, n.text) for _, _, seq, n in delivered([deliver])] == [(1, "fine")]
    assert h.shard.bad_envelopes == 0 and h.shard.bad_batches == 0


# ---- peer faults and our bugs ------------------------------------------------------------------
def with_bad_item(kind: int, payload: bytes) -> Batch:
    batch = Batch()
    batch.add_chat(4, 1, chat_body("before"))
    batch.add(kind, payload)
    batch.add_chat(4, 1, chat_body("after"))
    return batch


@pytest.mark.parametrize(("kind", "payload"), [
    (Kind.JOIN, b"\xff\xff\xff"),                      # does not decode
    (Kind.CHAT, b"\x04\x00\x00"),                      # shorter than CHAT's header
    (4, cluster_pb2.Claim(player_id=1).SerializeToString()),  # a retired kind number
    (Kind.REPLY, cluster_pb2.Reply(request=1).SerializeToString()),  # a kind only shards send
], ids=["undecodable", "short chat header", "retired kind", "shard-to-gateway kind"])
def test_a_bad_envelope_between_two_good_ones_costs_only_itself(h, kind, payload):
    h.room(4, (GW_A, 1))
    out = h.send(GW_A, with_bad_item(kind, payload))
    assert [(seq, n.text) for _, _, seq, n in delivered(out[GW_A])] == [(1, "before"), (2, "after")]
    assert (h.shard.bad_envelopes, h.shard.bad_batches) == (1, 0)


def test_a_broken_item_header_ends_the_batch(h):
    h.room(4, (GW_A, 1))
    batch = Batch()
    batch.add_chat(4, 1, chat_body("kept"))
    data = batch.take() + ITEM.pack(Kind.CHAT, 1000) + b"\x00" * 20  # claims more than the batch holds
    handled = h.shard.receive(GW_A, data, h.out, now=0.0)
    (gw, answer), = h.out.take()
    assert handled == 1 and [n.text for *_, n in delivered(list(iter_items(answer)))] == ["kept"]
    assert (h.shard.bad_envelopes, h.shard.bad_batches) == (0, 1)
    assert h.shard.receive(GW_A, b"\x0a\x00", h.out, now=0.0) == 0  # not even one item header
    assert h.shard.bad_batches == 2


def test_a_bug_of_ours_propagates(h, monkeypatch):
    h.room(4, (GW_A, 1))

    def broken(*args):
        raise KeyError("our bug")

    monkeypatch.setattr(h.shard.book, "chat", broken)
    with pytest.raises(KeyError, match="our bug"):
        h.send(GW_A, with_bad_item(Kind.JOIN, b"\xff"))
    assert h.shard.bad_envelopes == 0 and h.shard.bad_batches == 0


# ---- the worker's receive loop, with a socket stand-in -----------------------------------------
class FakeRouter:
    """What a ROUTER hands out: queued messages, part by part, and RCVMORE/EVENTS as ZeroMQ reports them."""

    def __init__(self, *messages: list[bytes]) -> None:
        self.parts = [(part, i < len(msg) - 1) for msg in messages for i, part in enumerate(msg)]
        self.more = False
        self.sent: list[bytes] = []

    def recv(self, flags: int = 0) -> bytes:
        part, self.more = self.parts.pop(0)
        return part

    def getsockopt(self, option: int) -> int:
        import zmq
        if option == zmq.RCVMORE:
            return int(self.more)
        assert option == zmq.EVENTS
        return zmq.POLLIN if self.parts else 0

    def send(self, data: bytes, flags: int = 0) -> None:
        self.sent.append(data)


@pytest.fixture
def worker(tmp_path):
    from chatcluster.shards.worker import ShardWorker
    config = ClusterConfig.single_host(shards=1, port=7940, data_dir=str(tmp_path))
    config.chat_log = False
    return ShardWorker(config, 0)


def chat_batch(room_id: int, session: int, text: str) -> bytes:
    batch = Batch()
    batch.add_chat(room_id, session, chat_body(text))
    return batch.take()


def test_the_worker_drains_every_message_and_counts_foreign_ones(worker):
    create = Batch()
    create.add(Kind.CREATE, cluster_pb2.CreateRoom(request=1, room_id=4, name="r", member=member(1))
               .SerializeToString())
    router = FakeRouter([GW_A, create.take()], [GW_A, b"x", b"y"], [GW_A, chat_batch(4, 1, "hi")])
    worker.router = router
    first = router.recv()
    worker._drain(router, first, now=0.0)
    assert router.parts == []
    assert worker.stats.zmq_in == 2 and worker.stats.foreign == 1 and worker.stats.envelopes == 2
    gw, answer = router.sent
    assert gw == GW_A and [k for k, _ in iter_items(answer)] == [Kind.REPLY, Kind.DELIVER]


def test_a_bug_of_ours_escapes_the_worker_loop(worker, monkeypatch):
    def broken(*args):
        raise KeyError("our bug")

    monkeypatch.setattr(worker.shard, "handle", broken)
    router = FakeRouter([GW_A, chat_batch(4, 1, "hi")])
    with pytest.raises(KeyError):
        worker._drain(router, router.recv(), now=0.0)


# ---- the chat log's writer ---------------------------------------------------------------------
def test_the_chat_log_writes_the_file_at_once_and_the_database_in_large_batches(tmp_path):
    from chatcluster.common.storage import Database
    from chatcluster.shards.chatlog import ChatLog, RotatingLines
    db = Database(f"sqlite:///{tmp_path}/chat.db", pool_size=1)
    db.migrate()
    log = ChatLog(db, RotatingLines(tmp_path / "shard-0.log"), flush_interval=0.001, db_interval=600, db_min_rows=100)
    try:
        log.append(1, 1, 7, "first", 1)
        wait_for(lambda: log.stats()["db_rows"] == 1, 10)  # after a quiet spell the first row goes at once
        for seq in range(2, 101):
            log.append(1, seq, 7, f"m{seq}", seq)
        wait_for(lambda: log.stats()["file_lines"] == 100, 10)
        assert log.stats()["db_rows"] == 1 and log.stats()["backlog"] == 99  # waiting for a larger batch
        log.append(1, 101, 7, "the hundredth waiting", 101)
        wait_for(lambda: log.stats()["db_rows"] == 101, 10)
        assert log.stats()["db_batches"] == 2
        for seq in range(102, 111):
            log.append(1, seq, 7, f"m{seq}", seq)
    finally:
        assert log.close()  # the rest goes on close, whatever the interval
    assert db.chat_summary() == {1: (110, 1, 110)}
    db.close()


def test_what_arrives_during_the_wake_gap_is_handled_in_one_wake_up(tmp_path, monkeypatch):
    """A real ROUTER loop: the first message wakes the shard; the nine sent while it waits out the gap share one."""
    import threading

    import zmq

    from chatcluster.common import procutil
    from chatcluster.shards.worker import ShardWorker
    from chatcluster.spawn import free_port_block

    monkeypatch.setattr(procutil, "tune_runtime", lambda *a, **k: None)  # process-wide GC settings: not in pytest
    config = ClusterConfig.single_host(shards=1, port=free_port_block(3), data_dir=str(tmp_path))
    config.chat_log = False
    config.limits.shard_wake_gap = 0.5
    worker = ShardWorker(config, 0)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, GW_A)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVTIMEO, 5000)
    try:
        dealer.connect(config.shard(0).endpoint)
        create = Batch()
        create.add(Kind.CREATE, cluster_pb2.CreateRoom(request=1, room_id=4, name="r", member=member(1))
                   .SerializeToString())
        dealer.send(create.take())
        dealer.recv()  # answered at once, before the gap
        for n in range(9):
            dealer.send(chat_batch(4, 1, f"m{n}"))
        answer = list(iter_items(dealer.recv()))
        assert [n.text for *_, n in delivered(answer)] == [f"m{n}" for n in range(9)]  # one answer for all nine
        assert (worker.stats.zmq_in, worker.stats.wakeups) == (10, 2)
    finally:
        worker.stop()
        thread.join(5)
        dealer.close()
    assert not thread.is_alive()
