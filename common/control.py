"""Each process's control endpoint: a small HTTP server on its control port.

    GET /status   the process's KPIs as JSON (what `chatctl status` prints)
    GET /metrics  the same figures for Prometheus (common/metrics.py)
    GET /healthz  200 while the process's main loop is turning, 503 when it stalls

HTTP so that an operator's tools (curl, Kubernetes probes, Prometheus) can
use it as they are. It runs in its own thread and only ever reads a snapshot
that the main loop publishes about once a second: it never touches live
state another thread is changing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("chatcluster.control")

STALL_SECONDS = 5.0


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
                 extra: dict[str, Callable[[], tuple[int, str, bytes]]] | None = None) -> None:
        self.snapshot = snapshot
        from chatcluster.common.metrics import metrics_route

        routes = {"/status": self._status, "/healthz": self._health, "/metrics": metrics_route(snapshot)}
        routes.update(extra or {})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    code, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    code, ctype, body = route()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
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
