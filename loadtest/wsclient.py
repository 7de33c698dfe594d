"""The client side of RFC 6455 for the load generator: handshake, masked sends, a small parser (sans-I/O).

Why not websockets' own ClientProtocol: the bench sends and receives a
quarter of a million messages a second on two shared cores, and the load
generator must not be what is measured. Per message (`python -m
chatcluster.loadtest.wsmeasure`, 2026-12-04, this VM, websockets 17 with its C
masking): ClientProtocol's send_binary() + data_to_send() cost 1.3 µs for a
100-byte message against 0.4 µs here, and its generator-based reader 1.9-2.1 µs
per received frame against 0.26-0.33 µs here. Masking uses the same C routine
as websockets (`websockets.speedups.apply_mask`), and the handshake keys come
from `websockets.utils`, so the parts that are easy to get subtly wrong are
not ours; the unit tests check our frames with websockets' own parser and
shake hands with its server.

What it accepts from the server: unmasked frames, no RSV bits (no
extension is offered), text/binary messages, fragmented or not, pings
(answered with a pong carrying the same payload), pongs (ignored) and close
(answered with a close echoing the code). Anything else is a WsProtocolError,
which the adapter turns into a close 1002 and counts.
"""

from __future__ import annotations

import os
import struct

from websockets.utils import accept_key, generate_key

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets built without its C extension
    from websockets.utils import apply_mask

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
MAX_HANDSHAKE = 16 * 1024           # bytes of HTTP response before the frames
DEFAULT_MAX_MESSAGE = 1 << 20       # the server sends at most 64 KiB frames; a message holds a pass's worth

_LEN16 = struct.Struct("!BBH")
_LEN64 = struct.Struct("!BBQ")
_CLOSE_CODE = struct.Struct("!H")
_UNSENDABLE = (1005, 1006, 1015)
_KEY_POOL = 4096                    # masking keys come from os.urandom in blocks: one syscall per 1024 frames

CONNECTING, OPEN, CLOSED = "connecting", "open", "closed"


class WsHandshakeError(Exception):
    """The server did not upgrade the connection (status, headers or subprotocol not as asked)."""


