"""A connection to Redis kept up in the background: the part of :class:`~wslab.reference.broker.RedisBroker`
that is about Redis being there or not, whatever the broker does with it.

:class:`RedisLink` connects (``PING``, then subscribes to one channel and waits for Redis to confirm it),
runs the subclass's tasks for as long as the connection lasts, and when it ends connects again, waiting
twice as long after each failed attempt, up to a cap. It logs one warning when Redis goes away (or cannot be
reached at start) and one line when it is back, however many attempts it takes; ``connected`` and
:meth:`~RedisLink.wait_connected` say where it stands.

A subclass says what the connection is for through a few hooks: :meth:`~RedisLink._on_start`,
:meth:`~RedisLink._on_connect`, :meth:`~RedisLink._jobs`, :meth:`~RedisLink._on_disconnect`,
:meth:`~RedisLink._on_stop`, and the words of the lines that say what Redis being away means
(:attr:`~RedisLink.without_redis`, :meth:`~RedisLink._say_connected`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import LOGGER, redacted

__all__ = ["LOST", "REDIS_TIMEOUT", "RETRY_MAX", "RETRY_MIN", "RedisLink"]

RETRY_MIN, RETRY_MAX = 0.2, 5.0  # seconds between reconnection attempts: doubling, capped
REDIS_TIMEOUT = 3.0  # seconds for one Redis command before Redis counts as away
LOST = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)  # Redis is away (not a bug)
_log = logging.getLogger(LOGGER)  # the broker's lines: log_to_stderr() and chapter 08 show them


class RedisLink:
    """One connection to the Redis at ``url``, subscribed to ``channel``, kept up in the background.

    ``retry_min``, ``retry_max``: seconds between reconnection attempts, doubling from one to the other.
    :meth:`start` connects (waiting a few seconds at most) and keeps connecting until :meth:`stop`::

        link = RedisLink("redis://127.0.0.1:6379/0", "news")
        await link.start()
        await link.wait_connected()
        await link.stop()
    """

    #: What the warning that Redis is away says goes on meanwhile (a subclass says it in its own words).
    without_redis: ClassVar[str] = "nothing goes through it until it is back"

    def __init__(self, url: str, channel: str, *, retry_min: float = RETRY_MIN,
                 retry_max: float = RETRY_MAX) -> None:
        self.url = url
        self.channel = channel
        self.retry = (retry_min, retry_max)
        self.connected = False
        self._task: asyncio.Task[None] | None = None
        self._warned = False  # an outage was logged, and its end was not yet

    # -- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect (waiting a few seconds at most) and keep connecting, in the background, until
        :meth:`stop`. Returns even if Redis cannot be reached: it is then tried again and again."""
        if self._task is not None:
            return
        self._on_start()
        self._broken = asyncio.Event()
        self._settled = asyncio.Event()  # the first attempt to connect is over
        self._state = {True: asyncio.Event(), False: asyncio.Event()}  # connected, or known not to be
        self._mark(connected=False)
        self._task = asyncio.create_task(self._supervise(), name="wslab-redis-broker")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REDIS_TIMEOUT):
                await self._settled.wait()

    async def wait_connected(self, connected: bool = True, timeout: float = 10.0) -> None:
        """Return once this worker is connected to Redis (with ``connected=False``: once it knows it is
        not); ``TimeoutError`` after ``timeout`` seconds. On the server's loop:
        ``server.call(broker.wait_connected())``."""
        if self._task is None:
            raise RuntimeError("the broker is not running: it starts with the app")
        async with asyncio.timeout(timeout):
            await self._state[connected].wait()

    async def stop(self) -> None:
        """Send what is waiting (a few seconds at most), then disconnect. Safe to call twice."""
        task, self._task = self._task, None
        if task is None:
            return
        if self.connected:
            await self._on_stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._mark(connected=False)

    def _mark(self, *, connected: bool) -> None:
        self.connected = connected
        self._state[not connected].clear()
        self._state[connected].set()

    # -- hooks, for what the connection is for ------------------------------------------------------
    def _on_start(self) -> None:
        """Starting (hook): make what lasts as long as one run."""

    def _on_connect(self, redis: Redis) -> None:
        """Connected and subscribed, about to count as connected (hook): get ready to use ``redis``."""

    def _jobs(self, redis: Redis, pubsub: PubSub) -> list[Coroutine[Any, Any, None]]:
        """What runs while connected (hook). When one fails, the connection ends and the link reconnects."""
        return []

    def _on_disconnect(self) -> None:
        """The connection ended, or an attempt failed; ``connected`` is already False (hook)."""

    async def _on_stop(self) -> None:
        """Stopping while still connected (hook): send what is waiting, a few seconds at most."""

    def _say_connected(self, *, back: bool) -> None:
        """Log that the link is connected: the first time, or ``back`` after an outage (hook)."""
        if back:
            _log.warning("Redis at %s is back.", redacted(self.url))
        else:
            _log.info("Connected to Redis at %s.", redacted(self.url))

    # -- connection ---------------------------------------------------------------------------------
    async def _supervise(self) -> None:
        delay = self.retry[0]
        while True:
            redis = Redis.from_url(self.url, decode_responses=True, retry=Retry(NoBackoff(), 0),
                                   socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
            pubsub = redis.pubsub()
            try:
                try:
                    await self._connect(redis, pubsub)
                except Exception as exc:
                    self._down(exc)
                    self._settled.set()
                    await asyncio.sleep(delay)  # backoff before the next attempt
                    delay = min(delay * 2, self.retry[1])
                    continue
                delay = self.retry[0]
                self._settled.set()
                try:
                    async with asyncio.TaskGroup() as group:
                        for job in self._jobs(redis, pubsub):
                            group.create_task(job)
                        group.create_task(self._watch())
                except* Exception as failures:
                    self._down(failures.exceptions[0])
            finally:
                with contextlib.suppress(Exception):  # closing what may already be broken
                    await pubsub.aclose()
                    await redis.aclose()

    async def _connect(self, redis: Redis, pubsub: PubSub) -> None:
        await redis.ping()
        await pubsub.subscribe(self.channel)
        if await pubsub.get_message(timeout=REDIS_TIMEOUT) is None:  # the subscription's confirmation
            raise RedisTimeoutError(f"no confirmation of the subscription to {self.channel}")
        self._broken.clear()
        self._on_connect(redis)
        self._mark(connected=True)
        self._say_connected(back=self._warned)
        self._warned = False

    def _down(self, exc: BaseException) -> None:
        if not isinstance(exc, LOST):
            _log.error("The Redis broker failed; reconnecting.", exc_info=exc)
        was = self.connected
        self._mark(connected=False)
        self._on_disconnect()
        if not self._warned:
            _log.warning("%s Redis at %s (%s): %s; retrying every %g s at most.", "Lost" if was else
                         "Cannot reach", redacted(self.url), _reason(exc), self.without_redis, self.retry[1])
            self._warned = True

    def _lost(self, exc: BaseException) -> None:
        """A command failed outside the link's own tasks (one of :data:`LOST`): reconnect."""
        self._failure = exc
        self._broken.set()

    async def _watch(self) -> None:
        await self._broken.wait()
        raise self._failure


def _reason(exc: BaseException) -> str:  # redis-py: "Error 111 connecting to h:p. Connection refused."
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text.split(". ")[-1] if text.startswith("Error ") else text
