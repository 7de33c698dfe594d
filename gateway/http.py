"""What the gateway's HTTP port answers besides the WebSocket: the web chat page's files.

The page is plain files in gateway/web/, read once at start: serving them
costs a dictionary lookup, and a page edited on disk while the gateway runs
cannot be half-read. Responses are websockets' Response objects, so the one
HTTP parser of the port (websockets' sans-I/O ServerProtocol) writes them.
"""

from __future__ import annotations

import email.utils
import hashlib
from importlib import resources

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

WS_PATH = "/ws"
CONTENT_TYPES = {
    "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml", "png": "image/png", "ico": "image/x-icon", "json": "application/json",
    "proto": "text/plain; charset=utf-8", "txt": "text/plain; charset=utf-8",
}
# The page talks to its own origin only; nothing it shows can run a script (it renders text as text).
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                                "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


class StaticFiles:
    """The files of gateway/web/ by URL path ("/" is index.html), with their ETags."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files = files if files is not None else _load_package_files()
        self.etags = {name: '"' + hashlib.sha256(body).hexdigest()[:16] + '"' for name, body in self.files.items()}

    def response(self, request: Request) -> tuple[int, Response]:
        """(status, response) for a plain GET that is not the WebSocket."""
        path = request.path.split("?", 1)[0]
        name = "index.html" if path == "/" else path.lstrip("/")
        body = self.files.get(name)
        if body is None:
            return 404, plain(404, "Not Found", "not found\n")
        headers = _base_headers()
        headers["Content-Type"] = CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
        headers["Cache-Control"] = "no-cache"
        headers["ETag"] = etag = self.etags[name]
        for key, value in SECURITY_HEADERS:
            headers[key] = value
        if request.headers.get("If-None-Match") == etag:
            headers["Content-Length"] = "0"
            return 304, Response(304, "Not Modified", headers, b"")
        headers["Content-Length"] = str(len(body))
        return 200, Response(200, "OK", headers, body)


def plain(status: int, reason: str, text: str) -> Response:
    """A short text/plain answer; the connection closes after it."""
    body = text.encode()
    headers = _base_headers()
    headers["Content-Type"] = "text/plain; charset=utf-8"
    headers["Content-Length"] = str(len(body))
    return Response(status, reason, headers, body)


def _base_headers() -> Headers:
    return Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                    ("Server", "chatcluster")])


def _load_package_files() -> dict[str, bytes]:
    folder = resources.files("chatcluster.gateway") / "web"
    if not folder.is_dir():
        return {}
    return {entry.name: entry.read_bytes() for entry in folder.iterdir()
            if entry.is_file() and not entry.name.startswith(".")}
