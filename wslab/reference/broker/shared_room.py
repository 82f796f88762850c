"""A room whose users may be connected to any of several worker processes (see
:mod:`wslab.reference.broker.redis_broker`).

Its ``members`` are this worker's own connections, served at once from memory as in any
:class:`~wslab.reference.rooms.Room`; its ``users`` list everyone in the room on every worker. That list is
what this worker's clients have been told, kept in step with Redis:

- every change to a presence list is numbered by Redis, and the changes arrive in that order;
- a list read from Redis (when a name is claimed, at each refresh) comes with the number it was read at,
  and replaces the local list only if it is newer than every change already applied;
- changes that arrive before the room's first list are held back, then applied on top of it;
- a user who left here is not put back by a list read before Redis heard of the departure;
- a leave Redis announces is applied even if a list read after it came first, when that list could remove
  nobody (just after connecting): the list's reply and the announcement come on different connections.

Each difference is told to this worker's members as a ``join`` or a ``leave``, once: a change with the count
and this room's presence ``version`` here (the whole list goes only to the user who joins, and to a ``who``),
the same frames as a room of one process. Workers tell each other only the change too (who, and Redis's
number), never the list; each worker numbers the versions its own clients see.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from ..manager import Client
from ..protocol import Error, Join, Leave, Private, ServerFrame, encode
from ..rooms import CLOSE_NAME_TAKEN, Room


class RoomBroker(Protocol):
    """What a :class:`SharedRoom` asks of its broker (:class:`~wslab.reference.broker.RedisBroker`)."""

    def publish(self, room: str, kind: str, arg: str, text: str = "") -> bool: ...

    def release(self, room: SharedRoom, user: str, owner: str) -> bool: ...

__all__ = ["Claim", "RoomBroker", "SharedRoom", "current_claim", "holding"]


@dataclass
class Claim:
    """One connection's hold on a name in a room, from :meth:`RedisBroker.claim`."""

    room: str
    user: str
    owner: str  # this connection, as Redis knows it: "<worker id>/<n>"
    granted: bool
    in_redis: bool  # False: Redis was away, and this worker decided alone
    joined: bool = False


_claim: ContextVar[Claim | None] = ContextVar("wslab_claim", default=None)


def current_claim() -> Claim | None:
    """The claim around the running connection's handler, if any."""
    return _claim.get()


@contextlib.contextmanager
def holding(claim: Claim) -> Iterator[None]:
    """Make ``claim`` the running connection's claim for the block."""
    token = _claim.set(claim)
    try:
        yield
    finally:
        _claim.reset(token)