class WsProtocolError(Exception):
    """The server broke RFC 6455: close with `code` and stop reading."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def frame_header(opcode: int, length: int, masked: bool, fin: bool = True) -> bytes:
    """The 2-, 4- or 10-byte header of one frame (without the masking key)."""
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if masked else 0
    if length < 126:
        return bytes((b0, m | length))
    if length < 65536:
        return _LEN16.pack(b0, m | 126, length)
    return _LEN64.pack(b0, m | 127, length)


class WsClient:
    """One client connection's WebSocket state: the handshake, then frames both ways.

    `receive(data)` takes whatever a read returned and gives back the data
    messages it completed, as (opcode, payload) pairs; control frames are
    handled inside, and what they need sent back (pong, close) waits in
    `outgoing` for the adapter to write. `binary()`/`text()` make one masked,
    unfragmented frame per message.
    """

    __slots__ = ("host", "path", "subprotocol", "max_message", "key", "state", "outgoing", "close_code",
                 "close_reason", "_buf", "_frag_op", "_frag", "_frag_size", "_keys", "_kpos")

    def __init__(self, host: str, path: str, subprotocol: str, *, max_message: int = DEFAULT_MAX_MESSAGE,
                 key: str | None = None) -> None:
        self.host = host                    # the Host header: "host:port"
        self.path = path
        self.subprotocol = subprotocol
        self.max_message = max_message
        self.key = key or generate_key()
        self.state = CONNECTING
        self.outgoing: list[bytes] = []
        self.close_code: int | None = None
        self.close_reason = ""
        self._buf = b""
        self._frag_op = 0                   # opcode of a fragmented message in progress (0: none)
        self._frag: list[bytes] = []
        self._frag_size = 0
        self._keys = b""
        self._kpos = _KEY_POOL

    # ---- the opening handshake -------------------------------------------------------
    def handshake_request(self) -> bytes:
        """The HTTP/1.1 upgrade request (no Origin: this is not a browser)."""
        return (f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: {self.subprotocol}\r\n\r\n").encode("ascii")

    def _handshake(self, data: bytes) -> bytes | None:
        """Bytes after the response once it is complete and valid, None while incomplete."""
        buf = self._buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HANDSHAKE:
                raise WsHandshakeError(f"no end of the HTTP response within {MAX_HANDSHAKE} bytes")
            self._buf = buf
            return None
        self._buf = b""
        lines = buf[:end].decode("latin-1").split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/1.") or status[1] != "101":
            raise WsHandshakeError(f"the server answered {lines[0]!r}, not 101 Switching Protocols")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if headers.get("upgrade", "").lower() != "websocket":
            raise WsHandshakeError(f"Upgrade: {headers.get('upgrade')!r}, not websocket")
        if "upgrade" not in (t.strip().lower() for t in headers.get("connection", "").split(",")):
            raise WsHandshakeError(f"Connection: {headers.get('connection')!r}, not upgrade")
        if headers.get("sec-websocket-accept") != accept_key(self.key):
            raise WsHandshakeError("Sec-WebSocket-Accept does not match the key")
        if headers.get("sec-websocket-protocol") != self.subprotocol:
            raise WsHandshakeError(f"subprotocol {headers.get('sec-websocket-protocol')!r}, "
                                   f"not {self.subprotocol!r}")
        if headers.get("sec-websocket-extensions"):
            raise WsHandshakeError(f"extensions {headers['sec-websocket-extensions']!r} that were not offered")
        self.state = OPEN
        return buf[end + 4:]

    # ---- frames to send ------------------------------------------------------------
    def _mask_key(self) -> bytes:
        pos = self._kpos
        if pos >= _KEY_POOL:
            self._keys = os.urandom(_KEY_POOL)
            pos = 0
        self._kpos = pos + 4
        return self._keys[pos:pos + 4]

    def binary(self, payload: bytes) -> bytes:
        """One masked binary message: the hot path of every send."""
        n = len(payload)
        key = self._mask_key()
        if n < 126:
            return bytes((0x82, 0x80 | n)) + key + apply_mask(payload, key)
        if n < 65536:
            return _LEN16.pack(0x82, 0xFE, n) + key + apply_mask(payload, key)
        return _LEN64.pack(0x82, 0xFF, n) + key + apply_mask(payload, key)

    def text(self, payload: str) -> bytes:
        """One masked text message."""
        return self.frame(OP_TEXT, payload.encode("utf-8"))

    def frame(self, opcode: int, payload: bytes, fin: bool = True) -> bytes:
        key = self._mask_key()
        return frame_header(opcode, len(payload), True, fin) + key + apply_mask(payload, key)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
        """Our close frame; after it nothing else is sent."""
        self.state = CLOSED
        return self.frame(OP_CLOSE, _CLOSE_CODE.pack(code) + reason.encode("utf-8")[:120])

    def take_outgoing(self) -> list[bytes]:
        out, self.outgoing = self.outgoing, []
        return out

    # ---- bytes received -----------------------------------------------------------------
    def receive(self, data: bytes) -> list[tuple[int, bytes]]:
        """The data messages completed by this read, in order; raises WsHandshakeError or WsProtocolError."""
        if self.state is not OPEN:
            if self.state is CLOSED:
                return []
            rest = self._handshake(data)
            if not rest:
                return []
            data = rest
        elif self._buf:
            data = self._buf + data
        out: list[tuple[int, bytes]] = []
        end = len(data)
        pos = 0
        while end - pos >= 2:
            b0 = data[pos]
            b1 = data[pos + 1]
            n = b1 & 0x7F
            if b1 & 0x80 or b0 & 0x70:
                raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "a masked frame from the server" if b1 & 0x80
                                      else "reserved bits set without an extension")
            if n < 126:
                head = 2
            elif n == 126:
                if end - pos < 4:
                    break
                n = data[pos + 2] << 8 | data[pos + 3]
                head = 4
            else:
                if end - pos < 10:
                    break
                n = int.from_bytes(data[pos + 2:pos + 10], "big")
                head = 10
            if n > self.max_message:
                raise WsProtocolError(CLOSE_TOO_BIG, f"a frame of {n} bytes (limit {self.max_message})")
            nxt = pos + head + n
            if nxt > end:
                break
            payload = data[pos + head:nxt]
            pos = nxt
            opcode = b0 & 0x0F
            if b0 & 0x80 and 0 < opcode < 3 and not self._frag_op:  # OP_TEXT or OP_BINARY
                out.append((opcode, payload))   # the common case: one whole message in one frame
            elif opcode >= OP_CLOSE:
                if self._control(opcode, b0 & 0x80, payload):
                    pos = end
                    break
            else:
                message = self._fragment(opcode, b0 & 0x80, payload)
                if message is not None:
                    out.append(message)
        self._buf = data[pos:] if pos < end else b""
        return out

    def _fragment(self, opcode: int, fin: int, payload: bytes) -> tuple[int, bytes] | None:
        if opcode == OP_CONT:
            if not self._frag_op:
                raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "a continuation frame outside a message")
        elif opcode in (OP_TEXT, OP_BINARY):
            if self._frag_op:
                raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "a new message inside a fragmented one")
            self._frag_op = opcode
        else:
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
        self._frag_size += len(payload)
        if self._frag_size > self.max_message:
            raise WsProtocolError(CLOSE_TOO_BIG, f"a message of more than {self.max_message} bytes")
        self._frag.append(payload)
        if not fin:
            return None
        message = (self._frag_op, b"".join(self._frag))
        self._frag_op, self._frag, self._frag_size = 0, [], 0
        return message

    def _control(self, opcode: int, fin: int, payload: bytes) -> bool:
        """Handle a control frame; True once the connection is closed (stop parsing)."""
        if not fin or len(payload) > 125:
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "a fragmented or oversized control frame")
        if opcode == OP_PING:
            self.outgoing.append(self.frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            if len(payload) == 1:
                raise WsProtocolError(CLOSE_PROTOCOL_ERROR, "a close frame of one byte")
            code = _CLOSE_CODE.unpack_from(payload)[0] if payload else None
            self.close_code = code
            self.close_reason = payload[2:].decode("utf-8", "replace")
            if self.state is OPEN:  # echo the code, unless it is one that may not be sent (RFC 6455 7.4.1)
                self.outgoing.append(self.close(code if code and code not in _UNSENDABLE else CLOSE_NORMAL))
            self.state = CLOSED
            return True
        elif opcode != OP_PONG:
            raise WsProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved control opcode {opcode:#x}")
        return False
