"""Rooms shared by every worker process through Redis pub/sub (redis-py's asyncio client).

Each worker serves its own clients from memory, at once, as a single process does; Redis carries only what
the other workers need, so a hook never waits on the network and an outage never stops local clients.

- **Frames** for other workers go into an *outbox* that one task publishes in pipelined batches on one
  channel, tagged with this worker's id; every worker hands the others' frames to its members and skips
  its own: each client gets each frame once, in each sender's order. (One channel for every room: behind
  a load balancer nearly every worker has members in every busy room, so per-room channels would save
  little and cost a subscription race per room.)
- **Names** are claimed by a Lua script before a user joins: a name held on any worker is refused as one
  held here is. **Presence** entries expire unless their worker refreshes them (every ``presence_ttl / 3``
  s); every worker sweeps out expired ones, and only the script that removed one announces it
  (:mod:`wslab.reference.broker.redis_scripts`, :mod:`wslab.reference.broker.shared_room`).
- **Redis away:** one warning line; local delivery and presence go on; frames for other workers are
  counted, never queued without bound; reconnection with capped exponential backoff; then this worker's
  users are registered again, and one line says cross-worker delivery resumed and how many frames reached
  only this worker meanwhile. Keeping the connection up is :mod:`wslab.reference.broker.redis_link`'s part;
  this module says what the broker does with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any, ClassVar

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.commands.core import AsyncScript

from ..protocol import valid_room, valid_user
from .base import LOGGER, Broker, redacted
from .redis_link import LOST, REDIS_TIMEOUT, RETRY_MAX, RETRY_MIN, RedisLink
from .redis_scripts import CLAIM, REFRESH, RELEASE, SWEEP
from .shared_room import Claim, SharedRoom, holding

__all__ = ["PRESENCE_TTL", "RedisBroker"]

PRESENCE_TTL = 15.0  # seconds a worker's users stay listed after it stops refreshing them (it died)
OUTBOX = 10_000  # frames waiting for Redis before more are dropped (and counted)
BATCH = 500  # frames in one pipelined round trip
QUIET_READ = 1.0  # seconds one read of the channel waits before it returns empty-handed and reads again
_log = logging.getLogger(LOGGER)
Item = str | tuple[str, str, str] | None  # a frame to publish, a release (room, user, owner), a refresh


class RedisBroker(RedisLink, Broker):
    """Rooms shared by every worker process that uses the same Redis ``url`` (and ``prefix``).

    ``presence_ttl``: seconds a user stays listed once its worker stops refreshing it (a worker that was
    killed); the others hear its ``leave`` within about 1.4 times that. ``retry_min``, ``retry_max``:
    seconds between reconnection attempts, doubling from one to the other. One broker per app: it starts
    and stops with the app's event loop (``create_app(broker=...)`` sees to that).
    """

    shared: ClassVar[bool] = True
    without_redis: ClassVar[str] = "rooms reach only this worker's clients until it is back"

    def __init__(self, url: str, *, presence_ttl: float = PRESENCE_TTL, prefix: str = "wslab",
                 retry_min: float = RETRY_MIN, retry_max: float = RETRY_MAX) -> None:
        if presence_ttl < 0.3:
            raise ValueError(f"presence_ttl is {presence_ttl:g} s: give at least 0.3 s (default 15)")
        super().__init__(url, f"{prefix}:frames", retry_min=retry_min, retry_max=retry_max)
        self.presence_ttl = presence_ttl
        self.prefix = prefix
        self.worker_id = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.undelivered = 0  # frames that reached only this worker's clients (Redis away, outbox full)
        self._missed = 0  # ... since the last line that said how many
        self._rooms: dict[str, SharedRoom] = {}  # rooms with members here, or a claim in progress
        self._claiming: set[tuple[str, str]] = set()
        self._owners = itertools.count()
        self._unreleased: list[tuple[str, str, str]] = []  # releases Redis missed while away
        self._scripts: dict[str, AsyncScript] = {}
        self._steady_after = 0.0  # (monotonic) lists from Redis may remove users again

    def __repr__(self) -> str:
        return f"RedisBroker({redacted(self.url)!r}, {'connected' if self.connected else 'not connected'})"

    def room(self, name: str) -> SharedRoom:
        """The room this worker already follows under ``name``, or a new one."""
        return self._rooms.get(name) or SharedRoom(name, self)

    def status(self) -> dict[str, Any]:
        return {"backend": "redis", "connected": self.connected, "worker": self.worker_id,
                "undelivered": self.undelivered}

    def _keys(self, room: str) -> list[str]:
        base = f"{self.prefix}:room:{room}"
        return [f"{base}:expiry", f"{base}:joined", f"{base}:owner", f"{self.prefix}:rooms",
                f"{self.prefix}:changes"]

    # -- names --------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def claim(self, room_name: str, user: str) -> AsyncIterator[Claim | None]:
        """Claim ``user`` in ``room_name`` on every worker for the ``async with``; :meth:`SharedRoom.join`
        refuses the user unless it was granted. With Redis away, this worker decides alone."""
        if not (valid_room(room_name) and valid_user(user)):  # ChatRooms.chat refuses these
            yield None
            return
        room = self._rooms[room_name] = self.room(room_name)  # follow it: changes may come meanwhile
        room.claims += 1
        key, owner = (room_name, user), f"{self.worker_id}/{next(self._owners)}"
        claim = Claim(room_name, user, owner, granted=False, in_redis=False)
        mine = key not in self._claiming and user not in room.members  # else: refused at once
        if mine:
            self._claiming.add(key)  # until the connection ends
        try:
            if mine:
                await self._claim(room, claim)
            with holding(claim):
                yield claim
        finally:
            room.claims -= 1
            if mine:
                self._claiming.discard(key)
            if claim.granted and claim.in_redis and not claim.joined:  # taken in Redis, never used
                self._send((room_name, user, owner))
            self._forget(room)

    async def _claim(self, room: SharedRoom, claim: Claim) -> None:
        claim.granted = True
        if self.connected:
            args: list[str | int] = [claim.user, claim.owner, round(self.presence_ttl * 1000), room.name,
                                     f"{self.worker_id}/", self.channel, self.worker_id]
            try:
                granted, number, users = await self._scripts["claim"](keys=self._keys(room.name), args=args)
            except LOST as exc:
                self._lost(exc)
                return  # Redis away: this worker decides alone
            claim.granted, claim.in_redis = bool(granted), True
            room.snapshot(list(users), int(number), removals=time.monotonic() >= self._steady_after)

    def release(self, room: SharedRoom, user: str, owner: str) -> bool:
        """``user`` left ``room`` here: free the name in Redis, which tells every worker. True if Redis
        will hear of it now (False: once it is back)."""
        self._forget(room)
        return self._send((room.name, user, owner))

    def _forget(self, room: SharedRoom) -> None:
        if not room.members and not room.claims and self._rooms.get(room.name) is room:
            del self._rooms[room.name]

    # -- frames out ---------------------------------------------------------------------------------
    def publish(self, room: str, kind: str, arg: str, text: str = "") -> bool:
        """Send ``text`` to ``room``'s members on the other workers (in the background); False if it
        cannot reach them (Redis away, outbox full): then it is counted, and logged."""
        return self._send(f"{self.worker_id}\n{kind}\n{room}\n{arg}\n{text}")

    def announce(self, text: str) -> None:
        self._send(f"{self.worker_id}\nall\n\n\n{text}")

    def _send(self, item: Item) -> bool:
        if self.connected and (self._outbox.qsize() < OUTBOX or not isinstance(item, str)):
            self._outbox.put_nowait(item)
            return True
        if self.connected and self._missed == 0:
            _log.warning("The outbox to Redis is full (%d frames): frames reach only this worker's "
                         "clients until it drains.", OUTBOX)
        self._undeliverable(item)
        return False

    def _undeliverable(self, item: Item) -> None:
        if isinstance(item, tuple):  # a release: Redis must still hear of it once it is back
            self._unreleased.append(item)
        elif isinstance(item, str):
            self.undelivered += 1
            self._missed += 1

    async def _write(self, redis: Redis) -> None:
        """Send the outbox to Redis in order, in pipelined batches."""
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            try:
                await self._execute(redis, batch)
            except BaseException:
                for item in batch:
                    self._undeliverable(item)
                raise
            finally:
                for _ in batch:
                    self._outbox.task_done()
            if self._missed and not self._warned and self._outbox.empty():
                _log.warning("The outbox to Redis drained (frames that reached only this worker's clients "
                             "meanwhile: %d).", self._missed)
                self._missed = 0

    async def _execute(self, redis: Redis, batch: list[Item]) -> None:
        releases: list[tuple[str, str, int]] = []  # (room, user, index of the result)
        refreshes: list[tuple[SharedRoom, int]] = []  # (room, index of the result)
        async with redis.pipeline(transaction=False) as pipe:
            for item in batch:
                if isinstance(item, str):
                    pipe.publish(self.channel, item)
                elif isinstance(item, tuple):
                    name, user, owner = item
                    releases.append((name, user, len(pipe.command_stack)))
                    await self._scripts["release"](keys=self._keys(name), client=pipe,
                                                   args=[user, owner, self.channel, self.worker_id, name])
                elif not refreshes:  # a refresh: this worker's users as they are now, in order
                    for room in self._rooms.values():
                        refreshes.append((room, len(pipe.command_stack)))
                        args: list[str | int] = [round(self.presence_ttl * 1000), room.name,
                                                 f"{self.worker_id}/", self.channel, self.worker_id,
                                                 *itertools.chain(*room.owners.items())]
                        await self._scripts["refresh"](keys=self._keys(room.name), args=args, client=pipe)
            results = await pipe.execute()
        for name, user, index in releases:
            if not results[index] and (followed := self._rooms.get(name)) is not None:
                followed.released(user)
        for room, index in refreshes:
            conflicts, number, users = results[index]
            room.refreshed(list(conflicts), list(users), int(number),
                           removals=time.monotonic() >= self._steady_after)

    # -- frames in ----------------------------------------------------------------------------------
    async def _read(self, pubsub: PubSub) -> None:
        while True:
            # A bounded wait, never timeout=None: redis-py before 8.1 applies socket_timeout to a blocking
            # read, so a quiet channel would count as Redis gone every REDIS_TIMEOUT seconds.
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=QUIET_READ)
            if message is not None and message["type"] == "message":
                self._deliver(message["data"])
                await asyncio.sleep(0)  # one frame per turn, as a handler does: writers drain meanwhile

    def _deliver(self, envelope: str) -> None:
        """Hand a frame from another worker, or a presence change, to this worker's members."""
        origin, kind, name, arg, text = envelope.split("\n", 4)
        if kind == "all":  # an announcement, for every room (this worker served its own already)
            if origin != self.worker_id:
                for followed in self._rooms.values():
                    followed.local(text)
            return
        room = self._rooms.get(name)
        if room is None:
            return
        if kind in ("join", "leave"):  # numbered by Redis; this worker's own too
            room.changed(kind, arg, int(text))
        elif origin == self.worker_id:
            return
        elif kind == "room":
            room.local(text)
        elif kind == "private" and (target := room.members.get(arg)) is not None:
            target.send(text)

    # -- presence upkeep ----------------------------------------------------------------------------
    async def _tick(self, redis: Redis) -> None:
        """Every ``presence_ttl / 3`` seconds: refresh this worker's users (through the outbox, in order
        with its frames) and sweep out the users nobody refreshed."""
        while True:
            await asyncio.sleep(self.presence_ttl / 3)
            self._outbox.put_nowait(None)
            names = [str(name) for name in await redis.smembers(f"{self.prefix}:rooms")]
            async with redis.pipeline(transaction=False) as pipe:
                for name in names:
                    await self._scripts["sweep"](keys=self._keys(name), args=[name, self.channel],
                                                 client=pipe)
                await pipe.execute()

    # -- the connection's hooks (wslab.reference.broker.redis_link)
    # -------------------------------------------------
    def _on_start(self) -> None:
        self._outbox: asyncio.Queue[Item] = asyncio.Queue()

    def _on_connect(self, redis: Redis) -> None:
        self._scripts = {name: redis.register_script(source) for name, source in
                         (("claim", CLAIM), ("release", RELEASE), ("refresh", REFRESH), ("sweep", SWEEP))}
        for room in self._rooms.values():  # Redis may have restarted, empty: wait for fresh lists
            room.out_of_step()
        self._steady_after = time.monotonic() + self.presence_ttl + self.retry[1]
        for item in self._unreleased:  # what this worker's users did while Redis was away...
            self._outbox.put_nowait(item)
        self._unreleased.clear()
        self._outbox.put_nowait(None)  # ...then who is here now

    def _jobs(self, redis: Redis, pubsub: PubSub) -> list[Coroutine[Any, Any, None]]:
        return [self._read(pubsub), self._write(redis), self._tick(redis)]

    def _on_disconnect(self) -> None:
        while not self._outbox.empty():  # what was waiting will not get there
            self._undeliverable(self._outbox.get_nowait())
            self._outbox.task_done()

    async def _on_stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REDIS_TIMEOUT):
                await self._outbox.join()

    def _say_connected(self, *, back: bool) -> None:
        if back:
            _log.warning("Redis at %s is back: cross-worker delivery resumed (frames that reached only this "
                         "worker's clients meanwhile: %d).", redacted(self.url), self._missed)
        else:
            _log.info("Rooms are shared through Redis at %s (worker %s).", redacted(self.url), self.worker_id)
        self._missed = 0
