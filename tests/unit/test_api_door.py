"""The operator API's front door without sockets: parsing and checking calls, the key, the bounds."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future

import pytest

from chatcluster.common.config import ClusterConfig, Limits
from chatcluster.gateway import api
from chatcluster.gateway.api import ApiDoor, ApiError, Response, load_api_key, parse_call

KEY = b"0123456789abcdef0123456789abcdef"
LIMITS = Limits()


def parse(method: str, body: object) -> api.Call:
    return parse_call(method, json.dumps(body).encode(), LIMITS)


def refused(method: str, body: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_call(method, body if isinstance(body, bytes) else json.dumps(body).encode(), LIMITS)
    return info.value


def test_every_method_parses_its_fields_with_their_defaults():
    assert parse("publish", {"room_id": 5, "text": "hello\nall"}) == api.Publish(5, "hello\nall")
    assert parse_call("rooms", b"", LIMITS) == api.Rooms() == parse("rooms", {})
    assert parse("room", {"room_id": 5}) == api.Room(5)
    assert parse("kick", {"room_id": 5, "player_id": 7, "reason": "spam"}) == api.Kick(5, 7, "spam")
    assert parse("disconnect", {"name": "eve"}) == api.Disconnect(name="eve")
    assert parse("disconnect", {"player_id": 7, "reason": "x"}) == api.Disconnect(player_id=7, reason="x")
    assert parse("ban", {"name": "eve"}) == api.Ban("eve", 0, "")
    assert parse("ban", {"name": "eve", "seconds": 3600, "reason": "spam"}) == api.Ban("eve", 3600, "spam")
    assert parse("unban", {"name": "eve"}) == api.Unban("eve")
    assert parse("mute", {"player_id": 7, "seconds": 60}) == api.Mute(7, 60, 0, "")
    assert parse("mute", {"player_id": 7, "room_id": 5, "seconds": 60}).room_id == 5
    assert parse("unmute", {"player_id": 7, "room_id": None}) == api.Unmute(7, 0)  # null: not given
    assert parse("history", {"room_id": 5}) == api.History(5, 0, api.DEFAULT_HISTORY)
    assert parse("history", {"room_id": 5, "since_seq": 10, "limit": 3}) == api.History(5, 10, 3)


@pytest.mark.parametrize(("method", "body", "says"), [
    ("publish", b"{not json", "the body is not JSON"),
    ("publish", b"\xff\xfe", "the body is not JSON"),
    ("publish", [1, 2], "must be a JSON object"),
    ("publish", {"room_id": 5}, "publish needs text"),
    ("publish", {"room_id": "5", "text": "x"}, "room_id must be a whole number"),
    ("publish", {"room_id": 5.0, "text": "x"}, "room_id must be a whole number"),
    ("publish", {"room_id": True, "text": "x"}, "room_id must be a whole number"),
    ("publish", {"room_id": 0, "text": "x"}, "room_id must be from 1 to"),
    ("publish", {"room_id": 2**63, "text": "x"}, "room_id must be from 1 to"),
    ("publish", {"room_id": 5, "text": ""}, "text must not be empty"),
    ("publish", {"room_id": 5, "text": "x" * 4097}, "text longer than 4096 bytes"),
    ("publish", {"room_id": 5, "text": "bell\x07"}, "text has control characters"),
    ("publish", {"room_id": 5, "text": "x", "sender": "me"}, "publish takes no field 'sender'"),
    ("kick", {"room_id": 5, "player_id": 7, "reason": "a\nforged log line"}, "reason has control characters"),
    ("kick", {"room_id": 5, "player_id": 7, "reason": "x" * 257}, "reason longer than 256 bytes"),
    ("disconnect", {}, "disconnect needs player_id or name"),
    ("disconnect", {"player_id": 7, "name": "eve"}, "disconnect needs player_id or name"),
    ("ban", {"name": " eve"}, "name has control characters or surrounding spaces"),
    ("ban", {"name": "eve", "seconds": 0}, "seconds must be from 1"),
    ("ban", {"name": 5}, "name must be a string"),
    ("mute", {"player_id": 7}, "mute needs seconds"),
    ("history", {"room_id": 5, "limit": 1001}, "limit must be from 1 to 1000"),
])
def test_bad_bodies_are_refused_with_a_message_that_says_what_is_wrong(method, body, says):
    err = refused(method, body)
    assert (err.status, err.code) == (400, "bad_request") and says in err.message


def test_an_unknown_method_is_404_and_lists_the_real_ones():
    err = refused("nuke", {})
    assert (err.status, err.code) == (404, "unknown_method") and "publish, rooms, room" in err.message


def test_the_log_line_names_the_target_never_the_text():
    assert api.Publish(5, "secret plans").target() == "room_id=5 text=12 bytes"
    assert api.Kick(5, 7, "spam").target() == "room_id=5 player_id=7"
    assert api.Disconnect(name="eve").target() == "name='eve'"
    assert api.Kick(5, 7, "spam").why == "spam" and api.Rooms().why == ""


# ---- the key ------------------------------------------------------------------------------------------
def config(**fields) -> ClusterConfig:
    return ClusterConfig.single_host(shards=1, data_dir="/tmp/unused", **fields)


def test_the_key_comes_from_the_file_else_the_environment_else_the_api_is_off(tmp_path):
    assert load_api_key(config(), {}) is None
    assert load_api_key(config(), {api.KEY_ENV: KEY.decode() + "\n"}) == KEY
    path = tmp_path / "key"
    path.write_bytes(b"  " + KEY + b"\n")
    assert load_api_key(config(api_key_file=str(path)), {api.KEY_ENV: "other" * 8}) == KEY


def test_a_short_or_unreadable_key_is_refused_without_saying_the_key(tmp_path):
    path = tmp_path / "key"
    path.write_text("hunter2")
    with pytest.raises(ValueError, match="holds a key of 7 bytes; use at least 16") as info:
        load_api_key(config(api_key_file=str(path)), {})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ValueError, match="cannot read the API key file"):
        load_api_key(config(api_key_file=str(tmp_path / "missing")), {})


# ---- the door -----------------------------------------------------------------------------------------
class Loop:
    """Stands in for the event loop: answers each submitted call at once, and remembers it."""

    def __init__(self, answer: Response | None = None) -> None:
        self.calls: list[api.Call] = []
        self.answer = answer or Response(200, {"result": {"seq": 1}})

    def submit(self, call: api.Call) -> Future:
        self.calls.append(call)
        future: Future = Future()
        if self.answer.status:
            future.set_result(self.answer)
        return future


def door(loop: Loop, limits: Limits = LIMITS, now: list[float] | None = None) -> ApiDoor:
    clock = now or [0.0]
    return ApiDoor(KEY, limits, loop.submit, clock=lambda: clock[0])


def test_a_call_with_the_key_goes_to_the_loop_and_is_logged_without_the_key(caplog):
    loop = Loop()
    d = door(loop)
    caplog.set_level(logging.INFO, logger="chatcluster.api")
    res = d.handle("publish", f"apikey {KEY.decode()}", b'{"room_id": 5, "text": "hi"}', "10.0.0.9")
    assert (res.status, res.body) == (200, {"result": {"seq": 1}})
    assert loop.calls == [api.Publish(5, "hi")]
    assert d.stats.calls == d.stats.ok == 1
    line, = [r.getMessage() for r in caplog.records]
    assert "API publish room_id=5 text=2 bytes reason='' from 10.0.0.9: 200 ok" in line
    assert KEY.decode() not in caplog.text


@pytest.mark.parametrize("authorization", [None, "", "apikey", "apikey wrong", f"Bearer {KEY.decode()}",
                                           f"apikey {KEY.decode()}x", "apikey \udcff"])
def test_a_missing_or_wrong_key_is_401_and_nothing_reaches_the_loop(authorization, caplog):
    loop = Loop()
    d = door(loop)
    res = d.handle("publish", authorization, b'{"room_id": 5, "text": "hi"}', "10.0.0.9")
    assert res.status == 401 and res.body["error"]["code"] == "unauthorized"
    assert ("WWW-Authenticate", "apikey") in res.headers
    assert loop.calls == [] and d.stats.unauthorized == 1 and d.stats.calls == 0
    assert KEY.decode() not in caplog.text


def test_wrong_keys_beyond_a_few_a_second_are_429_unlogged_and_never_block_the_operator(caplog):
    loop = Loop()
    now = [0.0]
    d = door(loop, Limits(api_rate=100, api_burst=100), now)
    statuses = [d.handle("rooms", f"apikey guess-{n}", b"{}", "10.0.0.66").status for n in range(15)]
    assert statuses == [401] * 10 + [429] * 5
    assert d.stats.unauthorized == 10 and d.stats.unauthorized_throttled == 5
    assert caplog.text.count("refused from 10.0.0.66") == 10
    assert d.handle("rooms", f"apikey {KEY.decode()}", b"{}", "10.0.0.1").status == 200  # the operator gets in


def test_the_scheme_is_case_insensitive():
    assert door(Loop()).handle("rooms", f"ApiKey  {KEY.decode()} ", b"", "p").status == 200


def test_a_bad_body_is_400_and_nothing_reaches_the_loop():
    loop = Loop()
    d = door(loop)
    res = d.handle("kick", f"apikey {KEY.decode()}", b'{"room_id": "five"}', "p")
    assert res.status == 400 and res.body["error"]["code"] == "bad_request" and loop.calls == []
    assert d.stats.bad_requests == 1


def test_a_body_over_the_bound_is_413():
    loop = Loop()
    d = door(loop, Limits(api_max_body=100))
    assert d.too_large(101) and not d.too_large(100)
    res = d.handle("publish", f"apikey {KEY.decode()}", None, "p")
    assert res.status == 413 and loop.calls == [] and d.stats.too_large == 1


def test_the_rate_limit_refuses_with_429_then_lets_calls_through_again():
    loop = Loop()
    now = [0.0]
    d = door(loop, Limits(api_rate=2, api_burst=3), now)
    statuses = [d.handle("rooms", f"apikey {KEY.decode()}", b"{}", "p").status for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429] and d.stats.rate_limited == 2
    now[0] = 0.5  # one more token
    assert d.handle("rooms", f"apikey {KEY.decode()}", b"{}", "p").status == 200
    assert d.figures()["rate_limited"] == 2 and d.figures()["calls"] == 4


def test_no_answer_in_time_is_504(monkeypatch):
    loop = Loop(Response(0, {}))  # never answered
    d = door(loop, Limits(request_timeout=0.0))
    monkeypatch.setattr(d, "wait", 0.01)
    res = d.handle("rooms", f"apikey {KEY.decode()}", b"", "p")
    assert res.status == 504 and d.stats.timeouts == 1


def test_a_closed_loop_is_503():
    def closed(call):
        raise RuntimeError("Event loop is closed")

    d = ApiDoor(KEY, LIMITS, closed)
    assert d.handle("rooms", f"apikey {KEY.decode()}", b"", "p").status == 503
