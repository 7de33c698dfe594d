"""Operators' actions in the shard, as plain objects: OPERATE in, OPERATED, DELIVER and KICK out."""

from __future__ import annotations

from test_shard_logic import GW_A, GW_B, Harness, chat_body, delivered, error_of, member, replies

from chatcluster.common.config import Limits
from chatcluster.common.envelope import Batch, Kind, iter_items, parse, unpack_deliver
from chatcluster.common.frames import HEADER, ErrorCode
from chatcluster.proto import chat_pb2 as pb
from chatcluster.proto import cluster_pb2
from chatcluster.shards.store import Page

Action = cluster_pb2.Operate.Action
HOUR_US = 3600 * 1_000_000


def operate(h: Harness, gateway: bytes = GW_A, **fields) -> dict[bytes, list[tuple[int, bytes]]]:
    return h.one(gateway, Kind.OPERATE, cluster_pb2.Operate(request=77, **fields))


def answer(items: list[tuple[int, bytes]]) -> cluster_pb2.Operated:
    found = [parse(kind, payload) for kind, payload in items if kind == Kind.OPERATED]
    assert len(found) == 1, items
    assert found[0].request == 77
    return found[0]  # type: ignore[return-value]


def kicks(items: list[tuple[int, bytes]]) -> list[cluster_pb2.Kick]:
    return [parse(kind, payload) for kind, payload in items if kind == Kind.KICK]  # type: ignore[misc]


def test_a_system_message_takes_the_next_seq_reaches_every_gateway_and_is_logged():
    h = Harness()
    h.room(7, (GW_A, 1), (GW_B, 1))
    h.chats(GW_A, (7, 1, "before"))
    out = operate(h, GW_B, action=Action.PUBLISH, room_id=7, text="maintenance at noon")
    assert answer(out[GW_B]).seq == 2
    for gw in (GW_A, GW_B):
        (room_id, skip, seq, ntf), = delivered([i for i in out[gw] if i[0] == Kind.DELIVER])
        assert (room_id, skip, seq, ntf.seq, ntf.text) == (7, 0, 2, 2, "maintenance at noon")
        assert (ntf.sender.player_id, ntf.sender.name) == (0, "system") and ntf.server_time_us == h.now
    assert [(room, seq, sender, text) for room, seq, sender, text, *_ in h.log][-1] == (7, 2, 0,
                                                                                         "maintenance at noon")
    assert h.shard.book.rooms[7].ring.last == 2  # in history: a resume or a page replays it
    assert h.chats(GW_A, (7, 1, "after"))[GW_A] and h.shard.book.rooms[7].seq == 3


def test_publish_to_a_room_that_is_not_open_or_with_bad_text_changes_nothing():
    h = Harness()
    h.room(7, (GW_A, 1))
    missing = answer(operate(h, action=Action.PUBLISH, room_id=8, text="hi")[GW_A])
    assert (missing.ok, missing.error, missing.message) == (False, "not_found", "no open room 8")
    for text in ("", "x" * (h.shard.limits.max_text + 1)):
        bad = answer(operate(h, action=Action.PUBLISH, room_id=7, text=text)[GW_A])
        assert (bad.ok, bad.error) == (False, "bad_request")
    assert h.shard.book.rooms[7].seq == 0 and h.log == []


def test_room_lists_members_with_their_gateways():
    h = Harness()
    h.room(3, (GW_A, 1), (GW_B, 2))
    got = answer(operate(h, GW_B, action=Action.ROOM, room_id=3)[GW_B])
    assert got.ok and got.room_name == "r"
    assert sorted((m.player.player_id, m.player.name, m.gateway, m.session) for m in got.members) == [
        (1001, "p1", "gw-a", 1), (1002, "p2", "gw-b", 2)]


