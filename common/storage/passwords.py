"""Password hashes: scrypt with a per-account random salt, compared in constant time.

The stored form names its parameters (`scrypt$n$r$p$salt$hash`, base64), so
the cost can be raised later without invalidating existing accounts.
Passwords never reach a log line or an error message; only this module sees them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

DEFAULT_N = 1 << 14  # ~45 ms and 16 MiB per hash on the reference machine
R = 8
P = 1
SALT_BYTES = 16
KEY_BYTES = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # maxmem: OpenSSL's default (32 MiB) refuses n >= 2**15 with r=8.
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=256 * n * r + (8 << 20))


def hash_password(password: str, n: int = DEFAULT_N) -> str:
    salt = os.urandom(SALT_BYTES)
    key = _scrypt(password, salt, n, R, P, KEY_BYTES)
    return f"scrypt${n}${R}${P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True if password matches; a malformed stored hash never matches."""
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(key_b64)
        key = _scrypt(password, salt, int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(key, expected)


def burn_time(password: str, n: int = DEFAULT_N) -> None:
    """Spend what a verification costs, so an unknown name answers as slowly as a wrong password."""
    _scrypt(password, b"\0" * SALT_BYTES, n, R, P, KEY_BYTES)
