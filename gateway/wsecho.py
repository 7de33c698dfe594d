"""An echo server on the gateway's WebSocket adapter, for conformance tests only (the Autobahn cases).

It runs the same HttpConnection code that chat sessions run, with a sink
that sends every message back, any subprotocol or none:

    python -m chatcluster.gateway.wsecho --port 9001
"""

from __future__ import annotations

import argparse
import asyncio

from chatcluster.common.config import Limits
from chatcluster.gateway.http import StaticFiles
from chatcluster.gateway.websocket import WebEndpoint, WebSocketLink

ECHO_MAX_MESSAGE = 32 << 20  # the Autobahn limits cases send up to 16 MiB


class EchoSink:
    subprotocols = None  # accept a client that offers none

    def opened(self, link: WebSocketLink) -> WebSocketLink:
        return link

    def accepts_text(self, link: WebSocketLink) -> bool:
        return True

    def accepts_binary(self, link: WebSocketLink) -> bool:
        return True

    def binary(self, link: WebSocketLink, data: bytes) -> None:
        link.ws.send_binary(data)
        link.conn.send_pending()

    def text(self, link: WebSocketLink, text: str) -> None:
        link.ws.send_text(text.encode())
        link.conn.send_pending()

    def lost(self, link: WebSocketLink) -> None:
        pass

    def slow(self, link: WebSocketLink, queued: int) -> None:
        pass


async def serve(host: str, port: int) -> None:
    endpoint = WebEndpoint(EchoSink(), Limits(ws_max_message=ECHO_MAX_MESSAGE, write_buffer=64 << 20),
                           static=StaticFiles({}), ws_path=None)
    server = await asyncio.get_running_loop().create_server(endpoint.protocol, host, port)
    print(f"echo on ws://{host}:{port}/ws", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
