"""Brokers: how a room's frames reach the clients of every worker process, not only the receiving one.

The chapters' rooms live in one process's memory. Serve the app with ``uvicorn --workers 4``, or run two
servers behind a load balancer, and each process has rooms of its own: a message reaches only the clients
of the process that received it, and each process has its own idea of who is in a room. A broker is the
one place the processes share:

- :class:`MemoryBroker`, the default, is what every earlier chapter does: one process, nothing shared,
  nothing to start.
- :class:`~wslab.reference.broker.RedisBroker` shares rooms, presence lists and private messages between any
  number of processes through Redis pub/sub (redis-py's asyncio client).

Whatever the broker, the rooms keep their promises: a hook (``handle``, ``relay``) never waits, local
clients are served at once from memory, and what other processes need goes out in the background.

Pick one with :func:`broker_from_url` (``WSLAB_BROKER``, ``wslab serve --broker``)::

    app = create_app(broker="redis://127.0.0.1:6379/0")    # or broker=RedisBroker(url), or "memory"
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .base import Broker, MemoryBroker, log_to_stderr, redacted
from .redis_broker import PRESENCE_TTL, RedisBroker

__all__ = ["Broker", "MemoryBroker", "RedisBroker", "broker_from_url", "log_to_stderr", "redacted"]

REDIS_SCHEMES = ("redis", "rediss", "unix")


def broker_from_url(url: str | None) -> Broker:
    """The broker that ``url`` names: nothing, ``""`` or ``"memory"`` for :class:`MemoryBroker`;
    ``redis://host:port/db`` (or ``rediss://``, ``unix://``) for a
    :class:`~wslab.reference.broker.RedisBroker`. A ``presence_ttl`` query parameter sets how many seconds a
    dead worker's users stay listed (``redis://127.0.0.1:6379/0?presence_ttl=5``); the others go to
    redis-py. Raises :class:`ValueError` saying what is wrong with ``url``."""
    if url is None or url.strip() in ("", "memory", "memory://"):
        return MemoryBroker()
    parts = urlsplit(url.strip())
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"unknown broker {redacted(url)!r}: use 'memory', or a Redis URL such as "
                         "redis://127.0.0.1:6379/0")
    query = dict(parse_qsl(parts.query))
    try:
        ttl = float(query.pop("presence_ttl", PRESENCE_TTL))
    except ValueError:
        raise ValueError(f"presence_ttl in {redacted(url)!r} is not a number of seconds") from None
    return RedisBroker(urlunsplit(parts._replace(query=urlencode(query))), presence_ttl=ttl)