def test_kick_tells_the_others_and_sends_the_player_to_the_lobby_on_its_gateway():
    h = Harness()
    h.room(5, (GW_A, 1), (GW_B, 2), (GW_B, 3))
    out = operate(h, GW_A, action=Action.KICK, room_id=5, player_id=1002, reason="removed by an operator: spam")
    assert answer(out[GW_A]).count == 1
    kick, = kicks(out[GW_B])
    assert (kick.player_id, kick.session, kick.code, kick.room_id, kick.reason) == (
        1002, 2, ErrorCode.KICKED, 5, "removed by an operator: spam")
    # The leave notice goes to everyone else; the kicked session is excepted on its own gateway, and the
    # notice comes before the KICK, so nothing of the room reaches it after.
    kinds_b = [kind for kind, _ in out[GW_B]]
    assert kinds_b.index(Kind.DELIVER) < kinds_b.index(Kind.KICK)
    for gw, skip in ((GW_A, 0), (GW_B, 2)):
        room_id, excepted, _, frame = unpack_deliver(next(p for k, p in out[gw] if k == Kind.DELIVER))
        ntf = pb.S_LEAVE_ROOM_NTF.FromString(frame[HEADER.size:])
        assert (room_id, excepted, ntf.player.player_id) == (5, skip, 1002)
    assert (GW_B, 2) not in h.shard.book.rooms[5].members
    reply, = replies(h.chats(GW_B, (5, 2, "still here?"))[GW_B])  # its chats are refused from now on
    assert error_of(reply).code == ErrorCode.NOT_IN_ROOM


def test_kick_of_a_player_not_in_the_room_is_not_found_and_changes_nothing():
    h = Harness()
    h.room(5, (GW_A, 1))
    got = answer(operate(h, action=Action.KICK, room_id=5, player_id=4242)[GW_A])
    assert (got.ok, got.error, got.message) == (False, "not_found", "player 4242 is not in room 5")
    assert len(h.shard.book.rooms[5].members) == 1


def test_a_mute_in_one_room_refuses_chat_there_only_until_it_ends():
    h = Harness()
    h.room(5, (GW_A, 1))
    h.room(6, (GW_A, 2))
    h.one(GW_A, Kind.JOIN, cluster_pb2.JoinRoom(request=3, room_id=6, member=member(1)))  # p1 now in 6
    h.room(9, (GW_B, 1))
    until = h.now + HOUR_US
    assert answer(operate(h, action=Action.MUTE, player_id=1001, room_id=9, until_us=until, reason="spam")[GW_A]).ok
    reply, = replies(h.chats(GW_B, (9, 1, "hello"))[GW_B])
    err = error_of(reply)
    assert err.code == ErrorCode.MUTED and err.message.startswith("you are muted in room 9 until ")
    assert err.message.endswith(" UTC: spam")
    assert h.shard.book.rooms[9].seq == 0
    assert delivered(h.chats(GW_A, (6, 1, "elsewhere is fine"))[GW_A])  # another room: not muted
    h.now = until  # the mute has ended
    assert delivered(h.chats(GW_B, (9, 1, "back"))[GW_B])
    assert len(h.shard.book.mutes) == 0


def test_a_mute_everywhere_and_unmute():
    h = Harness()
    h.room(5, (GW_A, 1))
    operate(h, action=Action.MUTE, player_id=1001, room_id=0, until_us=0, reason="")
    reply, = replies(h.chats(GW_A, (5, 1, "hi"))[GW_A])
    assert error_of(reply).message == "you are muted everywhere until lifted"
    operate(h, action=Action.MUTE, player_id=1001, room_id=5, until_us=h.now + HOUR_US)
    assert answer(operate(h, action=Action.UNMUTE, player_id=1001, room_id=5)[GW_A]).count == 1
    assert replies(h.chats(GW_A, (5, 1, "hi"))[GW_A])  # still muted everywhere
    assert answer(operate(h, action=Action.UNMUTE, player_id=1001)[GW_A]).count == 1
    assert delivered(h.chats(GW_A, (5, 1, "free"))[GW_A])


def test_disconnect_and_ban_find_the_player_through_its_presence():
    h = Harness()
    h.one(GW_B, Kind.CLAIM, cluster_pb2.Claim(player_id=55, session=9))
    out = operate(h, GW_A, action=Action.DISCONNECT, player_id=55, code=ErrorCode.KICKED, reason="bye")
    assert answer(out[GW_A]).count == 1
    kick, = kicks(out[GW_B])
    assert (kick.session, kick.code, kick.reason, kick.room_id) == (9, ErrorCode.KICKED, "bye", 0)
    h.one(GW_B, Kind.RELEASE, cluster_pb2.Release(player_id=55, session=9))
    assert answer(operate(h, action=Action.DISCONNECT, player_id=55, code=ErrorCode.KICKED)[GW_A]).count == 0


