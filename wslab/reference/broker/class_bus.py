"""The live classroom across worker processes: one Redis channel carries what each worker's learners post.

A learner's notebook talks to whichever worker the load balancer picked, and so does the instructor's page:
each worker keeps the whole grid in memory (:class:`~wslab.reference.classroom.Classroom`) and tells the
others, through this bus, what its own connections did: verdicts, how many connections each learner has
here, what the instructor said. A worker that starts says ``hello`` and the others answer with everything
they know, so its grid is whole within a round trip. Nothing is stored in Redis: the channel is pub/sub
only.

Redis away: each worker goes on with what it has (its own learners' verdicts keep arriving), events for the
others are dropped and counted, and after the reconnection the worker says ``hello`` again, so every grid is
whole again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from .base import LOGGER, redacted
from .redis_link import REDIS_TIMEOUT, RedisLink

__all__ = ["ClassBus"]

OUTBOX = 5_000  # events waiting for Redis before more are dropped (and counted)
QUIET_READ = 1.0  # seconds one read of the channel waits before it reads again
_log = logging.getLogger(LOGGER)

Event = dict[str, Any]


class ClassBus(RedisLink):
    """The classroom's channel (``{prefix}:class``) on the Redis at ``url``. ``deliver(event)`` runs on the
    server's loop for each event another worker published; :meth:`publish` never waits."""

    without_redis: ClassVar[str] = "each worker's grid shows only what its own learners post until it is back"

    def __init__(self, url: str, deliver: Callable[[Event], None], *, prefix: str = "wslab") -> None:
        super().__init__(url, f"{prefix}:class")
        self.deliver = deliver
        self.worker_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.dropped = 0  # events that could not reach the other workers

    def __repr__(self) -> str:
        return f"ClassBus({redacted(self.url)!r}, {'connected' if self.connected else 'not connected'})"

    def publish(self, event: Event) -> bool:
        """Send ``event`` to the other workers in the background; False (and counted) if it cannot go."""
        if self.connected and self._outbox.qsize() < OUTBOX:
            self._outbox.put_nowait(json.dumps({**event, "worker": self.worker_id}))
            return True
        self.dropped += 1
        return False

    # -- the link's hooks ---------------------------------------------------------------------------
    def _on_start(self) -> None:
        self._outbox: asyncio.Queue[str] = asyncio.Queue()

    def _on_connect(self, redis: Redis) -> None:
        self._outbox.put_nowait(json.dumps({"kind": "hello", "worker": self.worker_id}))

    def _jobs(self, redis: Redis, pubsub: PubSub) -> list[Coroutine[Any, Any, None]]:
        return [self._read(pubsub), self._write(redis)]

    def _on_disconnect(self) -> None:
        while not self._outbox.empty():
            self._outbox.get_nowait()
            self._outbox.task_done()
            self.dropped += 1

    async def _on_stop(self) -> None:
        self._outbox.put_nowait(json.dumps({"kind": "bye", "worker": self.worker_id}))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REDIS_TIMEOUT):
                await self._outbox.join()

    def _say_connected(self, *, back: bool) -> None:
        if back:
            _log.warning("Redis at %s is back: the class's grid is shared again.", redacted(self.url))
        else:
            _log.info("The class's grid is shared through Redis at %s (worker %s).", redacted(self.url),
                      self.worker_id)

    async def _write(self, redis: Redis) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 200:
                batch.append(self._outbox.get_nowait())
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    for text in batch:
                        pipe.publish(self.channel, text)
                    await pipe.execute()
            finally:
                for _ in batch:
                    self._outbox.task_done()

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=QUIET_READ)
            if message is None or message["type"] != "message":
                continue
            try:
                event = json.loads(message["data"])
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("worker") != self.worker_id:
                self.deliver(event)
                await asyncio.sleep(0)
