"""Chat rooms with presence lists, private messages, validated frames and identities nobody can steal.

Each room maps user names to :class:`~wslab.reference.manager.Client` connections, so everything the manager
guarantees holds per room: fan-out never waits on one client, a client that stops reading is
disconnected with 1013, a dead connection is noticed by its own handler.

On top of that (the wire format is in :mod:`wslab.reference.protocol`):

- **Presence:** the user who joins gets the room's whole list; everyone else gets the change (who joined or
  left) with the room's ``count`` and presence ``version``, so N joins cost O(N²) bytes, not O(N³). A
  ``{"type": "who"}`` frame is answered with the whole list (see :mod:`wslab.reference.presence`).
- **Validation:** a frame that is not valid JSON, has an unknown type, misses a field or carries
  over-long content gets an ``error`` frame; the connection and the room carry on. A frame over the
  size limit closes the connection with 1009.
- **Private messages** go to the one user named, with a copy to the sender; to a user who is not in
  the room, the sender gets an ``error`` frame instead of silence.
- **Identity:** a name already in the room is refused. The newcomer is accepted and then closed with
  1008 (policy violation) and a reason a browser can show; the user already there keeps the name and
  every message sent to it. (Replacing the old connection instead would let anyone who knows a name
  take over that user's private messages.)
- **Single process.** Rooms live in this process's memory; a later chapter spreads them over processes
  with a broker.
- **Logged:** every connection that is refused or closed is logged once, with who, the code and why (never
  a message body), on :attr:`ChatRooms.logger` (see :class:`~wslab.reference.manager.Client`).
- **Names are taken until the connection ends:** a user whose connection dropped without a close
  frame keeps the name until the server notices (keepalive, about 40 s), and names are compared
  exactly ("Ada" and "ada" are different users).

    rooms = ChatRooms()

    @app.websocket("/chat/{room}/{user}")
    async def chat(websocket: WebSocket, room: str, user: str):
        await rooms.chat(websocket, room, user)
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import FastAPI, WebSocket

from .manager import CLOSE_TIMEOUT, MAX_FRAME, MAX_QUEUE, Client
from .protocol import (
    ChatMessage,
    Error,
    Join,
    Leave,
    Message,
    Private,
    ProtocolError,
    ServerFrame,
    Users,
    Who,
    encode,
    parse,
    valid_room,
    valid_user,
)

__all__ = ["CLOSE_NAME_TAKEN", "ChatRooms", "Room", "rooms_app"]

CLOSE_NAME_TAKEN = 1008  # policy violation: the name is in use, or a user or room name is not valid


class Room:
    """The users in one room, in the order they joined, and what can be sent to them."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.members: dict[str, Client] = {}
        self.version = 0  # presence changes told so far: each join and each leave adds one

    @property
    def users(self) -> list[str]:
        return list(self.members)

    def presence(self) -> Users:
        """The whole list at the current ``version``: the answer to a ``who`` frame."""
        return Users(users=self.users, version=self.version)

    def broadcast(self, frame: ServerFrame | Mapping[str, Any], *, exclude: Client | None = None) -> None:
        """Queue ``frame`` (a protocol model, or a dict sent as JSON) for every member but ``exclude``;
        never waits (see :meth:`Client.send`)."""
        text = encode(frame)
        for client in tuple(self.members.values()):
            if client is not exclude:
                client.send(text)

    def join(self, user: str, client: Client) -> bool:
        """Add ``user``; False (and nothing changes) if the name is taken. ``user`` gets a ``join`` with the
        whole list, everyone else one with the count: the list would cost O(N) bytes for each of N members."""
        if user in self.members:
            return False
        self.members[user] = client
        self.version += 1
        self.broadcast(Join(user=user, count=len(self.members), version=self.version), exclude=client)
        client.send(encode(Join(user=user, users=self.users, version=self.version)))
        return True

    def leave(self, user: str, client: Client) -> None:
        """Remove ``user`` if ``client`` is the connection holding that name; the rest get a ``leave``."""
        if self.members.get(user) is client:
            del self.members[user]
            self.version += 1
            self.broadcast(Leave(user=user, count=len(self.members), version=self.version))

    def send_private(self, sender: str, to: str, content: str) -> bool:
        """Send a private message to ``to`` and a copy to ``sender``; False if ``to`` is not here."""
        target = self.members.get(to)
        if target is None:
            return False
        text = encode(Private.model_validate({"from": sender, "to": to, "content": content}))
        target.send(text)
        own = self.members.get(sender)
        if own is not None and own is not target:
            own.send(text)
        return True


