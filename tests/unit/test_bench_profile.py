"""chatctl bench: the payload mix, the profile's rooms and shares, and each client's open-loop schedule."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from chatcluster.loadtest.profile import (
    DEFAULT_MIX,
    PayloadMix,
    Profile,
    TextPool,
    auto_procs,
    clients_of,
)
from chatcluster.loadtest.schedule import NS, SendSchedule, draw_phase, msg_id, split_msg_id


# ---------------------------------------------------------------------------- payload mix
def test_seed_mix_parses_into_three_parts():
    mix = PayloadMix.parse(DEFAULT_MIX)
    assert [(p.lo, p.hi, p.weight) for p in mix.parts] == [(64, 64, 80), (256, 256, 18), (1024, 2048, 2)]
    assert mix.total_weight == 100
    assert mix.mean_size == pytest.approx(0.8 * 64 + 0.18 * 256 + 0.02 * 1536)
    assert mix.describe() == "64 B 80 %, 256 B 18 %, 1024-2048 B 2 %"


def test_mix_sampling_follows_the_weights():
    mix = PayloadMix.parse(DEFAULT_MIX)
    rng = random.Random(1)
    sizes = [mix.sample(rng) for _ in range(20_000)]
    counts = Counter("64" if s == 64 else "256" if s == 256 else "big" for s in sizes)
    assert counts["64"] / len(sizes) == pytest.approx(0.80, abs=0.02)
    assert counts["256"] / len(sizes) == pytest.approx(0.18, abs=0.02)
    big = [s for s in sizes if s not in (64, 256)]
    assert big and all(1024 <= s <= 2048 for s in big)
    assert counts["big"] / len(sizes) == pytest.approx(0.02, abs=0.01)


def test_weights_are_relative_and_spaces_are_fine():
    mix = PayloadMix.parse(" 10:1 , 20:3 ")
    rng = random.Random(2)
    sizes = Counter(mix.sample(rng) for _ in range(8000))
    assert sizes[20] / 8000 == pytest.approx(0.75, abs=0.03)


@pytest.mark.parametrize("spec", ["", "64", "64:0", "64:-1", "0:5", "5000:1", "2048-1024:1", "a:1", "64:x", "1-:1"])
def test_bad_mixes_are_refused_with_a_reason(spec):
    with pytest.raises(ValueError):
        PayloadMix.parse(spec)


def test_text_pool_gives_printable_ascii_of_the_asked_length():
    rng = random.Random(3)
    pool = TextPool(rng, size=4096)
    for length in (1, 64, 2048, 4096):
        text = pool.text(rng, length)
        assert len(text) == length == len(text.encode())
        assert text.isprintable()


# ---------------------------------------------------------------------------- profile
def test_rooms_like_the_seed_creators_first_then_round_robin():
    p = Profile(clients=500, rooms=10)
    assert [p.is_creator(i) for i in (0, 9, 10)] == [True, True, False]
    assert p.room_of(0) == 0 and p.room_of(13) == 3
    assert p.room_sizes() == [50] * 10
    assert p.expected_fanout == 50
    assert p.target_msgs_per_s == 5000
    assert p.target_deliveries_per_s == 250_000


def test_uneven_rooms_fan_out_is_the_member_weighted_mean():
    p = Profile(clients=5, rooms=2)  # rooms of 3 and 2 members
    assert p.room_sizes() == [3, 2]
    assert p.expected_fanout == pytest.approx((3 * 3 + 2 * 2) / 5)


def test_worker_shares_cover_every_client_once():
    shares = [list(clients_of(k, 3, 20)) for k in range(3)]
    assert sorted(i for share in shares for i in share) == list(range(20))
    assert shares[1] == [1, 4, 7, 10, 13, 16, 19]


def test_auto_procs():
    assert auto_procs(Profile(clients=20, rooms=2), cpus=2) == 1
    assert auto_procs(Profile(clients=500, rooms=10), cpus=2) == 2
    assert auto_procs(Profile(clients=500, rooms=10), cpus=1) == 1


@pytest.mark.parametrize("kwargs", [
    {"rooms": 0}, {"clients": 5, "rooms": 6}, {"rps": 0}, {"duration": 0}, {"warmup": -1}, {"interval": 0},
    {"clients": 2000, "rooms": 1}, {"mix": "x"}, {"latency_from": "later"}, {"runtag": "x" * 30},
])
def test_profile_validation(kwargs):
    with pytest.raises(ValueError):
        Profile(**{"clients": 20, "rooms": 2, **kwargs}).validate()


def test_names_are_unique_per_run_and_fit_the_limit():
    p = Profile(clients=100_000, rooms=1000, runtag="a1b2c3")
    p.validate()
    assert p.name(7) == "bench7-a1b2c3"
    assert len({p.name(i) for i in range(1000)}) == 1000


# ---------------------------------------------------------------------------- schedule
def test_schedule_is_open_loop_at_start_plus_phase_plus_n_over_rate():
    s = SendSchedule(start_ns=10 * NS, rate=10.0, phase_s=0.03, warmup_s=1, duration_s=2)
    assert [s.due_ns(n) for n in range(3)] == [10_030_000_000, 10_130_000_000, 10_230_000_000]
    assert s.total() == 30
    assert [s.measured(n) for n in (9, 10, 29)] == [False, True, True]
    assert sum(s.measured(n) for n in range(s.total())) == 20


def test_take_due_catches_up_after_a_stall_and_stops_at_the_end():
    s = SendSchedule(start_ns=0, rate=10.0, phase_s=0.0, warmup_s=0, duration_s=1)
    assert s.take_due(-1) == []
    assert s.take_due(0) == [0]
    assert s.take_due(350_000_000) == [1, 2, 3]  # late: every missed message goes now, none is skipped
    assert s.next_due_ns() == 400_000_000
    assert s.take_due(10 * NS) == [4, 5, 6, 7, 8, 9]
    assert s.next_due_ns() is None and s.take_due(20 * NS) == []


def test_phases_spread_over_one_period():
    rng = random.Random(4)
    phases = [draw_phase(rng, 10.0) for _ in range(2000)]
    assert all(0 <= p < 0.1 for p in phases)
    assert min(phases) < 0.005 and max(phases) > 0.095


def test_every_schedule_total_matches_its_due_times():
    rng = random.Random(5)
    for _ in range(200):
        rate = rng.choice([0.5, 3.0, 10.0, 33.3])
        s = SendSchedule(rng.randrange(NS), rate, draw_phase(rng, rate), rng.randrange(3), rng.randrange(1, 5))
        n = s.total()
        assert all(s.due_ns(i) < s.end_ns for i in range(n)) and s.due_ns(n) >= s.end_ns


def test_msg_ids_round_trip_and_are_unique_per_client():
    ids = {msg_id(n, m, i, 500) for n in range(50) for i in range(500) for m in (False, True)}
    assert len(ids) == 50 * 500 * 2 and 0 not in ids
    for n, i, m in [(0, 0, False), (7, 499, True), (2549, 3, True)]:
        assert split_msg_id(msg_id(n, m, i, 500), 500) == (n, i, m)
