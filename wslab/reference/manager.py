"""Broadcast to many WebSocket clients without letting one client hurt the others.

The tutorial's manager sends in a loop, ``for ws in connections: await ws.send_text(message)``, inside
the handler of whoever spoke. One dead or slow client then breaks the speaker: a send to a connection
that is gone raises in the speaker's handler, and a send to a client that stopped reading waits, with
the speaker and everyone after it in the loop, for as long as that client keeps still.

Here every connection is a :class:`Client` with a bounded outgoing queue drained by its own writer
task, so a broadcast only puts text into queues and never waits:

- **Order:** each client receives the messages queued for it in the order they were queued.
- **A slow client** is disconnected with close code 1013 ("try again later") and removed once
  ``max_queue`` messages wait for it while its socket takes no more (it stopped reading, or reads
  too slowly); nobody else waits for it or loses a message. A burst that the server itself is still
  fanning out is not the client's fault: its queue may then grow, up to ``SURGE`` times ``max_queue``.
- **Turns:** a connection's handler takes one frame per turn of the event loop, so writers drain
  their queues between a busy room's frames.
- **A dead client** is noticed by its own writer and handler, never by the speaker's.
- **Cleanup** happens in ``finally``, whatever ended the connection.
- **Logged once:** every close a connection sends is logged when it is decided (who, which code, why;
  never a token or a message body), on the logger of the code that owns the connection: INFO for a close
  the server decides (too slow, too big, a policy), WARNING when the server itself is falling behind
  (``SURGE``), DEBUG for a client that leaves on its own or a handler that simply finishes.
- **Cost:** served by :class:`wslab.reference.wsprotocol.WebSocketProtocol`, the clients a broadcast
  queued for are written together once the code that queued yields, each client's queue in one write, the
  text framed once for all (compressed per client with permessage-deflate): no task switch per client,
  about what the websockets library's ``broadcast()`` costs (``benchmarks/broadcast.py``). Under another
  server, each client's writer task sends each text as an ASGI send of its own.
- **Single process.** The clients live in this process's memory: with several worker processes each
  one has its own manager, and a broadcast reaches only its own clients (a later chapter adds a broker).
- **Serve it with** :class:`wslab.reference.wsprotocol.WebSocketProtocol` and ``ws_max_size=MAX_FRAME``
  (``wslab.serve`` does): with uvicorn's stock protocols, the close to a client that stopped reading waits
  until it reads, so a kicked client keeps its socket and its backlog; and without ``ws_max_size`` a frame
  over the limit is refused only once uvicorn has buffered it (up to 16 MiB).

    manager = ConnectionManager()

    @app.websocket("/ws/{name}")
    async def chat(websocket: WebSocket, name: str):
        try:
            async with manager.connect(websocket) as client:
                async for text in client.messages():
                    manager.broadcast(f"{name}: {text}")
        finally:
            manager.broadcast(f"{name} left the chat")
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import logging
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypedDict

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from .protocol import encode

__all__ = ["CLOSE_TOO_BIG", "CLOSE_TOO_SLOW", "FRAMES", "Client", "ConnectionManager", "broadcast_app",
           "fit_reason", "who"]

CLOSE_TOO_SLOW = 1013  # "try again later": the client did not keep up with its messages
CLOSE_TOO_BIG = 1009  # "message too big"
MAX_QUEUE = 512  # messages waiting for one client whose socket is full before it counts as too slow
SURGE = 8  # ... or, however fast it reads, SURGE * MAX_QUEUE messages: the server is falling behind
MAX_FRAME = 64 * 1024  # bytes in one received frame
CLOSE_TIMEOUT = 1.0  # seconds to let a closing frame reach a client that may not be reading
LOGGED_PATH = 80  # characters of a connection's path in a log line (the client chose it)
# The ASGI scope extension through which a server takes a writer's queued texts in one synchronous write,
# each framed once however many clients it goes to: {"write": (texts) -> bool, "writable": asyncio.Event}.
# wslab.reference.wsprotocol.WebSocketProtocol offers it; elsewhere each text is an ASGI send of its own.
FRAMES = "wslab.frames"

_log = logging.getLogger(__name__)  # the closes of connections this module owns (ConnectionManager)


def who(websocket: WebSocket) -> str:
    """Who is at the other end of ``websocket``, for a log line: the peer's address, the path it opened
    (quoted; never the query string, where a careless client puts its token) and the user its verified
    token named, if any. For example ``127.0.0.1:50412 - "/ws/chat/lobby" ada``."""
    address = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
    path = json.dumps(str(websocket.scope.get("path", ""))[:LOGGED_PATH], ensure_ascii=False)
    user = getattr(getattr(websocket.state, "identity", None), "user", None)
    return f"{address} - {path} {user}" if isinstance(user, str) else f"{address} - {path}"


class Client:
    """One accepted WebSocket connection with a bounded queue of outgoing messages.

    ``async with Client(websocket) as client`` accepts the connection and starts the writer; leaving
    the block sends what is still queued (briefly) and closes the connection. A disconnect by the peer
    ends the block quietly, as does :meth:`kick`. How the connection ended is logged once on ``logger``.
    """

    def __init__(self, websocket: WebSocket, *, max_queue: int = MAX_QUEUE, max_frame: int = MAX_FRAME,
                 close_timeout: float = CLOSE_TIMEOUT, logger: logging.Logger = _log) -> None:
        self.websocket = websocket
        self.max_frame = max_frame
        self.close_timeout = close_timeout
        self.max_queue = max_queue
        self.logger = logger
        self._left: int | None = None  # the close code the peer sent, if it left on its own
        self._queue: collections.deque[str] = collections.deque()  # bounded by send(), which knows why
        self._in_send = False  # the writer is waiting in a send: the socket takes no more for now
        self._sending = False  # the writer holds a text it took from the queue and has not sent yet
        self._wakeup: asyncio.Future[None] | None = None  # the idle writer waits on it for the next text
        self._drained: asyncio.Future[None] | None = None  # _finish waits on it for the queue to empty
        self._frames: _Frames | None = None  # the server's direct write (FRAMES), if it offers one
        self._flush: _Flush | None = None  # ... and then the loop's flush, which uses it
        self._writer: asyncio.Task[None] | None = None
        self._handler: asyncio.Task[Any] | None = None
        self._peer_gone = False
        self._closing: tuple[int, str] | None = None
        self._kicked = False

    @property
    def open(self) -> bool:
        """True until the connection is closing or the peer has gone."""
        return self._closing is None and not self._peer_gone

    # -- lifecycle ---------------------------------------------------------------------------------
    async def __aenter__(self) -> Client:
        if self.websocket.application_state == WebSocketState.CONNECTING:  # not accepted yet (auth may have)
            await self.websocket.accept()
        self._handler = asyncio.current_task()
        self._frames = (self.websocket.scope.get("extensions") or {}).get(FRAMES)
        if self._frames is not None:
            self._flush = _Flush.of(asyncio.get_running_loop())
        self._writer = asyncio.create_task(self._write(), name="wslab-writer")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        suppress = False
        if isinstance(exc, WebSocketDisconnect):
            self._peer_left(exc.code)
            suppress = True
        elif isinstance(exc, asyncio.CancelledError) and self._kicked and self._handler is not None:
            # Ours (see kick): end the handler quietly, unless someone else cancelled it too (shutdown).
            suppress = self._handler.uncancel() == 0
        elif exc is not None and self._closing is None and not self._peer_gone:
            # An error in the handler; it propagates, and uvicorn logs its traceback (which names nobody).
            self._decide(1011, "", logging.INFO, f"the handler raised {type(exc).__name__}")
        await self._finish()
        return suppress

    def _peer_left(self, code: int | None) -> None:
        if not self._peer_gone and self._closing is None:
            self._left = code
        self._peer_gone = True

    def _decide(self, code: int, reason: str, level: int | None = None, why: str = "") -> None:
        """Close with ``code`` and ``reason`` (after what is queued), and log it: the first decision is the
        one that counts."""
        self._closing = (code, fit_reason(reason))
        level = level if level is not None else logging.DEBUG if code == 1000 else logging.INFO
        self.logger.log(level, "%s - closed %d: %s", who(self.websocket), code, why or reason or "done")

    async def _finish(self) -> None:
        assert self._writer is not None
        if self._closing is None and self._peer_gone:
            code = "no close frame" if self._left in (None, 1006) else self._left
            self.logger.debug("%s - left (%s)", who(self.websocket), code)
        if self._closing is None:
            self._closing = (1000, "")
            if not self._peer_gone:
                self.logger.debug("%s - closed 1000: the handler finished", who(self.websocket))
        if not self._peer_gone and not self._kicked and (self._queue or self._sending):
            self._drained = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):  # send what is queued, but not forever
                async with asyncio.timeout(self.close_timeout):
                    await self._drained
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        if self._peer_gone:
            return
        code, reason = self._closing
        # With uvicorn's websockets-sansio, a close to a client that stopped reading waits until it
        # reads; give up after close_timeout. wslab.reference.wsprotocol.WebSocketProtocol (what wslab.serve
        # runs) queues the close at once instead and drops the connection if the client stays still.
        with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError):
            async with asyncio.timeout(self.close_timeout):
                await self.websocket.close(code, reason)

    def close(self, code: int = 1000, reason: str = "", *, level: int | None = None) -> None:
        """Close after what is already queued. Meant for the handler itself: :meth:`messages` stops before
        the next frame. (From another task, use :meth:`kick`.) Logged once, at ``level`` (default: INFO,
        DEBUG for 1000); ``reason`` goes to the client and into the log, so it names no token or body."""
        if self.open:  # not already closing, and the peer is still there to be told
            self._decide(code, reason, level)

    def kick(self, code: int, reason: str, *, level: int | None = None, why: str = "") -> None:
        """Disconnect now, from any task, without waiting: the writer stops, the handler is cancelled
        and leaves its ``async with`` quietly (its ``finally`` blocks run), then the close is sent. Logged
        as :meth:`close` is (``why``, if given, is logged instead of ``reason``)."""
        if not self.open:  # already closing or gone
            return
        self._kicked = True
        self._decide(code, reason, level, why)
        for task in (self._writer, self._handler):
            if task is not None:
                task.cancel()

    # -- receiving ---------------------------------------------------------------------------------
    async def messages(self) -> AsyncIterator[str | bytes]:
        """Each text (``str``) or binary (``bytes``) frame the client sends, until it leaves or the
        connection closes. A frame larger than ``max_frame`` bytes closes it with code 1009."""
        while self.open:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self._peer_left(message.get("code"))
                return
            data: str | bytes | None = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            size = len(data.encode() if isinstance(data, str) else data)
            if size > self.max_frame:
                self.close(CLOSE_TOO_BIG, f"frame too big: {size} bytes, at most {self.max_frame}")
                return
            yield data
            # One frame per turn: without this, a handler whose frames are already buffered relays
            # them all at once, and a burst in a busy room fills every queue before any writer runs.
            await asyncio.sleep(0)

    # -- sending -----------------------------------------------------------------------------------
    def send(self, message: str | Mapping[str, Any]) -> bool:
        """Queue ``message`` (text, or a dict sent as JSON) for this client and return at once. False
        if the client is closing or gone. A client that is too slow is kicked with code 1013: one with
        ``max_queue`` messages waiting while its socket takes no more, or with ``SURGE`` times that."""
        text = _text(message)
        if not self.open:
            return False
        waiting = len(self._queue)
        if waiting >= self.max_queue and self._in_send:  # its socket takes no more: the client's network
            self.kick(CLOSE_TOO_SLOW, f"too slow: {waiting} messages were waiting")
            return False
        if waiting >= SURGE * self.max_queue:  # its socket takes more, but not as fast as we queue: ours
            self.kick(CLOSE_TOO_SLOW, f"too slow: {waiting} messages were waiting", level=logging.WARNING,
                      why=f"{waiting} messages were waiting though its socket took more: the server is "
                          "queueing faster than it sends")
            return False
        self._queue.append(text)
        if self._wakeup is not None:  # the writer is idle
            if self._flush is not None:
                self._flush.add(self)  # written once the caller yields, with everyone else's
            else:
                self._wake()
        return True

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def _flushed(self) -> None:
        """Write what is queued, for :class:`_Flush`: in one write if the socket takes more and the writer
        is idle; otherwise the writer takes over (it waits for the socket, or sends the ASGI way)."""
        wakeup = self._wakeup
        if wakeup is None or wakeup.done() or not self._queue:  # the writer has it, or it was stopped
            return
        assert self._frames is not None
        if self._frames["writable"].is_set() and self._frames["write"](self._queue):
            self._queue.clear()
            if self._drained is not None and not self._drained.done():
                self._drained.set_result(None)
        else:
            self._wake()

    async def _write(self) -> None:
        """Send what is queued, everything there is at each turn: one task switch per turn, not per text."""
        queue, frames = self._queue, self._frames
        try:
            while True:
                if not queue:
                    if self._drained is not None and not self._drained.done():
                        self._drained.set_result(None)
                    self._wakeup = asyncio.get_running_loop().create_future()
                    await self._wakeup
                    continue
                if frames is not None:
                    writable = frames["writable"]
                    if not writable.is_set():  # the socket's buffers are full: what send() asks
                        self._in_send = True
                        await writable.wait()
                        self._in_send = False
                        continue
                    if frames["write"](queue):  # all of it, in one write to the socket
                        queue.clear()
                        continue
                while queue:  # an ASGI send each (it waits only when the socket's buffers are full)
                    text = queue.popleft()
                    self._in_send = self._sending = True
                    await self.websocket.send_text(text)
                    self._in_send = self._sending = False
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            # The peer is gone (its socket dropped, or it closed first). Its handler receives the
            # disconnect and cleans up; whoever is broadcasting never hears of it.
            self._peer_left(exc.code if isinstance(exc, WebSocketDisconnect) else None)


class _Flush:
    """The clients of one event loop with texts to write, written together once the code that queued them
    yields: a broadcast costs one callback, not a task switch per client. Only for clients whose server
    offers FRAMES (a synchronous write); the others' writers send the ASGI way."""

    _loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flush] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._clients: dict[Client, None] = {}  # in the order they were given texts
        self._scheduled = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> _Flush:
        flush = cls._loops.get(loop)
        if flush is None:
            flush = cls._loops[loop] = cls(loop)
        return flush

    def add(self, client: Client) -> None:
        self._clients[client] = None
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        clients, self._clients = self._clients, {}
        for client in clients:
            client._flushed()


