"""Token login: the key's rules as plain objects, and the gateway core's login, refresh and expiry."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from memcluster import MemCluster

from chatcluster.common.tokens import MAX_TOKEN, TokenError, TokenKey, sign
from chatcluster.proto import chat_pb2 as pb

SECRET = b"an application's shared secret, at least 48 bytes long"


def pem_pair(kind: str) -> tuple[bytes, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "RS256" \
        else ec.generate_private_key(ec.SECP256R1())
    return (private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            private.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo))


def test_a_good_token_gives_its_sub_name_and_time_left():
    key = TokenKey(SECRET, "HS256", leeway=0)
    issued = float(int(time.time()) - 100)  # tokens carry whole seconds
    claims = key.verify(sign("user-42", SECRET, "HS256", 600, name="Ann", now=issued), now=issued + 100)
    assert (claims.sub, claims.name, claims.expires_in) == ("user-42", "Ann", 500)


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_public_key_algorithms(alg):
    private, public = pem_pair(alg)
    key = TokenKey(public, alg)
    assert key.verify(sign("u1", private, alg, 60)).sub == "u1"
    other_private, _ = pem_pair(alg)
    with pytest.raises(TokenError, match="signature"):
        key.verify(sign("u1", other_private, alg, 60))


def _unsigned_token(claims: dict) -> str:
    part = lambda obj: base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_what_is_refused_and_why():
    key = TokenKey(SECRET, "HS256", leeway=0)
    cases = [
        (sign("u", SECRET, "HS256", -10), "expired"),
        (sign("u", b"another secret of enough length, 32+ bytes", "HS256", 60), "signature"),
        (jwt.encode({"sub": "u"}, SECRET, algorithm="HS256"), "'exp'"),
        (jwt.encode({"exp": 4102444800}, SECRET, algorithm="HS256"), "'sub'"),
        (jwt.encode({"sub": 7, "exp": 4102444800}, SECRET, algorithm="HS256"), "invalid token"),
        (jwt.encode({"sub": "u", "exp": 4102444800, "name": ["x"]}, SECRET, algorithm="HS256"), "name"),
        (_unsigned_token({"sub": "u", "exp": 4102444800}), "not signed with HS256"),  # alg: none
        (jwt.encode({"sub": "u", "exp": 4102444800}, SECRET, algorithm="HS384"), "not signed with HS256"),
        ("not.a.token", "invalid token"),
        ("x" * (MAX_TOKEN + 1), "longer than"),
    ]
    for token, why in cases:
        with pytest.raises(TokenError, match=why):
            key.verify(token)


def test_an_rs256_server_refuses_an_hs256_token_signed_with_its_public_key():
    """The classic confusion: the algorithm comes from our configuration, never from the token."""
    _, public = pem_pair("RS256")
    forged = jwt.api_jws.PyJWS().encode(json.dumps({"sub": "admin", "exp": 4102444800}).encode(), b"k" * 32,
                                        algorithm="HS256")
    with pytest.raises(TokenError):
        TokenKey(public, "RS256").verify(forged)


def test_bad_keys_are_refused_at_start():
    with pytest.raises(ValueError, match="at least 32 bytes"):
        TokenKey(b"short", "HS256")
    with pytest.raises(ValueError, match="PEM"):
        TokenKey(b"not a key", "RS256")
    with pytest.raises(ValueError, match="one of"):
        TokenKey(SECRET, "none")


# ---- through the gateway core ---------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def cluster(tmp_path):
    mem = MemCluster(tmp_path)
    mem.token_key = TokenKey(SECRET, "HS256", leeway=0)
    return mem


def token_login(cluster, gw, token: str):
    client = gw.connect()
    client.send(pb.C_LOGIN_REQ(token=token))
    cluster.run()
    return client, client.one(pb.S_LOGIN_RES)


def test_the_first_login_of_a_sub_makes_its_account_and_later_ones_find_it(cluster):
    gw = cluster.gateway(auth="both")
    _, first = token_login(cluster, gw, sign("app-7", SECRET, "HS256", 600, name="Maya"))
    assert first.success and first.name == "Maya" and "New account" in first.message
    _, again = token_login(cluster, gw, sign("app-7", SECRET, "HS256", 600, name="Maya"))
    assert again.success and again.player_id == first.player_id and "New account" not in again.message
    # another user who wants the same name gets it with a suffix of their own, the same each time
    _, other = token_login(cluster, gw, sign("app-8", SECRET, "HS256", 600, name="Maya"))
    assert other.success and other.player_id != first.player_id and other.name.startswith("Maya-")
    # a token account has no password: nobody logs in to it with one
    client = gw.connect()
    client.send(pb.C_LOGIN_REQ(name="Maya", password="anything"))
    cluster.run()
    assert not client.one(pb.S_LOGIN_RES).success


def test_refused_tokens_say_why_and_count_against_the_address(cluster):
    gw = cluster.gateway(auth="both")
    for _ in range(3):
        _, res = token_login(cluster, gw, sign("u", b"a wrong secret that is long enough!!", "HS256", 600))
        assert not res.success and "signature" in res.message
    assert gw.core.stats.login_failures == 3
    _, huge = token_login(cluster, gw, "x" * (MAX_TOKEN + 1))
    assert not huge.success and "longer than" in huge.message and not cluster.db_jobs


def test_which_logins_a_server_takes(cluster):
    password_only = cluster.gateway(auth="password")
    _, res = token_login(cluster, password_only, sign("u", SECRET, "HS256", 600))
    assert not res.success and "not enabled" in res.message
    tokens_only = cluster.gateway(auth="token")
    client = tokens_only.connect()
    client.send(pb.C_LOGIN_REQ(name="bob", password="pw"))
    cluster.run()
    res = client.one(pb.S_LOGIN_RES)
    assert not res.success and "token logins only" in res.message


def test_expiry_closes_the_session_unless_a_fresh_token_refreshed_it(cluster):
    clock = Clock()
    gw = cluster.gateway(auth="both", clock=clock)
    stays, _ = token_login(cluster, gw, sign("stays", SECRET, "HS256", 60))
    goes, _ = token_login(cluster, gw, sign("goes", SECRET, "HS256", 60))
    clock.now += 50
    stays.send(pb.C_LOGIN_REQ(token=sign("stays", SECRET, "HS256", 600)))
    cluster.run()
    refreshed = stays.one(pb.S_LOGIN_RES)
    assert refreshed.success and refreshed.message == "token refreshed"
    stays.send(pb.C_LOGIN_REQ(token=sign("someone-else", SECRET, "HS256", 600)))
    cluster.run()
    assert "another account" in stays.one(pb.S_LOGIN_RES).message
    clock.now += 20  # past the first tokens' 60 s
    gw.core.tick()
    gw.flush()
    error = goes.one(pb.S_ERROR)
    assert error.code == pb.AUTH_FAILED and error.message == "token expired" and goes.closed
    assert not stays.closed and stays.take() == []
    assert gw.core.stats.tokens_expired == 1
    clock.now += 600
    gw.core.tick()
    gw.flush()
    assert stays.closed and stays.one(pb.S_ERROR).code == pb.AUTH_FAILED


def test_a_password_session_cannot_turn_into_a_token_one(cluster):
    gw = cluster.gateway(auth="both")
    client = gw.connect()
    client.send(pb.C_LOGIN_REQ(name="plain", password="pw"))
    cluster.run()
    assert client.one(pb.S_LOGIN_RES).success
    client.send(pb.C_LOGIN_REQ(token=sign("plain", SECRET, "HS256", 600)))
    cluster.run()
    assert client.one(pb.S_LOGIN_RES).message == "already logged in"
