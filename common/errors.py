"""The two kinds of failure a process tells apart.

A PeerError is something another party got wrong: a gateway or shard of a
different version, or a foreign process on our port, sent bytes we cannot
use. It is counted and logged, and the rest of the batch goes on. Anything
else raised while handling a batch is our own bug and is allowed to surface.
"""

from __future__ import annotations


class PeerError(Exception):
    """A peer's bytes do not parse or make no sense; never our own doing."""


class StartupError(Exception):
    """The process cannot start (a port is taken, say): one clear line, no traceback."""
