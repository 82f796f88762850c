"""Know, from outside the server, when each WebSocket handler has finished and how it ended.

:class:`SessionTracker` wraps the served app. For every WebSocket connection it records the path, the
client's address and, once the handler returns, the exception it raised, if any. A client helper uses
that to wait until the server side of its connection is done before it reports, so whatever the server
logged about the connection is already in the log: synchronisation on events, never on sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from dataclasses import dataclass, field

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Session", "SessionTracker"]

KEEP = 10_000  # finished sessions remembered, oldest dropped first


@dataclass
class Session:
    """One WebSocket connection as the server saw it."""

    path: str
    client_port: int | None
    done: concurrent.futures.Future[BaseException | None] = field(
        default_factory=concurrent.futures.Future
    )
    #: the close code, once the app started closing the connection (a client that stopped reading sees it
    #: only when it reads again)
    closing: concurrent.futures.Future[int] = field(default_factory=concurrent.futures.Future)
    #: when (``time.monotonic()``) the app first sent a frame, and when it started closing: the server's own
    #: times, free of the delays a busy client adds to what it measures
    first_sent: float | None = None
    closed_at: float | None = None

    @property
    def error(self) -> BaseException | None:
        """The exception the handler raised, or None (also None while it is still running)."""
        return self.done.result() if self.done.done() and not self.done.cancelled() else None


class SessionTracker:
    """An ASGI middleware that records every WebSocket session of the app it wraps."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._all: collections.deque[Session] = collections.deque(maxlen=KEEP)
        self._active = 0
        self._idle = threading.Condition()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        session = Session(path=scope["path"], client_port=client[1] if client else None)
        with self._idle:
            self._active += 1
            self._all.append(session)
        error: BaseException | None = None

        async def sending(message: Message) -> None:
            if message["type"] == "websocket.send" and session.first_sent is None:
                session.first_sent = time.monotonic()
            elif message["type"] == "websocket.close" and not session.closing.done():
                session.closed_at = time.monotonic()
                session.closing.set_result(message.get("code", 1000))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except BaseException as exc:
            error = exc
            raise
        finally:
            # Finish on the loop's next turn: uvicorn logs the exception right after it leaves us,
            # and whoever waits for this session should find that line already in the log.
            asyncio.get_running_loop().call_soon(self._finish, session, error)

    def _finish(self, session: Session, error: BaseException | None) -> None:
        session.done.set_result(error)
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    @property
    def active(self) -> int:
        """How many WebSocket handlers are running now."""
        return self._active

    @property
    def all(self) -> list[Session]:
        """The sessions seen so far (the most recent ten thousand), oldest first."""
        with self._idle:
            return list(self._all)

    def errors(self) -> list[BaseException]:
        """The exceptions raised by finished handlers, oldest first."""
        return [s.error for s in self.all if s.error is not None]

    def for_client_port(self, port: int) -> Session | None:
        """The newest session of the client connected from ``port`` (its local port), if any."""
        with self._idle:
            return next((s for s in reversed(self._all) if s.client_port == port), None)

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)
