"""The gateway's HTTP port: WebSocket sessions at /ws (RFC 6455) and the web page's files.

websockets' sans-I/O ServerProtocol does the protocol itself (handshake,
masking, fragmentation, control frames, close codes); this module is the
adapter between it, an asyncio transport and a Sink: the chat sink hands
whole frames to the same GatewayCore that serves TCP (a WebSocket session is
a Session whose transport is a WebSocketLink), the echo sink serves the
Autobahn conformance cases in tests.

The hot path stays the TCP one: the core queues the same shared frame bytes
for every member, and a WebSocketLink puts one session's frames of a pass
into one binary message by writing a 2-10 byte header of its own before
them (the library's send would copy and re-frame per connection). JSON
sessions get each frame converted once per gateway per pass (JsonCache).
What the library itself queued (pongs, a close) is written first, so
control frames keep their order.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import struct
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from websockets.exceptions import PayloadTooBig, ProtocolError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import CONNECTING, OPEN, SEND_EOF
from websockets.server import ServerProtocol

from chatcluster.common.config import Limits
from chatcluster.common.counters import Counters
from chatcluster.common.frames import whole_frames
from chatcluster.common.jsonframes import JsonFrameError, from_json, split_frames, to_json
from chatcluster.gateway.http import WS_PATH, StaticFiles, plain

log = logging.getLogger("chatcluster.gateway")
# The library logs every connection opened and closed at INFO; our counters say that without a line each.
LIBRARY_LOG = logging.getLogger("chatcluster.gateway.websockets")
LIBRARY_LOG.setLevel(logging.WARNING)

BINARY_PROTOCOL = "chatcluster.v1"
JSON_PROTOCOL = "chatcluster.json.v1"
SUBPROTOCOLS = (BINARY_PROTOCOL, JSON_PROTOCOL)
MAX_HANDSHAKE = 16384  # bytes of HTTP request a connection may send before it is a WebSocket or answered
CLOSE_GRACE = 5.0      # seconds a closing WebSocket waits for the client's close before the socket is dropped

_SHORT, _MEDIUM, _LONG = struct.Struct("!BB"), struct.Struct("!BBH"), struct.Struct("!BBQ")
TEXT, BINARY, CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
FIN_BINARY, FIN_TEXT = 0x80 | BINARY, 0x80 | TEXT


def header(first: int, length: int) -> bytes:
    """A server frame's header (servers never mask): FIN+opcode byte, then the length in 1, 3 or 9 bytes."""
    if length < 126:
        return _SHORT.pack(first, length)
    if length < 65536:
        return _MEDIUM.pack(first, 126, length)
    return _LONG.pack(first, 127, length)


class WebStats(Counters):
    __slots__ = (
        "http_requests", "pages", "not_found", "handshakes", "refused_origin", "refused_handshake",
        "handshake_timeouts", "handshake_too_large", "messages_in", "messages_out", "bytes_in", "bytes_out",
        "json_bad", "split_frames", "wrong_message_type", "invalid_utf8", "too_big", "protocol_errors",
        "pings", "ping_timeouts", "close_timeouts",
    )


class JsonCache:
    """Each frame's JSON text message, built once per pass however many JSON sessions get it."""

    __slots__ = ("_messages", "conversions")

    def __init__(self) -> None:
        self._messages: dict[bytes, bytes] = {}
        self.conversions = 0

    def message(self, frame: bytes) -> bytes:
        data = self._messages.get(frame)
        if data is None:
            body = to_json(frame)
            data = self._messages[frame] = header(FIN_TEXT, len(body)) + body
            self.conversions += 1
        return data

    def new_pass(self) -> None:
        if self._messages:
            self._messages.clear()


class Sink(Protocol):
    """Where a WebSocket's messages go: the gateway core, or the echo used by the conformance tests."""

    subprotocols: tuple[str, ...] | None

    def opened(self, link: WebSocketLink) -> Any: ...
    def accepts_text(self, link: WebSocketLink) -> bool: ...
    def accepts_binary(self, link: WebSocketLink) -> bool: ...
    def binary(self, session: Any, data: bytes) -> None: ...
    def text(self, session: Any, text: str) -> None: ...
    def lost(self, session: Any) -> None: ...
    def slow(self, session: Any, queued: int) -> None: ...


