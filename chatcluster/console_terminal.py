"""The console client's terminal: where its lines go and where the typed lines come from.

On a terminal the input line is a prompt_toolkit prompt inside
``patch_stdout()``, so chat arriving while the user types is printed above
the line being edited instead of through it. Until login (no chat can arrive
yet) lines are read in the terminal's cooked mode, with its echo off for the
password. When stdin is not a TTY, plain lines are read and no prompt is
shown, so a script can pipe a conversation in and its output holds only what
happened. Nothing here decides anything: console_view.py does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

try:
    import termios
except ImportError:  # Windows: prompt_toolkit reads every line, the password included
    termios = None


class LineSource(Protocol):
    """Where typed lines come from: a prompt shown (unless piped), one line back, None at end of input."""

    async def read(self, prompt: str, secret: bool) -> str | None: ...


class Screen:
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


class PromptToolkitScreen(Screen):
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


class PipeInput:
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


async def _read_cooked_line(screen: Screen, prompt: str, secret: bool) -> str | None:
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


class TerminalInput:
    """Keyboard input on a terminal: cooked-mode lines until login, then prompt_toolkit.

    After login chat can arrive at any moment; prompt_toolkit keeps the line
    being typed intact below the incoming lines.
    """

    def __init__(self, screen: Screen, chat_may_arrive: Callable[[], bool], use_prompt_toolkit: bool = True) -> None:
        self._screen = screen
        self._chat_may_arrive = chat_may_arrive
        self._session = None
        if use_prompt_toolkit or termios is None:
            from prompt_toolkit import PromptSession

            self._session = PromptSession()

    async def read(self, prompt: str, secret: bool) -> str | None:
        if termios is not None and (self._session is None or not self._chat_may_arrive()):
            return await _read_cooked_line(self._screen, prompt, secret)
        try:
            return await self._session.prompt_async(prompt, is_password=secret)
        except EOFError:  # Ctrl-D
            return None


def stdin_is_terminal() -> bool:
    """True when a person types (a TTY); False for a pipe, a file or no stdin at all."""
    return sys.stdin is not None and sys.stdin.isatty()


@contextlib.contextmanager
def terminal(screen: Screen, chat_may_arrive: Callable[[], bool]) -> Iterator[tuple[LineSource, Screen]]:
    """The input and output for this stdin and stdout, for as long as the client runs.

    prompt_toolkit manages the screen only when both ends are a terminal:
    typing at a terminal with output to a file needs no line kept intact.
    Must be entered inside the running event loop (a pipe's reader hands
    lines to it).
    """
    if not stdin_is_terminal():
        yield PipeInput(asyncio.get_running_loop()), screen
    elif not sys.stdout.isatty():
        yield TerminalInput(screen, chat_may_arrive, use_prompt_toolkit=False), screen
    else:
        from prompt_toolkit.patch_stdout import patch_stdout

        with patch_stdout():
            screen = PromptToolkitScreen()
            yield TerminalInput(screen, chat_may_arrive), screen


__all__ = ["LineSource", "PipeInput", "PromptToolkitScreen", "Screen", "TerminalInput", "stdin_is_terminal",
           "terminal"]
