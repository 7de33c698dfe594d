"""Bans in the database (the `bans` table) and the login step that honours them, on SQLite."""

from __future__ import annotations

import time

import pytest

from chatcluster.common.storage import Database


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'chat.db'}", pool_size=1, scrypt_n=16)
    database.migrate()
    yield database
    database.close()


def now_us() -> int:
    return time.time_ns() // 1000


def test_a_ban_refuses_the_login_after_the_password_and_says_until_when(db):
    ann = db.login("ann", "pw", register=True).player_id
    assert db.account_id("ann") == ann and db.account_id("nobody") is None
    until = now_us() + 3600 * 1_000_000
    db.ban(ann, until, "spam")
    refused = db.login("ann", "pw", register=True)
    assert not refused.ok
    assert refused.message.startswith("this account is banned until ") and refused.message.endswith("UTC: spam")
    # A wrong password is told so, not about the ban: only the account's owner learns of it.
    assert db.login("ann", "bad", register=True).message == "wrong password"
    assert db.unban(ann) is True
    assert db.login("ann", "pw", register=True).ok
    assert db.unban(ann) is False  # nothing left to lift


def test_a_ban_until_lifted_and_a_new_ban_replacing_the_old(db):
    bob = db.login("bob", "pw", register=True).player_id
    db.ban(bob, 0, "")
    assert db.login("bob", "pw", register=True).message == "this account is banned until lifted"
    db.ban(bob, now_us() + 60_000_000, "second thoughts")
    ban = db.active_ban(bob)
    assert ban is not None and ban.until_us > 0 and ban.reason == "second thoughts"


def test_an_ended_ban_no_longer_counts(db):
    eve = db.login("eve", "pw", register=True).player_id
    db.ban(eve, now_us() - 1, "over")
    assert db.active_ban(eve) is None
    assert db.login("eve", "pw", register=True).ok
    assert db.unban(eve) is False  # it had ended: nothing was lifted (the row is gone all the same)