class WebSocketLink:
    """An open WebSocket as the transport the core writes a session's bytes to.

    It offers the asyncio.Transport methods GatewayServer uses, so the
    server's write and close paths are the same for TCP and WebSocket.
    """

    __slots__ = ("conn", "transport", "ws", "json", "cache", "stats", "subprotocol")

    def __init__(self, conn: HttpConnection, subprotocol: str | None) -> None:
        self.conn = conn
        self.transport = conn.transport
        self.ws = conn.ws
        self.subprotocol = subprotocol
        self.json = subprotocol == JSON_PROTOCOL
        self.cache = conn.endpoint.json_cache
        self.stats = conn.endpoint.stats

    def write(self, data: bytes) -> None:
        """A session's frames of one pass: one binary message, or one text message per frame (JSON)."""
        ws = self.ws
        if ws.state is not OPEN:
            return
        if ws.writes:  # pongs or a close the library queued go first (attribute of websockets <18's Protocol)
            self.conn.send_pending()
        stats = self.stats
        if self.json:
            message = self.cache.message
            parts = [message(frame) for frame in split_frames(data)]
            stats.messages_out += len(parts)
            stats.bytes_out += sum(map(len, parts))
        else:
            parts = [header(FIN_BINARY, len(data)), data]
            stats.messages_out += 1
            stats.bytes_out += len(data)
        self.transport.writelines(parts)

    def close(self) -> None:
        """Close with 1000 after what was written (an S_ERROR saying why, as a rule)."""
        self.conn.fail(CloseCode.NORMAL_CLOSURE, "")

    def abort(self) -> None:
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.ws.state is not OPEN or self.transport.is_closing()

    def pause_reading(self) -> None:
        self.conn.pause_reading()

    def resume_reading(self) -> None:
        self.conn.resume_reading()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return default  # never hand the raw socket out: the writer thread would skip our framing
        return self.transport.get_extra_info(name, default)


class ChatServerProtocol(ServerProtocol):
    """websockets' ServerProtocol, but a close in the middle of a fragmented message closes cleanly.

    RFC 6455 lets control frames come between fragments, and a close ends the
    connection whatever message was unfinished; the library answers 1002 there
    (Autobahn case 7.1.5). The unfinished message is dropped either way.
    """

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None
        super().recv_frame(frame)


