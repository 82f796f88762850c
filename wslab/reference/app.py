"""The complete chat app: what a workshop ends with, and what an instructor serves to the whole room.

Nothing here is new: it is the chapters' reference code put together.

- **Rooms** with presence lists and private messages (chapter 03, :class:`~wslab.reference.rooms.ChatRooms`);
- **who you are** comes from a token sent as the first frame, never from the URL, and pages from
  other sites are refused (chapter 04, :class:`~wslab.reference.secure_rooms.SecureRooms`);
- **bad input** gets an ``error`` frame, a frame over 64 KB closes with 1009, and a client that stops
  reading is closed with 1013 once 512 messages wait for it (chapters 02 and 03);
- **a flood** closes with 1008 (:class:`~wslab.reference.ratelimit.RateLimit`: 20 frames at once, then 5 a
  second);
- **the instructor** can send an ``announcement`` frame to everyone in every room
  (:meth:`AppRooms.announce`, run on the server's loop: ``server.call(rooms.announce("Break!"))``).

Its routes (the wire protocol is in :mod:`wslab.reference.protocol`):

- ``GET /``: the browser chat page;
- ``GET /status``: ``{"passcode_required": bool, "rooms": [{"room": "lobby", "users": 3}, ...]}``;
- ``POST /token``: ``{"username": "ada", "passcode": ...}`` → ``{"access_token": ..., "token_type":
  "bearer"}``, a workshop login that believes the name it is given;
- ``WS /ws/chat/{room}``: the chat, first frame ``{"type": "auth", "token": ...}``.

Serve it with ``wslab serve`` (which prints the address to share), ``wslab.serve(create_app())`` in a
notebook, or ``uvicorn wslab.reference.app:app`` with the flags :mod:`wslab.reference` gives for production.
The module-level ``app`` is made when first used, from the environment: ``WSLAB_PASSCODE``, ``WSLAB_SECRET``
(the token secret, at least 32 bytes; random if unset), ``WSLAB_BROKER`` and ``WSLAB_ORIGINS`` (the pages
allowed to connect, separated by commas, such as ``https://chat.example.org``; unset: this server's own
pages); it logs on stderr who was closed and why (INFO and up). ``wslab serve`` and ``wslab.serve`` run
:class:`~wslab.reference.wsprotocol.WebSocketProtocol` with uvicorn's ``ws_max_size`` at 64 KB, as those
flags do. Under plain uvicorn, without them, the close sent to a client that stopped reading waits until it
reads, and a frame over 64 KB is refused only after uvicorn buffered up to 16 MiB of it.

One process, by default: the rooms live in its memory. With a Redis broker (chapter 08,
``create_app(broker="redis://...")`` or ``WSLAB_BROKER``) rooms, presence lists and private messages
span every worker process that shares that Redis and ``WSLAB_SECRET`` (see
:mod:`wslab.reference.broker.redis_broker`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Collection, Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse

from .auth import CLOSE_POLICY, Tokens, parse_origins
from .broker import Broker, MemoryBroker, broker_from_url, log_to_stderr
from .manager import Client
from .pages import page
from .protocol import MAX_CONTENT, Announcement, encode
from .ratelimit import BURST, RATE, RateLimit
from .rooms import Room
from .secure_rooms import SecureRooms, secure_app

__all__ = ["AppRooms", "app", "create_app"]


class AppRooms(SecureRooms):
    """:class:`~wslab.reference.secure_rooms.SecureRooms` with a rate limit per connection and announcements.

    ``rate`` and ``burst``: each connection may send ``burst`` frames at once, then ``rate`` frames a
    second; beyond that it is closed with 1008. ``broker``: where rooms live (:mod:`wslab.reference.broker`;
    this process's memory by default). Other keyword arguments are
    :class:`~wslab.reference.secure_rooms.SecureRooms`'s.
    """

    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)  # every close: floods, kicks, refusals

    def __init__(self, tokens: Tokens, *, rate: float = RATE, burst: int = BURST,
                 broker: Broker | None = None, **options: Any) -> None:
        RateLimit(rate, burst)  # refuse a bad limit now, not at the first connection
        super().__init__(tokens, **options)
        self.rate = rate
        self.burst = burst
        self.broker = broker if broker is not None else MemoryBroker()
        self._limits: dict[Client, RateLimit] = {}

    def room(self, name: str) -> Room:
        """The room called ``name``, made by the broker if it does not exist here yet."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = self.broker.room(name)
        return room

    async def chat(self, websocket: WebSocket, room_name: str, user: str) -> None:
        """:meth:`ChatRooms.chat <wslab.reference.rooms.ChatRooms.chat>` inside the broker's claim on the
        name, so that a name held by another worker process is refused as one held here is."""
        async with self.broker.claim(room_name, user):
            try:
                await super().chat(websocket, room_name, user)
            finally:
                room = self.rooms.get(room_name)
                if room is not None and not room.members:  # made here for a name claimed elsewhere
                    del self.rooms[room_name]

    def joined(self, room: Room, user: str, client: Client) -> None:
        super().joined(room, user, client)
        self._limits[client] = RateLimit(self.rate, self.burst)

    def left(self, room: Room, user: str, client: Client) -> None:
        super().left(room, user, client)
        self._limits.pop(client, None)

    hooks = (*SecureRooms.hooks, "relay")

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        """Every frame counts against the sender's rate limit; over it, the connection closes with 1008.
        Within it, the frame goes to :meth:`relay`."""
        limit = self._limits[client]
        if not limit.take():
            client.close(CLOSE_POLICY, limit.reason)
            return
        self.relay(room, user, client, data)

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        """Act on one frame that is within the rate limit: chat, a private message, a token renewal, or
        an ``error`` frame. The hook for new kinds of frame (chapter 06's exercises): handle yours,
        pass the rest to ``super().relay(...)``."""
        super().handle(room, user, client, data)

    async def announce(self, content: str) -> int:
        """Send ``content`` to everyone in every room as an ``announcement``, and through the broker to
        every other worker's rooms; return how many people here it was queued for. It runs on the server's
        loop: from a cell, ``server.call(rooms.announce("..."))``. (Nothing in it waits: it is ``async`` so
        that it can only run on the server's loop.)"""
        if not content or len(content) > MAX_CONTENT:
            raise ValueError(f"an announcement has 1 to {MAX_CONTENT} characters, not {len(content)}")
        text = encode(Announcement(content=content))
        clients = [client for room in self.rooms.values() for client in room.members.values()]
        for client in clients:
            client.send(text)
        self.broker.announce(text)
        return len(clients)

    def status(self) -> list[dict[str, Any]]:
        """The rooms in use and how many people are in each, busiest first."""
        counts = [{"room": name, "users": len(room.members)} for name, room in self.rooms.items()]
        return sorted(counts, key=lambda entry: (-entry["users"], entry["room"]))


def create_app(*, passcode: str | None = None, secret: str | None = None,
               origins: Collection[str] | None = None, rooms_type: type[AppRooms] = AppRooms,
               broker: Broker | str | None = None, **options: Any) -> FastAPI:
    """A new complete chat app (its rooms are ``app.state.rooms``, an :class:`AppRooms`).

    ``passcode``: if set, every login must give it (a server shared by a room of learners).
    ``secret``: signs the tokens (random if unset; several processes need the same one).
    ``origins``: the web pages allowed to connect (default: this server's own pages).
    ``rooms_type``: :class:`AppRooms` or a subclass of it (chapter 06's exercises).
    ``broker``: a :class:`~wslab.reference.broker.Broker` or its URL
    (:func:`~wslab.reference.broker.broker_from_url`), such as ``"redis://127.0.0.1:6379/0"``; it starts and
    stops with the app. Default: this process's memory.
    Other keyword arguments (``rate``, ``burst``, ``max_queue``, ``max_frame``, ``auth_timeout``)
    go to :class:`AppRooms`.
    """
    if passcode == "":
        raise ValueError("the passcode is empty: give one, or None for no passcode")
    if broker is None or isinstance(broker, str):
        broker = broker_from_url(broker)
    rooms = rooms_type(Tokens(secret), origins=origins, broker=broker, **options)
    chat = secure_app(rooms, passcode=passcode, path="/ws/chat/{room}")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with rooms.broker.running():
            yield

    chat.router.lifespan_context = lifespan

    @chat.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page("chat")

    @chat.get("/status")
    async def status() -> dict[str, Any]:
        shared = {"broker": rooms.broker.status()} if rooms.broker.shared else {}
        return {"passcode_required": passcode is not None, "rooms": rooms.status(), **shared}

    return chat


app: FastAPI  # what ``uvicorn wslab.reference.app:app`` serves: made on first use, from the environment


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = _from_environment(os.environ)
    log_to_stderr()
    globals()["app"] = made
    return made


def _from_environment(environ: Mapping[str, str]) -> FastAPI:
    """The app ``uvicorn wslab.reference.app:app`` serves, configured by the variables in ``environ``."""
    origins = environ.get("WSLAB_ORIGINS") or None
    try:
        allowed = parse_origins(origins) if origins is not None else None
    except ValueError as exc:
        raise ValueError(f"WSLAB_ORIGINS: {exc}") from None
    return create_app(passcode=environ.get("WSLAB_PASSCODE") or None,
                      secret=environ.get("WSLAB_SECRET") or None, origins=allowed,
                      broker=environ.get("WSLAB_BROKER") or None)
