"""The operators' HTTP API (docs/API.md): what a call may say, who may make it, and how often.

    POST /api/<method>   Authorization: apikey <key>   {"field": value, ...}
    -> 200 {"result": {...}}  or  4xx/5xx {"error": {"code": "...", "message": "..."}}

Plain objects, no sockets: parse_call() turns a method name and a JSON body
into one typed call (or an ApiError that says what is wrong with it, before
anything happens), and ApiDoor is everything the HTTP thread does with a
request: the size bound, the key (compared in constant time), the rate
limit, handing the call to the event loop and waiting for its answer, the
figures, and one log line per call (method, target, reason; never the key).
common/control.py is the thin HTTP part around it; gateway/operations.py
carries the calls out on the loop, as inputs of the GatewayCore.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from chatcluster.common.config import ClusterConfig, Limits
from chatcluster.common.counters import Counters
from chatcluster.gateway.guard import TokenBucket
from chatcluster.gateway.login import check_name

log = logging.getLogger("chatcluster.api")

KEY_ENV = "CHATCLUSTER_API_KEY"
MIN_KEY = 16               # bytes: a shorter key is refused at start (guessable)
MAX_ID = 2**63 - 1         # ids as JSON numbers, within what every database and JavaScript-free client holds
MAX_REASON = 256           # UTF-8 bytes of an operator's reason
MAX_SECONDS = 10 * 365 * 86400  # a ban or mute of up to ten years (a ban without seconds lasts until lifted)
MAX_HISTORY = 1000         # messages in one history answer
DEFAULT_HISTORY = 50
WAIT_SLACK = 5.0           # s the HTTP thread waits beyond the shards' answer time (a database step, a busy loop)
DRAIN_MAX = 1 << 20        # bytes of an oversized body read and dropped, so the client reads its 413 (not a reset)


class ApiError(Exception):
    """A call refused with an HTTP status, a machine-readable code and words for the operator."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


# ---- the calls ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Call:
    """One API call, checked; `method` is its name in the URL."""

    method: ClassVar[str] = ""

    def target(self) -> str:
        """What the call acts on, for its log line."""
        return " ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self)
                        if f.name not in ("reason", "text") and getattr(self, f.name) not in (None, "", 0))

    @property
    def why(self) -> str:
        return getattr(self, "reason", "")


@dataclass(frozen=True, slots=True)
class Publish(Call):
    method: ClassVar[str] = "publish"
    room_id: int
    text: str

    def target(self) -> str:
        return f"room_id={self.room_id} text={len(self.text.encode('utf-8'))} bytes"


@dataclass(frozen=True, slots=True)
class Rooms(Call):
    method: ClassVar[str] = "rooms"


@dataclass(frozen=True, slots=True)
class Room(Call):
    method: ClassVar[str] = "room"
    room_id: int


@dataclass(frozen=True, slots=True)
class Kick(Call):
    method: ClassVar[str] = "kick"
    room_id: int
    player_id: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Disconnect(Call):
    method: ClassVar[str] = "disconnect"
    player_id: int = 0  # or name
    name: str = ""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Ban(Call):
    method: ClassVar[str] = "ban"
    name: str
    seconds: int = 0  # 0: until lifted
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unban(Call):
    method: ClassVar[str] = "unban"
    name: str


@dataclass(frozen=True, slots=True)
class Mute(Call):
    method: ClassVar[str] = "mute"
    player_id: int
    seconds: int
    room_id: int = 0  # 0: every room
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Unmute(Call):
    method: ClassVar[str] = "unmute"
    player_id: int
    room_id: int = 0  # 0: every mute of the player


@dataclass(frozen=True, slots=True)
class History(Call):
    method: ClassVar[str] = "history"
    room_id: int
    since_seq: int = 0  # 0: the newest messages
    limit: int = DEFAULT_HISTORY


CALLS: dict[str, type[Call]] = {cls.method: cls for cls in (Publish, Rooms, Room, Kick, Disconnect, Ban, Unban,
                                                            Mute, Unmute, History)}


def _whole(name: str, value: Any, low: int, high: int) -> int:
    if type(value) is not int:  # bool is an int to Python, not to JSON; 5.0 is no id
        raise bad(f"{name} must be a whole number")
    if not low <= value <= high:
        raise bad(f"{name} must be from {low} to {high}")
    return value


def _words(name: str, value: Any, limit: int, empty_ok: bool) -> str:
    if not isinstance(value, str):
        raise bad(f"{name} must be a string")
    if not value and not empty_ok:
        raise bad(f"{name} must not be empty")
    if len(value.encode("utf-8")) > limit:
        raise bad(f"{name} longer than {limit} bytes")
    if not value.isprintable():  # it is logged and shown to players: no line breaks, no escapes
        raise bad(f"{name} has control characters")
    return value


