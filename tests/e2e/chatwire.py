"""A blocking test client that speaks PROTOCOL.md over a real TCP socket."""

from __future__ import annotations

import json as jsonlib
import socket
import time

from chatcluster.common.frames import MAX_FRAME, SERVER_IDS, FrameDecoder, decode_body, encode
from chatcluster.proto import chat_pb2 as pb


class WireClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._start(timeout)

    def _start(self, timeout: float) -> None:
        """What a client knows once connected, whatever carries its frames."""
        self.timeout = timeout
        self.decoder = FrameDecoder(MAX_FRAME, SERVER_IDS)
        self.eof = False
        self.player_id = 0
        self.name = ""
        self._msg_ids = 0

    def send(self, *messages) -> None:
        self.sock.sendall(b"".join(encode(m) for m in messages))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, timeout: float | None = None):
        """The next message, or None at EOF; socket.timeout if nothing comes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return decode_body(*frame)
            if self.eof:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no message")
            data = self._read(remaining)
            if not data:
                self.eof = True
            else:
                self.decoder.feed(data)

    def _read(self, timeout: float) -> bytes:
        """Bytes from the server (b"" at EOF); TimeoutError if none come in time."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536)
        except ConnectionResetError:
            return b""

    def expect(self, cls, timeout: float | None = None):
        msg = self.recv(timeout)
        assert isinstance(msg, cls), f"expected {cls.__name__}, got {type(msg).__name__}: {msg}"
        return msg

    def quiet(self, timeout: float = 0.3) -> bool:
        """True if nothing arrives within timeout."""
        try:
            msg = self.recv(timeout)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {type(msg).__name__}: {msg}")

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        try:
            return self.recv(timeout) is None
        except TimeoutError:
            return False

    def login(self, name: str, password: str = "pw") -> pb.S_LOGIN_RES:
        self.send(pb.C_LOGIN_REQ(name=name, password=password))
        res = self.expect(pb.S_LOGIN_RES)
        if res.success:
            self.player_id, self.name = res.player_id, name
        return res

    def chat(self, text: str) -> int:
        self._msg_ids += 1
        self.send(pb.C_ROOM_CHAT_REQ(text=text, client_msg_id=self._msg_ids))
        return self._msg_ids

    def close(self) -> None:
        self.sock.close()


class WsClient(WireClient):
    """The same client over WebSocket, through a client library nobody here wrote (websockets' sync client).

    json=False speaks chatcluster.v1 (binary messages of whole frames), json=True chatcluster.json.v1.
    """

    def __init__(self, host: str, port: int, timeout: float = 5.0, json: bool = False, ssl=None,
                 origin: str | None = None) -> None:
        from websockets.sync.client import connect

        scheme = "wss" if ssl is not None else "ws"
        self.json = json
        self.ws = connect(f"{scheme}://{host}:{port}/ws", open_timeout=timeout, ssl=ssl, origin=origin, legacy=True,
                          subprotocols=["chatcluster.json.v1" if json else "chatcluster.v1"])
        self._start(timeout)
        self.texts: list[str] = []  # every JSON message as it came, for tests of the mapping itself

    def send(self, *messages) -> None:
        if self.json:
            from google.protobuf import json_format

            for m in messages:
                self.ws.send(jsonlib.dumps({"type": type(m).__name__, **json_format.MessageToDict(m)}))
        else:
            self.ws.send(b"".join(encode(m) for m in messages))

    def send_raw(self, data) -> None:
        self.ws.send(data)

    def _read(self, timeout: float) -> bytes:
        """One WebSocket message's frames (a JSON one turned into its frame); b"" once closed."""
        from websockets.exceptions import ConnectionClosed

        from chatcluster.common.jsonframes import from_json

        try:
            data = self.ws.recv(timeout)
        except TimeoutError:
            raise TimeoutError("no message") from None
        except ConnectionClosed:
            return b""
        if isinstance(data, str):
            self.texts.append(data)
            data = from_json(data, accept=SERVER_IDS)
        return data

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    def close(self) -> None:
        self.ws.close()


class AsyncWire:
    """The asyncio flavour, for tests that need many clients at once."""

    def __init__(self, reader, writer) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(MAX_FRAME, SERVER_IDS)
        self.player_id = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> AsyncWire:
        import asyncio

        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send(self, *messages) -> None:
        self.writer.write(b"".join(encode(m) for m in messages))

    async def recv(self, timeout: float = 30.0):
        import asyncio

        while True:
            frame = self.decoder.next_frame()
            if frame is not None:
                return decode_body(*frame)
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.decoder.feed(data)

    async def expect(self, cls, timeout: float = 30.0):
        msg = await self.recv(timeout)
        assert isinstance(msg, cls), f"expected {cls.__name__}, got {msg}"
        return msg

    async def login(self, name: str, password: str = "pw"):
        self.send(pb.C_LOGIN_REQ(name=name, password=password))
        res = await self.expect(pb.S_LOGIN_RES)
        self.player_id = res.player_id
        return res

    def close(self) -> None:
        self.writer.close()


def pair_in_room(host: str, port: int, room_name: str, names: tuple[str, str]) -> tuple[WireClient, WireClient, int]:
    """Two logged-in clients, the first created a room and the second joined it; every reply consumed."""
    a, b = WireClient(host, port), WireClient(host, port)
    assert a.login(names[0]).success and b.login(names[1]).success
    a.send(pb.C_CREATE_ROOM_REQ(name=room_name))
    room = a.expect(pb.S_CREATE_ROOM_RES).room.room_id
    b.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    b.expect(pb.S_JOIN_ROOM_RES)
    a.expect(pb.S_JOIN_ROOM_NTF)
    return a, b, room
