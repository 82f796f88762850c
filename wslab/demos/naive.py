"""The broadcast and chat-room patterns of the popular tutorial, kept as written so their failures
can be shown, tested and measured. **Do not copy these**: :mod:`wslab.reference.manager` and
:mod:`wslab.reference.rooms` are the hardened versions.

- :func:`naive_broadcast_app`: ``/ws/{name}``, a list of sockets and ``for ... await send_text``.
- :func:`naive_rooms_app`: ``/chat/{room}/{user}``, a dict of sockets per room keyed by the user
  name from the URL, ``receive_json`` and ``data["type"]``.
- :func:`naive_auth_app`: ``/ws?token=...``, the token checked by a dependency that closes before
  accept, then a handler that accepts and returns (:mod:`wslab.reference.auth` is the hardened version).
- :func:`naive_cookie_app`: ``/ws/inbox``, a user's inbox behind a session cookie, with CORS middleware
  that does not cover WebSockets.
- :func:`naive_notifications_app`: ``/ws/notifications/{user_id}``, a listener task per connection that
  nothing ever stops; :func:`naive_prices_app`: ``/ws/prices``, a loop per connection that only sends
  (:mod:`wslab.reference.streaming` is the hardened version of both).

Chapters 02 to 05 type these in cells, as the lesson; the tests and benchmarks use this copy.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import jwt
from fastapi import Depends, FastAPI, Query, WebSocket, WebSocketDisconnect, status
from fastapi.middleware.cors import CORSMiddleware

from wslab.reference.feeds import PriceFeed

__all__ = [
    "NAIVE_SECRET",
    "NAIVE_USERS",
    "NaiveManager",
    "NaiveRoom",
    "decode_token",
    "get_user_by_id",
    "get_ws_user",
    "naive_auth_app",
    "naive_broadcast_app",
    "naive_cookie_app",
    "naive_notifications_app",
    "naive_prices_app",
    "naive_rooms_app",
]


class NaiveManager:
    """The tutorial's connection manager: a list of sockets, and a broadcast that awaits each send."""

    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str) -> None:
        for connection in self.active_connections:
            await connection.send_text(message)


def naive_broadcast_app() -> FastAPI:
    """The tutorial's broadcast chat at ``/ws/{name}``."""
    app = FastAPI()
    manager = app.state.manager = NaiveManager()

    @app.websocket("/ws/{name}")
    async def chat(websocket: WebSocket, name: str) -> None:
        await manager.connect(websocket)
        try:
            while True:
                data = await websocket.receive_text()
                await manager.broadcast(f"{name}: {data}")
        except WebSocketDisconnect:
            manager.disconnect(websocket)
            await manager.broadcast(f"{name} left the chat")

    return app


class NaiveRoom:
    """The tutorial's chat room: sockets keyed by the user name taken from the URL."""

    def __init__(self) -> None:
        self.connections: dict[str, WebSocket] = {}

    async def connect(self, user: str, websocket: WebSocket) -> None:
        await websocket.accept()
        self.connections[user] = websocket
        await self.broadcast_system(f"{user} joined")

    def disconnect(self, user: str) -> None:
        if user in self.connections:
            del self.connections[user]

    async def broadcast(self, message: dict[str, Any]) -> None:
        for websocket in self.connections.values():
            await websocket.send_json(message)

    async def broadcast_system(self, text: str) -> None:
        await self.broadcast({"type": "system", "message": text})

    async def send_to_user(self, user: str, message: dict[str, Any]) -> None:
        if user in self.connections:
            await self.connections[user].send_json(message)


def naive_rooms_app() -> FastAPI:
    """The tutorial's chat rooms at ``/chat/{room}/{user}``."""
    app = FastAPI()
    rooms: dict[str, NaiveRoom] = {}
    app.state.rooms = rooms

    @app.websocket("/chat/{room_id}/{user}")
    async def chat(websocket: WebSocket, room_id: str, user: str) -> None:
        room = rooms.setdefault(room_id, NaiveRoom())
        await room.connect(user, websocket)
        try:
            while True:
                data = await websocket.receive_json()
                if data["type"] == "message":
                    await room.broadcast({"type": "message", "user": user, "content": data["content"]})
                elif data["type"] == "private":
                    await room.send_to_user(data["to"], {"type": "private", "from": user,
                                                         "content": data["content"]})
        except WebSocketDisconnect:
            room.disconnect(user)
            await room.broadcast_system(f"{user} left")

    return app


