"""The writer thread (gateway/outlets.py) over real socket pairs: order, full buffers, closes, failures.

These are about sockets, so they use real ones: a socketpair per connection,
the Writer's own thread, and its compiled send_many. No event loop: the
callback the Writer posts to the loop is run inline, as call_soon_threadsafe
would later.
"""

from __future__ import annotations

import os
import socket
import threading

import pytest
from waiting import wait_for

from chatcluster.gateway import outlets
from chatcluster.gateway.outlets import Writer

pytestmark = pytest.mark.skipif(not outlets.available(), reason="needs the compiled gateway/_sendmany.c (Linux)")

if os.environ.get("CI") and not outlets.available():  # on CI the extension must have been built
    raise RuntimeError("gateway/_sendmany.c was not built: pip install -e . needs a C compiler")


@pytest.fixture
def writer():
    w = Writer(lambda fn, *args: fn(*args))  # what call_soon_threadsafe would run later, run at once
    yield w
    w.stop()


def pair(sndbuf: int | None = None) -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    if sndbuf:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    return ours, theirs


def read_exactly(sock: socket.socket, n: int, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def test_send_many_reports_bytes_and_errors():
    a, b = pair()
    try:
        result = outlets.send_many([a.fileno(), 2**30], [b"hello", b"x"])
        assert result[0] == 5 and result[1] < 0  # -EBADF for a closed fd
        assert b.recv(10) == b"hello"
    finally:
        a.close()
        b.close()


def test_many_connections_get_their_own_bytes_in_order(writer):
    pairs = [pair() for _ in range(20)]
    out = [writer.open(a.fileno(), lambda why: None) for a, _ in pairs]
    expected = [b"" for _ in pairs]
    for n in range(200):  # 200 "loop passes", each pushing to every connection, woken once per pass
        for i, outlet in enumerate(out):
            chunk = f"[{i}:{n}]".encode()
            expected[i] += chunk
            writer.push(outlet, chunk)
        writer.wake()
    for i, (_, theirs) in enumerate(pairs):
        assert read_exactly(theirs, len(expected[i])) == expected[i]
    wait_for(lambda: all(o.queued == 0 for o in out))
    for a, b in pairs:
        a.close()
        b.close()


def test_a_writer_that_fell_behind_sends_each_connections_backlog_at_once(writer):
    """Passes pushed while the writer thread is busy go out as one send per connection, not one per pass.

    The fixture runs the writer's callbacks on the writer thread itself, so a failure callback that
    waits holds the writer: it is behind, deterministically, for as long as the test likes.
    """
    held, release = threading.Event(), threading.Event()

    def hold(why: str) -> None:
        held.set()
        release.wait(10)

    gone_ours, gone_theirs = pair()
    gone_theirs.close()
    pairs = [pair() for _ in range(20)]
    try:
        gone = writer.open(gone_ours.fileno(), hold)
        writer.push(gone, b"to nobody")
        writer.wake()
        assert held.wait(5), "the send to a closed peer did not fail"
        out = [writer.open(a.fileno(), lambda why: None) for a, _ in pairs]
        expected = [b"" for _ in pairs]
        for n in range(200):  # 200 loop passes, each pushing to every connection and waking the writer
            for i, outlet in enumerate(out):
                chunk = f"[{i}:{n}]".encode()
                expected[i] += chunk
                writer.push(outlet, chunk)
            writer.wake()
        sends_before = writer.sends
    finally:
        release.set()
    for i, (_, theirs) in enumerate(pairs):
        assert read_exactly(theirs, len(expected[i])) == expected[i]
    assert writer.sends - sends_before == len(pairs)  # one send each carried all 200 passes
    assert writer.failed == 1
    for a, b in [*pairs, (gone_ours, gone_theirs)]:
        a.close()
        b.close()


def test_a_full_socket_holds_the_rest_in_order_and_counts_it(writer):
    ours, theirs = pair(sndbuf=4096)
    outlet = writer.open(ours.fileno(), lambda why: None)
    blob = bytes(range(256)) * 4096  # 1 MiB, far over the socket buffers
    for k in range(0, len(blob), 65536):
        writer.push(outlet, blob[k:k + 65536])
    writer.wake()
    wait_for(lambda: writer.would_block > 0)
    assert outlet.queued > 0  # the slow-consumer figure sees what is held
    got = read_exactly(theirs, len(blob), timeout=10)
    assert got == blob
    wait_for(lambda: outlet.queued == 0)
    ours.close()
    theirs.close()


def test_close_sends_what_was_queued_then_the_peer_sees_eof(writer):
    ours, theirs = pair()
    outlet = writer.open(ours.fileno(), lambda why: None)
    ours.close()  # the event loop closes its fd at once; the writer's dup keeps the socket
    writer.push(outlet, b"S_ERROR SHUTTING_DOWN")
    writer.close(outlet)
    assert read_exactly(theirs, 21) == b"S_ERROR SHUTTING_DOWN"
    theirs.settimeout(5)
    assert theirs.recv(10) == b""  # EOF only after the last byte
    wait_for(lambda: outlet.dead)
    theirs.close()


def test_abort_drops_what_was_queued(writer):
    ours, theirs = pair(sndbuf=4096)
    outlet = writer.open(ours.fileno(), lambda why: None)
    ours.close()
    for _ in range(64):
        writer.push(outlet, b"x" * 65536)
    writer.wake()
    wait_for(lambda: writer.would_block > 0)
    writer.close(outlet, abort=True)
    wait_for(lambda: outlet.dead)
    assert outlet.queued == 0  # nothing is left counted as waiting
    theirs.settimeout(5)
    total = 0
    while chunk := theirs.recv(1 << 20):
        total += len(chunk)
    assert total < 64 * 65536
    theirs.close()


def test_a_vanished_peer_is_reported_once_to_the_loop(writer):
    ours, theirs = pair()
    reasons: list[str] = []
    outlet = writer.open(ours.fileno(), reasons.append)
    theirs.close()
    writer.push(outlet, b"hello")
    writer.wake()
    wait_for(lambda: outlet.dead)
    writer.push(outlet, b"more")  # after the failure: accounted, never sent
    writer.wake()
    wait_for(lambda: outlet.queued == 0)
    assert len(reasons) == 1 and writer.failed == 1
    ours.close()


def test_a_reused_fd_number_never_gets_another_connections_bytes(writer):
    """The loop closes its fd (peer gone) and accept() hands the same number to a newcomer."""
    ours, theirs = pair()
    fd_number = ours.fileno()
    outlet = writer.open(fd_number, lambda why: None)
    ours.close()
    newcomer_ours, newcomer_theirs = pair()
    try:
        if newcomer_ours.fileno() != fd_number:  # make the newcomer take the freed number, as accept() would
            os.dup2(newcomer_ours.fileno(), fd_number)
            newcomer_ours.close()
            newcomer_ours = socket.socket(fileno=fd_number)
        writer.push(outlet, b"for the old connection")
        writer.wake()
        assert read_exactly(theirs, 22) == b"for the old connection"
        newcomer_theirs.settimeout(0.2)
        with pytest.raises(TimeoutError):
            newcomer_theirs.recv(100)
    finally:
        writer.close(outlet)
        newcomer_ours.close()
        newcomer_theirs.close()
        theirs.close()


def test_pushes_from_the_loop_while_the_writer_sends_lose_nothing(writer):
    """The loop thread pushes without locks while the writer thread drains: every byte arrives once, in order."""
    ours, theirs = pair()
    outlet = writer.open(ours.fileno(), lambda why: None)
    total = 20000
    received = bytearray()

    def reader() -> None:
        theirs.settimeout(10)
        while len(received) < total * 6:
            chunk = theirs.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    for n in range(total):
        writer.push(outlet, b"%06d" % (n % 1000000))
        if n % 7 == 0:
            writer.wake()
    writer.wake()
    t.join(15)
    assert bytes(received) == b"".join(b"%06d" % n for n in range(total))
    writer.close(outlet)
    ours.close()
    theirs.close()