class _Frames(TypedDict):
    """What the FRAMES scope extension holds."""

    write: Callable[[Sequence[str]], bool]
    writable: asyncio.Event


def _text(message: str | Mapping[str, Any]) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, Mapping):
        return encode(message)  # a dict has one JSON form, whichever way it is sent
    raise TypeError(f"send text (str) or a dict to send as JSON, not {type(message).__name__}")


def fit_reason(reason: str) -> str:
    """``reason`` cut to the 123 bytes of UTF-8 a close frame can carry (more is a protocol error)."""
    data = reason.encode()
    return reason if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


class ConnectionManager:
    """Everyone connected, and a broadcast that never waits on anyone. One process only.

    ``max_queue`` messages may wait for one client before it is disconnected as too slow (1013);
    ``max_frame`` bytes is the largest frame a client may send (1009 beyond it).
    """

    def __init__(self, *, max_queue: int = MAX_QUEUE, max_frame: int = MAX_FRAME,
                 close_timeout: float = CLOSE_TIMEOUT) -> None:
        self._client = functools.partial(Client, max_queue=max_queue, max_frame=max_frame,
                                         close_timeout=close_timeout)
        self._clients: dict[Client, None] = {}  # a set that keeps the order people joined in

    @contextlib.asynccontextmanager
    async def connect(self, websocket: WebSocket) -> AsyncIterator[Client]:
        """Accept ``websocket`` and keep it in the manager for the duration of the ``async with``."""
        async with self._client(websocket) as client:
            self._clients[client] = None
            try:
                yield client
            finally:
                del self._clients[client]

    def broadcast(self, message: str | Mapping[str, Any]) -> int:
        """Queue ``message`` (text, or a dict sent as JSON) for every client; return how many took it.

        Never waits: a client that cannot take it is skipped (gone) or disconnected (too slow).
        """
        text = _text(message)
        return sum(client.send(text) for client in tuple(self._clients))

    @property
    def clients(self) -> list[Client]:
        """The connected clients, in the order they joined."""
        return list(self._clients)

    def __len__(self) -> int:
        return len(self._clients)


def broadcast_app(manager: ConnectionManager | None = None) -> FastAPI:
    """Chapter 02's chat, hardened: ``/ws/{name}`` relays each text message to everyone as
    ``"name: text"`` and announces ``"name left the chat"``; a binary frame gets a short refusal."""
    manager = manager if manager is not None else ConnectionManager()
    app = FastAPI()
    app.state.manager = manager

    @app.websocket("/ws/{name}")
    async def chat(websocket: WebSocket, name: str) -> None:
        try:
            async with manager.connect(websocket) as client:
                async for message in client.messages():
                    if isinstance(message, bytes):
                        client.send("binary frames are not relayed: send text")
                    else:
                        manager.broadcast(f"{name}: {message}")
        finally:
            manager.broadcast(f"{name} left the chat")

    return app
