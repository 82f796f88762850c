"""Chat rooms whose users are who their token says: chapter 03's rooms behind chapter 04's checks.

:class:`SecureRooms` serves ``/chat/{room}``. The user's name is not in the URL: it comes from the
access token (:class:`~wslab.reference.auth.Tokens`), sent as the first frame (``{"type": "auth", "token":
...}``, :func:`~wslab.reference.auth.authenticate`), so it never reaches a URL or an access log, and nobody
can speak as anyone else. In order, a connection:

1. is refused before accept (HTTP 403, with the reason as the body) if its ``Origin`` is another site;
2. is accepted, and closed with 1008 and the reason unless a valid auth frame comes within a few
   seconds, or if :meth:`SecureRooms.allowed` says no to the room;
3. joins the room as the token's user, with everything :class:`~wslab.reference.rooms.ChatRooms` guarantees;
4. is closed with 1008 ("token expired") when its token expires, unless it sends a fresh auth frame
   for the same user before then.

:func:`secure_app` adds ``POST /token``, a workshop login: ``{"username": "ada"}`` (and the passcode,
if the server has one) returns ``{"access_token": ..., "token_type": "bearer"}``. It believes the name
it is given: it stands in for a real login (a password, single sign-on) and must never face the internet
as it is.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Collection
from typing import Any, ClassVar

from fastapi import FastAPI, HTTPException, WebSocket
from pydantic import BaseModel

from .auth import (
    AUTH_TIMEOUT,
    CLOSE_POLICY,
    AuthError,
    Identity,
    Tokens,
    authenticate,
    origin_allowed,
    refuse,
)
from .manager import Client, fit_reason, who
from .protocol import Error, ProtocolError, encode, frame_type, parse_auth
from .rooms import ChatRooms, Room

__all__ = ["Login", "SecureRooms", "identity_of", "secure_app"]


def identity_of(client: Client) -> Identity:
    """The verified identity of a connection that :class:`SecureRooms` let in."""
    identity: Identity = client.websocket.state.identity
    return identity


class SecureRooms(ChatRooms):
    """:class:`~wslab.reference.rooms.ChatRooms` with identities from tokens, an ``Origin`` check and expiry.

    ``origins``: the web pages allowed to connect (default: only pages of this server, see
    :func:`~wslab.reference.auth.origin_allowed`). ``auth_timeout``: seconds to wait for the auth frame.
    Other keyword arguments are :class:`~wslab.reference.rooms.ChatRooms`'s limits.
    """

    hooks = (*ChatRooms.hooks, "allowed")
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)  # refusals, expiries and every close

    def __init__(self, tokens: Tokens, *, origins: Collection[str] | None = None,
                 auth_timeout: float = AUTH_TIMEOUT, **limits: Any) -> None:
        super().__init__(**limits)
        self.tokens = tokens
        self.origins = origins
        self.auth_timeout = auth_timeout
        self._expiry: dict[Client, asyncio.TimerHandle] = {}

    async def serve(self, websocket: WebSocket, room_name: str) -> None:
        """Serve one connection to ``room_name`` for its whole life (steps 1 to 4 above)."""
        if not origin_allowed(websocket, self.origins):
            origin = websocket.headers.get("origin", "")[:60]
            await refuse(websocket, 403, f"connections from pages at {origin} are refused")
            return
        identity = await authenticate(websocket, self.tokens, timeout=self.auth_timeout)
        if identity is None:
            return
        try:
            allowed = self.allowed(identity, room_name)
        except Exception:
            await websocket.close(1011, "internal error")  # and uvicorn logs the traceback
            raise
        if not allowed:
            reason = fit_reason(f"{identity.user} may not join the room {room_name!r}")
            self.logger.info("%s - closed %d: %s", who(websocket), CLOSE_POLICY, reason)
            await websocket.close(CLOSE_POLICY, reason)
            return
        await self.chat(websocket, room_name, identity.user)

    def allowed(self, identity: Identity, room_name: str) -> bool:
        """Whether ``identity`` may join ``room_name``; a hook for subclasses. Everyone may, here."""
        return True

    def joined(self, room: Room, user: str, client: Client) -> None:
        self._expire_later(client)

    def left(self, room: Room, user: str, client: Client) -> None:
        self._cancel_expiry(client)

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        """A fresh auth frame renews the connection's token (silently; an ``error`` frame if it is
        refused, and a close with 1008 if the new token no longer allows this room); everything else is
        chat."""
        if frame_type(data) != "auth":
            super().handle(room, user, client, data)  # chat, or an error frame saying what is wrong
            return
        try:
            identity = self.tokens.verify(parse_auth(data).token)
        except (ProtocolError, AuthError) as exc:
            client.send(encode(Error(message=f"auth: {exc}")))
            return
        if identity.user != user:
            client.send(encode(Error(message=f"auth: that token is for {identity.user}, not {user}")))
            return
        if not self.allowed(identity, room.name):
            client.close(CLOSE_POLICY, f"{user} may no longer be in the room {room.name!r}")
            return
        client.websocket.state.identity = identity
        self._expire_later(client)

    def _cancel_expiry(self, client: Client) -> None:
        timer = self._expiry.pop(client, None)
        if timer is not None:
            timer.cancel()

    def _expire_later(self, client: Client) -> None:
        self._cancel_expiry(client)
        delay = max(0.0, identity_of(client).expires_in)
        self._expiry[client] = asyncio.get_running_loop().call_later(
            delay, client.kick, CLOSE_POLICY, "token expired: log in again")


class Login(BaseModel):
    """``POST /token``'s body."""

    username: str
    passcode: str | None = None


def secure_app(rooms: SecureRooms | None = None, *, passcode: str | None = None,
               path: str = "/chat/{room}") -> FastAPI:
    """Chapter 04's chat: ``POST /token`` to log in, then ``path`` (``/chat/{room}``) with first-message
    auth.

    ``passcode``, if set, must come with every login (a server shared by a room of learners).
    """
    rooms = rooms if rooms is not None else SecureRooms(Tokens())
    app = FastAPI()
    app.state.rooms = rooms

    @app.post("/token")
    async def token(login: Login) -> dict[str, str]:
        given = (login.passcode or "").encode()
        if passcode is not None and not hmac.compare_digest(given, passcode.encode()):
            raise HTTPException(401, "wrong or missing passcode: ask the instructor for it")
        if not rooms.tokens.knows(login.username):
            raise HTTPException(403, f"{login.username[:40]!r} cannot log in here: use 1 to 32 letters, "
                                     "digits, _ . - (and a name this server knows)")
        return {"access_token": rooms.tokens.issue(login.username), "token_type": "bearer"}

    @app.websocket(path)
    async def chat(websocket: WebSocket, room: str) -> None:
        await rooms.serve(websocket, room)

    return app
