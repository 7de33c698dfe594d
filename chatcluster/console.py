"""`chatctl client`: the seed's console chat client, made pleasant.

Two layers, as everywhere in chatcluster, in four modules:

* console_view.py, sans-I/O: :class:`ConsoleView` is fed what the user typed
  and the bytes the server sent, and answers with the lines to print and the
  request to send. Every decision is there, so whole dialogs are unit-tested
  without a socket, a terminal or an event loop. console_text.py holds the
  wording of its lines.
* console_client.py and console_terminal.py, the asyncio adapter: one task
  reads frames and prints the view's lines, another reads the keyboard (a
  prompt_toolkit prompt on a terminal, plain lines from a pipe) and sends what
  the view returns.

This module connects them; `chatctl client` (cli.py) is the one way to start it.
"""

from __future__ import annotations

import asyncio
import os

from chatcluster.console_client import ConsoleClient
from chatcluster.console_terminal import Screen, stdin_is_terminal, terminal
from chatcluster.console_view import EXIT_FAILURE, EXIT_INTERRUPTED, ConsoleView


async def _session(host: str, port: int, name: str | None) -> int:
    screen = Screen()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        screen.lines([f"Cannot connect to {host}:{port}: {reason}."])
        return EXIT_FAILURE
    view = ConsoleView(name, interactive=stdin_is_terminal(), reconnect=True)
    screen.lines([f"Connected to {host}:{port}."])
    with terminal(screen, lambda: view.logged_in) as (source, screen):
        return await ConsoleClient(view, reader, writer, source, screen,
                                   connect=lambda: asyncio.open_connection(host, port)).run()


def run(host: str, port: int, name: str | None) -> int:
    """Run the console client until the user quits or the connection ends; return the exit status.

    0 when the user quits (q, /quit, Ctrl-D, end of piped input); 1 when the
    server cannot be reached, stops answering, cannot be reached again within
    seconds after a dropped connection (which the client otherwise rides out:
    it logs in again and resumes its room), or (for piped input) refuses the
    login; 130 on Ctrl-C. Failures are reported in one plain line, never a
    traceback.
    """
    try:
        return asyncio.run(_session(host, port, name))
    except KeyboardInterrupt:
        Screen().lines(["", "Interrupted."])
        return EXIT_INTERRUPTED


__all__ = ["run"]