class SharedRoom(Room):
    """A room spread over workers. A loop over ``members`` reaches only this worker's clients: use
    :meth:`broadcast` (or ``send_private``) to reach everyone."""

    def __init__(self, name: str, broker: RoomBroker) -> None:
        super().__init__(name)
        self.broker = broker
        self.owners: dict[str, str] = {}  # local user -> its claim's owner in Redis
        self.claims = 0  # claims in progress for this room here
        self.number = -1  # the last presence change applied; -1: no list from Redis yet
        self._users: list[str] = []
        self._early: list[tuple[int, str, str]] = []  # changes heard before the first list
        self._releasing: set[str] = set()  # left here; Redis has not announced it yet
        self._unlisted: set[str] = set()  # kept, though the last list (removals=False) lacked them

    @property
    def users(self) -> list[str]:
        return list(self._users)

    # -- what this worker's connections do ----------------------------------------------------------
    def local(self, text: str, exclude: Client | None = None) -> None:
        """Queue ``text`` for this worker's members only (but ``exclude``)."""
        for client in tuple(self.members.values()):
            if client is not exclude:
                client.send(text)

    def broadcast(self, frame: ServerFrame | Mapping[str, Any], *, exclude: Client | None = None) -> None:
        """To this worker's members at once, and to the other workers' through Redis."""
        text = encode(frame)
        self.local(text, exclude)
        self.broker.publish(self.name, "room", "", text)

    def join(self, user: str, client: Client) -> bool:
        """Join with the name the broker claimed around this connection (False if it was refused)."""
        claim = current_claim()
        if claim is None or (claim.room, claim.user) != (self.name, user):
            raise RuntimeError(f"{user!r} joins the shared room {self.name!r} without a claim: serve it "
                               "through AppRooms.chat, which claims the name first")
        if not claim.granted or user in self.members:
            return False
        claim.joined = True
        self.members[user] = client
        self.owners[user] = claim.owner
        self._releasing.discard(user)
        if user in self._users:  # the others heard of it from Redis already
            client.send(encode(Join(user=user, users=self.users, version=self.version)))
        else:
            self._add(user, client)
        return True

    def leave(self, user: str, client: Client) -> None:
        if self.members.get(user) is client:
            del self.members[user]
            if self.broker.release(self, user, self.owners.pop(user)):
                self._releasing.add(user)
            self._remove(user)

    def send_private(self, sender: str, to: str, content: str) -> bool:
        """To a member here at once, to a user on another worker through Redis; False if ``to`` is in
        the room nowhere. With Redis away the sender is told so, and nothing is lost without a word."""
        if to in self.members or to not in self._users:
            return super().send_private(sender, to, content)
        text = encode(Private.model_validate({"from": sender, "to": to, "content": content}))
        own = self.members.get(sender)
        if not self.broker.publish(self.name, "private", to, text):
            if own is not None:
                own.send(encode(Error(message=f"{to!r} is on another server, which cannot be reached right "
                                              "now: the message was not sent")))
            return True  # answered: no second error
        if own is not None:
            own.send(text)
        return True

    # -- what Redis says ----------------------------------------------------------------------------
    def changed(self, kind: str, user: str, number: int) -> None:
        """Change ``number``: ``user`` joined or left (on any worker)."""
        if self.number < 0:
            self._early.append((number, kind, user))
            return
        if number <= self.number:  # already in a list applied since...
            if kind == "leave" and user in self._unlisted:  # ...which could not remove them: this does
                self._unlisted.discard(user)
                self._remove(user)
            return
        self.number = number
        self._unlisted.discard(user)
        if kind == "join":
            self._add(user)
        else:
            self._releasing.discard(user)
            self._remove(user)

    def snapshot(self, users: list[str], number: int, *, removals: bool = True) -> None:
        """Redis's list for the room, read at change ``number``. ``removals=False`` adds the users this
        worker's clients do not know yet and removes nobody (just after Redis restarted, when the other
        workers may not have registered their users again); a leave that Redis announces for one it kept
        is then applied, even numbered before the list (the list's reply can overtake the announcement)."""
        if self.number >= 0 and number <= self.number:
            return
        early, self._early, self.number = self._early, [], number
        for user in users:
            if user not in self._releasing:
                self._add(user)
        unlisted = [user for user in self._users if user not in users]
        if removals:
            for user in unlisted:
                self._remove(user)
        self._unlisted = set() if removals else set(unlisted)
        for later, kind, user in sorted(early):
            self.changed(kind, user, later)

    def refreshed(self, conflicts: list[str], users: list[str], number: int, *, removals: bool) -> None:
        """This worker's users were registered again: ``conflicts`` are names that a connection on another
        worker holds (both were let in while Redis was away): this worker's connection gives way."""
        for user in conflicts:
            client = self.members.get(user)
            if client is not None:
                client.kick(CLOSE_NAME_TAKEN, f"the name {user!r} was taken on another server while Redis "
                                              "was away: log in again")
        self.snapshot(users, number, removals=removals)

    def released(self, user: str) -> None:
        """Redis had nothing to free for ``user`` (a newer connection holds the name, or it expired)."""
        self._releasing.discard(user)

    def out_of_step(self) -> None:
        """Redis was away: wait for a fresh list before applying changes again."""
        self.number, self._early = -1, []

    def _add(self, user: str, joiner: Client | None = None) -> None:
        """``joiner`` (``user``'s own connection, joining now) gets the whole list, the rest the change."""
        if user not in self._users:
            self._users.append(user)
            self.version += 1
            self.local(encode(Join(user=user, count=len(self._users), version=self.version)), joiner)
            if joiner is not None:
                joiner.send(encode(Join(user=user, users=self.users, version=self.version)))

    def _remove(self, user: str) -> None:
        if user in self._users and user not in self.members:  # this worker knows best about its own
            self._users.remove(user)
            self.version += 1
            self.local(encode(Leave(user=user, count=len(self._users), version=self.version)))
