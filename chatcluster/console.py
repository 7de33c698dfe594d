"""`chatctl client`: the seed's console chat client, made pleasant.

Two layers, as everywhere in chatcluster:

* :class:`ConsoleView` is sans-I/O. It is fed what the user typed and what the
  server sent, and answers with the lines to print and the request to send. It
  owns every decision (what a menu choice means, how a chat line looks, which
  reply ends a wait), so the whole dialog can be unit-tested with built
  ``chat_pb2`` messages: no socket, no terminal, no event loop.
* The asyncio adapter (:func:`run`) only moves bytes and lines: a task reads
  frames and prints the view's lines, another reads the keyboard and sends what
  the view returns. On a terminal the input line is a prompt_toolkit prompt
  inside ``patch_stdout()``, so chat arriving while the user types is printed
  above the line being edited instead of through it. When stdin is not a TTY it
  reads plain lines, so scripts can pipe a conversation in.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError, Message

from chatcluster.common.config import DEFAULT_PORT
from chatcluster.common.frames import (
    HEADER_SIZE,
    MAX_CLIENT_FRAME,
    MAX_FRAME,
    SERVER_IDS,
    FrameDecoder,
    MsgId,
    ProtocolError,
    decode_body,
    encode,
)
from chatcluster.proto import chat_pb2

try:
    import termios
except ImportError:  # Windows: prompt_toolkit reads every line, the password included
    termios = None

EXIT_OK = 0
#: Server unreachable, connection lost, no answer, a script's login refused: anything a script must notice.
EXIT_FAILURE = 1
#: Ctrl-C, as shells report a death by SIGINT.
EXIT_INTERRUPTED = 130

DEFAULT_HOST = "127.0.0.1"
#: A request unanswered this long means the server is gone in all but name: say so and stop.
ANSWER_TIMEOUT = 15.0
#: How long quitting waits for the echoes of chat lines already sent (a piped script ends right after them).
ECHO_GRACE = 3.0
#: Send C_PING after this much idleness, so idle-timeouts and NAT boxes keep the connection.
PING_INTERVAL = 15.0

MENU_PROMPT = "[create room: 1] [join room: 2] [list rooms: 3] [quit: q] -> "
ROOM_HELP = (
    "Commands: /exit leaves the room, /members lists who is here, /quit quits, /help shows this. "
    "Anything else is sent to the room."
)


class Stage(enum.Enum):
    """What the next line the user types means."""

    NAME = "name"  # the player name, for C_LOGIN_REQ
    PASSWORD = "password"  # the password (read without echo)
    MENU = "menu"  # a menu choice: 1, 2, 3 or q
    ROOM_NAME = "room name"  # the name of the room to create
    ROOM_ID = "room id"  # the id of the room to join
    ROOM = "room"  # in a room: chat text or a /command


@dataclass(slots=True)
class Step:
    """The view's answer to user input: lines to print now, and at most one request to send."""

    lines: list[str] = field(default_factory=list)
    send: Message | None = None


def printable(text: str) -> str:
    """`text` with control characters shown as escapes.

    Names and chat text come from other users: a raw ESC could drive the
    terminal, and a raw newline could forge a line that seems to come from
    someone else, so neither reaches the screen as is.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def error_name(code: int) -> str:
    """The ErrorCode's name, or `code N` for a code newer than this client."""
    try:
        return chat_pb2.ErrorCode.Name(code)
    except ValueError:
        return f"code {code}"


