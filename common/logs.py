"""Log lines in the seed server's shape.

    [00:34:55.437][gw][sess:3f2a][player:6][room:1] C_JOIN_ROOM_REQ roomId=1

time, process tag (gw, gw1, shard0, sup), then whatever context the event
has, then the event. The default level logs lifecycle and errors only;
`-v` adds a line per request. Hot paths test `log.isEnabledFor(DEBUG)`
(or a cached flag) before building a line, so a quiet server pays nothing.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
import time
from pathlib import Path

_process_tag = "-"


class SeedFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        t = time.localtime(record.created)
        ms = int(record.msecs)
        line = f"[{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{ms:03d}][{_process_tag}]"
        if record.levelno >= logging.WARNING:
            line += f"[{record.levelname}]"
        line += record.getMessage()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def ctx(sess: int | None = None, player: int | None = None, room: int | None = None) -> str:
    """The bracketed context of a line: `[sess:3f2a][player:6][room:1] `."""
    out = ""
    if sess is not None:
        out += f"[sess:{sess:04x}]"
    if player:
        out += f"[player:{player}]"
    if room:
        out += f"[room:{room}]"
    return out + " "


def setup(process_tag: str, verbose: bool = False, log_file: Path | None = None) -> logging.Logger:
    """Configure the root logger of this process; returns the 'chatcluster' logger."""
    global _process_tag
    _process_tag = process_tag
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = SeedFormatter()
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    root.addHandler(stream)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(log_file, maxBytes=20 << 20, backupCount=5, encoding="utf-8")
        rotating.setFormatter(formatter)
        root.addHandler(rotating)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    return logging.getLogger("chatcluster")
