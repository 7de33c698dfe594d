"""The console client's state machine, sans-I/O: what each typed line and each server frame mean.

:class:`ConsoleView` is fed what the user typed and the bytes the server
sent, and answers with the lines to print and the request to send. It owns
every decision (what a menu choice means, which reply ends a wait, when the
client ends), so whole dialogs are unit-tested with built ``chat_pb2``
messages: no socket, no terminal, no event loop. The wording of the lines is
in console_text.py; the I/O around the view in console_client.py and
console_terminal.py.

History (PROTOCOL.md 1.1): a join asks for the room's last messages; `/history`
pages back from the oldest one shown. With ``reconnect`` on, a dropped
connection is not the end: the view remembers the password, its room, the
room's epoch and the last seq it showed, and when the adapter has a new
connection it logs in again and resumes the room, saying how many messages
it missed (or that some could not be recovered); chat lines whose echo never
came are sent again with the same idempotency key, so the room gets them once.
"""

from __future__ import annotations

import enum
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError, Message

from chatcluster.common.frames import (
    HEADER_SIZE,
    MAX_CLIENT_FRAME,
    MAX_FRAME,
    SERVER_IDS,
    FrameDecoder,
    MsgId,
    ProtocolError,
    decode_body,
)
from chatcluster.console_text import (
    ROOM_HELP,
    chat_line,
    error_line,
    member_lines,
    page_end_line,
    printable,
    refusal,
    resumed_line,
    room_entered_lines,
    room_list_lines,
)
from chatcluster.proto import chat_pb2

EXIT_OK = 0
#: Server unreachable, connection lost, no answer, a script's login refused: anything a script must notice.
EXIT_FAILURE = 1
#: Ctrl-C, as shells report a death by SIGINT.
EXIT_INTERRUPTED = 130
#: Messages a join asks for, and one `/history` page.
HISTORY_ON_JOIN = 20
HISTORY_PAGE = 20
#: A resume the server asks to retry (its room is being restored) is tried this often, this far apart.
RESUME_TRIES = 10
RESUME_RETRY = 1.0


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