class ConsoleView:
    """The console client's state machine, sans-I/O.

    Feed it user input (:meth:`handle_input`, :meth:`handle_eof`) and server
    traffic (:meth:`receive_bytes`, :meth:`receive_frame`, :meth:`receive`); it
    returns the lines to print (and, for input, the request to send) and keeps
    the state an adapter needs: :attr:`stage` and :attr:`prompt` for the next
    input, :attr:`awaiting` while a request's answer is due (read no input
    meanwhile), :attr:`exit_status` once the client should end.

    ``interactive`` says whether a person is typing. Then a refused login asks
    again; a script (piped stdin) cannot answer differently, so it ends with
    EXIT_FAILURE instead of feeding its remaining lines to the wrong prompts.
    """

    def __init__(self, name: str | None = None, *, interactive: bool = True) -> None:
        self.interactive = interactive
        #: The name given on the command line: login never asks for it.
        self.fixed_name = name or None
        self.name: str | None = self.fixed_name
        self.player_id: int | None = None
        self.room_id: int | None = None
        self.room_name: str | None = None
        #: Members of the current room, player id -> name, in the server's order.
        self.members: dict[int, str] = {}
        self.stage = Stage.PASSWORD if self.fixed_name else Stage.NAME
        #: The response (MsgId) the last request waits for, or None.
        self.awaiting: MsgId | None = None
        #: Set when the client should end: EXIT_OK, EXIT_FAILURE or EXIT_INTERRUPTED.
        self.exit_status: int | None = None
        self._next_client_msg_id = 1
        # client_msg_ids of our chat lines not echoed yet. An S_ERROR that arrives while some are in
        # flight answers the oldest of them (RATE_LIMITED, TOO_LARGE...), not the request being awaited.
        self._unanswered: deque[int] = deque()
        self._decoder = FrameDecoder(max_size=MAX_FRAME, accept=SERVER_IDS)

    # ----------------------------------------------------------------- state

    @property
    def logged_in(self) -> bool:
        return self.player_id is not None

    @property
    def in_room(self) -> bool:
        return self.room_id is not None

    @property
    def unanswered_chats(self) -> int:
        """Chat lines sent whose echo (or refusal) has not come back yet."""
        return len(self._unanswered)

    @property
    def prompt(self) -> str:
        """The prompt for the next input line."""
        if self.stage is Stage.NAME:
            return "Player name: "
        if self.stage is Stage.PASSWORD:
            return "Password: "
        if self.stage is Stage.MENU:
            return MENU_PROMPT
        if self.stage is Stage.ROOM_NAME:
            return "Name of the new room: "
        if self.stage is Stage.ROOM_ID:
            return "Id of the room to join: "
        return f"{printable(self.name or '')}@{printable(self.room_name or '')}> "

    @property
    def prompt_is_secret(self) -> bool:
        """True when the next input must not be echoed (the password)."""
        return self.stage is Stage.PASSWORD

    # ------------------------------------------------------------ user input

    def handle_input(self, line: str, stage: Stage | None = None) -> Step:
        """Interpret one line the user typed (without its newline).

        `stage` is the stage the prompt was shown for. If server traffic
        changed the stage while the user was typing (the room went away, say),
        the line was meant for something else and is not acted on.
        """
        if self.exit_status is not None:
            return Step()
        if self.awaiting is not None:
            return Step([f"Still waiting for the server's {self.awaiting.name}; input ignored."])
        if stage is not None and stage is not self.stage:
            return Step([f"Not acted on (things changed while you typed): {printable(line)}"])
        line = line.rstrip("\r\n")
        handler = {
            Stage.NAME: self._on_name,
            Stage.PASSWORD: self._on_password,
            Stage.MENU: self._on_menu,
            Stage.ROOM_NAME: self._on_room_name,
            Stage.ROOM_ID: self._on_room_id,
            Stage.ROOM: self._on_room_line,
        }[self.stage]
        return handler(line)

    def handle_eof(self) -> Step:
        """Ctrl-D, or the end of a piped script: quit (closing the connection leaves the room)."""
        if self.exit_status is not None:
            return Step()
        if not self.logged_in:
            self.exit_status = EXIT_FAILURE
            return Step(["End of input before login: quitting."])
        self.exit_status = EXIT_OK
        return Step(["Bye."])

    def interrupted(self) -> list[str]:
        """Ctrl-C: quit at once."""
        self.exit_status = EXIT_INTERRUPTED
        return ["Interrupted."]

    def _request(self, message: Message, awaiting: MsgId | None) -> Step:
        """A request to send, unless its frame is over the server's limit (which would cost the connection)."""
        size = HEADER_SIZE + message.ByteSize()
        if size > MAX_CLIENT_FRAME:
            return Step([f"Too long: {size} bytes encoded, the server takes at most {MAX_CLIENT_FRAME}. Not sent."])
        self.awaiting = awaiting
        return Step([], message)

    def _on_name(self, line: str) -> Step:
        name = line.strip()
        if not name:
            return Step(["A player name is needed."])
        self.name = name
        self.stage = Stage.PASSWORD
        return Step()

    def _on_password(self, line: str) -> Step:
        return self._request(chat_pb2.C_LOGIN_REQ(name=self.name or "", password=line), MsgId.S_LOGIN_RES)

    def _on_menu(self, line: str) -> Step:
        choice = line.strip().lower()
        if choice == "1":
            self.stage = Stage.ROOM_NAME
            return Step()
        if choice == "2":
            self.stage = Stage.ROOM_ID
            return Step()
        if choice == "3":
            return self._request(chat_pb2.C_ROOM_LIST_REQ(), MsgId.S_ROOM_LIST_RES)
        if choice in ("q", "quit", "/quit"):
            self.exit_status = EXIT_OK
            return Step(["Bye."])
        if not choice:
            return Step()
        return Step([f"Unknown choice {printable(line.strip())!r}: type 1, 2, 3 or q."])

    def _on_room_name(self, line: str) -> Step:
        self.stage = Stage.MENU
        name = line.strip()
        if not name:
            return Step(["No name given: back to the menu."])
        return self._request(chat_pb2.C_CREATE_ROOM_REQ(name=name), MsgId.S_CREATE_ROOM_RES)

    def _on_room_id(self, line: str) -> Step:
        self.stage = Stage.MENU
        text = line.strip().lstrip("#")
        if not text:
            return Step(["No room id given: back to the menu."])
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**64:
            return Step([f"Not a room id: {printable(line.strip())!r} (room ids are the numbers that 3 lists)."])
        return self._request(chat_pb2.C_JOIN_ROOM_REQ(room_id=int(text)), MsgId.S_JOIN_ROOM_RES)

    def _on_room_line(self, line: str) -> Step:
        command = line.strip()
        if not command:
            return Step()
        if command.startswith("/"):
            verb = command.split()[0].lower()
            if verb == "/exit":
                return self._request(chat_pb2.C_LEAVE_ROOM_REQ(), MsgId.S_LEAVE_ROOM_ACK)
            if verb == "/quit":
                self.exit_status = EXIT_OK
                return Step(["Bye."])
            if verb == "/members":
                return Step(self._member_lines())
            if verb == "/help":
                return Step([ROOM_HELP])
            return Step([f"Unknown command {printable(verb)}. {ROOM_HELP}"])
        step = self._request(chat_pb2.C_ROOM_CHAT_REQ(text=line, client_msg_id=self._next_client_msg_id), None)
        if step.send is not None:
            self._unanswered.append(self._next_client_msg_id)
            self._next_client_msg_id += 1
        return step

    # ----------------------------------------------------------- server side

    def receive_bytes(self, data: bytes) -> list[str]:
        """Bytes as TCP delivered them: every whole frame in them, in order.

        A stream that cannot be framed (bad size, unknown id) cannot be
        resynchronised: that ends the client with EXIT_FAILURE.
        """
        lines: list[str] = []
        self._decoder.feed(data)
        try:
            for msg_id, body in self._decoder.frames():
                lines += self.receive_frame(msg_id, body)
        except ProtocolError as exc:
            self.exit_status = EXIT_FAILURE
            lines.append(f"The server sent a broken frame ({exc.message}); disconnecting.")
        return lines

    def receive_frame(self, msg_id: int, body: bytes) -> list[str]:
        """One frame's id and body. An undecodable body is reported and skipped: the stream is still in sync."""
        try:
            message = decode_body(msg_id, body)
        except DecodeError:
            return [f"(The server sent an undecodable {MsgId(msg_id).name}; ignored.)"]
        return self.receive(message)

    def receive(self, message: Message) -> list[str]:
        """One decoded server message: update the state, return the lines to print."""
        handler = self._handlers.get(type(message))
        if handler is None:
            return [f"(Unexpected {type(message).__name__} from the server; ignored.)"]
        return handler(self, message)

    def connection_lost(self, reason: str | None = None) -> list[str]:
        """The connection closed or broke: the end of this client (unless it was quitting anyway)."""
        if self.exit_status is not None:
            return []
        self.exit_status = EXIT_FAILURE
        detail = f" ({reason})" if reason else ""
        return [f"Connection to the server lost{detail}. Exiting."]

    def no_answer(self, seconds: float) -> list[str]:
        """The awaited answer did not come: a server that stays silent is treated as gone."""
        what = self.awaiting.name if self.awaiting is not None else "answer"
        self.awaiting = None
        self.exit_status = EXIT_FAILURE
        return [f"No {what} from the server in {seconds:g} s; disconnecting."]

    def _answered(self, response: MsgId) -> None:
        if self.awaiting is response:
            self.awaiting = None

    def _on_login_res(self, res: chat_pb2.S_LOGIN_RES) -> list[str]:
        self._answered(MsgId.S_LOGIN_RES)
        if res.success:
            self.player_id = res.player_id
            self.stage = Stage.MENU
            lines = [f"Logged in as {printable(self.name or '')} (player ID: {res.player_id})."]
            if res.message:
                lines.append(f"Server: {printable(res.message)}")
            return lines
        return [f"Login failed: {printable(res.message) or 'refused by the server'}.", *self._login_refused()]

    def _login_refused(self) -> list[str]:
        if not self.interactive:
            self.exit_status = EXIT_FAILURE
            return []
        self.name = self.fixed_name
        self.stage = Stage.PASSWORD if self.fixed_name else Stage.NAME
        return ["Try again."]

    def _enter_room(self, res: chat_pb2.S_CREATE_ROOM_RES | chat_pb2.S_JOIN_ROOM_RES, headline: str) -> list[str]:
        self.room_id = res.room.room_id
        self.room_name = res.room.name
        self.members = {p.player_id: p.name for p in res.members}
        self.stage = Stage.ROOM
        self._unanswered.clear()
        # The server's message (say, that it had to truncate the member list) goes under the headline.
        server = [f"Server: {printable(res.message)}"] if res.message else []
        return [
            "=====",
            headline,
            *server,
            "Start chatting! (/exit leaves the room, /help lists the commands)",
            *self._member_lines(),
            "=====",
        ]

    def _member_lines(self) -> list[str]:
        return ["--- members ---"] + [f"- {printable(n)} (ID: {pid})" for pid, n in self.members.items()]

    def _room_refused(self, what: str, message: str) -> list[str]:
        if self.stage is not Stage.ROOM:
            self.stage = Stage.MENU
        return [f"Could not {what} the room: {printable(message) or 'refused by the server'}."]

    def _on_create_res(self, res: chat_pb2.S_CREATE_ROOM_RES) -> list[str]:
        self._answered(MsgId.S_CREATE_ROOM_RES)
        if not res.success:
            return self._room_refused("create", res.message)
        return self._enter_room(res, f"Room created: {printable(res.room.name)} (ID: {res.room.room_id})")

    def _on_join_res(self, res: chat_pb2.S_JOIN_ROOM_RES) -> list[str]:
        self._answered(MsgId.S_JOIN_ROOM_RES)
        if not res.success:
            return self._room_refused("join", res.message)
        return self._enter_room(res, f"Joined room {printable(res.room.name)} (ID: {res.room.room_id})")

    def _where(self, room_id: int) -> str:
        """'' for the current room; ' room N' for a notice about another one (late or stray)."""
        return "" if room_id == self.room_id else f" room {room_id}"

    def _on_join_ntf(self, ntf: chat_pb2.S_JOIN_ROOM_NTF) -> list[str]:
        if ntf.room_id == self.room_id:
            self.members[ntf.player.player_id] = ntf.player.name
        return [f"{printable(ntf.player.name)} joined{self._where(ntf.room_id)}."]

    def _on_leave_ntf(self, ntf: chat_pb2.S_LEAVE_ROOM_NTF) -> list[str]:
        if ntf.room_id == self.room_id:
            self.members.pop(ntf.player.player_id, None)
        return [f"{printable(ntf.player.name)} left{self._where(ntf.room_id)}."]

    def _on_chat_ntf(self, ntf: chat_pb2.S_ROOM_CHAT_NTF) -> list[str]:
        if ntf.sender.player_id == self.player_id and ntf.client_msg_id in self._unanswered:
            self._unanswered.remove(ntf.client_msg_id)
        return [f"[Room {ntf.room_id}] {printable(ntf.sender.name)}: {printable(ntf.text)}"]

    def _on_leave_ack(self, ack: chat_pb2.S_LEAVE_ROOM_ACK) -> list[str]:
        self._answered(MsgId.S_LEAVE_ROOM_ACK)
        if not ack.success:
            return [f"Could not leave the room: {printable(ack.message) or 'refused by the server'}."]
        lines = [f"You left room {printable(self.room_name or '')}. Back to the menu."]
        self._left_room()
        return lines

    def _left_room(self) -> None:
        self.room_id = None
        self.room_name = None
        self.members = {}
        self._unanswered.clear()
        self.stage = Stage.MENU

    def _on_room_list(self, res: chat_pb2.S_ROOM_LIST_RES) -> list[str]:
        self._answered(MsgId.S_ROOM_LIST_RES)
        if not res.rooms:
            return ["No rooms yet: create one with 1."]
        lines = [f"--- rooms ({len(res.rooms)}) ---"]
        for r in res.rooms:
            plural = "" if r.member_count == 1 else "s"
            lines.append(f"- Room {r.room_id}: {printable(r.name)} ({r.member_count} member{plural})")
        return lines

    def _on_error(self, err: chat_pb2.S_ERROR) -> list[str]:
        lines = [f"Error {error_name(err.code)}: {printable(err.message) or '(no message)'}"]
        if self._unanswered:
            self._unanswered.popleft()  # the answer to the oldest chat line in flight
        elif self.awaiting is not None:
            # The awaited request was refused. Nothing changed, so go back to where it was made.
            awaiting, self.awaiting = self.awaiting, None
            if awaiting is MsgId.S_LOGIN_RES:
                lines += self._login_refused()
            elif self.stage is not Stage.ROOM:
                self.stage = Stage.MENU
        if err.code == chat_pb2.NOT_IN_ROOM and self.in_room:
            self._left_room()
            lines.append("You are not in a room any more. Back to the menu.")
        return lines

    def _on_pong(self, _pong: chat_pb2.S_PONG) -> list[str]:
        return []

    _handlers: dict[type[Message], Callable[[ConsoleView, Message], list[str]]] = {
        chat_pb2.S_LOGIN_RES: _on_login_res,
        chat_pb2.S_CREATE_ROOM_RES: _on_create_res,
        chat_pb2.S_JOIN_ROOM_RES: _on_join_res,
        chat_pb2.S_JOIN_ROOM_NTF: _on_join_ntf,
        chat_pb2.S_ROOM_CHAT_NTF: _on_chat_ntf,
        chat_pb2.S_LEAVE_ROOM_ACK: _on_leave_ack,
        chat_pb2.S_LEAVE_ROOM_NTF: _on_leave_ntf,
        chat_pb2.S_ROOM_LIST_RES: _on_room_list,
        chat_pb2.S_ERROR: _on_error,
        chat_pb2.S_PONG: _on_pong,
    }


