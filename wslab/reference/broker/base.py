"""What a broker is (:class:`Broker`), the one that keeps rooms in this process's memory
(:class:`MemoryBroker`), and what every broker needs: URLs without passwords in logs, and log lines on
stderr."""

from __future__ import annotations

import abc
import contextlib
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from ..rooms import Room

__all__ = ["LOGGER", "Broker", "MemoryBroker", "log_to_stderr", "redacted"]

LOGGER = "wslab.reference.broker"  # what the brokers log under: connected, Redis lost, delivery resumed
SERVICE = "wslab.reference"  # the parent of every logger of the service: one per module, this one included


class Broker(abc.ABC):
    """What :class:`~wslab.reference.app.AppRooms` asks of a broker.

    - :meth:`room` makes the object for one room (a :class:`~wslab.reference.rooms.Room` or a subclass of it);
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
        :meth:`Room.join <wslab.reference.rooms.Room.join>` refuses a name already in the room."""
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


def redacted(url: str) -> str:
    """``url`` without its password, fit for a log line or a page."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))


def log_to_stderr() -> None:
    """Print what the service logs at INFO and up on stderr the way uvicorn prints its own: who was closed or
    refused and why (``wslab.reference.*``), and the broker's lines (connected; Redis lost; delivery
    resumed); unless logging is already set up for them. ``uvicorn wslab.reference.app:app`` and
    ``wslab serve`` call this: without it, Python shows warnings only, and none of uvicorn's formatting."""
    logger = logging.getLogger(SERVICE)
    if logger.handlers or logging.getLogger(LOGGER).handlers or logging.getLogger().handlers:
        return
    from uvicorn.logging import DefaultFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
