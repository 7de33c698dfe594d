"""How the server's messages read on the console: banners, lists, chat lines, errors.

Pure functions of protobuf messages, apart from the state machine
(console_view.py) so that it reads as decisions, not layout. Text that other
users wrote (names, room names, chat, server messages) reaches a line only
through :func:`printable`.
"""

from __future__ import annotations

from collections.abc import Mapping

from chatcluster.proto import chat_pb2

ROOM_HELP = (
    "Commands: /exit leaves the room, /members lists who is here, /history shows older messages, /quit quits, "
    "/help shows this. Anything else is sent to the room."
)


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


def refusal(message: str) -> str:
    """The server's reason for a refusal, or a stand-in when it gave none."""
    return printable(message) or "refused by the server"


def member_lines(members: Mapping[int, str]) -> list[str]:
    """The member list, as `/members` and entering a room show it: player id -> name, in the server's order."""
    return ["--- members ---"] + [f"- {printable(name)} (ID: {pid})" for pid, name in members.items()]


def room_entered_lines(headline: str, server_message: str, members: Mapping[int, str]) -> list[str]:
    """The banner on entering a room; the server's message (a truncated member list, say) under the headline."""
    server = [f"Server: {printable(server_message)}"] if server_message else []
    return [
        "=====",
        headline,
        *server,
        "Start chatting! (/exit leaves the room, /help lists the commands)",
        *member_lines(members),
        "=====",
    ]


def room_list_lines(res: chat_pb2.S_ROOM_LIST_RES) -> list[str]:
    """The answer to menu choice 3."""
    if not res.rooms:
        return ["No rooms yet: create one with 1."]
    lines = [f"--- rooms ({len(res.rooms)}) ---"]
    for r in res.rooms:
        plural = "" if r.member_count == 1 else "s"
        lines.append(f"- Room {r.room_id}: {printable(r.name)} ({r.member_count} member{plural})")
    return lines


def chat_line(ntf: chat_pb2.S_ROOM_CHAT_NTF) -> str:
    """One chat message; the sender's own echo reads the same as anyone else's."""
    return f"[Room {ntf.room_id}] {printable(ntf.sender.name)}: {printable(ntf.text)}"


def resumed_line(recovered: bool, missed: int) -> str:
    """After a reconnection: what the resume got back."""
    if not recovered:
        return "reconnected; some messages could not be recovered"
    return f"reconnected; {missed} missed message{'' if missed == 1 else 's'}"


def page_end_line(res: chat_pb2.S_ROOM_HISTORY_RES) -> str:
    """Under a page of `/history`."""
    if not res.first_seq:
        return "--- no older messages ---"
    where = "/history for older ones" if res.more else "the beginning of the room"
    return f"--- messages {res.first_seq} to {res.last_seq}; {where} ---"


def error_line(err: chat_pb2.S_ERROR) -> str:
    return f"Error {error_name(err.code)}: {printable(err.message) or '(no message)'}"


__all__ = [
    "ROOM_HELP", "chat_line", "error_line", "error_name", "member_lines", "page_end_line", "printable", "refusal",
    "resumed_line", "room_entered_lines", "room_list_lines",
]
