"""What the bench's WebSocket and JSON codecs cost per message, next to the libraries': `python -m
chatcluster.loadtest.wsmeasure`.

The figures behind two choices (wsclient.py, wsjson.py): hand-rolled client
framing instead of websockets' ClientProtocol, and a hand-made JSON path for
the two hot messages instead of json_format. Run it on the machine that runs
the bench; it takes a few seconds.
"""

from __future__ import annotations

import json
import timeit

from google.protobuf import json_format
from websockets.client import ClientProtocol
from websockets.protocol import State
from websockets.uri import parse_uri

from chatcluster.proto import chat_pb2 as pb

from . import wsjson
from .wsclient import OPEN, WsClient, frame_header

N = 100_000


def _us(fn: object, number: int = N, per: int = 1) -> float:
    return timeit.timeit(fn, number=number) / number / per * 1e6  # type: ignore[arg-type]


def measure() -> dict[str, float]:
    """Microseconds per message (per frame for the reads), library vs ours."""
    out: dict[str, float] = {}
    payload = b"x" * 100
    lib = ClientProtocol(parse_uri("ws://127.0.0.1:1/ws"), state=State.OPEN)
    ours = WsClient("127.0.0.1:1", "/ws", "chatcluster.v1")
    ours.state = OPEN

    def lib_send() -> list[bytes]:
        lib.send_binary(payload)
        return lib.data_to_send()

    out["send 100 B: websockets"] = _us(lib_send)
    out["send 100 B: ours"] = _us(lambda: ours.binary(payload))
    for k in (1, 4):
        data = (frame_header(2, 100, False) + b"y" * 100) * k

        def lib_read(data: bytes = data) -> list:
            lib.receive_data(data)
            return lib.events_received()

        out[f"read {k} frame(s) of 100 B per read: websockets"] = _us(lib_read, N // 2, k)
        out[f"read {k} frame(s) of 100 B per read: ours"] = _us(lambda data=data: ours.receive(data), N // 2, k)
    ntf = pb.S_ROOM_CHAT_NTF(room_id=3, sender=pb.Player(player_id=77, name="bench77-abcdef"), text="x" * 64,
                             seq=12345, client_msg_id=987655, server_time_us=1733300000000000)
    text = json.dumps({"type": "S_ROOM_CHAT_NTF", **json_format.MessageToDict(ntf)}, separators=(",", ":")).encode()

    def lib_parse() -> object:
        obj = json.loads(text)
        obj.pop("type")
        return json_format.ParseDict(obj, pb.S_ROOM_CHAT_NTF())

    out["JSON notification parse: json_format"] = _us(lib_parse, N // 4)
    out["JSON notification parse: json.loads"] = _us(lambda: json.loads(text), N // 2)
    out["JSON notification parse: ours"] = _us(lambda: wsjson.decode_object(text), N // 2)
    req = pb.C_ROOM_CHAT_REQ(text="x" * 64, client_msg_id=987655)
    out["JSON chat request: json_format"] = _us(lambda: wsjson.request(req), N // 2)
    out["JSON chat request: ours"] = _us(lambda: wsjson.chat_request("x" * 64, 987655), N // 2)
    return out


if __name__ == "__main__":
    for name, us in measure().items():
        print(f"{name:55s} {us:6.2f} µs")
