"""The history ring and its rules, with plain numbers: bounds, eviction, keys, and every resume branch."""

from __future__ import annotations

import pytest

from chatcluster.common.config import Limits
from chatcluster.shards.history import OVERHEAD, BadResume, History, Ring, new_epoch, replay_for_join

S = 1_000_000  # µs


def frame(seq: int, room: int = 1, size: int = 20) -> bytes:
    return f"r{room}s{seq}:".encode().ljust(size, b".")


def fill(history: History, ring: Ring, first: int, last: int, t0: int = 0, step: int = S, room: int = 1) -> None:
    for seq in range(first, last + 1):
        history.append(ring, seq, frame(seq, room), t0 + (seq - first) * step)


def history(**limits) -> History:
    return History(Limits(**limits))


def test_a_ring_keeps_the_last_n_messages_when_they_are_older_than_the_age():
    h = history(history_messages=100, history_age=60)
    ring = h.ring()
    fill(h, ring, 1, 300, step=S)  # one a second: by the end, everything before 240 is older than 60 s
    assert ring.last == 300 and len(ring) == 100 and ring.oldest == 201
    assert h.messages == 100 and h.expired == 200 and h.evicted == 0
    assert ring.frame(201) == frame(201) and ring.frame(200) is None


def test_a_ring_keeps_every_message_of_the_last_minutes_beyond_n():
    h = history(history_messages=100, history_age=600)
    ring = h.ring()
    fill(h, ring, 1, 1000, step=S // 10)  # 1000 messages in 100 s: all within 10 minutes
    assert len(ring) == 1000 and ring.oldest == 1
    h.append(ring, 1001, frame(1001), 1000 * S)  # 900 s later: only the minimum count is young enough
    assert len(ring) == 100 and ring.oldest == 902


def test_bytes_and_messages_are_counted_and_given_back_when_a_room_goes():
    h = history()
    a, b = h.ring(), h.ring()
    fill(h, a, 1, 10)
    fill(h, b, 1, 5, room=2)
    assert h.messages == 15 and h.bytes == 15 * (20 + OVERHEAD) == a.nbytes + b.nbytes
    h.forget(a)
    assert h.messages == 5 and h.bytes == b.nbytes and a not in h.rings
    assert h.figures()["rooms"] == 1


def test_the_byte_bound_evicts_the_oldest_messages_of_any_room_first():
    per = 20 + OVERHEAD
    h = history(history_bytes=32 * per, history_messages=100, history_age=600)
    old, new = h.ring(), h.ring()
    fill(h, old, 1, 16, t0=0)          # the shard's oldest messages
    fill(h, new, 1, 16, t0=100 * S, room=2)
    assert h.bytes == 32 * per and h.evicted == 0  # at the bound, not over it
    h.append(new, 17, frame(17, 2), 200 * S)        # one more: over
    assert h.evictions == 1
    assert h.bytes <= 32 * per - (32 * per >> 4)   # a sixteenth freed at once
    assert old.oldest == 1 + h.evicted and new.oldest == 1  # all from the older room, though under its minimum
    assert h.messages == len(old) + len(new) and h.bytes == old.nbytes + new.nbytes


def test_eviction_goes_across_rooms_in_time_order():
    per = 20 + OVERHEAD
    h = history(history_bytes=10 * per)
    a, b = h.ring(), h.ring()
    for i in range(1, 6):  # interleaved in time: a1 b1 a2 b2 ...
        h.append(a, i, frame(i, 1), (2 * i) * S)
        h.append(b, i, frame(i, 2), (2 * i + 1) * S)
    h.append(a, 6, frame(6, 1), 20 * S)  # 11 messages: over; the oldest go, alternating rooms
    assert h.bytes <= 10 * per - (10 * per >> 4)
    assert (a.oldest, b.oldest) == (2, 2)  # a1 and b1, the two oldest; nothing younger
    assert h.evicted == 2


def test_a_bound_of_zero_keeps_nothing_at_no_cost():
    h = history(history_bytes=0)
    ring = h.ring()
    fill(h, ring, 1, 50)
    assert (len(ring), ring.last, h.bytes, h.evictions) == (0, 50, 0, 0)
    assert ring.after(50) == [] and ring.after(49) is None


def test_a_ring_is_one_run_a_seq_that_does_not_follow_empties_it():
    h = history()
    ring = h.ring()
    fill(h, ring, 1, 5)
    h.append(ring, 9, frame(9), 10 * S)
    assert ring.oldest == 9 and len(ring) == 1 and h.messages == 1
    assert ring.after(5) is None  # 6..8 were never kept: no recovery across them


def test_reads_of_a_ring():
    h = history()
    ring = h.ring(last=10)  # a room whose first ten messages were not kept (restored, say)
    assert ring.oldest == 0 and ring.after(10) == [] and ring.after(9) is None and ring.newest(5) == []
    fill(h, ring, 11, 20)
    assert ring.after(20) == [] and ring.after(17) == [frame(18), frame(19), frame(20)]
    assert ring.after(10) == [frame(s) for s in range(11, 21)] and ring.after(9) is None
    assert ring.newest(3) == [frame(18), frame(19), frame(20)] and len(ring.newest(100)) == 10
    assert ring.between(5, 12) == [frame(11), frame(12)] and ring.between(19, 30) == [frame(19), frame(20)]
    assert ring.between(21, 30) == [] and ring.between(15, 14) == []


def test_idempotency_keys_live_as_long_as_their_messages():
    h = history(history_messages=3, history_age=1)
    ring = h.ring()
    h.append(ring, 1, frame(1), 0, key=(7, 42))
    h.append(ring, 2, frame(2), 0)
    assert ring.find((7, 42)) == (1, frame(1)) and ring.find((8, 42)) is None
    for seq in range(3, 6):
        h.append(ring, seq, frame(seq), 10 * S)  # seq 1 and 2 are older than 1 s and beyond the last 3
    assert ring.oldest == 3 and ring.find((7, 42)) is None and ring.keys == {}


def test_an_epoch_is_never_zero_and_a_new_one_differs():
    epochs = [new_epoch() for _ in range(100)]
    assert all(0 < e < 2**53 for e in epochs)
    assert all(new_epoch(e) != e for e in epochs)


# ---- what a join replays ----------------------------------------------------------------
EPOCH = 777


def ring_of(first: int, last: int) -> Ring:
    h = history()
    ring = h.ring(last=first - 1)
    fill(h, ring, first, last)
    return ring


def replay(ring: Ring, *, resume: bool = True, since: int = 0, epoch: int = EPOCH, history: int = 0,
           max_bytes: int = 1 << 20) -> tuple[list[bytes], bool]:
    return replay_for_join(ring, EPOCH, resume=resume, since_seq=since, client_epoch=epoch, history=history,
                           max_history=100, max_bytes=max_bytes)


def test_resume_in_the_same_epoch_within_the_window_replays_exactly_the_missed_messages():
    ring = ring_of(51, 100)
    assert replay(ring, since=60) == ([frame(s) for s in range(61, 101)], True)
    assert replay(ring, since=50) == ([frame(s) for s in range(51, 101)], True)  # the window's very edge
    assert replay(ring, since=100) == ([], True)  # missed nothing


def test_resume_from_before_the_window_is_not_a_recovery_and_gets_the_newest_history():
    ring = ring_of(51, 100)
    assert replay(ring, since=49, history=3) == ([frame(98), frame(99), frame(100)], False)
    assert replay(ring, since=49) == ([], False)


def test_resume_in_another_epoch_is_not_a_recovery():
    ring = ring_of(1, 100)
    assert replay(ring, since=90, epoch=EPOCH + 1, history=2) == ([frame(99), frame(100)], False)
    # another epoch's position means nothing here, even past this epoch's head
    assert replay(ring, since=500, epoch=EPOCH + 1) == ([], False)


def test_resume_past_the_head_or_without_an_epoch_is_a_bad_request():
    ring = ring_of(1, 100)
    with pytest.raises(BadResume, match="past"):
        replay(ring, since=101)
    with pytest.raises(BadResume, match="epoch"):
        replay(ring, since=10, epoch=0)


def test_resume_of_a_room_that_keeps_nothing_recovers_only_from_its_head():
    ring = history().ring(last=40)
    assert replay(ring, since=40) == ([], True)
    assert replay(ring, since=39) == ([], False)


def test_a_resume_too_large_to_replay_is_not_a_recovery():
    ring = ring_of(1, 100)
    assert replay(ring, since=90, max_bytes=10 * 20) == ([frame(s) for s in range(91, 101)], True)
    assert replay(ring, since=89, max_bytes=10 * 20, history=1) == ([frame(100)], False)


def test_a_plain_join_replays_the_newest_history_up_to_the_server_limit():
    ring = ring_of(1, 300)
    assert replay(ring, resume=False, history=5, epoch=0) == ([frame(s) for s in range(296, 301)], False)
    frames, recovered = replay(ring, resume=False, history=1000, epoch=0)
    assert len(frames) == 100 and frames[0] == frame(201) and not recovered
