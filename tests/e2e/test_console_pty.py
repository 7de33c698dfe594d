"""End-to-end: the console client in real pseudo-terminals (pexpect) and with piped stdin, against a real server.

The clients run as `python -m chatcluster client` (that is, `chatctl client`) against a real cluster
(the chat_server and stop_chat_server fixtures of tests/conftest.py).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pexpect
import pytest

from chatcluster.console_view import HISTORY_ON_JOIN
from chatcluster.proto import chat_pb2 as pb
from chatcluster.spawn import free_port_block

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

MENU = "[create room: 1] [join room: 2] [list rooms: 3] [quit: q] -> "
CLIENT_ENV = {
    **os.environ,
    "TERM": "dumb",  # prompt_toolkit's plain prompt: text and echo, no cursor movements to parse
    "PROMPT_TOOLKIT_NO_CPR": "1",
    "PYTHONUNBUFFERED": "1",
}


def free_port() -> int:
    """A port nothing listens on, outside the ephemeral range (no self-connect)."""
    return free_port_block(1)


def client_argv(address: tuple[str, int], *extra: str) -> list[str]:
    return ["-m", "chatcluster", "client", "--host", address[0], "--port", str(address[1]), *extra]


@pytest.fixture
def spawn_client(chat_server: tuple[str, int]) -> Iterator[Callable[..., pexpect.spawn]]:
    """Starts clients in 40x200 pseudo-terminals; prints their transcripts at teardown (shown on failure)."""
    children: list[pexpect.spawn] = []

    def spawn(*extra: str) -> pexpect.spawn:
        child = pexpect.spawn(sys.executable, client_argv(chat_server, *extra), env=CLIENT_ENV,
                              encoding="utf-8", codec_errors="replace", dimensions=(40, 200), timeout=20)
        child.logfile_read = io.StringIO()
        children.append(child)
        return child

    yield spawn
    for i, child in enumerate(children):
        print(f"----- client {i} transcript -----\n{transcript(child)}")
        if child.isalive():
            child.terminate(force=True)


def transcript(child: pexpect.spawn) -> str:
    return child.logfile_read.getvalue()


def login(child: pexpect.spawn, name: str, password: str) -> None:
    child.expect_exact("Player name: ")
    child.sendline(name)
    child.expect_exact("Password: ")
    child.sendline(password)
    child.expect(r"Logged in as (\S+) \(player ID: (\d+)\)\.")
    assert child.match.group(1) == name
    child.expect_exact(MENU)


def finish(child: pexpect.spawn) -> int:
    """Waits for the client to exit; its exit status."""
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus is None, f"killed by signal {child.signalstatus}"
    return child.exitstatus


def test_two_clients_chat_in_a_room_then_the_server_dies(spawn_client, stop_chat_server):
    tag = uuid.uuid4().hex[:8]
    alice, bob, room, password = f"alice_{tag}", f"bob_{tag}", f"room_{tag}", f"pw-{tag}"
    a = spawn_client()
    b = spawn_client()
    login(a, alice, password)
    login(b, bob, password)

    # alice creates a room and is its only member
    a.sendline("1")
    a.expect_exact("Name of the new room: ")
    a.sendline(room)
    a.expect(rf"Room created: {room} \(ID: (\d+)\)")
    room_id = a.match.group(1)
    a.expect(rf"--- members ---\r+\n- {alice} \(ID: \d+\)\r+\n=====")
    a.expect_exact(f"{alice}@{room}> ")

    # bob finds it in the list and joins
    b.sendline("3")
    b.expect_exact(f"- Room {room_id}: {room} (1 member)")
    b.expect_exact(MENU)
    b.sendline("2")
    b.expect_exact("Id of the room to join: ")
    b.sendline(room_id)
    b.expect_exact(f"Joined room {room} (ID: {room_id})")
    b.expect(rf"--- members ---\r+\n- {alice} \(ID: \d+\)\r+\n- {bob} \(ID: \d+\)\r+\n=====")
    b.expect_exact(f"{bob}@{room}> ")
    a.expect_exact(f"{bob} joined.")

    # each sees the other's line, and their own echoed back in the same form
    a.sendline("Hi Im alice")
    b.expect_exact(f"[Room {room_id}] {alice}: Hi Im alice")
    a.expect_exact(f"[Room {room_id}] {alice}: Hi Im alice")
    b.sendline("Hi Im bob Test is Good")
    a.expect_exact(f"[Room {room_id}] {bob}: Hi Im bob Test is Good")
    b.expect_exact(f"[Room {room_id}] {bob}: Hi Im bob Test is Good")

    # bob leaves the room, alice is told; bob quits from the menu
    b.sendline("/exit")
    b.expect_exact(f"You left room {room}. Back to the menu.")
    b.expect_exact(MENU)
    a.expect_exact(f"{bob} left.")
    b.sendline("q")
    assert finish(b) == 0

    # the server dies: alice says so and exits non-zero, without a traceback
    stop_chat_server()
    a.expect_exact("Connection to the server lost")
    assert finish(a) != 0

    for child in (a, b):
        assert "Traceback" not in transcript(child)
        assert password not in transcript(child), "the password was echoed"


def test_a_dropped_connection_is_ridden_out_and_the_room_resumed(chat_server):
    """The connection drops (a relay between client and gateway cuts it): the client reconnects by itself,
    logs in again, resumes its room and says how many messages it missed; /history pages back."""
    from browser.relay import Relay  # tests/ is on sys.path: the relay the browser tests cut, too
    from chatwire import WireClient

    tag = uuid.uuid4().hex[:8]
    alice, room = f"alice_{tag}", f"room_{tag}"
    bob = WireClient(*chat_server)
    assert bob.login(f"bob_{tag}").success
    bob.send(pb.C_CREATE_ROOM_REQ(name=room))
    room_id = bob.expect(pb.S_CREATE_ROOM_RES).room.room_id
    for n in range(1, 26):
        bob.chat(f"early {n}")
    relay = Relay(chat_server)
    child = pexpect.spawn(sys.executable, client_argv(("127.0.0.1", relay.port)), env=CLIENT_ENV, encoding="utf-8",
                          codec_errors="replace", dimensions=(40, 200), timeout=20)
    child.logfile_read = io.StringIO()
    try:
        login(child, alice, "pw")
        child.sendline("2")
        child.expect_exact("Id of the room to join: ")
        child.sendline(str(room_id))
        child.expect_exact(f"--- the last {HISTORY_ON_JOIN} messages ---")
        child.expect_exact(f"[Room {room_id}] bob_{tag}: early 25")
        child.expect_exact(f"{alice}@{room}> ")

        relay.cut()  # the line drops, and stays down while bob talks
        child.expect_exact("Connection to the server lost")
        child.expect_exact("reconnecting...")
        for n in range(1, 4):
            bob.chat(f"missed {n}")
        relay.restore()
        child.expect_exact("reconnected; 3 missed messages")
        for n in range(1, 4):
            child.expect_exact(f"[Room {room_id}] bob_{tag}: missed {n}")
        child.sendline("back again")  # the prompt stayed up all along: typing goes on
        child.expect_exact(f"[Room {room_id}] {alice}: back again")

        child.sendline("/history")
        child.expect_exact("--- older messages ---")
        child.expect_exact(f"[Room {room_id}] bob_{tag}: early 1\r")
        child.expect_exact("--- messages 1 to 5; the beginning of the room ---")
        child.sendline("/quit")
        assert finish(child) == 0
        assert "Traceback" not in transcript(child)
    finally:
        print(f"----- client transcript -----\n{transcript(child)}")
        if child.isalive():
            child.terminate(force=True)
        relay.close()
        bob.close()


def run_piped(address: tuple[str, int], script: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *client_argv(address, *extra)], input=script, capture_output=True,
                          text=True, timeout=60, env=CLIENT_ENV)


def test_piped_stdin_runs_a_script_line_by_line(chat_server):
    tag = uuid.uuid4().hex[:8]
    name, room = f"carol_{tag}", f"piped_{tag}"
    result = run_piped(chat_server, f"{name}\npw\n1\n{room}\nhello\n/exit\nq\n")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert f"Logged in as {name}" in out
    created = out.index(f"Room created: {room} (ID: ")
    room_id = out[created:].split("(ID: ", 1)[1].split(")", 1)[0]
    echo = out.index(f"[Room {room_id}] {name}: hello")
    left = out.index(f"You left room {room}.")
    assert created < echo < left
    assert "Password" not in out and "[create room: 1]" not in out  # no prompts in script output
    assert "Traceback" not in result.stderr


def test_piped_stdin_with_a_wrong_password_fails(chat_server):
    name = f"dave_{uuid.uuid4().hex[:8]}"
    first = run_piped(chat_server, "right\nq\n", "--name", name)  # registers the name with this password
    assert first.returncode == 0, first.stdout + first.stderr
    result = run_piped(chat_server, "wrong\n1\nroom\nhello\nq\n", "--name", name)
    assert result.returncode == 1
    assert "Login failed:" in result.stdout
    assert "Room created" not in result.stdout  # the rest of the script was not fed to other prompts
    assert "Traceback" not in result.stderr


def test_no_server_is_a_clear_message_and_a_failure():
    result = run_piped(("127.0.0.1", free_port()), "x\n")
    assert result.returncode == 1
    assert "Cannot connect to 127.0.0.1:" in result.stdout
    assert "Traceback" not in result.stderr