class ChatRooms:
    """Every room of one process, created on first use and dropped when empty."""

    hooks: tuple[str, ...] = ("joined", "handle", "left")  # for subclasses; run between frames, never wait
    # Where each connection's end is logged (who, code, why): refused names, kicks, leaves. A subclass in
    # another module names its own, so that an operator can tell which service closed whom.
    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init__(self, *, max_queue: int = MAX_QUEUE, max_frame: int = MAX_FRAME,
                 close_timeout: float = CLOSE_TIMEOUT) -> None:
        for hook in self.hooks:
            if inspect.iscoroutinefunction(getattr(self, hook)):
                raise TypeError(f"{type(self).__name__}.{hook}() must be a plain `def`, not `async def`: "
                                "it runs between frames and never waits (client.send only queues).")
        self.rooms: dict[str, Room] = {}
        self._client = functools.partial(Client, max_queue=max_queue, max_frame=max_frame,
                                         close_timeout=close_timeout, logger=self.logger)

    def room(self, name: str) -> Room:
        """The room called ``name``, made if it does not exist yet."""
        return self.rooms.setdefault(name, Room(name))

    async def chat(self, websocket: WebSocket, room_name: str, user: str) -> None:
        """Serve one connection for its whole life: join, relay frames, leave (in ``finally``)."""
        async with self._client(websocket) as client:
            if not valid_user(user):
                client.close(CLOSE_NAME_TAKEN, "not a valid user name: use 1 to 32 letters, digits, _ . -")
                return
            if not valid_room(room_name):
                client.close(CLOSE_NAME_TAKEN, "not a valid room name: use 1 to 32 letters, digits, _ . -")
                return
            room = self.room(room_name)
            if not room.join(user, client):
                client.close(CLOSE_NAME_TAKEN, f"the name {user!r} is already taken in this room")
                return
            try:
                self.joined(room, user, client)
                async for data in client.messages():
                    self.handle(room, user, client, data)
            finally:
                room.leave(user, client)
                if not room.members:
                    self.rooms.pop(room_name, None)
                self.left(room, user, client)

    def joined(self, room: Room, user: str, client: Client) -> None:
        """Called once ``user`` is in ``room`` and everyone has had the ``join``; a hook for subclasses
        (a welcome, the room's history). Does nothing here."""

    def left(self, room: Room, user: str, client: Client) -> None:
        """Called once ``user`` has left ``room``, however the connection ended; a hook for subclasses
        (cancel what :meth:`joined` started). Does nothing here."""

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        """Act on one received frame: relay it, or answer with an ``error`` frame."""
        try:
            frame = parse(data)
        except ProtocolError as exc:
            client.send(encode(Error(message=str(exc))))
            return
        if isinstance(frame, ChatMessage):
            room.broadcast(Message(user=user, content=frame.content))
        elif isinstance(frame, Who):
            client.send(encode(room.presence()))
        elif not room.send_private(user, frame.to, frame.content):
            client.send(encode(Error(message=f"no user {frame.to!r} in this room: the message was not sent")))


def rooms_app(rooms: ChatRooms | None = None) -> FastAPI:
    """Chapter 03's chat rooms, hardened, at ``/chat/{room}/{user}``."""
    rooms = rooms if rooms is not None else ChatRooms()
    app = FastAPI()
    app.state.rooms = rooms

    @app.websocket("/chat/{room}/{user}")
    async def chat(websocket: WebSocket, room: str, user: str) -> None:
        await rooms.chat(websocket, room, user)

    return app
