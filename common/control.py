"""Each process's control endpoint: a small HTTP server on its control port.

    GET /status   the process's KPIs as JSON (what `chatctl status` prints)
    GET /metrics  the same figures for Prometheus (common/metrics.py)
    GET /healthz  200 while the process's main loop is turning, 503 when it stalls
    POST /api/<method>  a gateway's operator API (gateway/api.py, docs/API.md), where a key is configured

HTTP so that an operator's tools (curl, Kubernetes probes, Prometheus) can
use it as they are. It runs in its own thread and only ever reads a snapshot
that the main loop publishes about once a second: it never touches live
state another thread is changing. The operator API's calls are handed to the
gateway's event loop by the `api` callable (gateway/api.py ApiDoor.serve);
this module only moves its bytes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO, Protocol

log = logging.getLogger("chatcluster.control")

STALL_SECONDS = 5.0
READ_TIMEOUT = 10.0  # s a client of the control port has to send its request (a stalled one frees its thread)
API_PREFIX = "/api/"


class Answer(Protocol):
    """What an API handler returns (gateway/api.py Response)."""

    status: int
    headers: tuple[tuple[str, str], ...]

    def encoded(self) -> bytes: ...


#: The operator API: (method, request headers, request body stream, client address) -> its answer.
ApiHandler = Callable[[str, Mapping[str, str], BinaryIO, str], Answer]
API_OFF = json.dumps({"error": {"code": "not_found", "message": "the operator API is off here: no API key is "
                                                                "configured (docs/API.md)"}}).encode() + b"\n"


def fetch_status(control: tuple[str, int], timeout: float = 1.0) -> dict[str, Any]:
    """The /status snapshot of the process at `control` (host, port): the client side of this endpoint.

    Raises OSError while nothing answers there and ValueError if something else does; callers
    that probe a process still starting treat both as "not up yet".
    """
    host, port = control
    with urllib.request.urlopen(f"http://{host}:{port}/status", timeout=timeout) as resp:
        return json.loads(resp.read())


class Snapshot:
    """The latest figures of this process, swapped in whole by the main loop."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.published = time.monotonic()

    def publish(self, data: dict[str, Any]) -> None:
        self.data = data
        self.published = time.monotonic()

    @property
    def stalled(self) -> bool:
        return time.monotonic() - self.published > STALL_SECONDS


class ControlServer:
    def __init__(self, host: str, port: int, snapshot: Snapshot,
                 extra: dict[str, Callable[[], tuple[int, str, bytes]]] | None = None,
                 api: ApiHandler | None = None) -> None:
        self.snapshot = snapshot
        from chatcluster.common.metrics import metrics_route

        routes = {"/status": self._status, "/healthz": self._health, "/metrics": metrics_route(snapshot)}
        routes.update(extra or {})

        class Handler(BaseHTTPRequestHandler):
            timeout = READ_TIMEOUT

            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                path = self.path.split("?", 1)[0]
                route = routes.get(path)
                if route is not None:
                    self._reply(*route())
                elif path.startswith(API_PREFIX) and api is not None:
                    self._reply(405, "application/json", b'{"error": {"code": "method_not_allowed", "message": '
                                                         b'"API calls are POST requests"}}\n', (("Allow", "POST"),))
                else:
                    self._reply(404, "text/plain", b"not found\n")

            def do_POST(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                self.close_connection = True  # one call per connection: nothing is left unread for the next
                if not path.startswith(API_PREFIX):
                    self._reply(404, "text/plain", b"not found\n")
                elif api is None:
                    self._reply(404, "application/json", API_OFF)
                else:
                    answer = api(path[len(API_PREFIX):], self.headers, self.rfile, self.client_address[0])
                    self._reply(answer.status, "application/json", answer.encoded(), answer.headers)

            def _reply(self, code: int, ctype: str, body: bytes, headers: tuple[tuple[str, str], ...] = ()) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: Any) -> None:
                pass  # one line per scrape would drown the log

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="control", daemon=True)

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def _status(self) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(self.snapshot.data).encode()

    def _health(self) -> tuple[int, str, bytes]:
        if self.snapshot.stalled:
            return 503, "text/plain", b"stalled\n"
        return 200, "text/plain", b"ok\n"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
