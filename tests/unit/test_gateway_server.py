"""The asyncio adapter around the core: real loop, real client sockets, a real ZeroMQ ROUTER as the shard.

The mid-pass path (shard answers taken in while a write phase is under way)
is made to happen here on purpose, not by timing: the second DELIVER is
waiting in the gateway's DEALER socket before flush() starts.
"""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
import zmq

from chatcluster.common.config import ClusterConfig
from chatcluster.common.envelope import Batch, Kind, iter_items, pack_deliver
from chatcluster.common.frames import SERVER_IDS, FrameDecoder, decode_body, encode, error_frame
from chatcluster.common.storage import Database
from chatcluster.gateway.server import ANSWERS_EVERY, ClientProtocol, GatewayServer
from chatcluster.proto import chat_pb2

ROOM = 7
CLIENTS = 2 * ANSWERS_EVERY + 2  # two looks at the shard mid-pass, the first one finds an answer


def chat_frame(seq: int) -> bytes:
    return encode(chat_pb2.S_ROOM_CHAT_NTF(room_id=ROOM, seq=seq, text=f"message {seq}",
                                           sender=chat_pb2.Player(player_id=1, name="a")))


def deliver_batch(seq: int) -> bytes:
    batch = Batch()
    batch.add(Kind.DELIVER, pack_deliver(ROOM, 0, seq, chat_frame(seq)))
    return batch.take()


@pytest.fixture
def gateway(tmp_path):
    """A GatewayServer on a stock asyncio loop, its one shard a ROUTER socket the test speaks for."""
    loop = asyncio.new_event_loop()
    config = ClusterConfig.single_host(shards=1, data_dir=str(tmp_path), zmq_bridge="reader", port=7000)
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    (tmp_path / "run").mkdir()
    router.bind(config.shards[0].endpoint)
    db = Database(f"sqlite:///{tmp_path / 'chat.db'}", pool_size=1, scrypt_n=16)
    executor = ThreadPoolExecutor(max_workers=1)
    server = GatewayServer(config, 0, loop, db, executor, executor)
    server.core.start()
    server.flush()  # the HELLO goes out first
    assert router.poll(5000)
    identity, hello = router.recv_multipart()
    assert [kind for kind, _ in iter_items(hello)] == [Kind.HELLO]
    yield loop, server, router, identity
    server.links.close()
    router.close()
    executor.shutdown()
    db.close()
    loop.close()


def connect(loop, server, count):
    """count real connections, each logged in and in ROOM as far as the core knows; the far ends."""
    far_ends = []
    for _ in range(count):
        near, far = socket.socketpair()
        loop.run_until_complete(loop.connect_accepted_socket(lambda: ClientProtocol(server), near))
        far.setblocking(False)
        far_ends.append(far)
    for n, session in enumerate(list(server.core.sessions.values())):
        session.bind(chat_pb2.Player(player_id=n + 1, name=f"p{n + 1}"))
        session.enter(ROOM, 0)
        server.core.rooms.add(ROOM, "room", session)
    return far_ends


def read_frames(loop, far, want: int) -> list:
    """What one client received, once `want` frames are in (the loop runs meanwhile)."""
    decoder = FrameDecoder(1 << 20, SERVER_IDS)
    got: list = []

    async def read() -> None:
        reader, _ = await asyncio.open_connection(sock=far)
        while len(got) < want:
            decoder.feed(await reader.read(65536))
            got.extend(decode_body(msg_id, body) for msg_id, body in decoder.frames())

    loop.run_until_complete(asyncio.wait_for(read(), 5))
    return got


def test_answers_that_arrive_during_a_write_phase_reach_the_sessions_not_yet_written(gateway):
    loop, server, router, identity = gateway
    far_ends = connect(loop, server, CLIENTS)
    server._on_shard_batch(0, deliver_batch(1))  # seq 1: every session is on this pass's write list
    router.send_multipart([identity, deliver_batch(2)])
    assert server.links.sockets[0].poll(5000)  # seq 2 waits in the DEALER, unread
    writes_before = server.stats.writes

    server.flush()

    assert server.stats.mid_pass_answers == 1
    # Sessions past the first look got seq 1 and 2 in one write; the ones before it get seq 2 next pass.
    assert server.stats.writes - writes_before == CLIENTS
    assert server.core.has_output
    server.flush()
    assert server.stats.writes - writes_before == CLIENTS + ANSWERS_EVERY
    for far in far_ends:
        assert [m.seq for m in read_frames(loop, far, 2)] == [1, 2]


def test_a_closed_session_gets_its_last_frame_before_the_close_and_an_aborted_one_gets_nothing(gateway):
    loop, server, _, _ = gateway
    polite, rude = connect(loop, server, 2)
    first, second = list(server.core.sessions.values())
    server.core.send(first, error_frame(1, "bye"))
    server.core._drop(first, "test")
    server.core.send(second, error_frame(1, "never sent"))
    server.core.on_slow_consumer(second, 1 << 30)
    server.flush()

    async def until_closed(far: socket.socket) -> bytes:
        reader, _ = await asyncio.open_connection(sock=far)
        return await reader.read()  # everything, until the gateway closed its end

    polite_got = loop.run_until_complete(asyncio.wait_for(until_closed(polite), 5))
    rude_got = loop.run_until_complete(asyncio.wait_for(until_closed(rude), 5))
    decoder = FrameDecoder(1 << 20, SERVER_IDS)
    decoder.feed(polite_got)
    assert [decode_body(msg_id, body).message for msg_id, body in decoder.frames()] == ["bye"]
    assert rude_got == b""
    assert server.connections == 0 and not server.core.sessions
