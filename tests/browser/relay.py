"""A TCP relay the test can cut: a stand-in for the proxy, NAT or load balancer between a browser and the gateway.

The browser loads the page through it (so its WebSocket goes through it
too, with Host and Origin both naming the relay, which the gateway's
same-host Origin rule accepts). `cut()` closes every relayed connection at
once and refuses new ones, as a proxy restart or a lost network does;
`restore()` lets connections through again. The gateway sees the page's
connection end, the page sees its WebSocket drop: what a reconnect must
survive, with the rest of the cluster (and the room) untouched.
`freeze()` is the nastier fault: the relayed connections stay open but
carry nothing more (a network gone without a word), which only a
keepalive notices.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class Relay:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.refusing = False
        self.refused_at: list[float] = []  # time.monotonic() of each connection refused while cut
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._frozen: set[socket.socket] = set()  # open, but what they send goes nowhere
        self._closed = False
        threading.Thread(target=self._accept_loop, name="relay-accept", daemon=True).start()

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones until restore()."""
        with self._lock:
            self.refusing = True
            victims, self._open = self._open, set()
        for sock in victims:
            _hang_up(sock)

    def freeze(self) -> None:
        """Black-hole every relayed connection (nothing closed, nothing delivered); new ones pass as usual."""
        with self._lock:
            self._frozen |= self._open

    def restore(self) -> None:
        with self._lock:
            self.refusing = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        _hang_up(self.listener)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = self.refusing
            if refuse:
                self.refused_at.append(time.monotonic())
                _hang_up(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _hang_up(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="relay-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if src not in self._frozen:
                    dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):  # one side ended: so does the other, as through a real proxy
            with self._lock:
                self._open.discard(sock)
            _hang_up(sock)


def _hang_up(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv() on it
    sock.close()