class HttpConnection(asyncio.Protocol):
    """One connection to the HTTP port: a request, then a WebSocket or one answer and a close."""

    def __init__(self, endpoint: WebEndpoint) -> None:
        self.endpoint = endpoint
        self.ws = ChatServerProtocol(subprotocols=endpoint.subprotocols, max_size=endpoint.limits.ws_max_message,
                                     logger=LIBRARY_LOG)
        self.transport: asyncio.Transport | None = None
        self.link: WebSocketLink | None = None
        self.session: Any = None
        self.opened_at = self.last_seen = time.monotonic()
        self.handshake_bytes = 0
        self.ping_sent = 0.0        # when the unanswered ping went out; 0: none outstanding
        self.closing_since = 0.0
        self.paused = False
        self.fragments: list[bytes] = []
        self.fragment_type = 0      # Opcode.TEXT or Opcode.BINARY while a fragmented message is coming
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.peer = "?"

    # ---- asyncio ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        self.transport = transport  # type: ignore[assignment]
        limit = self.endpoint.limits.write_buffer
        transport.set_write_buffer_limits(high=limit, low=limit // 2)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.endpoint.connections.add(self)

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        if self.transport.is_closing():
            return  # answered or failed already: what still comes is discarded
        self.last_seen = time.monotonic()
        self.ping_sent = 0.0  # anything from the client shows it is there
        if ws.state is CONNECTING:
            self.handshake_bytes += len(data)
            if self.handshake_bytes > MAX_HANDSHAKE:
                self.endpoint.stats.handshake_too_large += 1
                self._answer(431, plain(431, "Request Header Fields Too Large", "request too large\n"))
                return
        else:
            self.endpoint.stats.bytes_in += len(data)
        ws.receive_data(data)
        for event in ws.events_received():
            if type(event) is Frame:
                self._frame(event)
            elif type(event) is Request:
                self._request(event)
        if ws.parser_exc is not None:
            self._count_failure(ws.parser_exc)
        self.send_pending()

    def eof_received(self) -> bool:
        self.ws.receive_eof()
        self.send_pending()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.endpoint.connections.discard(self)
        if self.session is not None:
            session, self.session = self.session, None
            self.endpoint.sink.lost(session)

    def pause_writing(self) -> None:
        if self.session is not None:
            self.endpoint.sink.slow(self.session, self.transport.get_write_buffer_size())

    def resume_writing(self) -> None:
        pass

    # ---- the handshake, or a page ----------------------------------------------------
    def _request(self, request: Request) -> None:
        endpoint = self.endpoint
        endpoint.stats.http_requests += 1
        if endpoint.ws_path is not None and request.path.split("?", 1)[0] != endpoint.ws_path:
            if "Upgrade" in request.headers:
                self._answer(404, plain(404, "Not Found", f"WebSocket sessions are at {WS_PATH}\n"))
                return
            status, response = endpoint.static.response(request)
            self._answer(status, response)
            return
        if not endpoint.origin_allowed(request.headers.get("Origin"), request.headers.get("Host")):
            endpoint.stats.refused_origin += 1
            self._answer(403, plain(403, "Forbidden", "this Origin may not open a chat session here\n"))
            return
        response = self.ws.accept(request)
        self.ws.send_response(response)
        if response.status_code != 101:
            endpoint.stats.refused_handshake += 1
            log.debug(" websocket handshake from %s refused: %d %s", self.peer, response.status_code,
                     self.ws.handshake_exc)
            return
        endpoint.stats.handshakes += 1
        self.send_pending()  # the 101 goes out before anything the session writes
        self.link = WebSocketLink(self, response.headers.get("Sec-WebSocket-Protocol"))
        self.session = endpoint.sink.opened(self.link)

    def _answer(self, status: int, response: Any) -> None:
        stats = self.endpoint.stats
        if status == 404:
            stats.not_found += 1
        elif status < 400:
            stats.pages += 1
        self.ws.send_response(response)
        self.send_pending()

    # ---- frames ------------------------------------------------------------------------
    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is TEXT or opcode is BINARY:
            self.fragment_type = opcode
            if opcode is TEXT and not self._utf8(frame):
                return
            if frame.fin:
                self._message(opcode, frame.data)
            else:
                self.fragments = [frame.data]
        elif opcode is CONT:
            if self.fragment_type is TEXT and not self._utf8(frame):
                return
            self.fragments.append(frame.data)
            if frame.fin:
                data = b"".join(self.fragments)
                self.fragments = []
                self._message(self.fragment_type, data)
        elif opcode is Opcode.CLOSE:
            self.closing_since = time.monotonic()

    def _utf8(self, frame: Frame) -> bool:
        """Text must be UTF-8, checked as it comes so a bad fragment fails at once (the library does not)."""
        try:
            self.utf8.decode(frame.data, final=frame.fin)
            return True
        except UnicodeDecodeError as exc:
            self.utf8.reset()
            self.endpoint.stats.invalid_utf8 += 1
            self.fail(CloseCode.INVALID_DATA, f"invalid UTF-8 at byte {exc.start}")
            return False

    def _message(self, opcode: Any, data: bytes) -> None:
        session = self.session
        if session is None or self.ws.state is not OPEN:
            return
        endpoint = self.endpoint
        endpoint.stats.messages_in += 1
        if opcode is TEXT:
            if not endpoint.sink.accepts_text(self.link):
                endpoint.stats.wrong_message_type += 1
                self.fail(CloseCode.UNSUPPORTED_DATA, f"{BINARY_PROTOCOL} takes binary messages")
                return
            endpoint.sink.text(session, data.decode())
        else:
            if not endpoint.sink.accepts_binary(self.link):
                endpoint.stats.wrong_message_type += 1
                self.fail(CloseCode.UNSUPPORTED_DATA, f"{JSON_PROTOCOL} takes text messages")
                return
            endpoint.sink.binary(session, data)

    # ---- output and closing --------------------------------------------------------------
    def send_pending(self) -> None:
        """Write what the protocol object queued (handshake answer, pongs, close); close at its EOF."""
        transport = self.transport
        for data in self.ws.data_to_send():
            if data is SEND_EOF or not data:
                if not transport.is_closing():
                    transport.close()
                return
            transport.write(data)

    def fail(self, code: int, reason: str) -> None:
        """Close the WebSocket with this code (what was written before still goes out first)."""
        if self.ws.state is OPEN:
            self.closing_since = time.monotonic()
            self.ws.fail(code, reason)
            self.send_pending()
        elif not self.transport.is_closing():
            self.transport.close()

    def pause_reading(self) -> None:
        if not self.paused and not self.transport.is_closing():
            self.paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.paused and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()

    def _count_failure(self, exc: Exception) -> None:
        stats = self.endpoint.stats
        if isinstance(exc, PayloadTooBig):
            stats.too_big += 1
        elif isinstance(exc, UnicodeDecodeError):
            stats.invalid_utf8 += 1
        elif isinstance(exc, ProtocolError):
            stats.protocol_errors += 1
        self.ws.parser_exc = None  # counted once

    # ---- the clock ---------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Handshake deadline, keepalive pings and their timeout, and a close the client never finishes."""
        limits = self.endpoint.limits
        state = self.ws.state
        if state is CONNECTING:
            if now - self.opened_at > limits.ws_handshake_timeout:
                self.endpoint.stats.handshake_timeouts += 1
                self.transport.abort()
        elif state is OPEN:
            if self.ping_sent:
                if now - self.ping_sent > limits.ws_ping_timeout:
                    self.endpoint.stats.ping_timeouts += 1
                    log.info(" websocket %s did not answer a ping in %.0f s; closing", self.peer,
                             limits.ws_ping_timeout)
                    self.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
            elif now - self.last_seen > limits.ws_ping_interval:
                self.ping_sent = now
                self.endpoint.stats.pings += 1
                self.ws.send_ping(struct.pack("!d", now))
                self.send_pending()
        elif self.closing_since and now - self.closing_since > CLOSE_GRACE:
            self.endpoint.stats.close_timeouts += 1
            self.transport.abort()


class WebEndpoint:
    """One gateway's HTTP port: its settings, its figures, its open connections."""

    def __init__(self, sink: Sink, limits: Limits, allow_origins: list[str] | tuple[str, ...] = (),
                 static: StaticFiles | None = None, ws_path: str | None = WS_PATH) -> None:
        self.sink = sink
        self.ws_path = ws_path  # None: a WebSocket on any path (the echo server)
        self.limits = limits
        self.subprotocols = sink.subprotocols
        self.allow_any_origin = "*" in allow_origins
        self.allow_origins = {o.rstrip("/").lower() for o in allow_origins if o != "*"}
        self.static = static if static is not None else StaticFiles()
        self.stats = WebStats()
        self.json_cache = JsonCache()
        self.connections: set[HttpConnection] = set()

    def protocol(self) -> HttpConnection:
        return HttpConnection(self)

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Scripts of the server's own page, of configured origins, and clients that are no browser.

        A browser always sends Origin with a WebSocket handshake, and a page
        cannot forge it: a page from another site is refused, so it cannot
        chat as the visitor. Clients that send no Origin are no browser.
        """
        if origin is None or self.allow_any_origin:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.allow_origins:
            return True
        return host is not None and urlsplit(origin).netloc == host.lower()

    def tick(self, now: float) -> None:
        for conn in list(self.connections):
            conn.tick(now)

    def figures(self) -> dict[str, int]:
        open_sessions = sum(1 for c in self.connections if c.session is not None)
        return {**self.stats.as_dict(), "open": open_sessions, "connections": len(self.connections),
                "json_conversions": self.json_cache.conversions}


class ChatSink:
    """WebSocket sessions into a GatewayCore: binary messages are frames as on TCP, JSON ones become frames."""

    subprotocols = SUBPROTOCOLS

    def __init__(self, core: Any, poke: Callable[[], None], on_open: Callable[[], None],
                 on_close: Callable[[], None]) -> None:
        self.core = core
        self.poke = poke
        self.on_open = on_open
        self.on_close = on_close

    def opened(self, link: WebSocketLink) -> Any:
        self.on_open()
        session = self.core.open_session(link, link.conn.peer)
        self.poke()
        return session

    def accepts_text(self, link: WebSocketLink) -> bool:
        return link.json

    def accepts_binary(self, link: WebSocketLink) -> bool:
        return not link.json

    def binary(self, session: Any, data: bytes) -> None:
        if whole_frames(data):
            self.core.on_data(session, data)
        else:
            session.transport.stats.split_frames += 1
            self.core.on_bad_message(session, "a WebSocket message must hold whole frames; this one cuts one short")
        self.poke()

    def text(self, session: Any, text: str) -> None:
        try:
            frame = from_json(text)
        except JsonFrameError as exc:
            session.transport.stats.json_bad += 1
            self.core.on_bad_message(session, str(exc))
        else:
            self.core.on_data(session, frame)
        self.poke()

    def lost(self, session: Any) -> None:
        self.on_close()
        self.core.connection_lost(session)
        self.poke()

    def slow(self, session: Any, queued: int) -> None:
        self.core.on_slow_consumer(session, queued)
        self.poke()
