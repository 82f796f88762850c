"""Who is in the room, as a client keeps it: the whole list once, then the changes (see
:mod:`wslab.reference.protocol`).

The server sends the whole list only to the user who joins, and as the ``users`` answer to a ``who``; every
other ``join`` or ``leave`` is a change with the room's ``count`` and presence ``version``. A client applies
each change to its own copy of the list. The versions come one after the other on a connection (its frames
arrive in order, and none is dropped: a client that cannot keep up is closed instead), so a gap, or a count
that disagrees with the list, means this copy is wrong: ask for the whole list again with ``{"type": "who"}``.
The chat page does the same in JavaScript.

    presence = Presence()
    async for text in websocket:
        if not presence.apply(json.loads(text)):
            await websocket.send('{"type": "who"}')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["PRESENCE_TYPES", "Presence"]

PRESENCE_TYPES = ("join", "leave", "users")  # the server → client frames that say who is in the room


class Presence:
    """One client's copy of the room's user list, in join order, kept from the frames it receives.

    >>> presence = Presence()
    >>> presence.apply({"type": "join", "user": "bo", "users": ["ada", "bo"], "version": 2})
    True
    >>> presence.apply({"type": "join", "user": "cy", "count": 3, "version": 3})
    True
    >>> presence.users
    ['ada', 'bo', 'cy']
    >>> presence.apply({"type": "leave", "user": "ada", "count": 1, "version": 5})  # 4 never came
    False
    >>> presence.apply({"type": "users", "users": ["cy"], "version": 5})  # the answer to "who"
    True
    >>> presence.users, presence.version
    (['cy'], 5)
    """

    def __init__(self) -> None:
        self.users: list[str] = []
        self.version: int | None = None  # of the list as it stands; None: no whole list yet

    def apply(self, frame: Mapping[str, Any]) -> bool:
        """Apply one received frame (any frame: those that are not about presence change nothing). False if
        it shows that this copy missed a change: then send ``{"type": "who"}``; the ``users`` answer puts
        the copy right."""
        if not isinstance(frame, Mapping) or frame.get("type") not in PRESENCE_TYPES:
            return True
        users, version = frame.get("users"), frame.get("version")
        if isinstance(users, list):  # the whole list: our own join, or the answer to "who"
            if self.version is None or not isinstance(version, int) or version >= self.version:
                self.users = [str(user) for user in users]
                self.version = version if isinstance(version, int) else None
            return True
        if self.version is None or not isinstance(version, int):
            return False  # a change, and no list to apply it to
        if version <= self.version:
            return True  # already in a list that came since
        user = str(frame.get("user"))
        if frame["type"] == "join" and user not in self.users:
            self.users.append(user)
        elif frame["type"] == "leave" and user in self.users:
            self.users.remove(user)
        in_step = version == self.version + 1 and frame.get("count") in (None, len(self.users))
        self.version = version
        return in_step

    def __repr__(self) -> str:
        return f"Presence(users={self.users!r}, version={self.version!r})"
