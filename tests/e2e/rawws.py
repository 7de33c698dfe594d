"""A WebSocket client that does exactly what a test tells it, right or wrong: raw handshakes and frames.

The library clients refuse to send what a hostile or broken client would
(unmasked frames, invalid UTF-8, no pong); this one sends bytes as told and
reads the server's frames as they are.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

from websockets.frames import Frame, Opcode


class RawWs:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.host, self.port = host, port

    def handshake(self, path: str = "/ws", protocol: str | None = "chatcluster.v1", origin: str | None = None,
                  extra: str = "") -> tuple[int, dict[str, str]]:
        """Send an upgrade request; the answer's status and headers (lower-case names)."""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if protocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {protocol}")
        if origin is not None:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode())
        return self.response()

    def response(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError(f"closed before an HTTP answer: {self.buf!r}")
            self.buf += data
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    def send_frame(self, opcode: Opcode, data: bytes, fin: bool = True, mask: bool = True) -> None:
        self.sock.sendall(Frame(opcode, data, fin).serialize(mask=mask))

    def recv_frame(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """(opcode, payload) of the server's next frame, or None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._cut()
            if frame is not None:
                return frame
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buf += data

    def close_code(self, timeout: float = 5.0) -> int | None:
        """The code of the close frame the server sends, skipping data and pings; None at EOF without one."""
        while (frame := self.recv_frame(timeout)) is not None:
            opcode, payload = frame
            if opcode == Opcode.CLOSE:
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
        return None

    def _cut(self) -> tuple[int, bytes] | None:
        buf = self.buf
        if len(buf) < 2:
            return None
        opcode, length, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        if len(buf) < pos + length:
            return None
        self.buf = buf[pos + length:]
        return opcode, buf[pos:pos + length]

    def close(self) -> None:
        self.sock.close()
