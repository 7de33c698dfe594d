"""Each client's send schedule: open loop, with its own random phase (sans-I/O).

Open loop means message n is due at `start + phase + n / rate` whatever
happened to the earlier ones: a slow reply never delays the next send, so a
slow server shows up as latency instead of as a lower request rate (the
"coordinated omission" a closed loop would hide). The random phase spreads
the clients over the period so that they do not all send in the same
millisecond.

A message's `client_msg_id` carries its sender and whether it is in the
measured window, so that every receiver, in any load-generator process, can
tell which deliveries count without knowing the sender's schedule.
"""

from __future__ import annotations

import random

NS = 1_000_000_000


def draw_phase(rng: random.Random, rate: float) -> float:
    """A random offset in [0, 1/rate) seconds."""
    return rng.random() / rate


def msg_id(n: int, measured: bool, index: int, clients: int) -> int:
    """client_msg_id of client `index`'s message n (from 0): unique in the run, never 0 (proto3's unset value).

    Low bit: measured. The rest: (n + 1) * clients + index, so that any
    receiver tells its own copies from the others' by arithmetic, without
    looking at the sender sub-message of every notification.
    """
    return ((n + 1) * clients + index) << 1 | measured


def split_msg_id(client_msg_id: int, clients: int) -> tuple[int, int, bool]:
    """(n, client index, measured) of a client_msg_id made by msg_id()."""
    q, index = divmod(client_msg_id >> 1, clients)
    return q - 1, index, bool(client_msg_id & 1)


class SendSchedule:
    """When a client's message n is due, and whether it is measured.

    Sending covers [start, start + warmup + duration); messages due in
    [start + warmup, start + warmup + duration) are measured. Times are
    integer nanoseconds of the monotonic clock, which all processes of one
    machine share, so one start time synchronises every load-generator process.
    """

    __slots__ = ("start_ns", "period_ns", "phase_ns", "measure_from_ns", "end_ns", "next_n")

    def __init__(self, start_ns: int, rate: float, phase_s: float, warmup_s: float, duration_s: float) -> None:
        self.start_ns = start_ns
        self.period_ns = NS / rate
        self.phase_ns = phase_s * NS
        self.measure_from_ns = start_ns + int(warmup_s * NS)
        self.end_ns = start_ns + int((warmup_s + duration_s) * NS)
        self.next_n = 0

    def due_ns(self, n: int) -> int:
        return self.start_ns + int(self.phase_ns + n * self.period_ns)

    def measured(self, n: int) -> bool:
        return self.measure_from_ns <= self.due_ns(n) < self.end_ns

    def total(self) -> int:
        """How many messages the whole schedule sends."""
        span = self.end_ns - self.start_ns - self.phase_ns
        if span <= 0:
            return 0
        n = int(span // self.period_ns) + 1
        while n > 0 and self.due_ns(n - 1) >= self.end_ns:
            n -= 1
        while self.due_ns(n) < self.end_ns:
            n += 1
        return n

    def take_due(self, now_ns: int) -> list[int]:
        """The message numbers due by now and not yet taken (several when the caller fell behind: catch up)."""
        out = []
        n = self.next_n
        while True:
            due = self.due_ns(n)
            if due > now_ns or due >= self.end_ns:
                break
            out.append(n)
            n += 1
        self.next_n = n
        return out

    def next_due_ns(self) -> int | None:
        """When the next message is due, or None when the schedule is done."""
        due = self.due_ns(self.next_n)
        return due if due < self.end_ns else None
