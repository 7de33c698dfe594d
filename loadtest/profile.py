"""What a bench run does: the workload profile and the payload mix (sans-I/O).

The defaults are the seed server's DummyClient profile (500 clients, 10 rooms,
10 msgs/s per client, 64 B 80 % / 256 B 18 % / 1-2 KiB 2 %), so that our
figures can be set next to its KPI tables and next to chatload's.
"""

from __future__ import annotations

import bisect
import random
import string
from dataclasses import dataclass, field

DEFAULT_MIX = "64:80,256:18,1024-2048:2"
MAX_TEXT = 4096          # PROTOCOL.md: chat text limit in UTF-8 bytes (the payload is ASCII)
MAX_MEMBERS = 1000       # PROTOCOL.md / README: the server's default members per room
PASSWORD = "bench-pw"    # fixed: the names are unique per run, so the accounts are new


@dataclass(frozen=True)
class MixPart:
    lo: int
    hi: int
    weight: float


@dataclass(frozen=True)
class PayloadMix:
    """Chat text sizes drawn by weight: `SIZE:WEIGHT` or `LO-HI:WEIGHT` (uniform in LO..HI), comma separated.

    Weights need not add up to 100; they are relative. Sizes are bytes of
    printable ASCII, so bytes and characters agree.
    """

    parts: tuple[MixPart, ...]
    _cumulative: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, spec: str) -> PayloadMix:
        parts = []
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            size, sep, weight_s = item.partition(":")
            if not sep:
                raise ValueError(f"{item!r}: expected SIZE:WEIGHT or LO-HI:WEIGHT")
            lo_s, dash, hi_s = size.strip().partition("-")
            try:
                lo = int(lo_s)
                hi = int(hi_s) if dash else lo
                weight = float(weight_s)
            except ValueError:
                raise ValueError(f"{item!r}: sizes must be integers and the weight a number") from None
            if not 1 <= lo <= hi <= MAX_TEXT:
                raise ValueError(f"{item!r}: sizes must satisfy 1 <= LO <= HI <= {MAX_TEXT}")
            if not weight > 0:
                raise ValueError(f"{item!r}: the weight must be > 0")
            parts.append(MixPart(lo, hi, weight))
        if not parts:
            raise ValueError("the payload mix is empty")
        return cls(tuple(parts))

    def __post_init__(self) -> None:
        total, cumulative = 0.0, []
        for part in self.parts:
            total += part.weight
            cumulative.append(total)
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    @property
    def total_weight(self) -> float:
        return self._cumulative[-1]

    def sample(self, rng: random.Random) -> int:
        """One payload size, drawn by weight (uniform within a range)."""
        i = bisect.bisect_right(self._cumulative, rng.random() * self.total_weight)
        part = self.parts[min(i, len(self.parts) - 1)]
        return part.lo if part.lo == part.hi else rng.randint(part.lo, part.hi)

    @property
    def mean_size(self) -> float:
        return sum(p.weight * (p.lo + p.hi) / 2 for p in self.parts) / self.total_weight

    def describe(self) -> str:
        return ", ".join(f"{p.lo}{'' if p.lo == p.hi else f'-{p.hi}'} B {100 * p.weight / self.total_weight:g} %"
                         for p in self.parts)


class TextPool:
    """Random printable text, cut from one pre-made pool so that making a payload costs a slice, not a loop."""

    ALPHABET = string.ascii_letters + string.digits + string.punctuation + " "

    def __init__(self, rng: random.Random, size: int = 1 << 16) -> None:
        self.pool = "".join(rng.choices(self.ALPHABET, k=size + MAX_TEXT))
        self.size = size

    def text(self, rng: random.Random, length: int) -> str:
        start = rng.randrange(self.size)
        return self.pool[start:start + length]


@dataclass
class Profile:
    """The scenario: who logs in, which rooms exist, who sends how often, and which window is measured.

    Client i logs in as `bench<i>-<runtag>`; clients 0..rooms-1 create the
    rooms, client i joins room i % rooms (as the seed and chatload do), so the
    rooms differ in size by at most one member.
    """

    clients: int = 500
    rooms: int = 10
    rps: float = 10.0
    duration: int = 250
    warmup: int = 5
    grace: float = 3.0
    interval: int = 10
    mix: str = DEFAULT_MIX
    runtag: str = "run"
    seed: int = 0
    password: str = PASSWORD
    latency_from: str = "send"     # send | schedule (the schedule corrects for coordinated omission)
    churn: float = 0.0             # connections dropped per second (all processes), each followed by a resume

    def validate(self) -> None:
        if self.rooms < 1:
            raise ValueError("--rooms must be at least 1")
        if self.clients < self.rooms:
            raise ValueError("--clients must be at least --rooms (each room is created by one client)")
        if not self.rps > 0:
            raise ValueError("--rps must be > 0")
        if self.duration < 1 or self.warmup < 0 or self.grace < 0 or self.interval < 1:
            raise ValueError("--duration and --interval must be >= 1, --warmup and --grace >= 0")
        if max(self.room_sizes()) > MAX_MEMBERS:
            raise ValueError(f"rooms of {max(self.room_sizes())} members exceed the server's {MAX_MEMBERS}")
        if self.churn < 0:
            raise ValueError("--churn must be >= 0")
        if self.latency_from not in ("send", "schedule"):
            raise ValueError("latency_from must be 'send' or 'schedule'")
        PayloadMix.parse(self.mix)
        if len(self.name(self.clients - 1).encode()) > 32:
            raise ValueError("the run tag makes player names longer than 32 bytes")

    def name(self, i: int) -> str:
        return f"bench{i}-{self.runtag}"

    def room_name(self, r: int) -> str:
        return f"bench-room{r}-{self.runtag}"

    def room_of(self, i: int) -> int:
        return i % self.rooms

    def is_creator(self, i: int) -> bool:
        return i < self.rooms

    def room_sizes(self) -> list[int]:
        sizes = [0] * self.rooms
        for i in range(self.clients):
            sizes[self.room_of(i)] += 1
        return sizes

    @property
    def target_msgs_per_s(self) -> float:
        return self.clients * self.rps

    @property
    def expected_fanout(self) -> float:
        """Deliveries per message: a message reaches every member of its room, the sender included."""
        sizes = self.room_sizes()
        return sum(s * s for s in sizes) / self.clients

    @property
    def target_deliveries_per_s(self) -> float:
        return self.target_msgs_per_s * self.expected_fanout

    @property
    def send_seconds(self) -> int:
        return self.warmup + self.duration


def clients_of(worker: int, procs: int, clients: int) -> range:
    """Worker k of P handles the clients i with i % P == k (an even share of creators and of every room)."""
    return range(worker, clients, procs)


def auto_procs(profile: Profile, cpus: int) -> int:
    """Enough load-generator processes that none is saturated, never more than the cores.

    What costs the load generator CPU is receiving: about 3.5 us per delivery,
    some 40 % of it in the kernel's reads (see the README's Cost). One process
    is enough below 200 clients and 100 k deliveries/s; above that (the seed
    profile: 500 clients, 250 k/s) the work is split in two, so that neither
    process is saturated and queues what it reads.
    """
    if profile.clients < 200 and profile.target_deliveries_per_s < 100_000:
        return 1
    return max(1, min(cpus, 2))
