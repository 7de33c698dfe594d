"""Who may not chat where, until when: operators' mutes, kept by the shards that enforce them.

A mute in one room lives on the shard that owns the room; a mute everywhere
(room 0) is sent to every shard. Either way it is checked where the chat is
ordered, so it holds on whichever gateway the player is. Mutes live in the
shards' memory: a shard that restarts forgets the mutes it held (the
operator's API says so in docs/API.md).

Sans-I/O: the time is passed in (µs since the epoch); an ended mute is
forgotten the first time it is looked at after its end.
"""

from __future__ import annotations

from chatcluster.common.timefmt import until_text

EVERYWHERE = 0  # the room id of a mute in every room


class Mutes:
    """Mutes by player: {room id (EVERYWHERE: all rooms): (until_us (0: until lifted), reason)}.

    `by_player` is a plain dict so the chat path can ask "any mutes at all?"
    at the cost of one truth test.
    """

    __slots__ = ("by_player", "refused")

    def __init__(self) -> None:
        self.by_player: dict[int, dict[int, tuple[int, str]]] = {}
        self.refused = 0  # chats refused with MUTED

    def mute(self, player_id: int, room_id: int, until_us: int, reason: str) -> None:
        """Mute a player in a room (EVERYWHERE: all rooms) until a time; replaces the same mute."""
        self.by_player.setdefault(player_id, {})[room_id] = (until_us, reason)

    def unmute(self, player_id: int, room_id: int) -> int:
        """Lift the player's mute in a room, or (EVERYWHERE) every mute of the player; returns how many went."""
        rooms = self.by_player.get(player_id)
        if not rooms:
            return 0
        if room_id == EVERYWHERE:
            del self.by_player[player_id]
            return len(rooms)
        gone = rooms.pop(room_id, None) is not None
        if not rooms:
            del self.by_player[player_id]
        return int(gone)

    def refusal(self, player_id: int, room_id: int, now_us: int) -> str | None:
        """The S_ERROR MUTED message if the player may not chat in the room now, else None."""
        rooms = self.by_player.get(player_id)
        if rooms is None:
            return None
        for where in (room_id, EVERYWHERE):
            mute = rooms.get(where)
            if mute is None:
                continue
            until_us, reason = mute
            if until_us and until_us <= now_us:
                del rooms[where]
                if not rooms:
                    del self.by_player[player_id]
                    return None
                continue
            self.refused += 1
            place = "everywhere" if where == EVERYWHERE else f"in room {room_id}"
            return f"you are muted {place} {until_text(until_us)}" + (f": {reason}" if reason else "")
        return None

    def __len__(self) -> int:
        return sum(len(rooms) for rooms in self.by_player.values())
