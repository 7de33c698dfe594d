"""Token login: JSON Web Tokens an application's backend signs for its signed-in users (PROTOCOL.md).

PyJWT checks the signature and the claims; this module fixes what it is
allowed to accept: the algorithm comes from the server's configuration only
(never from the token's header, so an `alg: none` or an HS256 token signed
with an RS256 public key is refused), `exp` and `sub` are required, and a
token of absurd size is refused before anything parses it. Nothing here ever
logs or returns the token itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt

ALGORITHMS = ("HS256", "RS256", "ES256")
MAX_TOKEN = 4096       # bytes; a real token is a few hundred
MAX_SUB = 255          # bytes of the application's user id (accounts.sub)
LEEWAY = 30.0          # seconds of clock difference between the application and us


class TokenError(ValueError):
    """Why a token is refused, in words for the client; never the token."""


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    name: str          # the display name the token asks for ("" if none: the sub is used)
    expires_in: float  # seconds from the moment it was checked


class TokenKey:
    """The configured key: a shared secret (HS256) or a public key (RS256, ES256), read once at start."""

    def __init__(self, material: bytes, algorithm: str, leeway: float = LEEWAY) -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"token algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
        if algorithm == "HS256":
            key: object = material.strip()
            if len(key) < 32:  # RFC 7518 3.2: at least the hash's size
                raise ValueError("an HS256 key must have at least 32 bytes")
        else:
            try:
                key = jwt.algorithms.get_default_algorithms()[algorithm].prepare_key(material)
            except Exception as exc:  # noqa: BLE001 - any unreadable key is a configuration error
                raise ValueError(f"not a {algorithm} key (PEM): {type(exc).__name__}") from None
        self._key = key
        self.algorithm = algorithm
        self.leeway = leeway

    @classmethod
    def from_file(cls, path: str | Path, algorithm: str, leeway: float = LEEWAY) -> TokenKey:
        return cls(Path(path).read_bytes(), algorithm, leeway)

    def verify(self, token: str, now: float | None = None) -> Claims:
        """The claims of a valid token; TokenError saying why otherwise."""
        if len(token) > MAX_TOKEN:
            raise TokenError(f"token longer than {MAX_TOKEN} bytes")
        try:
            claims = jwt.decode(token, self._key, algorithms=[self.algorithm], leeway=self.leeway,
                                options={"require": ["exp", "sub"], "verify_aud": False})
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token has no {exc.claim!r} claim") from None
        except jwt.InvalidAlgorithmError:
            raise TokenError(f"token is not signed with {self.algorithm}") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token ({type(exc).__name__})") from None
        sub, name = claims["sub"], claims.get("name", "")
        if not isinstance(sub, str) or not sub or len(sub.encode()) > MAX_SUB:
            raise TokenError(f"token's sub must be a string of 1 to {MAX_SUB} bytes")
        if not isinstance(name, str):
            raise TokenError("token's name must be a string")
        now = time.time() if now is None else now
        return Claims(sub, name, max(0.0, float(claims["exp"]) + self.leeway - now))


def sign(sub: str, key: bytes, algorithm: str, ttl: float, name: str = "", now: float | None = None) -> str:
    """A token for `sub`, valid for `ttl` seconds: for `chatctl token`, tests and operators."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"token algorithm must be one of {', '.join(ALGORITHMS)}")
    now = time.time() if now is None else now
    claims: dict[str, object] = {"sub": sub, "iat": int(now), "exp": int(now + ttl)}
    if name:
        claims["name"] = name
    return jwt.encode(claims, key.strip() if algorithm == "HS256" else key, algorithm=algorithm)