MENU_PROMPT = "[create room: 1] [join room: 2] [list rooms: 3] [quit: q] -> "
PROMPTS = {
    Stage.NAME: "Player name: ",
    Stage.PASSWORD: "Password: ",
    Stage.MENU: MENU_PROMPT,
    Stage.ROOM_NAME: "Name of the new room: ",
    Stage.ROOM_ID: "Id of the room to join: ",
}


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

    def __init__(self, name: str | None = None, *, interactive: bool = True, reconnect: bool = False) -> None:
        self.interactive = interactive
        #: A dropped connection is followed by a new one, a login and a resume (the adapter connects).
        self.reconnect = reconnect
        #: True from a dropped connection until the adapter has a new one (see reconnected()).
        self.reconnecting = False
        #: Requests the view wants sent because of what the server said (a resume after logging in again),
        #: each after a delay in seconds; the adapter takes them with take_outgoing() after each receive.
        self.outgoing: list[tuple[float, Message]] = []
        #: The current room's epoch, and the newest and oldest seq shown in it (0: none yet).
        self.epoch = 0
        self.last_seq = 0
        self.oldest_seq = 0
        self._password: str | None = None  # kept only to log in again after a drop (reconnect)
        self._relogin = False
        self._resume: tuple[chat_pb2.C_JOIN_ROOM_REQ, int, int] | None = None  # (request, since, tries)
        self._page_before = 0  # while a /history page is awaited: its chats are older than this
        self._key_base = secrets.randbits(62)  # idempotency key of chat line n: base + n (per client run)
        self._texts: dict[int, str] = {}  # client_msg_id -> text of a chat line whose echo has not come
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
        """The prompt for the next input line; in a room it says who and where."""
        if self.stage is Stage.ROOM:
            return f"{printable(self.name or '')}@{printable(self.room_name or '')}> "
        return PROMPTS[self.stage]

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
        if self.reconnect:
            self._password = line
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
        return self._request(chat_pb2.C_JOIN_ROOM_REQ(room_id=int(text), history=HISTORY_ON_JOIN),
                             MsgId.S_JOIN_ROOM_RES)

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
                return Step(member_lines(self.members))
            if verb == "/history":
                return self._page_back()
            if verb == "/help":
                return Step([ROOM_HELP])
            return Step([f"Unknown command {printable(verb)}. {ROOM_HELP}"])
        msg_id = self._next_client_msg_id
        step = self._request(chat_pb2.C_ROOM_CHAT_REQ(text=line, client_msg_id=msg_id,
                                                      idempotency_key=self._key_base + msg_id), None)
        if step.send is not None:
            self._unanswered.append(msg_id)
            self._texts[msg_id] = line
            self._next_client_msg_id += 1
        return step

    def _page_back(self) -> Step:
        """`/history`: the page before the oldest message shown (the newest, if none is)."""
        if self.oldest_seq == 1:
            return Step(["This is the beginning of the room: no older messages."])
        self._page_before = self.oldest_seq or 2**64 - 1
        step = self._request(chat_pb2.C_ROOM_HISTORY_REQ(before_seq=self.oldest_seq, limit=HISTORY_PAGE),
                             MsgId.S_ROOM_HISTORY_RES)
        step.lines.append("--- older messages ---")
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
        """The connection closed or broke: the end of this client (unless it was quitting anyway), or,
        with reconnect on and a login to repeat, the start of a reconnection (`reconnecting`)."""
        if self.exit_status is not None:
            return []
        detail = f" ({reason})" if reason else ""
        if self.reconnect and self.logged_in and self._password is not None:
            self.reconnecting = True
            self.awaiting = MsgId.S_LOGIN_RES  # typed lines wait until the client is back
            self.outgoing.clear()
            return [f"Connection to the server lost{detail}; reconnecting..."]
        self.exit_status = EXIT_FAILURE
        return [f"Connection to the server lost{detail}. Exiting."]

    def reconnected(self) -> Step:
        """The adapter has a new connection: log in again (the resume follows the login's answer)."""
        self.reconnecting = False
        self._relogin = True
        self._decoder = FrameDecoder(max_size=MAX_FRAME, accept=SERVER_IDS)  # a new stream
        step = self._request(chat_pb2.C_LOGIN_REQ(name=self.name or "", password=self._password or ""),
                             MsgId.S_LOGIN_RES)
        step.lines.append("Connected again; logging in...")
        return step

    def reconnect_failed(self, reason: str) -> list[str]:
        """No new connection could be made: the end of this client."""
        self.reconnecting = False
        self.awaiting = None
        self.exit_status = EXIT_FAILURE
        return [f"Could not reconnect ({reason}). Exiting."]

    def take_outgoing(self) -> list[tuple[float, Message]]:
        """The requests server traffic called for, each with the delay to send it after; empties the list."""
        out, self.outgoing = self.outgoing, []
        return out

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
        if self._relogin:
            return self._logged_in_again(res)
        if res.success:
            self.player_id = res.player_id
            self.stage = Stage.MENU
            lines = [f"Logged in as {printable(self.name or '')} (player ID: {res.player_id})."]
            if res.message:
                lines.append(f"Server: {printable(res.message)}")
            return lines
        return [f"Login failed: {refusal(res.message)}.", *self._login_refused()]

    def _logged_in_again(self, res: chat_pb2.S_LOGIN_RES) -> list[str]:
        """The login after a reconnection: resume the room the client was in, if any."""
        self._relogin = False
        if not res.success:
            self.exit_status = EXIT_FAILURE
            return [f"Could not log in again: {refusal(res.message)}. Exiting."]
        self.player_id = res.player_id
        if self.room_id is None:
            self.stage = Stage.MENU
            return ["Reconnected."]
        if self.epoch:
            req = chat_pb2.C_JOIN_ROOM_REQ(room_id=self.room_id, resume=True, since_seq=self.last_seq,
                                           epoch=self.epoch, history=HISTORY_ON_JOIN)
        else:  # a server without epochs (version 1.0): a plain join, and no promise
            req = chat_pb2.C_JOIN_ROOM_REQ(room_id=self.room_id, history=HISTORY_ON_JOIN)
        self._resume = (req, self.last_seq, 1)
        self.awaiting = MsgId.S_JOIN_ROOM_RES
        self.outgoing.append((0.0, req))
        return []

    def _resumed(self, res: chat_pb2.S_JOIN_ROOM_RES, since: int) -> list[str]:
        """The answer to the resume after a reconnection; the chat lines that never echoed go again."""
        if not res.success:
            room = self.room_id
            self._left_room()
            return [f"Reconnected, but room {room} could not be joined again: {refusal(res.message)}."]
        missed = res.head_seq - since
        if res.epoch != self.epoch or not res.recovered:
            self.last_seq = 0  # the history that follows is not a continuation of what was shown
        self.epoch = res.epoch
        self.members = {p.player_id: p.name for p in res.members}
        for msg_id in self._unanswered:
            self.outgoing.append((0.0, chat_pb2.C_ROOM_CHAT_REQ(
                text=self._texts[msg_id], client_msg_id=msg_id, idempotency_key=self._key_base + msg_id)))
        return [resumed_line(res.recovered, missed)]

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
        self._texts.clear()
        self.epoch = res.epoch
        self.last_seq = self.oldest_seq = 0
        lines = room_entered_lines(headline, res.message, self.members)
        if isinstance(res, chat_pb2.S_JOIN_ROOM_RES) and res.head_seq and res.oldest_seq:
            shown = min(HISTORY_ON_JOIN, res.head_seq - res.oldest_seq + 1)
            lines.append(f"--- the last {shown} message{'' if shown == 1 else 's'} ---")
        return lines

    def _room_refused(self, what: str, message: str) -> list[str]:
        if self.stage is not Stage.ROOM:
            self.stage = Stage.MENU
        return [f"Could not {what} the room: {refusal(message)}."]

    def _on_create_res(self, res: chat_pb2.S_CREATE_ROOM_RES) -> list[str]:
        self._answered(MsgId.S_CREATE_ROOM_RES)
        if not res.success:
            return self._room_refused("create", res.message)
        return self._enter_room(res, f"Room created: {printable(res.room.name)} (ID: {res.room.room_id})")

    def _on_join_res(self, res: chat_pb2.S_JOIN_ROOM_RES) -> list[str]:
        self._answered(MsgId.S_JOIN_ROOM_RES)
        if self._resume is not None:
            since = self._resume[1]
            self._resume = None
            return self._resumed(res, since)
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
            self._texts.pop(ntf.client_msg_id, None)
        if ntf.room_id == self.room_id and ntf.seq:
            if self._page_before and ntf.seq < self._page_before:  # a page of older messages
                self.oldest_seq = min(self.oldest_seq or ntf.seq, ntf.seq)
                return [chat_line(ntf)]
            if self.reconnect and ntf.seq <= self.last_seq:
                return []  # shown already: a resend's original, or history overlapping what was seen
            self.last_seq = ntf.seq
            self.oldest_seq = self.oldest_seq or ntf.seq
        return [chat_line(ntf)]

    def _on_history_res(self, res: chat_pb2.S_ROOM_HISTORY_RES) -> list[str]:
        self._answered(MsgId.S_ROOM_HISTORY_RES)
        self._page_before = 0
        if not res.success:
            return [f"Could not page back: {refusal(res.message)}."]
        if res.first_seq:
            self.oldest_seq = min(self.oldest_seq or res.first_seq, res.first_seq)
        elif not res.more:
            self.oldest_seq = 1  # nothing older at all
        return [page_end_line(res)]

    def _on_leave_ack(self, ack: chat_pb2.S_LEAVE_ROOM_ACK) -> list[str]:
        self._answered(MsgId.S_LEAVE_ROOM_ACK)
        if not ack.success:
            return [f"Could not leave the room: {refusal(ack.message)}."]
        lines = [f"You left room {printable(self.room_name or '')}. Back to the menu."]
        self._left_room()
        return lines

    def _left_room(self) -> None:
        self.room_id = None
        self.room_name = None
        self.members = {}
        self._unanswered.clear()
        self._texts.clear()
        self.epoch = self.last_seq = self.oldest_seq = 0
        self.stage = Stage.MENU

    def _on_room_list(self, res: chat_pb2.S_ROOM_LIST_RES) -> list[str]:
        self._answered(MsgId.S_ROOM_LIST_RES)
        return room_list_lines(res)

    def _on_error(self, err: chat_pb2.S_ERROR) -> list[str]:
        if self._resume is not None and self.awaiting is MsgId.S_JOIN_ROOM_RES:
            return self._resume_refused(err)
        lines = [error_line(err)]
        if self._page_before and self.awaiting is MsgId.S_ROOM_HISTORY_RES:
            self._page_before = 0
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

    def _resume_refused(self, err: chat_pb2.S_ERROR) -> list[str]:
        """The resume got an S_ERROR: a room being restored is tried again shortly; anything else ends it."""
        req, since, tries = self._resume  # type: ignore[misc]
        if err.code == chat_pb2.UNAVAILABLE and tries < RESUME_TRIES:
            self._resume = (req, since, tries + 1)
            self.outgoing.append((RESUME_RETRY, req))
            return [f"{error_line(err)}; trying again..."]
        self._resume = None
        self.awaiting = None
        room = self.room_id
        self._left_room()
        return [error_line(err), f"Reconnected, but room {room} could not be resumed. Back to the menu."]

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
        chat_pb2.S_ROOM_HISTORY_RES: _on_history_res,
    }


__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "HISTORY_ON_JOIN", "HISTORY_PAGE", "MENU_PROMPT", "PROMPTS",
           "ConsoleView", "Stage", "Step"]
