"""The broadcast and chat-room patterns of the popular tutorial, kept as written so their failures
can be shown, tested and measured. **Do not copy these**: :mod:`wslab.manager` and :mod:`wslab.rooms`
are the hardened versions.

- :func:`naive_broadcast_app`: ``/ws/{name}``, a list of sockets and ``for ... await send_text``.
- :func:`naive_rooms_app`: ``/chat/{room}/{user}``, a dict of sockets per room keyed by the user
  name from the URL, ``receive_json`` and ``data["type"]``.

Chapters 02 and 03 type these in cells, as the lesson; the tests and benchmarks use this copy.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

__all__ = ["NaiveManager", "NaiveRoom", "naive_broadcast_app", "naive_rooms_app"]


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