def _check(name: str, value: Any, limits: Limits) -> Any:
    """One field's value, checked by what its name says it is."""
    if name in ("room_id", "player_id"):
        return _whole(name, value, 1, MAX_ID)
    if name == "since_seq":
        return _whole(name, value, 0, MAX_ID)
    if name == "seconds":
        return _whole(name, value, 1, MAX_SECONDS)
    if name == "limit":
        return _whole(name, value, 1, MAX_HISTORY)
    if name == "reason":
        return _words(name, value, MAX_REASON, empty_ok=True)
    if name == "text":
        return _text(value, limits)
    if name == "name":
        problem = check_name(value, limits.max_name, "name") if isinstance(value, str) else "name must be a string"
        if problem is not None:
            raise bad(problem)
        return value
    raise AssertionError(f"no check for field {name}")  # a bug: every call's field has one


def _text(value: Any, limits: Limits) -> str:
    """A system message may have line breaks (a notice of a few lines); nothing else that is not printable."""
    if not isinstance(value, str):
        raise bad("text must be a string")
    for line in value.split("\n"):
        _words("text", line, limits.max_text, empty_ok=True)
    if len(value.encode("utf-8")) > limits.max_text:
        raise bad(f"text longer than {limits.max_text} bytes")
    if not value.strip():
        raise bad("text must not be empty")
    return value


def parse_call(method: str, body: bytes, limits: Limits) -> Call:
    """The call a request makes: ApiError 404 for an unknown method, 400 for a body that is not a JSON
    object with exactly the method's fields, each of the right kind (ids as JSON numbers)."""
    cls = CALLS.get(method)
    if cls is None:
        raise ApiError(404, "unknown_method", f"no API method {method!r}; the methods are {', '.join(CALLS)}")
    try:
        raw = json.loads(body) if body.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"the body is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise bad("the body must be a JSON object")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise bad(f"{method} takes no field {unknown[0]!r}; its fields are {', '.join(known) or 'none'}")
    values = {}
    for name, spec in known.items():
        if name in raw and raw[name] is not None:
            values[name] = _check(name, raw[name], limits)
        elif spec.default is MISSING and spec.default_factory is MISSING:  # required
            raise bad(f"{method} needs {name}")
    if cls is Disconnect and bool(values.get("player_id")) == bool(values.get("name")):
        raise bad("disconnect needs player_id or name (one of them)")
    return cls(**values)


# ---- the key ----------------------------------------------------------------------------------------
def load_api_key(config: ClusterConfig, environ: dict[str, str] | None = None) -> bytes | None:
    """The API key: the file config.api_key_file names, else $CHATCLUSTER_API_KEY, else None (the API is off).

    ValueError, saying what is wrong (never the key), for a file that cannot be
    read or a key that is empty or shorter than MIN_KEY bytes.
    """
    environ = os.environ if environ is None else environ
    if config.api_key_file:
        try:
            key = Path(config.api_key_file).read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"cannot read the API key file {config.api_key_file}: {exc.strerror or exc}") from None
        where = f"the API key file {config.api_key_file}"
    elif environ.get(KEY_ENV, "").strip():
        key, where = environ[KEY_ENV].strip().encode(), f"${KEY_ENV}"
    else:
        return None
    if len(key) < MIN_KEY:
        raise ValueError(f"{where} holds a key of {len(key)} bytes; use at least {MIN_KEY} "
                         "(e.g. the output of: openssl rand -hex 32)")
    return key


