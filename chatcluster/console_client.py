"""The console client's connection: the tasks that move bytes and lines around one ConsoleView.

A task reads the socket and prints what the view makes of the bytes; another
reads typed lines and sends the request the view returns; a third pings an
idle connection. Framing and every decision are the view's (console_view.py);
where lines come from and go to is the terminal's (console_terminal.py).

When the connection drops and the view wants to reconnect, the reader opens
a new one (with back-off, for up to RECONNECT_FOR seconds), hands it to the
view, and sends what the view asks for (its login, then its resume).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from chatcluster.common.frames import encode
from chatcluster.console_terminal import LineSource, Screen
from chatcluster.console_view import EXIT_OK, ConsoleView
from chatcluster.proto import chat_pb2

#: A request unanswered this long means the server is gone in all but name: say so and stop.
ANSWER_TIMEOUT = 15.0
#: How long quitting waits for the echoes of chat lines already sent (a piped script ends right after them).
ECHO_GRACE = 3.0
#: Send C_PING after this much idleness, so idle-timeouts and NAT boxes keep the connection.
PING_INTERVAL = 15.0
#: After a dropped connection: try to connect again for this long, waiting this long at first, doubling up to 3 s.
RECONNECT_FOR = 10.0
RECONNECT_FIRST = 0.2

Connect = Callable[[], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class ConsoleClient:
    """One connection: the reader task, the input loop and the keepalive around one ConsoleView."""

    def __init__(self, view: ConsoleView, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 source: LineSource, screen: Screen, connect: Connect | None = None) -> None:
        self.view = view
        self.reader = reader
        self.writer = writer
        self.connect = connect  # a new connection to the same server, for the view's reconnections
        self.later: set[asyncio.Task] = set()  # requests the view wants sent after a delay
        self.reconnect_deadline: float | None = None  # since the first drop with no traffic after it
        self.source = source
        self.emit = screen.lines
        self.changed = asyncio.Event()  # set after each batch of server traffic
        self.last_sent = time.monotonic()
        self.reading = True  # False once the connection has ended
        # Printed after the prompt is gone, so the connection-lost notice is the last thing on the screen.
        self.farewell: list[str] = []

    async def run(self) -> int:
        """Until the user quits or the connection ends; the view's exit status."""
        reading = asyncio.create_task(self._read_loop(), name="chatctl-reader")
        typing = asyncio.create_task(self._input_loop(), name="chatctl-input")
        pinging = asyncio.create_task(self._keepalive(), name="chatctl-ping")
        try:
            await asyncio.wait({reading, typing}, return_when=asyncio.FIRST_COMPLETED)
            for task in (typing, reading):  # a bug should surface as a bug, not as a hang
                if task.done() and not task.cancelled() and (exc := task.exception()) is not None:
                    raise exc
        finally:
            for task in (typing, reading, pinging, *self.later):
                task.cancel()
            await asyncio.gather(typing, reading, pinging, *self.later, return_exceptions=True)
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
                lost = None if data else "closed by the server"
            except OSError as exc:
                lost = exc.strerror or type(exc).__name__
            if lost is not None:
                lines = view.connection_lost(lost)
                if view.reconnecting and self.connect is not None:
                    self.emit(lines)
                    if await self._reconnect():
                        continue
                else:
                    self.farewell = lines
                break
            self.reconnect_deadline = None  # the server talks again: a later drop gets a fresh try
            running = view.exit_status is None
            self.emit(view.receive_bytes(data))
            await self._send_outgoing()
            self.changed.set()
            if running and view.exit_status is not None:  # a script's refused login, a broken frame
                break
        self.reading = False
        self.changed.set()

    async def _reconnect(self) -> bool:
        """A new connection for the view, tried with back-off; False (and the view told) if none comes."""
        assert self.connect is not None
        if self.reconnect_deadline is None:  # a connection that drops again before any answer keeps the deadline
            self.reconnect_deadline = time.monotonic() + RECONNECT_FOR
        deadline = self.reconnect_deadline
        if time.monotonic() > deadline:
            self.farewell = self.view.reconnect_failed("the server keeps closing the connection")
            return False
        delay = RECONNECT_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                reader, writer = await self.connect()
                break
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
            if time.monotonic() + delay > deadline:
                self.farewell = self.view.reconnect_failed(why)
                return False
            delay = min(delay * 2, 3.0)
        self.writer.close()
        self.reader, self.writer = reader, writer
        step = self.view.reconnected()
        self.emit(step.lines)
        if step.send is not None:
            await self._send(step.send)
        self.changed.set()
        return True

    async def _send_outgoing(self) -> None:
        """Send what the server's traffic made the view ask for, now or after the delay it gave."""
        for delay, message in self.view.take_outgoing():
            if delay <= 0:
                await self._send(message)
            else:
                task = asyncio.create_task(self._send_later(delay, message))
                self.later.add(task)
                task.add_done_callback(self.later.discard)

    async def _send_later(self, delay: float, message: Message) -> None:
        await asyncio.sleep(delay)
        await self._send(message)

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
                if not answered and not view.reconnecting:  # a reconnection has its own deadline
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


__all__ = ["ANSWER_TIMEOUT", "ECHO_GRACE", "PING_INTERVAL", "RECONNECT_FOR", "ConsoleClient"]
