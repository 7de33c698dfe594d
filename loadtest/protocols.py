"""The asyncio adapters of a bench client: bytes between one connection and its BenchClient.

`BenchProtocol` is a raw TCP (or TLS) connection carrying frames;
`WsBenchProtocol` is a WebSocket connection to the gateway's HTTP port,
carrying the same frames in binary messages (chatcluster.v1) or JSON text
messages (chatcluster.json.v1). Both count what they write and read in the
same counters, so the report's tables mean the same for every transport:
io r/s are reads from the socket, bytes are what the connection carried
above TLS (WebSocket headers included).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from .core import BenchClient
from .wsclient import CLOSED, CONNECTING, OP_BINARY, OP_TEXT, WsClient, WsHandshakeError, WsProtocolError

monotonic_ns = time.monotonic_ns

SUBPROTOCOL_BINARY = "chatcluster.v1"
SUBPROTOCOL_JSON = "chatcluster.json.v1"
WS_PATH = "/ws"


class SetupError(Exception):
    """A setup step was refused or timed out: the run cannot be measured."""


class Owner(Protocol):
    """What a protocol asks of its worker: whether the run is over (a close is then not a death)."""

    closing: bool


class BenchProtocol(asyncio.Protocol):
    """Moves bytes between one TCP connection and its BenchClient, and waits for one setup reply at a time.

    The client's own receive() is the data_received of this protocol (one
    Python call per read, not two): it reads the clock itself and calls
    back to close a stream it cannot frame.
    """

    def __init__(self, client: BenchClient, worker: Owner) -> None:
        self.client = client
        self.worker = worker
        self.transport: asyncio.Transport | None = None
        self.alive = False
        self.waiter: asyncio.Future | None = None
        self.dropped = False  # the bench dropped this connection on purpose (--churn): not a death
        self.data_received = client.receive  # type: ignore[method-assign]
        client.on_reply = self._on_reply
        client.on_broken = self._close
        client.send_now = self.write  # resends after a resume

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.alive = True

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if not self.worker.closing and not self.dropped:
            self.client.counters.dead += 1
            self.client._sample_error(f"{self.client.name}: connection closed by the server"
                                      + (f" ({exc})" if exc else ""))
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(SetupError(f"{self.client.name}: connection closed during setup"))

    async def opened(self, timeout: float) -> None:
        """Ready for requests (a raw connection is, once connected)."""

    def write(self, frame: bytes) -> None:
        c = self.client.counters
        c.io_s += 1
        c.bytes_s += len(frame)
        self.transport.write(frame)  # type: ignore[union-attr]

    async def request(self, frame: bytes | str, timeout: float) -> tuple[int, object]:
        """Send a setup request and wait for its reply (S_ERROR counts as a reply)."""
        loop = asyncio.get_running_loop()
        self.waiter = loop.create_future()
        self.write(frame)  # type: ignore[arg-type]
        try:
            return await asyncio.wait_for(self.waiter, timeout)
        except TimeoutError:
            raise SetupError(f"{self.client.name}: no reply within {timeout:.0f} s") from None
        finally:
            self.waiter = None

    def _on_reply(self, kind: int, msg: object) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((kind, msg))

    def drop(self) -> None:
        """Churn: drop the connection at once (a reset; whatever was not yet sent is lost, as in an outage)."""
        self.dropped = True
        self.alive = False
        if self.transport is not None:
            self.transport.abort()

    def finish(self) -> None:
        """The run is over: drop the connection without waiting for anything."""
        if self.transport is not None:
            self.transport.abort()


class WsBenchProtocol(BenchProtocol):
    """A WebSocket connection: the opening handshake, then one message per frame (or JSON object) sent.

    Each read goes through WsClient (which answers pings and closes), and each
    data message it completes goes to the client: a binary message is whole
    frames, so the client's frame cutter must end each one with nothing
    pending (a frame spanning two messages breaks the contract and the
    stream); a text message is one JSON object.
    """

    def __init__(self, client: BenchClient, worker: Owner, host: str, port: int) -> None:
        super().__init__(client, worker)
        self.data_received = self._on_data  # type: ignore[method-assign]  # reads go through the WebSocket codec
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.ws = WsClient(authority, WS_PATH, SUBPROTOCOL_JSON if client.json else SUBPROTOCOL_BINARY)
        self._opened: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._opened = asyncio.get_running_loop().create_future()
        self.transport.write(self.ws.handshake_request())  # type: ignore[union-attr]

    async def opened(self, timeout: float) -> None:
        """Wait for the server's 101 answer; SetupError if it refuses or does not answer."""
        assert self._opened is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), timeout)
        except TimeoutError:
            raise SetupError(f"{self.client.name}: no WebSocket handshake answer within {timeout:.0f} s") from None

    def _fail_open(self, why: str) -> None:
        if self._opened is not None and not self._opened.done():
            self._opened.set_exception(SetupError(f"{self.client.name}: {why}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_open("connection closed during the WebSocket handshake")
        ws = self.ws
        if ws.close_code is not None and not self.worker.closing and not self.dropped:
            self.client._sample_error(f"{self.client.name}: WebSocket closed by the server: {ws.close_code} "
                                      f"{ws.close_reason}")
        super().connection_lost(exc)

    def write(self, frame: bytes | str) -> None:  # type: ignore[override]
        if self.ws.state is CLOSED:
            return
        data = self.ws.binary(frame) if type(frame) is bytes else self.ws.text(frame)  # type: ignore[arg-type]
        c = self.client.counters
        c.io_s += 1
        c.bytes_s += len(data)
        self.transport.write(data)  # type: ignore[union-attr]

    def _on_data(self, data: bytes) -> None:
        now = monotonic_ns()
        client = self.client
        c = client.counters
        ws = self.ws
        handshaking = ws.state is CONNECTING
        try:
            messages = ws.receive(data)
        except WsHandshakeError as exc:
            self._fail_open(f"WebSocket handshake refused: {exc}")
            self._close()
            return
        except WsProtocolError as exc:
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(ws.close(exc.code, exc.message))
            client.fail_stream(f"WebSocket protocol error: {exc.message}")  # and closes
            return
        if handshaking and ws.state is not CONNECTING and self._opened is not None and not self._opened.done():
            self._opened.set_result(None)
        c.io_r += 1
        c.bytes_r += len(data)
        for opcode, payload in messages:
            if opcode == OP_BINARY and not client.json:
                client.receive(payload, now)
                c.io_r -= 1                 # receive() counts each message as a read: this read is counted above
                c.bytes_r -= len(payload)
                if client.pending:
                    client.pending = b""
                    client.fail_stream("a frame spans two WebSocket messages")
                    break
            elif opcode == OP_TEXT and client.json:
                client.receive_json(payload, now)
            else:
                c.undecodable += 1
                client._sample_error(f"{client.name}: a {'text' if opcode == OP_TEXT else 'binary'} message "
                                     f"on {ws.subprotocol}")
        if ws.outgoing:
            for out in ws.take_outgoing():   # pongs, or the answer to the server's close
                self.transport.write(out)  # type: ignore[union-attr]
        if ws.state is CLOSED:
            self.alive = False
            self._close()

    def finish(self) -> None:
        """The run is over: a close frame (best effort, for the server's figures), then drop the connection."""
        if self.transport is not None and self.ws.state is not CLOSED and not self.transport.is_closing():
            self.transport.write(self.ws.close())
        super().finish()