def _digest(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


# ---- the door -----------------------------------------------------------------------------------------
class ApiStats(Counters):
    __slots__ = ("calls", "ok", "failed", "unauthorized", "unauthorized_throttled", "bad_requests", "too_large",
                 "rate_limited", "timeouts")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()

    def encoded(self) -> bytes:
        return json.dumps(self.body).encode() + b"\n"


def error(status: int, code: str, message: str, *headers: tuple[str, str]) -> Response:
    return Response(status, {"error": {"code": code, "message": message}}, headers)


def _drain(body: BinaryIO, length: int) -> None:
    """Read and drop an oversized body (up to DRAIN_MAX), so that closing the connection does not reset it
    before the client has read our answer."""
    left = min(length, DRAIN_MAX)
    while left > 0:
        chunk = body.read(min(left, 65536))
        if not chunk:
            break
        left -= len(chunk)


UNAUTHORIZED_RATE = 1.0   # calls a second with a wrong or missing key that are answered 401 and logged ...
UNAUTHORIZED_BURST = 10   # ... with this many at once; past that: 429, counted, not logged

Submit = Callable[[Call], "Future[Response]"]


class ApiDoor:
    """What the HTTP thread does with one API request. Thread-safe: the control server runs a thread per
    connection, so the rate bucket and the figures are behind a lock. It never touches the gateway's live
    state: a call goes to the event loop through `submit`, and the HTTP thread waits for the answer."""

    def __init__(self, key: bytes, limits: Limits, submit: Submit, clock: Callable[[], float] = time.monotonic,
                 ) -> None:
        self._digest = _digest(key)  # only the digest is kept: the key itself is in no object of ours
        self.limits = limits
        self.submit = submit
        self.clock = clock
        self.wait = limits.request_timeout + WAIT_SLACK
        self.stats = ApiStats()
        self._lock = threading.Lock()
        self._bucket = TokenBucket(limits.api_rate, limits.api_burst, clock())
        # Wrong keys have a bucket of their own: someone guessing cannot use up the operator's calls, and
        # past a few a second is answered 429 without a log line each (the log stays readable).
        self._denied = TokenBucket(UNAUTHORIZED_RATE, UNAUTHORIZED_BURST, clock())

    def too_large(self, length: int) -> bool:
        return length > self.limits.api_max_body

    def serve(self, method: str, headers: Mapping[str, str], body: BinaryIO, peer: str) -> Response:
        """One HTTP request as the control server received it; its body is read here, within the bound."""
        if headers.get("Transfer-Encoding"):
            return self._refused(method, peer, "bad_requests", error(
                411, "length_required", "send the body with a Content-Length (chunked bodies are not taken)"))
        try:
            length = int(headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return self._refused(method, peer, "bad_requests", error(400, "bad_request", "a bad Content-Length"))
        try:
            if self.too_large(length):
                _drain(body, length)
                data = None
            else:
                data = body.read(length)
        except OSError:  # the client went quiet or away mid-body (the control server's socket timeout)
            return self._refused(method, peer, "bad_requests", error(408, "timeout", "the body did not arrive"))
        if data is not None and len(data) < length:
            return self._refused(method, peer, "bad_requests", error(400, "bad_request", "the body was cut short"))
        return self.handle(method, headers.get("Authorization"), data, peer)

    def handle(self, method: str, authorization: str | None, body: bytes | None, peer: str) -> Response:
        """One request: body None means it was over the size bound (and was not kept)."""
        if body is None:
            return self._refused(method, peer, "too_large", error(
                413, "too_large", f"the request body is over {self.limits.api_max_body} bytes"))
        if not self._authorized(authorization):
            with self._lock:
                logged = self._denied.take(self.clock())
                if not logged:
                    self.stats.unauthorized_throttled += 1
            if not logged:
                return error(429, "rate_limited", "too many calls without a valid key", ("Retry-After", "1"))
            return self._refused(method, peer, "unauthorized", error(
                401, "unauthorized", "a valid API key is needed: Authorization: apikey <key>",
                ("WWW-Authenticate", "apikey")))
        with self._lock:
            allowed = self._bucket.take(self.clock())
        if not allowed:
            return self._refused(method, peer, "rate_limited", error(
                429, "rate_limited", f"at most {self.limits.api_rate:g} API calls a second", ("Retry-After", "1")))
        try:
            call = parse_call(method, body, self.limits)
        except ApiError as exc:
            return self._refused(method, peer, "bad_requests", error(exc.status, exc.code, exc.message))
        response = self._carry_out(call)
        with self._lock:
            self.stats.calls += 1
            if response.status == 200:
                self.stats.ok += 1
            elif response.status == 504:
                self.stats.timeouts += 1
            else:
                self.stats.failed += 1
        outcome = "ok" if response.status == 200 else response.body["error"]["message"]
        target = call.target()
        log.info(" API %s%s reason=%r from %s: %d %s", call.method, f" {target}" if target else "", call.why, peer,
                 response.status, outcome)
        return response

    def _carry_out(self, call: Call) -> Response:
        try:
            future = self.submit(call)
        except RuntimeError:  # the loop is closed: the gateway is stopping
            return error(503, "unavailable", "the gateway is shutting down")
        try:
            return future.result(self.wait)
        except FutureTimeout:
            return error(504, "timeout", f"no answer within {self.wait:g} s; the action may still take effect")

    def _authorized(self, authorization: str | None) -> bool:
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "apikey":
            return False
        return hmac.compare_digest(_digest(given.strip().encode("utf-8", "replace")), self._digest)

    def _refused(self, method: str, peer: str, counter: str, response: Response) -> Response:
        with self._lock:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        level = logging.WARNING if response.status == 401 else logging.INFO
        # The method is the caller's text: %r keeps a hostile one on its line.
        log.log(level, " API %r refused from %s: %d %s", method[:64], peer, response.status,
                response.body["error"]["message"])
        return response

    def figures(self) -> dict[str, Any]:
        """The API's part of /status: what came, what was refused, and the bounds."""
        with self._lock:
            counts = self.stats.as_dict()
        return {"enabled": True, **counts, "max_body": self.limits.api_max_body, "rate": self.limits.api_rate,
                "burst": self.limits.api_burst}