def test_a_ban_is_remembered_so_a_login_that_raced_it_is_closed_too():
    h = Harness()
    out = operate(h, action=Action.DISCONNECT, player_id=55, code=ErrorCode.BANNED, until_us=h.now + HOUR_US,
                  reason="banned until later")
    assert answer(out[GW_A]).count == 0  # not online
    out = h.one(GW_B, Kind.CLAIM, cluster_pb2.Claim(player_id=55, session=4))  # its login checked just before
    kick, = kicks(out[GW_B])
    assert (kick.session, kick.code, kick.reason) == (4, ErrorCode.BANNED, "banned until later")
    h.one(GW_B, Kind.RELEASE, cluster_pb2.Release(player_id=55, session=4))  # its gateway closed it
    assert answer(operate(h, action=Action.UNBAN, player_id=55)[GW_A]).count == 1
    assert h.one(GW_B, Kind.CLAIM, cluster_pb2.Claim(player_id=55, session=5)) == {}


def test_an_ended_ban_is_forgotten_at_the_next_claim():
    h = Harness()
    operate(h, action=Action.DISCONNECT, player_id=55, code=ErrorCode.BANNED, until_us=h.now + 1)
    h.now += 1
    assert h.one(GW_B, Kind.CLAIM, cluster_pb2.Claim(player_id=55, session=4)) == {}
    assert h.shard.presence.banned == {}


def frames_of(got: cluster_pb2.Operated) -> list[tuple[int, str]]:
    return [(n.seq, n.text) for n in (pb.S_ROOM_CHAT_NTF.FromString(f[HEADER.size:]) for f in got.frames)]


def test_history_from_memory_newest_or_since_a_seq():
    h = Harness()
    h.room(4, (GW_A, 1))
    h.chats(GW_A, *[(4, 1, f"m{i}") for i in range(1, 8)])
    newest = answer(operate(h, action=Action.HISTORY, room_id=4, limit=3)[GW_A])
    assert frames_of(newest) == [(5, "m5"), (6, "m6"), (7, "m7")] and newest.more and newest.seq == 7
    since = answer(operate(h, action=Action.HISTORY, room_id=4, since_seq=2, limit=3)[GW_A])
    assert frames_of(since) == [(3, "m3"), (4, "m4"), (5, "m5")] and since.more
    tail = answer(operate(h, action=Action.HISTORY, room_id=4, since_seq=6, limit=3)[GW_A])
    assert frames_of(tail) == [(7, "m7")] and not tail.more
    assert frames_of(answer(operate(h, action=Action.HISTORY, room_id=4, since_seq=7, limit=3)[GW_A])) == []


def test_history_older_than_memory_comes_from_the_chat_log():
    h = Harness(Limits(history_messages=2, history_age=1), can_read=True)
    h.room(4, (GW_A, 1))
    for i in range(1, 6):
        h.now += 2_000_000  # older messages leave memory as new ones come
        h.chats(GW_A, (4, 1, f"m{i}"))
    assert h.shard.book.rooms[4].ring.oldest == 4
    assert operate(h, action=Action.HISTORY, room_id=4, limit=4) == {}  # waits for the chat log
    read, = h.shard.book.take_reads()
    assert (read.room_id, read.before_seq, read.count) == (4, 4, 2)
    stand_in = h.shard.book.rooms[4].ring.frame(4)  # any frame will do as what the chat log gave back
    h.shard.book.read_done(read.token, Page([(2, stand_in), (3, stand_in)], more=True), h.out)
    (gateway, data), = h.out.take()
    got = answer(list(iter_items(data)))
    assert gateway == GW_A and [seq for seq, _ in frames_of(got)] == [4, 4, 4, 5]  # the log's two, then memory's
    assert got.more


def test_history_of_a_room_that_is_not_open_reads_the_chat_log_or_says_there_is_none():
    h = Harness(can_read=True)
    assert operate(h, action=Action.HISTORY, room_id=12, limit=10) == {}
    read, = h.shard.book.take_reads()
    assert (read.room_id, read.before_seq, read.count) == (12, 2**63 - 1, 10)
    without = Harness()
    got = answer(operate(without, action=Action.HISTORY, room_id=12, limit=10)[GW_A])
    assert (got.ok, got.error) == (False, "not_found")


def test_an_unknown_action_is_answered_not_dropped():
    h = Harness()
    batch = Batch()
    batch.add(Kind.OPERATE, cluster_pb2.Operate(request=77, action=99).SerializeToString())
    batch.add_chat(1, 1, chat_body("x"))
    got = answer(h.send(GW_A, batch)[GW_A])
    assert (got.ok, got.error) == (False, "bad_request")
