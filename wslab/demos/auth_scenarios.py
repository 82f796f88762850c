"""Knock on an endpoint with every kind of token, and see what a client is told each time.

Chapter 04 runs these against the popular tutorial's endpoint and against the hardened one:

- :func:`token_cases`: one token per way a token can be wrong (none, garbage, another key, expired,
  ``alg: none``, no user, unknown user), and a valid one;
- :func:`attempt`: one connection, described the way its client experiences it (an HTTP status
  before accept, a close code and reason after, or the first frame);
- :func:`try_tokens`: :func:`attempt` for each case, printed as a table.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Literal

import jwt
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wslab.lab.server import LabServer
from wslab.lab.transcript import describe_close, describe_message
from wslab.reference.auth import Tokens

__all__ = ["Carry", "attempt", "token_cases", "try_tokens"]

Carry = Literal["query", "auth frame", "header", "cookie"]
WAIT = 2.0  # seconds to wait for the first frame after accept


def token_cases(tokens: Tokens, user: str = "ada", unknown: str = "zed") -> dict[str, str | None]:
    """A token for each way a token can be wrong, then a valid one for ``user``; ``tokens`` holds the
    server's key."""
    soon = int(time.time()) + 600
    return {
        "no token": None,
        "garbage": "not-a-token",
        "another key": Tokens().issue(user),
        "expired": tokens.issue(user, lifetime=-60),
        "alg none": jwt.encode({"sub": user, "exp": soon}, None, algorithm="none"),
        "no sub": tokens.sign({"exp": soon}),
        "unknown user": tokens.issue(unknown),
        "valid": tokens.issue(user),
    }


async def attempt(server: LabServer, path: str, token: str | None = None, *, carry: Carry = "query",
                  origin: str | None = None) -> str:
    """Connect to ``path`` carrying ``token`` (in the query string, as the first frame, in an
    ``Authorization`` header or in a ``session`` cookie) from a page at ``origin`` (None: not a
    browser), and say what the client saw."""
    url = server.ws_url(path)
    headers: dict[str, str] = {}
    if token is not None and carry == "query":
        url += f"?token={token}"
    elif token is not None and carry == "header":
        headers["Authorization"] = f"Bearer {token}"
    elif token is not None and carry == "cookie":
        headers["Cookie"] = f"session={token}"
    options: dict[str, Any] = {"additional_headers": headers, "open_timeout": WAIT}
    if origin is not None:
        options["origin"] = origin
    try:
        async with ws_connect(url, **options) as websocket:
            if carry == "auth frame":
                no_auth = {"type": "message", "content": "hi"}  # what a client that skips auth sends
                frame = no_auth if token is None else {"type": "auth", "token": token}
                await websocket.send(json.dumps(frame))
            try:
                async with asyncio.timeout(WAIT):
                    first = await websocket.recv()
            except ConnectionClosed as exc:
                return f"accepted, then {describe_close(exc)}"
            except TimeoutError:
                return f"accepted; nothing within {WAIT:g} s"
            return f"accepted; first frame: {describe_message(first)}"
    except InvalidStatus as exc:
        response = exc.response
        body = bytes(response.body or b"").decode(errors="replace").strip()
        return f"HTTP {response.status_code}, " + (f"body: {body}" if body else "no body")


async def try_tokens(server: LabServer, path: str, cases: dict[str, str | None], *,
                     carry: Carry = "query") -> dict[str, str]:
    """:func:`attempt` each case in turn; print one line per case and return the outcomes."""
    width = max(map(len, cases))
    outcomes: dict[str, str] = {}
    for name, token in cases.items():
        outcomes[name] = await attempt(server, path, token, carry=carry)
        print(f"{name:<{width}}  →  {outcomes[name]}")
    return outcomes
