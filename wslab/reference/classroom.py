"""The live classroom: every learner's check verdicts on the instructor's screen, as they happen.

Built from the service's own parts, with no second stack: learners log in with the chat's ``POST /token``
(and its passcode), send their token as the first frame (:func:`~wslab.reference.auth.authenticate`), are
held to a :class:`~wslab.reference.ratelimit.RateLimit`, and receive through a bounded
:class:`~wslab.reference.manager.Client` queue; announcements also reach every chat room through
:meth:`AppRooms.announce <wslab.reference.app.AppRooms.announce>` (and its broker).

- ``WS /ws/class``: a learner. First frame ``{"type": "auth", "token": ...}``; then
  ``{"type": "verdicts", "verdicts": [{"id", "exercise", "status", "at", "title"?, "mistake"?}, ...]}``,
  answered by ``{"type": "ack", "ids": [...]}``. Who sent it comes from the token only: a frame that names
  anyone else is refused. Each verdict has an id, so a learner who resends its history after a reconnect
  (or after the server restarted: nothing is stored on disk) counts once. The server sends learners
  ``{"type": "announcement", "id", "kind": "announcement" | "chapter" | "hint", "content", "exercise"?}``,
  the newest few again after each ``welcome`` (a learner who joins late knows which chapter the room is on).
- ``WS /ws/class/instructor``: the instructor's page, with a token whose role is ``instructor``
  (:meth:`Classroom.instructor_token`). It receives ``{"type": "grid", ...}`` (:meth:`Classroom.snapshot`)
  at once and after every change (at most every ``PUSH_EVERY`` seconds), and may send
  ``{"type": "say", "kind", "content", "exercise"?}``.
- ``GET /class``: the instructor's page (``static/class.html``); its key travels in the address's
  fragment (``/class#key=...``), which no server log sees.

Only exercise ids, verdicts, times and the kind of a mistake arrive here: never a learner's code.
Several workers: with the chat's Redis broker (``wslab serve --class --broker redis://...``), every worker
keeps the whole grid, told by the others through :class:`~wslab.reference.broker.class_bus.ClassBus`, so
learners and the instructor's page may each reach any worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal

from fastapi import FastAPI, WebSocket
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .app import AppRooms, create_app
from .auth import CLOSE_POLICY, Identity, Tokens, authenticate, origin_allowed, refuse
from .broker import RedisBroker
from .broker.class_bus import ClassBus
from .class_grid import MAX_EXERCISES, MAX_VERDICTS, Grid, Learner, Verdict
from .manager import Client, fit_reason, who
from .pages import page
from .protocol import MAX_CONTENT, ProtocolError, encode, loads
from .ratelimit import RateLimit

__all__ = ["INSTRUCTOR", "Classroom", "add_classroom", "class_app"]

INSTRUCTOR = "instructor"  # the role claim of the instructor's token (learners' tokens say "user")
MAX_BATCH = 100  # verdicts in one frame: a learner's whole history goes in a few frames
MAX_LEARNERS = 300  # learners one classroom tracks; more are refused with 1008
MAX_NOTICES = 20  # announcements the instructor's page lists (newest first)
REPLAY = 3  # ... and the newest ones a learner gets on (re)connecting (their ids let it skip repeats)
PUSH_EVERY = 0.25  # seconds: grid updates to instructor pages are coalesced to at most this often
RATE, BURST = 5.0, 30  # frames a second, and at once, for one learner (a reconnect sends a few at once)
INSTRUCTOR_LIFETIME = 7 * 24 * 3600.0  # seconds the instructor's key stays valid

SayKind = Literal["announcement", "chapter", "hint"]
_FORGED = ("user", "name", "learner", "from")  # fields a frame might use to speak for someone else


class _Verdicts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["verdicts"]
    verdicts: list[Verdict] = Field(max_length=MAX_BATCH)


class _Say(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["say"]
    kind: SayKind = "announcement"
    content: str = Field(min_length=1, max_length=MAX_CONTENT)
    exercise: str | None = Field(default=None, pattern=r"^[\w.-]{1,16}$")


class Classroom(Grid):
    """The grid of learners by exercises, the learners' and instructor pages' connections, and what the
    instructor says to the room.

    ``tokens``: the chat's :class:`~wslab.reference.auth.Tokens` (a learner logs in once for both).
    ``rooms``: the chat's rooms, if any, so that announcements reach every open chat page too.
    """

    logger: ClassVar[logging.Logger] = logging.getLogger(__name__)  # refusals and closes, never a body

    def __init__(self, tokens: Tokens, *, rooms: AppRooms | None = None, origins: Any = None,
                 rate: float = RATE, burst: int = BURST, redis: str | None = None,
                 prefix: str = "wslab") -> None:
        self.tokens = tokens
        self.rooms = rooms
        self.origins = origins
        self.rate, self.burst = rate, burst
        super().__init__()
        self.notices: deque[dict[str, Any]] = deque(maxlen=MAX_NOTICES)
        self._learner_clients: dict[Client, str] = {}
        self._instructors: set[Client] = set()
        self._push: asyncio.TimerHandle | None = None
        # With a Redis URL, every worker keeps the whole grid: each tells the others what its learners did.
        self.bus = ClassBus(redis, self._from_worker, prefix=prefix) if redis else None

    def instructor_token(self) -> str:
        """The key of the instructor's page: a token with the role ``instructor``."""
        return self.tokens.issue(INSTRUCTOR, role=INSTRUCTOR, lifetime=INSTRUCTOR_LIFETIME)

    def record(self, user: str, verdicts: list[Verdict]) -> list[str]:
        taken = super().record(user, verdicts)
        self._changed()
        return taken

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "notices": list(self.notices)}

    # -- speaking to the room -----------------------------------------------------------------------
    async def say(self, content: str, *, kind: SayKind = "announcement", exercise: str | None = None) -> int:
        """Send ``content`` to every learner's notebook and every chat page; return how many learner
        connections it was queued for. Runs on the server's loop (``server.call(classroom.say("..."))``)."""
        frame = _Say(type="say", kind=kind, content=content, exercise=exercise)
        return self._say(frame)

    def _say(self, frame: _Say) -> int:
        notice = {"type": "announcement", "kind": frame.kind, "content": frame.content, "at": time.time(),
                  "id": secrets.token_hex(8)}
        if frame.exercise:
            notice["exercise"] = frame.exercise
        text = encode(notice)
        sent = sum(client.send(text) for client in tuple(self._learner_clients))
        if self.rooms is not None:
            label = {"announcement": "", "chapter": "Next: ",
                     "hint": f"Hint for {frame.exercise or 'everyone'}: "}
            content = (label[frame.kind] + frame.content)[:MAX_CONTENT]
            asyncio.get_running_loop().create_task(self.rooms.announce(content))
        self.notices.appendleft(notice)
        self.logger.info("the instructor said (%s) to %d learner connections here", frame.kind, sent)
        self._share({"kind": "say", "notice": notice})
        self._changed()
        return sent

    # -- other workers ------------------------------------------------------------------------------
    def _share(self, event: dict[str, Any]) -> None:
        if self.bus is not None:
            self.bus.publish(event)

    def _share_learner(self, learner: Learner, *, verdicts: bool) -> None:
        self._share({"kind": "presence", "user": learner.name, "connections": learner.connections})
        if verdicts:
            for start in range(0, len(learner.verdicts), MAX_BATCH):
                chunk = learner.verdicts[start:start + MAX_BATCH]
                self._share({"kind": "verdicts", "user": learner.name,
                             "verdicts": [verdict.model_dump() for verdict in chunk]})

    def _from_worker(self, event: dict[str, Any]) -> None:
        """What another worker's learners or instructor did (on this server's loop)."""
        kind, worker = event.get("kind"), str(event.get("worker"))
        try:
            if kind == "hello":  # a worker (re)started: tell it everything
                for learner in tuple(self.learners.values()):
                    self._share_learner(learner, verdicts=True)
            elif kind == "bye":
                for learner in self.learners.values():
                    learner.remote.pop(worker, None)
            elif kind in ("presence", "verdicts"):
                user = str(event["user"])
                if user not in self.learners and len(self.learners) >= MAX_LEARNERS:
                    return
                learner = self.learners.setdefault(user, Learner(user))
                if kind == "presence":
                    learner.remote[worker] = int(event["connections"])
                else:
                    self.record(user, [Verdict.model_validate(v) for v in event["verdicts"]])
            elif kind == "say":
                notice = dict(event["notice"])
                text = encode(notice)
                for client in tuple(self._learner_clients):
                    client.send(text)
                self.notices.appendleft(notice)
            self._changed()
        except (KeyError, TypeError, ValueError):
            self.logger.warning("an event from worker %s was not understood: %s", worker[:40], str(kind)[:20])

    async def start(self) -> None:
        """Start sharing through Redis, if this classroom has a Redis URL (the app's startup)."""
        if self.bus is not None:
            await self.bus.start()

    async def stop(self) -> None:
        """Stop sharing (the app's shutdown). Safe to call twice."""
        if self.bus is not None:
            await self.bus.stop()

    # -- pushing the grid ---------------------------------------------------------------------------
    def _changed(self) -> None:
        if self._push is None and self._instructors:
            self._push = asyncio.get_running_loop().call_later(PUSH_EVERY, self._send_grid)

    def _send_grid(self) -> None:
        self._push = None
        text = encode(self.snapshot())
        for client in tuple(self._instructors):
            client.send(text)

    # -- connections --------------------------------------------------------------------------------
    async def _identify(self, websocket: WebSocket) -> Identity | None:
        if not origin_allowed(websocket, self.origins):
            origin = websocket.headers.get("origin", "")[:60]
            await refuse(websocket, 403, f"connections from pages at {origin} are refused")
            return None
        return await authenticate(websocket, self.tokens)

    async def learner(self, websocket: WebSocket) -> None:
        """Serve one learner's notebook for the life of its connection."""
        identity = await self._identify(websocket)
        if identity is None:
            return
        user = identity.user
        if identity.role == INSTRUCTOR:
            return await self._refuse(websocket, "this is the learners' endpoint: the instructor's key "
                                                 "opens /ws/class/instructor")
        if user not in self.learners and len(self.learners) >= MAX_LEARNERS:
            return await self._refuse(websocket, f"the class is full ({MAX_LEARNERS} learners)")
        learner = self.learners.setdefault(user, Learner(user))
        limit = RateLimit(self.rate, self.burst)
        async with Client(websocket, logger=self.logger) as client:
            learner.connections += 1
            self._learner_clients[client] = user
            self._share_learner(learner, verdicts=False)
            self._changed()
            try:
                client.send({"type": "welcome", "user": user})
                for notice in reversed(list(self.notices)[:REPLAY]):  # what a late or returning one missed
                    client.send(notice)
                async for data in client.messages():
                    if not limit.take():
                        client.close(CLOSE_POLICY, limit.reason)
                        break
                    self._learner_frame(client, user, data)
            finally:
                learner.connections -= 1
                del self._learner_clients[client]
                self._share_learner(learner, verdicts=False)
                self._changed()

    def _learner_frame(self, client: Client, user: str, data: str | bytes) -> None:
        try:
            raw = loads(data)
            if not isinstance(raw, dict):
                raise ProtocolError("expected a JSON object with a \"type\"")
            forged = [key for key in _FORGED if key in raw and raw[key] != user]
            if forged:
                raise ProtocolError(f'"{forged[0]}" refused: this connection is {user}\'s (its token says '
                                    "so); it cannot post for anyone else")
            frame = _Verdicts.model_validate(raw)
        except ProtocolError as exc:
            client.send({"type": "error", "message": str(exc)})
            return
        except ValidationError as exc:
            client.send({"type": "error", "message": _explain(exc)})
            return
        new = [v for v in frame.verdicts if v.id not in self.learners[user].seen]
        taken = self.record(user, frame.verdicts)
        client.send({"type": "ack", "ids": taken})
        recorded = [v.model_dump() for v in new if v.id in self.learners[user].seen]
        if recorded:
            self._share({"kind": "verdicts", "user": user, "verdicts": recorded})
        if len(taken) < len(frame.verdicts):
            client.send({"type": "error", "message": f"{len(frame.verdicts) - len(taken)} verdicts not "
                         f"recorded: at most {MAX_VERDICTS} per learner and {MAX_EXERCISES} exercises"})

    async def instructor(self, websocket: WebSocket) -> None:
        """Serve one instructor page: the grid now and after every change; what it says goes to the room."""
        identity = await self._identify(websocket)
        if identity is None:
            return
        if identity.role != INSTRUCTOR:
            return await self._refuse(websocket, "this is the instructor's page: open the address "
                                                 "`wslab serve --class` printed")
        limit = RateLimit(self.rate, self.burst)
        async with Client(websocket, logger=self.logger) as client:
            self._instructors.add(client)
            try:
                client.send(encode(self.snapshot()))
                async for data in client.messages():
                    if not limit.take():
                        client.close(CLOSE_POLICY, limit.reason)
                        break
                    try:
                        frame = _Say.model_validate(loads(data))
                    except ProtocolError as exc:
                        client.send({"type": "error", "message": str(exc)})
                        continue
                    except ValidationError as exc:
                        client.send({"type": "error", "message": _explain(exc)})
                        continue
                    self._say(frame)
            finally:
                self._instructors.discard(client)

    async def _refuse(self, websocket: WebSocket, reason: str) -> None:
        self.logger.info("%s - closed %d: %s", who(websocket), CLOSE_POLICY, reason)
        await websocket.close(CLOSE_POLICY, fit_reason(reason))


