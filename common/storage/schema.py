"""The one schema, written once; each dialect only says how its columns are spelled.

A migration is a list of steps; a step is a table to create or a raw statement
(for the rare change a table list cannot say). Dialect.render() turns steps
into that backend's SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

# Column kinds (dialects map each to a type):
ID = "id"              # 64-bit identity primary key; never reused
BIGINT = "bigint"
NAME = "name"          # a player name: 32 bytes of UTF-8 at most (64 characters leave room)
LABEL = "label"        # a room name
SECRET = "secret"      # a password hash
TEXT = "text"          # chat text, up to 4096 bytes of UTF-8
CREATED = "created"    # a timestamp set by the database on insert (UTC)
TIMESTAMP = "timestamp"  # a nullable timestamp (UTC)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    null: bool = False
    unique: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()  # besides an ID column, which is its own key


VERSION_TABLE = Table("schema_version", (Column("version", BIGINT),))

MIGRATIONS: dict[int, list[Table | str]] = {
    1: [
        Table("accounts", (
            Column("id", ID),
            Column("name", NAME, unique=True),
            Column("password_hash", SECRET),
            Column("created_at", CREATED),
            Column("last_login_at", TIMESTAMP, null=True),
        )),
        # rooms: ids are allocated here so they are unique cluster-wide; rows stay when rooms close.
        Table("rooms", (
            Column("id", ID),
            Column("name", LABEL),
            Column("creator_id", BIGINT),
            Column("created_at", CREATED),
            Column("closed_at", TIMESTAMP, null=True),
        )),
        Table("chat_log", (
            Column("room_id", BIGINT),
            Column("seq", BIGINT),
            Column("sender_id", BIGINT),
            Column("text", TEXT),
            Column("server_time_us", BIGINT),
        ), primary_key=("room_id", "seq")),
    ],
    # 1.1 (history): what a frame rebuilt from the log needs, and what a resend after a shard restart is
    # checked against. Both are the client's uint64 stored as a signed BIGINT (two's complement).
    2: [
        "ALTER TABLE chat_log ADD client_msg_id BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE chat_log ADD idempotency_key BIGINT NOT NULL DEFAULT 0",
    ],
    # 1.1 (token login and operators): the application's user id (a token's `sub`) of accounts a token
    # created, unique where set; and bans, one per account, until a time (until_us 0: until lifted).
    3: [
        "ALTER TABLE accounts ADD sub VARCHAR(255)",
        "CREATE UNIQUE INDEX accounts_sub ON accounts (sub)",
        Table("bans", (
            Column("account_id", BIGINT),
            Column("until_us", BIGINT),
            Column("reason", TEXT),
            Column("created_at", CREATED),
        ), primary_key=("account_id",)),
    ],
}
