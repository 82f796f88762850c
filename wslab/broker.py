"""Brokers: how a room's frames reach the clients of every worker process, not only the receiving one.

The chapters' rooms live in one process's memory. Serve the app with ``uvicorn --workers 4``, or run two
servers behind a load balancer, and each process has rooms of its own: a message reaches only the clients
of the process that received it, and each process has its own idea of who is in a room. A broker is the
one place the processes share:

- :class:`MemoryBroker`, the default, is what every earlier chapter does: one process, nothing shared,
  nothing to start.
- :class:`~wslab.redis_broker.RedisBroker` shares rooms, presence lists and private messages between any
  number of processes through Redis pub/sub (redis-py's asyncio client).

Whatever the broker, the rooms keep their promises: a hook (``handle``, ``relay``) never waits, local
clients are served at once from memory, and what other processes need goes out in the background.

Pick one with :func:`broker_from_url` (``WSLAB_BROKER``, ``wslab serve --broker``)::

    app = create_app(broker="redis://127.0.0.1:6379/0")    # or broker=RedisBroker(url), or "memory"
"""

from __future__ import annotations

import abc
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .rooms import Room

__all__ = ["Broker", "MemoryBroker", "broker_from_url", "log_to_stderr", "redacted"]

REDIS_SCHEMES = ("redis", "rediss", "unix")


class Broker(abc.ABC):
    """What :class:`~wslab.app.AppRooms` asks of a broker.

    - :meth:`room` makes the object for one room (a :class:`~wslab.rooms.Room` or a subclass of it);
    - ``async with broker.claim(room, user)`` surrounds a connection's whole life in a room: it takes the
      name before the user joins (so that a name held by any process is refused) and gives back what the
      user never used;
    - :meth:`start` and :meth:`stop` run with the app (its lifespan).
    """

    shared: ClassVar[bool] = False  # True if rooms span several processes

    @abc.abstractmethod
    def room(self, name: str) -> Room:
        """A new, empty room called ``name``."""

    def claim(self, room: str, user: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """Hold ``user``'s name in ``room`` for the duration of the ``async with``. Nothing to do here:
        :meth:`Room.join <wslab.rooms.Room.join>` refuses a name already in the room."""
        return contextlib.nullcontext()

    def announce(self, text: str) -> None:  # noqa: B027 (nothing to do for a broker of one process)
        """Send ``text`` to every member of every room on the other workers (the caller has served this
        worker's own)."""

    async def start(self) -> None:  # noqa: B027 (a broker with nothing to connect to need not override it)
        """Connect to whatever the broker needs (the app's startup)."""

    async def stop(self) -> None:  # noqa: B027
        """Send what is still waiting and disconnect (the app's shutdown). Safe to call twice."""

    def status(self) -> dict[str, Any]:
        """What ``GET /status`` shows about the broker."""
        return {"backend": "memory"}

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Broker]:
        """``async with broker.running():`` start, then stop however the block ends (tests, scripts)."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()


class MemoryBroker(Broker):
    """Rooms in this process's memory only: the chapters' behaviour, and the default."""

    def room(self, name: str) -> Room:
        return Room(name)

    def __repr__(self) -> str:
        return "MemoryBroker()"


def broker_from_url(url: str | None) -> Broker:
    """The broker that ``url`` names: nothing, ``""`` or ``"memory"`` for :class:`MemoryBroker`;
    ``redis://host:port/db`` (or ``rediss://``, ``unix://``) for a
    :class:`~wslab.redis_broker.RedisBroker`. A ``presence_ttl`` query parameter sets how many seconds a
    dead worker's users stay listed (``redis://127.0.0.1:6379/0?presence_ttl=5``); the others go to
    redis-py. Raises :class:`ValueError` saying what is wrong with ``url``."""
    if url is None or url.strip() in ("", "memory", "memory://"):
        return MemoryBroker()
    parts = urlsplit(url.strip())
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"unknown broker {redacted(url)!r}: use 'memory', or a Redis URL such as "
                         "redis://127.0.0.1:6379/0")
    query = dict(parse_qsl(parts.query))
    from .redis_broker import PRESENCE_TTL, RedisBroker  # here: redis_broker builds on this module

    try:
        ttl = float(query.pop("presence_ttl", PRESENCE_TTL))
    except ValueError:
        raise ValueError(f"presence_ttl in {redacted(url)!r} is not a number of seconds") from None
    return RedisBroker(urlunsplit(parts._replace(query=urlencode(query))), presence_ttl=ttl)


def redacted(url: str) -> str:
    """``url`` without its password, fit for a log line or a page."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def log_to_stderr() -> None:
    """Print the broker's lines (connected; Redis lost; delivery resumed) on stderr the way uvicorn prints
    its own, unless logging is already set up for them. ``wslab serve`` and ``uvicorn wslab.app:app``
    call this: without it, Python shows warnings only, and none of uvicorn's formatting."""
    logger = logging.getLogger("wslab.broker")
    if logger.handlers or logging.getLogger().handlers:
        return
    from uvicorn.logging import DefaultFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
