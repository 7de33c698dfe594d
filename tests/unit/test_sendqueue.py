"""The bounded, ordered hold of messages ZeroMQ pushes back on (common/zmqbridge.SendQueue)."""

from __future__ import annotations

import zmq

from chatcluster.common.zmqbridge import LinkStats, SendQueue


class Peer:
    def __init__(self) -> None:
        self.full = False
        self.got: list[tuple[str, bytes]] = []

    def send(self, key: str, data: bytes) -> None:
        if self.full:
            raise zmq.Again()
        self.got.append((key, data))


def test_holds_in_order_while_the_peer_pushes_back():
    peer, stats = Peer(), LinkStats()
    q = SendQueue(peer.send, stats)
    q.send("a", b"1")
    peer.full = True
    q.send("a", b"2")
    q.send("b", b"x")
    peer.full = False
    q.send("a", b"3")  # behind the held one, never before it
    assert peer.got == [("a", b"1")]
    assert stats.backpressure == 2 and stats.backlog == 3 and stats.backlog_peak == 3
    assert q.retry()
    assert peer.got == [("a", b"1"), ("a", b"2"), ("a", b"3"), ("b", b"x")]
    assert stats.backlog == 0 and stats.sent == 4 and not q.held


def test_drops_past_the_limit_and_counts_it():
    peer, stats = Peer(), LinkStats()
    peer.full = True
    q = SendQueue(peer.send, stats, limit=2)
    for i in range(5):
        q.send("a", bytes([i]))
    assert stats.dropped == 3 and stats.backlog == 2
    peer.full = False
    assert q.retry() and [d for _, d in peer.got] == [b"\x00", b"\x01"]
