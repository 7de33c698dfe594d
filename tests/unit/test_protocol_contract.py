"""proto/chat.proto agrees with docs/PROTOCOL.md, and the generated code with proto/*.proto."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from chatcluster.common.frames import MESSAGE_TYPES, MsgId
from chatcluster.proto import chat_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")


V1, ADDITIONS = PROTOCOL.split("# Additions (version 1.1)", 1)
SCALAR_TYPES = {9: "string", 8: "bool", 4: "uint64", 13: "uint32"}


def _fields(text: str) -> list[tuple[str, str]]:
    return re.findall(r"`((?:repeated )?\w+) (\w+)(?: = \d+)?`", text)


def protocol_table() -> dict[int, tuple[str, list[tuple[str, str]]]]:
    """{id: (name, [(type, field name), ...])} from the version 1 message table of PROTOCOL.md."""
    rows = {}
    for line in V1.splitlines():
        m = re.match(r"\| (\d+) \| `(\w+)` \| [cs]→[cs] \| (.*) \|$", line)
        if m:
            rows[int(m.group(1))] = (m.group(2), _fields(m.group(3)))
    return rows


def additions_table() -> dict[int, tuple[str, list[tuple[str, str]]]]:
    """{id: (name, [(type, field name), ...])}: what version 1.1 adds to a message, or a new message's fields."""
    rows = {}
    for line in ADDITIONS.splitlines():
        m = re.match(r"\| (\d+) \| `(\w+)` \| (.*) \|$", line)
        if m:
            rows[int(m.group(1))] = (m.group(2), _fields(m.group(3)))
    return rows


def declared_fields(msg_id: int) -> list[tuple[str, str]]:
    descriptor = MESSAGE_TYPES[msg_id].DESCRIPTOR
    got = []
    for number, field in enumerate(descriptor.fields, start=1):
        assert field.number == number, f"{descriptor.name}.{field.name} is field {field.number}, expected {number}"
        if field.message_type is not None:
            type_name = field.message_type.name
        elif field.enum_type is not None:
            type_name = field.enum_type.name
        else:
            type_name = SCALAR_TYPES[field.type]
        got.append(("repeated " + type_name if field.is_repeated else type_name, field.name))
    return got


def test_every_message_of_both_tables_exists_with_its_fields_in_order():
    """Version 1's fields come first and keep their numbers; 1.1's follow them (extend only by adding)."""
    v1, added = protocol_table(), additions_table()
    assert sorted(v1) == list(range(1, 18))
    assert sorted(set(v1) | set(added)) == sorted(int(m) for m in MsgId)
    for msg_id in MsgId:
        name, fields = v1.get(msg_id, (added.get(msg_id, ("", []))[0], []))
        extra_name, extra = added.get(msg_id, (name, []))
        assert MsgId(msg_id).name == name == extra_name
        assert MESSAGE_TYPES[msg_id].DESCRIPTOR.name == name
        assert declared_fields(msg_id) == fields + extra, name


def test_error_codes():
    codes = dict(re.findall(r"`([A-Z_]+) = (\d+)`", PROTOCOL))
    assert {name: int(v) for name, v in codes.items()} == dict(chat_pb2.ErrorCode.items())


def test_shared_sub_messages():
    assert [(f.name, f.number) for f in chat_pb2.Player.DESCRIPTOR.fields] == [("player_id", 1), ("name", 2)]
    assert [(f.name, f.number) for f in chat_pb2.RoomInfo.DESCRIPTOR.fields] == [
        ("room_id", 1), ("name", 2), ("member_count", 3)]


def test_generated_code_is_fresh():
    sys.path.insert(0, str(ROOT / "proto"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    stale = generate.stale_files()
    assert not stale, f"run `python proto/generate.py`: stale {stale}"
