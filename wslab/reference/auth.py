"""Who is on the other end of a WebSocket: access tokens, and the checks a handshake needs.

- :class:`Tokens` issues and verifies access tokens: JWTs signed with HS256 (PyJWT), each with a
  user (``sub``) and an expiry (``exp``). Every refusal is an :class:`AuthError` saying which check
  failed (no token, not a token, another key, expired, ``alg: none``, no user, unknown user). Several
  workers that share the secret verify each other's tokens, though their clocks differ by up to
  :data:`LEEWAY` seconds.
- :func:`authenticate` is first-message auth: accept, then expect ``{"type": "auth", "token": ...}``
  within a few seconds; anything else closes with 1008 and the reason. The token never appears in a
  URL, so never in an access log, and a browser can show the reason.
- :func:`refuse` refuses a handshake before accepting it, with an HTTP status and a text body. A
  Python client sees both; a browser's ``WebSocket`` sees only that the connection failed.
- :func:`bearer_token` reads ``Authorization: Bearer ...``, what non-browser clients can send.
- :func:`origin_allowed` is the defence against Cross-Site WebSocket Hijacking: browsers send cookies
  with the upgrade whatever page opened it, and CORS does not apply to WebSockets, so the server must
  look at ``Origin`` itself. :func:`parse_origins` reads a list of allowed origins from configuration.

Example::

    tokens = Tokens()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket):
        if not origin_allowed(websocket):
            return await refuse(websocket, 403, "cross-site connections are refused")
        identity = await authenticate(websocket, tokens)   # accepts; None if refused (closed 1008)
        if identity is None:
            return
        await websocket.send_text(f"hello {identity.user}")
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Collection, Container
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import jwt
from fastapi import WebSocket
from fastapi.responses import PlainTextResponse

from .manager import CLOSE_TOO_BIG, fit_reason
from .protocol import MAX_TOKEN, ProtocolError, parse_auth, valid_user

__all__ = [
    "ALGORITHM",
    "AUTH_TIMEOUT",
    "CLOSE_POLICY",
    "LEEWAY",
    "MAX_AUTH_FRAME",
    "AuthError",
    "Identity",
    "Tokens",
    "authenticate",
    "bearer_token",
    "origin_allowed",
    "parse_origins",
    "refuse",
]

ALGORITHM = "HS256"
AUTH_TIMEOUT = 5.0  # seconds a connection may wait before sending its auth frame
CLOSE_POLICY = 1008  # policy violation: the close code for every refusal after accept
MAX_AUTH_FRAME = MAX_TOKEN + 256  # bytes: the auth frame's JSON around a token of the longest length
LIFETIME = 3600.0  # seconds a token is valid for, unless said otherwise
# Seconds a token's "iat" (issued at) and "nbf" (not before) may lie in this server's future: the worker that
# issued it may run that far ahead (several workers share one secret). Never added to "exp": a token lasts
# no longer than its lifetime, and a connection is closed when it expires (secure_rooms).
LEEWAY = 5.0

_log = logging.getLogger("wslab.reference.auth")  # refusals, at INFO; never a token

Refusal = Literal["missing", "malformed", "algorithm", "signature", "expired", "claims", "unknown user"]


class AuthError(Exception):
    """A token was refused. ``kind`` names the check that failed; ``str(error)`` says it in words fit
    for a close reason (under 123 bytes)."""

    def __init__(self, kind: Refusal, reason: str) -> None:
        super().__init__(reason)
        self.kind: Refusal = kind


@dataclass(frozen=True)
class Identity:
    """Who a verified token says the client is."""

    user: str
    expires_at: float  # seconds since the epoch, as time.time()
    role: str = "user"
    claims: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def expires_in(self) -> float:
        """Seconds until the token expires (negative once it has)."""
        return self.expires_at - time.time()


class Tokens:
    """Issue and verify access tokens: HS256 JWTs with ``sub``, ``iat``, ``exp`` and a ``role``.

    ``secret`` signs every token (at least 32 bytes; by default a random one, so tokens last as long as
    the process, and several worker processes would each have their own: give them one secret, read
    from the environment); ``users``, if given, are the only users a token is accepted for.

    >>> tokens = Tokens(users={"ada", "bo"})
    >>> tokens.verify(tokens.issue("ada")).user
    'ada'
    """

    def __init__(self, secret: str | None = None, *, users: Container[str] | None = None,
                 lifetime: float = LIFETIME) -> None:
        if secret is not None and len(secret.encode()) < 32:
            raise ValueError(f"the secret is {len(secret.encode())} bytes; HS256 needs at least 32. "
                             "Make one with secrets.token_urlsafe(32), or pass none for a random one.")
        self._secret = secret if secret is not None else secrets.token_urlsafe(32)
        self.users = users
        self.lifetime = lifetime

    def knows(self, user: str) -> bool:
        """Whether a token for ``user`` would be accepted (a valid name, and in ``users`` if given)."""
        return valid_user(user) and (self.users is None or user in self.users)

    def issue(self, user: str, *, lifetime: float | None = None, role: str = "user", **claims: Any) -> str:
        """A token for ``user``, valid for ``lifetime`` seconds (negative: already expired, for tests).
        Extra ``claims`` (for example ``rooms=["lobby"]``) travel in the token, signed."""
        if not valid_user(user):
            raise ValueError(f"{user!r} is not a valid user name: use 1 to 32 letters, digits, _ . -")
        now = time.time()
        lifetime = self.lifetime if lifetime is None else lifetime
        # exp is whole seconds: round up, so that the token lasts at least ``lifetime``.
        expires = math.ceil(now + lifetime)
        return self.sign({**claims, "sub": user, "role": role, "iat": int(now), "exp": expires})

    def sign(self, claims: dict[str, Any]) -> str:
        """Sign ``claims`` as they are, with no checks: what :meth:`issue` builds on, and a way for a
        test to make a token that lacks something."""
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str | None) -> Identity:
        """The identity in ``token``, or :class:`AuthError` saying why it is refused."""
        if not token:
            raise AuthError("missing", "no token: log in first, then send the token")
        if len(token) > MAX_TOKEN:
            raise AuthError("malformed", f"not a token: longer than {MAX_TOKEN} characters")
        try:
            claims = jwt.decode(token, self._secret, algorithms=[ALGORITHM], leeway=LEEWAY,
                                options={"require": ["exp", "sub"]})
            if int(claims["exp"]) <= time.time():  # PyJWT let it through LEEWAY late: not us
                raise jwt.ExpiredSignatureError
        except jwt.ExpiredSignatureError:
            raise AuthError("expired", "token expired: log in again") from None
        except jwt.InvalidAlgorithmError:
            raise AuthError("algorithm", f"token refused: signed with {_algorithm(token)!r}, "
                                         f"only {ALGORITHM} is accepted") from None
        except jwt.InvalidSignatureError:
            raise AuthError("signature", "token refused: its signature does not match "
                                         "(another key signed it, or it was changed)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError("claims", f'token refused: it has no "{exc.claim}" claim') from None
        except jwt.DecodeError:
            raise AuthError("malformed", "not a token: a JWT is three base64 parts joined by dots") from None
        except jwt.InvalidTokenError as exc:  # a claim of the wrong type, iat beyond the leeway, ...
            raise AuthError("claims", f"token refused: {exc}"[:120]) from None
        user = claims["sub"]
        if not self.knows(user):
            raise AuthError("unknown user", f"token refused: no user {str(user)[:40]!r} here")
        role = claims.get("role")
        return Identity(user=user, expires_at=float(claims["exp"]),
                        role=role if isinstance(role, str) else "user", claims=claims)


def _algorithm(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("alg"))[:20]  # the sender chose it: keep it short
    except jwt.DecodeError:
        return "?"


async def authenticate(websocket: WebSocket, tokens: Tokens, *,
                       timeout: float = AUTH_TIMEOUT) -> Identity | None:
    """First-message auth: accept ``websocket``, then expect ``{"type": "auth", "token": ...}`` as its
    first frame within ``timeout`` seconds. Returns the verified identity (also kept as
    ``websocket.state.identity``); on anything else closes with 1008 and the reason (1009 for a frame
    larger than ``MAX_AUTH_FRAME`` bytes, refused before it is parsed), and returns None.

    Until then the connection is open but can do nothing; a server facing the internet also limits how
    many such connections one address may hold.
    """
    await websocket.accept()
    try:
        async with asyncio.timeout(timeout):
            message = await websocket.receive()
    except TimeoutError:
        _log.info("%s - auth refused: no auth frame within %g s", _peer(websocket), timeout)
        await websocket.close(CLOSE_POLICY, f"no auth frame within {timeout:g} s: send "
                                            '{"type": "auth", "token": ...} first')
        return None
    if message["type"] == "websocket.disconnect":
        return None
    data: str | bytes | None = message.get("text")
    if data is None:
        data = message.get("bytes") or b""
    if len(data) > MAX_AUTH_FRAME:  # checked before parsing: nobody is logged in yet
        _log.info("%s - auth refused: a first frame of %d bytes", _peer(websocket), len(data))
        await websocket.close(CLOSE_TOO_BIG, f"an auth frame is at most {MAX_AUTH_FRAME} bytes")
        return None
    try:
        identity = tokens.verify(parse_auth(data).token)
    except (ProtocolError, AuthError) as exc:
        _log.info("%s - auth refused: %s", _peer(websocket), exc)
        await websocket.close(CLOSE_POLICY, fit_reason(f"auth: {exc}"))
        return None
    websocket.state.identity = identity
    return identity


def _peer(websocket: WebSocket) -> str:
    return f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"


async def refuse(websocket: WebSocket, status: int, reason: str) -> None:
    """Refuse the handshake, before accepting it, with HTTP ``status`` and ``reason`` as a text body.

    A Python client gets both (websockets raises ``InvalidStatus``); a browser's ``WebSocket`` gets
    neither, only an ``error`` event and close code 1006. On a server without the ASGI
    ``websocket.http.response`` extension, this falls back to a plain HTTP 403 with no body.
    """
    _log.info("%s - refused before accept: HTTP %d %s", _peer(websocket), status, reason)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(reason, status_code=status))
    else:
        await websocket.close(CLOSE_POLICY)


def bearer_token(websocket: WebSocket) -> str | None:
    """The token in an ``Authorization: Bearer <token>`` header, or None. Python and other
    non-browser clients can send it; a browser's ``WebSocket`` cannot set headers."""
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def origin_allowed(websocket: WebSocket, allowed: Collection[str] | None = None) -> bool:
    """Whether the page that opened this connection may use it.

    Browsers send ``Origin`` (the opening page's scheme, host and port) with every WebSocket
    handshake. With ``allowed`` (for example ``{"https://chat.example.org"}``), the origin must be one
    of them; without, it must be this server itself (the same host and port as the ``Host`` header).
    A handshake without ``Origin`` does not come from a browser page, so no victim's cookies ride on
    it, and it is allowed; ``Origin: null`` (a sandboxed or local file page) is not.

    In production, pass ``allowed`` explicitly: the default trusts the ``Host`` header, which a proxy
    may rewrite and which a DNS-rebinding page controls (it makes ``evil.example`` resolve to this
    server, so its requests carry ``Host: evil.example`` and ``Origin: http://evil.example``).
    """
    if isinstance(allowed, str):
        raise TypeError(f"allowed is a collection of origins, not one string: use {{{allowed!r}}}")
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if allowed is not None:
        return origin in {item.strip().rstrip("/").lower() for item in allowed}
    host = websocket.headers.get("host", "").strip().lower()
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc == host


def parse_origins(text: str) -> list[str]:
    """The origins in ``text``, separated by commas (``"https://chat.example.org, https://example.org"``),
    each ``scheme://host[:port]`` with scheme http or https, as :func:`origin_allowed` compares them.

    Raises :class:`ValueError` naming the first item that is not an origin, or if there is none: a path,
    a wildcard or ``null`` would allow what nobody meant to.
    """
    origins = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue  # "a, b," : a trailing comma names nothing
        parts = urlsplit(item)
        try:
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:  # a port that is not a number
            port_ok = False
        if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username is not None
                or parts.password is not None or parts.path not in ("", "/") or parts.query
                or parts.fragment or not port_ok):
            raise ValueError(f"{item[:80]!r} is not an origin: write scheme://host[:port], such as "
                             "https://chat.example.org, and separate several with commas")
        origins.append(item.rstrip("/").lower())
    if not origins:
        raise ValueError(f"{text[:80]!r} names no origin: give at least one, such as https://chat.example.org")
    return origins
