"""The client side of the operator API (docs/API.md), for `chatctl publish`, `kick`, `ban` and the rest.

An operator needs no curl: these commands find a gateway's control port in
the cluster's config (the run file in --data-dir, or --config) as `chatctl
status` does, take the key from --api-key-file, $CHATCLUSTER_API_KEY or the
file the cluster's config names, and print what happened in words (or the
JSON result with --json). The key goes in the Authorization header only: it
is never printed, and never on anyone's command line.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chatcluster.common.config import ClusterConfig
from chatcluster.gateway.api import KEY_ENV

TIMEOUT = 15.0  # s: more than a gateway waits for its shards and database (gateway/api.py WAIT_SLACK)


class ApiFailure(Exception):
    """The API said no (status, code and its message), or no gateway could be reached (status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message if not self.status else f"{self.message} (HTTP {self.status} {self.code})"


def find_key(key_file: str | None, config: ClusterConfig | None, environ: dict[str, str] | None = None) -> str:
    """The API key: --api-key-file, else $CHATCLUSTER_API_KEY, else the file the cluster's config names."""
    environ = os.environ if environ is None else environ
    if key_file:
        return Path(key_file).read_text(encoding="utf-8").strip()
    if environ.get(KEY_ENV, "").strip():
        return environ[KEY_ENV].strip()
    if config is not None and config.api_key_file:
        try:
            return Path(config.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ApiFailure(0, "no_key", f"cannot read the cluster's API key file {config.api_key_file}: "
                                          f"{exc.strerror or exc}; give --api-key-file or set ${KEY_ENV}") from None
    raise ApiFailure(0, "no_key", f"no API key: give --api-key-file FILE or set ${KEY_ENV}")


def api_urls(config: ClusterConfig) -> list[str]:
    """Every gateway's API base URL, first gateway first."""
    return [f"http://{g.control_host}:{g.control_port}/api/" for g in config.gateways]


class ApiClient:
    """Calls the API of the first gateway that answers; any gateway can act on the whole cluster."""

    def __init__(self, urls: list[str], key: str, timeout: float = TIMEOUT) -> None:
        self.urls = urls
        self._key = key
        self.timeout = timeout

    def call(self, method: str, **fields: Any) -> dict[str, Any]:
        """The call's result; ApiFailure with the API's error, or when no gateway answers."""
        body = json.dumps({k: v for k, v in fields.items() if v is not None}).encode()
        unreachable = []
        for url in self.urls:
            request = urllib.request.Request(url + method, data=body, method="POST", headers={
                "Authorization": f"apikey {self._key}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read())["result"]
            except urllib.error.HTTPError as exc:
                raise _failure(exc) from None
            except (OSError, ValueError) as exc:  # refused, timed out, not our answer: try the next gateway
                unreachable.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        raise ApiFailure(0, "unreachable", "cannot reach the operator API (is the cluster running, with an API "
                                           "key?): " + "; ".join(unreachable))


def _failure(exc: urllib.error.HTTPError) -> ApiFailure:
    try:
        error = json.loads(exc.read())["error"]
        return ApiFailure(exc.code, error["code"], error["message"])
    except (ValueError, KeyError, TypeError, OSError):
        return ApiFailure(exc.code, "http", f"HTTP {exc.code} {exc.reason}")


# ---- what each command prints ---------------------------------------------------------------------
def said(method: str, result: dict[str, Any]) -> list[str]:
    """A call's result in words, one line each."""
    return _WORDS[method](result)


def _rooms(r: dict[str, Any]) -> list[str]:
    lines = [f"{'room':>8}  {'members':>7}  name"]
    lines += [f"{room['room_id']:>8}  {room['member_count']:>7}  {room['name']}" for room in r["rooms"]]
    if not r["rooms"]:
        lines = ["no open rooms"]
    if r.get("unavailable_shards"):
        lines.append(f"(shards {', '.join(map(str, r['unavailable_shards']))} did not answer: their rooms are "
                     "not listed)")
    return lines


def _room(r: dict[str, Any]) -> list[str]:
    lines = [f"room {r['room_id']} {r['name']!r}: {len(r['members'])} member(s), newest message #{r['seq']}"]
    lines += [f"  {m['player_id']:>8}  {m['name']:<32}  on {m['gateway']}" for m in r["members"]]
    return lines


def _history(r: dict[str, Any]) -> list[str]:
    lines = [f"[{m['time']}] #{m['seq']} {m['sender']['name']}: {m['text']}" for m in r["messages"]]
    return lines or [f"room {r['room_id']}: no messages"]


def _ban(r: dict[str, Any]) -> list[str]:
    line = f"{r['name']} (player {r['player_id']}) is banned {r['until']}"
    line += "; their session was closed" if r["disconnected"] else "; they were not online"
    return [line] + ([f"warning: {r['warning']}"] if r.get("warning") else [])


def _where(r: dict[str, Any]) -> str:
    return f"in room {r['room_id']}" if r.get("room_id") else "everywhere"


def _shards_note(r: dict[str, Any]) -> list[str]:
    missing = r.get("unavailable_shards")
    return [f"warning: shards {', '.join(map(str, missing))} were unavailable and did not get it"] if missing else []


_WORDS = {
    "publish": lambda r: [f"room {r['room_id']}: system message sent as #{r['seq']}"],
    "rooms": _rooms,
    "room": _room,
    "history": _history,
    "kick": lambda r: [f"player {r['player_id']} removed from room {r['room_id']}"],
    "disconnect": lambda r: [f"player {r['player_id']} disconnected"],
    "ban": _ban,
    "unban": lambda r: [f"{r['name']} (player {r['player_id']}): "
                        + ("ban lifted" if r["lifted"] else "had no ban in force")],
    "mute": lambda r: [f"player {r['player_id']} muted {_where(r)} {r['until']}"] + _shards_note(r),
    "unmute": lambda r: [f"player {r['player_id']}: " + (f"mute lifted {_where(r)}" if r["lifted"] else
                                                        f"had no mute in force {_where(r)}")] + _shards_note(r),
}
