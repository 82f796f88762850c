"""The complete chat app with one bug planted in it: what chapter 07's tests must catch.

Each variant is :class:`~wslab.reference.app.AppRooms` with one method overridden, the way such a bug creeps
into real code: two lines in the wrong order, the wrong helper called, a field trusted that should not be.
Everything else (login, rooms, limits, the page) is the complete app's own code.

- ``"private leak"`` (:class:`LeakyPrivateRooms`): a private message reaches everyone in the room;
- ``"stale leave"`` (:class:`StaleLeaveRooms`): a ``leave`` frame's count still counts the user who
  left;
- ``"trusted sender"`` (:class:`TrustedSenderRooms`): a ``user`` field in the client's frame decides
  who the message is from;
- ``"bad json closes"`` (:class:`BadJsonClosesRooms`): a frame that is not JSON closes the connection
  instead of getting an ``error`` frame.

A test is worth the bugs it catches: it should pass on :func:`~wslab.reference.app.create_app` and fail on the
variant::

    from wslab.demos.planted import planted_app

    test_private_is_private(create_app())                  # passes
    test_private_is_private(planted_app("private leak"))   # fails: the test catches the bug
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args

from fastapi import FastAPI

from wslab.reference.app import AppRooms, create_app
from wslab.reference.manager import Client
from wslab.reference.protocol import Leave, Private, PrivateMessage, ProtocolError, parse
from wslab.reference.rooms import Room

__all__ = [
    "BUGS",
    "BadJsonClosesRooms",
    "Bug",
    "LeakyPrivateRooms",
    "StaleLeaveRooms",
    "TrustedSenderRooms",
    "planted_app",
]

Bug = Literal["private leak", "stale leave", "trusted sender", "bad json closes"]
CLOSE_UNSUPPORTED = 1003  # "unsupported data": what the bad-JSON variant closes with


class LeakyPrivateRooms(AppRooms):
    """Bug: a private message is broadcast to the whole room (the sender meant ``room.send_private``
    and wrote ``room.broadcast``). The frame still says ``"to": "bo"``, so bo's screen looks right."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        try:
            frame = parse(data)
        except ProtocolError:
            frame = None
        if isinstance(frame, PrivateMessage) and frame.to in room.members:
            room.broadcast(Private.model_validate({"from": user, "to": frame.to, "content": frame.content}))
            return
        super().relay(room, user, client, data)


class _StaleLeaveRoom(Room):
    def leave(self, user: str, client: Client) -> None:
        if self.members.get(user) is client:
            self.version += 1
            # bug: announced before the user is removed, so the count still counts them
            self.broadcast(Leave(user=user, count=len(self.members), version=self.version))
            del self.members[user]


class StaleLeaveRooms(AppRooms):
    """Bug: the ``leave`` frame is sent before the user is taken out of the room, so its ``count`` still
    counts the user who left (lines of :meth:`Room.leave <wslab.reference.rooms.Room.leave>` swapped)."""

    def room(self, name: str) -> Room:
        return self.rooms.setdefault(name, _StaleLeaveRoom(name))


class TrustedSenderRooms(AppRooms):
    """Bug: a ``user`` field in a frame from the client decides who the message is from ("so that the
    page can choose a display name"): anyone can speak as anyone."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        frame = _json(data)
        claimed = frame.get("user") if isinstance(frame, dict) else None
        super().relay(room, claimed if isinstance(claimed, str) and claimed else user, client, data)


class BadJsonClosesRooms(AppRooms):
    """Bug: a frame that is not JSON closes the connection with 1003 instead of getting an ``error``
    frame; the user is thrown out of the room for a typo in a script."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if _json(data) is _NOT_JSON:
            client.close(CLOSE_UNSUPPORTED, "invalid JSON")
            return
        super().relay(room, user, client, data)


BUGS: dict[Bug, type[AppRooms]] = {
    "private leak": LeakyPrivateRooms,
    "stale leave": StaleLeaveRooms,
    "trusted sender": TrustedSenderRooms,
    "bad json closes": BadJsonClosesRooms,
}


def planted_app(bug: Bug, **options: Any) -> FastAPI:
    """The complete app (``create_app(**options)``) with ``bug`` planted in it; see :data:`BUGS`."""
    if bug not in BUGS:
        raise ValueError(f"there is no planted bug {bug!r}; the bugs are: {', '.join(get_args(Bug))}")
    return create_app(rooms_type=BUGS[bug], **options)


_NOT_JSON = object()


def _json(data: str | bytes) -> Any:
    """``data`` parsed as JSON, or ``_NOT_JSON``."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return _NOT_JSON