# -- chapter 04: the tutorial's token check, and a cookie session as it is often written ---------------
NAIVE_SECRET = "the-tutorial-secret-key-please-change-it"
NAIVE_USERS = {"ada": {"id": "ada", "name": "Ada"}, "bo": {"id": "bo", "name": "Bo"}}
NAIVE_INBOX = {"ada": ["bo: the door code is 4711"], "bo": []}


def decode_token(token: str) -> dict[str, Any] | None:
    """The tutorial's ``decode_token``: the claims, or None for any token it cannot verify."""
    try:
        claims: dict[str, Any] = jwt.decode(token, NAIVE_SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    return claims


def get_user_by_id(user_id: str) -> dict[str, str]:
    return NAIVE_USERS[user_id]


async def get_ws_user(websocket: WebSocket, token: str = Query(...)) -> dict[str, str] | None:
    """The tutorial's dependency: the token from the query string; close before accept if it is bad."""
    payload = decode_token(token)
    if not payload:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
        return None
    user = get_user_by_id(payload["sub"])
    return user


def naive_auth_app() -> FastAPI:
    """The tutorial's authenticated endpoint at ``/ws?token=...``."""
    app = FastAPI()

    @app.websocket("/ws")
    async def authenticated_ws(websocket: WebSocket,
                               user: dict[str, str] | None = Depends(get_ws_user)) -> None:  # noqa: B008
        if not user:
            return
        await websocket.accept()
        # Handle authenticated connection (the tutorial's handler ends here)

    return app


def naive_cookie_app(allow_origins: Iterable[str] = ()) -> FastAPI:
    """``/ws/inbox`` sends the logged-in user's messages; the user comes from the ``session`` cookie (a
    token). CORS middleware allows only ``allow_origins``, and does nothing for WebSockets."""
    app = FastAPI()
    app.add_middleware(CORSMiddleware, allow_origins=list(allow_origins), allow_credentials=True)

    @app.websocket("/ws/inbox")
    async def inbox(websocket: WebSocket) -> None:
        payload = decode_token(websocket.cookies.get("session", ""))
        if not payload:
            await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
            return
        await websocket.accept()
        user = payload["sub"]
        await websocket.send_json({"type": "inbox", "user": user, "messages": NAIVE_INBOX.get(user, [])})
        await websocket.close()

    return app


# -- chapter 05: streaming --------------------------------------------------------------------------------
# The tutorial's live prices and notifications, as written. Do not copy these: see wslab.reference.streaming.


def naive_notifications_app(poll: float = 0.5) -> FastAPI:
    """The tutorial's notifications at ``/ws/notifications/{user_id}``: each connection starts a listener
    task with ``asyncio.create_task`` and nothing ever stops it. ``app.state.inbox[user]`` is the list of
    notifications waiting for a user (append to it on the server's loop). Do not copy."""
    app = FastAPI()
    inbox: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
    app.state.inbox = inbox

    async def get_user_notifications(user_id: str) -> dict[str, Any] | None:
        return inbox[user_id].pop(0) if inbox[user_id] else None

    @app.websocket("/ws/notifications/{user_id}")
    async def notifications_stream(websocket: WebSocket, user_id: str) -> None:
        await websocket.accept()

        async def notification_listener() -> None:
            while True:
                notification = await get_user_notifications(user_id)
                if notification:
                    await websocket.send_json(notification)
                await asyncio.sleep(poll)

        try:
            asyncio.create_task(notification_listener())
            while True:
                data = await websocket.receive_text()
                if data == "ping":
                    await websocket.send_text("pong")
        except WebSocketDisconnect:
            pass

    return app


def naive_prices_app(feed: PriceFeed) -> FastAPI:
    """The tutorial's live prices at ``/ws/prices``: a loop per connection that only sends. Where the
    tutorial sleeps a second between sends, this loop waits for ``feed``'s next prices, so that a notebook
    decides when time passes; the pattern is the tutorial's. Do not copy."""
    app = FastAPI()

    @app.websocket("/ws/prices")
    async def price_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                prices = feed.latest
                await websocket.send_json(prices.frame())
                await feed.changed()
        except WebSocketDisconnect:
            pass

    return app
