"""proto/chat.proto agrees with docs/PROTOCOL.md, and the generated code with proto/*.proto."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from chatcluster.common.frames import MESSAGE_TYPES, MsgId
from chatcluster.proto import chat_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = (ROOT / "docs" / "PROTOCOL.md").read_text(encoding="utf-8")


def protocol_table() -> dict[int, tuple[str, list[tuple[str, str]]]]:
    """{id: (name, [(type, field name), ...])} from the message table of PROTOCOL.md."""
    rows = {}
    for line in PROTOCOL.splitlines():
        m = re.match(r"\| (\d+) \| `(\w+)` \| [cs]→[cs] \| (.*) \|$", line)
        if not m:
            continue
        fields = re.findall(r"`((?:repeated )?\w+) (\w+)`", m.group(3))
        rows[int(m.group(1))] = (m.group(2), [(t, n) for t, n in fields])
    return rows


def test_every_message_of_the_table_exists_with_its_fields_in_order():
    table = protocol_table()
    assert sorted(table) == list(range(1, 18))
    scalar = {"string": "string", "bool": "bool", "uint64": "uint64", "uint32": "uint32"}
    for msg_id, (name, fields) in table.items():
        assert MsgId(msg_id).name == name
        descriptor = MESSAGE_TYPES[msg_id].DESCRIPTOR
        assert descriptor.name == name
        got = []
        for number, field in enumerate(descriptor.fields, start=1):
            assert field.number == number, f"{name}.{field.name} is field {field.number}, expected {number}"
            if field.message_type is not None:
                type_name = field.message_type.name
            elif field.enum_type is not None:
                type_name = field.enum_type.name
            else:
                type_name = {9: "string", 8: "bool", 4: "uint64", 13: "uint32"}[field.type]
            if field.is_repeated:
                type_name = "repeated " + type_name
            got.append((type_name, field.name))
        assert got == [(scalar.get(t, t), n) for t, n in fields], name


def test_error_codes():
    codes = dict(re.findall(r"`(\w+) = (\d+)`", PROTOCOL))
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