def _explain(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "frame"
    return f'"{where}": {error["msg"]}'[:200]


def add_classroom(app: FastAPI, classroom: Classroom) -> FastAPI:
    """Add the classroom's routes to ``app`` (the complete chat app, whose ``POST /token`` learners log in
    with): ``GET /class``, ``WS /ws/class``, ``WS /ws/class/instructor``. It is ``app.state.classroom``."""
    app.state.classroom = classroom

    @app.get("/class", response_class=HTMLResponse)
    async def class_page() -> str:
        return page("class")

    @app.websocket("/ws/class")
    async def learner(websocket: WebSocket) -> None:
        await classroom.learner(websocket)

    @app.websocket("/ws/class/instructor")
    async def instructor(websocket: WebSocket) -> None:
        await classroom.instructor(websocket)

    return app


def class_app(**options: Any) -> FastAPI:
    """The complete chat app (:func:`~wslab.reference.app.create_app`, given ``options``) with the classroom
    added: learners log in with its ``POST /token`` and passcode; announcements reach its rooms too."""
    app = create_app(**options)
    rooms: AppRooms = app.state.rooms
    broker = rooms.broker
    redis = broker.url if isinstance(broker, RedisBroker) else None
    prefix = broker.prefix if isinstance(broker, RedisBroker) else "wslab"
    classroom = Classroom(rooms.tokens, rooms=rooms, origins=rooms.origins, redis=redis, prefix=prefix)
    chat_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with chat_lifespan(app):
            await classroom.start()
            try:
                yield
            finally:
                await classroom.stop()

    app.router.lifespan_context = lifespan
    return add_classroom(app, classroom)