# ---------------------------------------------------------------------------
# I/O adapter: asyncio streams, the terminal, stdin. No decisions below here.
# ---------------------------------------------------------------------------


class _Screen:
    """Where lines and prompts go: plain stdout (a pipe, a file, or a terminal before prompt_toolkit)."""

    def write(self, text: str) -> None:
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except BrokenPipeError:  # stdout piped into something that quit (| head): carry on silently
            pass

    def lines(self, lines: Iterable[str]) -> None:
        text = "".join(f"{line}\n" for line in lines)
        if text:
            self.write(text)


class _PromptToolkitScreen(_Screen):
    """Output while prompt_toolkit owns the terminal.

    print_formatted_text prints above the prompt while one is up and at once
    otherwise, in call order. patch_stdout's proxy (installed as well, for any
    other print) hands text to a thread that batches it, so a prompt drawn right
    after a reply could land above that reply.
    """

    def __init__(self) -> None:
        from prompt_toolkit import print_formatted_text

        self._print = print_formatted_text

    def write(self, text: str) -> None:
        self._print(text, end="")


class _PipeInput:
    """Lines from a non-TTY stdin (pipe, file, /dev/null), read by a daemon thread.

    A thread because regular files cannot be polled; a daemon one so that a
    read still blocked when the client quits does not keep the process alive.
    No prompts are printed: a script's output holds only what happened.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = loop
        threading.Thread(target=self._pump, name="chatctl-stdin", daemon=True).start()

    def _pump(self) -> None:
        try:
            while raw := sys.stdin.buffer.readline():
                self._put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        except (OSError, ValueError, AttributeError):  # closed or missing stdin: same as its end
            pass
        self._put(None)

    def _put(self, item: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the client has quit
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    async def read(self, prompt: str, secret: bool) -> str | None:
        return await self._queue.get()


async def _read_tty_line(screen: _Screen, prompt: str, secret: bool) -> str | None:
    """One line from the terminal in cooked mode, without blocking the event loop; None at end of input.

    Used until login, when no chat can arrive yet. The password goes through
    here rather than prompt_toolkit because prompt_toolkit's prompt on a dumb
    terminal echoes every character, password or not; here the terminal's own
    echo is switched off, as getpass does.
    """
    assert termios is not None
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    if secret:
        quiet = termios.tcgetattr(fd)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(fd, termios.TCSADRAIN, quiet)  # DRAIN, not FLUSH: keep what was typed ahead
    done: asyncio.Future[bytes | None] = loop.create_future()
    buf = bytearray()

    def on_readable() -> None:
        try:
            chunk = os.read(fd, 4096)  # canonical mode: at most one line per read
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        buf.extend(chunk)
        if not done.done() and (not chunk or b"\n" in buf):
            done.set_result(bytes(buf) if buf else None)

    try:
        screen.write(prompt)
        loop.add_reader(fd, on_readable)
        data = await done
    finally:
        loop.remove_reader(fd)
        if secret:
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            screen.write("\n")  # the Enter that was not echoed
    if data is None:
        return None
    return data.decode("utf-8", "replace").split("\n", 1)[0].rstrip("\r")


class _TerminalInput:
    """Keyboard input on a terminal: cooked-mode lines until login, then prompt_toolkit.

    After login chat can arrive at any moment; prompt_toolkit keeps the line
    being typed intact below the incoming lines.
    """

    def __init__(self, view: ConsoleView, screen: _Screen, use_prompt_toolkit: bool = True) -> None:
        self._view = view
        self._screen = screen
        self._session = None
        if use_prompt_toolkit or termios is None:
            from prompt_toolkit import PromptSession

            self._session = PromptSession()

    async def read(self, prompt: str, secret: bool) -> str | None:
        if termios is not None and (self._session is None or not self._view.logged_in):
            return await _read_tty_line(self._screen, prompt, secret)
        try:
            return await self._session.prompt_async(prompt, is_password=secret)
        except EOFError:  # Ctrl-D
            return None


class _Client:
    """One connection: the reader task, the input loop and the keepalive around one ConsoleView."""

    def __init__(self, view: ConsoleView, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 source: _PipeInput | _TerminalInput, screen: _Screen) -> None:
        self.view = view
        self.reader = reader
        self.writer = writer
        self.source = source
        self.emit = screen.lines
        self.changed = asyncio.Event()  # set after each batch of server traffic
        self.last_sent = time.monotonic()
        self.reading = True  # False once the connection has ended
        # Printed after the prompt is gone, so the connection-lost notice is the last thing on the screen.
        self.farewell: list[str] = []

    async def run(self) -> int:
        reading = asyncio.create_task(self._read_loop(), name="chatctl-reader")
        typing = asyncio.create_task(self._input_loop(), name="chatctl-input")
        pinging = asyncio.create_task(self._keepalive(), name="chatctl-ping")
        try:
            await asyncio.wait({reading, typing}, return_when=asyncio.FIRST_COMPLETED)
            for task in (typing, reading):  # a bug should surface as a bug, not as a hang
                if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
        finally:
            for task in (typing, reading, pinging):
                task.cancel()
            await asyncio.gather(typing, reading, pinging, return_exceptions=True)
            self.emit(self.farewell)
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        status = self.view.exit_status
        return EXIT_OK if status is None else status

    async def _read_loop(self) -> None:
        """Print what the server sends until the connection ends or its traffic ends the client.

        It goes on reading after the user quits: the input loop may still wait for echoes.
        """
        view = self.view
        while True:
            try:
                data = await self.reader.read(65536)
            except OSError as exc:
                self.farewell = view.connection_lost(exc.strerror or type(exc).__name__)
                break
            if not data:
                self.farewell = view.connection_lost("closed by the server")
                break
            running = view.exit_status is None
            self.emit(view.receive_bytes(data))
            self.changed.set()
            if running and view.exit_status is not None:  # a script's refused login, a broken frame
                break
        self.reading = False
        self.changed.set()

    async def _until(self, done: Callable[[], bool], timeout: float) -> bool:
        """Wait until done(), re-checked after each batch of server traffic; False on timeout."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def _input_loop(self) -> None:
        view = self.view
        while view.exit_status is None:
            if view.awaiting is not None:
                answered = await self._until(lambda: view.awaiting is None or view.exit_status is not None,
                                             ANSWER_TIMEOUT)
                if not answered:
                    self.emit(view.no_answer(ANSWER_TIMEOUT))
                continue
            stage = view.stage
            try:
                line = await self.source.read(view.prompt, view.prompt_is_secret)
            except KeyboardInterrupt:  # Ctrl-C in a prompt_toolkit prompt (elsewhere it is SIGINT)
                self.emit(view.interrupted())
                break
            step = view.handle_eof() if line is None else view.handle_input(line, stage)
            self.emit(step.lines)
            if step.send is not None:
                await self._send(step.send)
        if view.exit_status == EXIT_OK and view.unanswered_chats:
            # A script that quits right after its last line still sees that line come back.
            await self._until(lambda: not view.unanswered_chats or not self.reading, ECHO_GRACE)

    async def _send(self, message: Message) -> None:
        self.last_sent = time.monotonic()
        try:
            self.writer.write(encode(message))
            await self.writer.drain()
        except OSError:
            pass  # the reader meets the same broken connection and reports it

    async def _keepalive(self) -> None:
        while True:
            idle = time.monotonic() - self.last_sent
            if idle < PING_INTERVAL:
                await asyncio.sleep(PING_INTERVAL - idle)
            elif self.view.logged_in:
                await self._send(chat_pb2.C_PING(client_time_us=time.time_ns() // 1000))
            else:
                await asyncio.sleep(PING_INTERVAL)


async def _session(host: str, port: int, name: str | None) -> int:
    screen = _Screen()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        screen.lines([f"Cannot connect to {host}:{port}: {reason}."])
        return EXIT_FAILURE
    interactive = sys.stdin is not None and sys.stdin.isatty()
    view = ConsoleView(name, interactive=interactive)
    screen.lines([f"Connected to {host}:{port}."])
    if not interactive:
        return await _Client(view, reader, writer, _PipeInput(asyncio.get_running_loop()), screen).run()
    if not sys.stdout.isatty():  # typing at a terminal, output to a file or pipe: no screen to manage
        return await _Client(view, reader, writer, _TerminalInput(view, screen, False), screen).run()
    from prompt_toolkit.patch_stdout import patch_stdout

    with patch_stdout():
        screen = _PromptToolkitScreen()
        return await _Client(view, reader, writer, _TerminalInput(view, screen), screen).run()


def run(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, name: str | None = None) -> int:
    """Run the console client until the user quits or the connection ends; return the exit status.

    0 when the user quits (q, /quit, Ctrl-D, end of piped input); 1 when the
    server cannot be reached, closes the connection, stops answering, or (for
    piped input) refuses the login; 130 on Ctrl-C. Failures are reported in
    one plain line, never a traceback.
    """
    try:
        return asyncio.run(_session(host, port, name))
    except KeyboardInterrupt:
        _Screen().lines(["", "Interrupted."])
        return EXIT_INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """`python -m chatcluster.console`: the client without the chatctl command around it."""
    parser = argparse.ArgumentParser(prog="python -m chatcluster.console",
                                     description="Interactive console chat client (PROTOCOL.md v1).")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"server address (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"server port (default {DEFAULT_PORT})")
    parser.add_argument("--name", default=None, help="player name (asked for when not given)")
    args = parser.parse_args(argv)
    return run(args.host, args.port, args.name)


__all__ = [
    "ANSWER_TIMEOUT", "DEFAULT_HOST", "DEFAULT_PORT", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK",
    "MENU_PROMPT", "ConsoleView", "Stage", "Step", "error_name", "main", "printable", "run",
]

if __name__ == "__main__":
    sys.exit(main())
