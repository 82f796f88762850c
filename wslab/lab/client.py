"""Talk to a server from a notebook cell: one client, a few named bots, or a one-shot exchange.

A thin layer over the websockets library's asyncio client: its exceptions (``ConnectionClosed``,
``InvalidStatus``) and options (``origin``, ``additional_headers``, ``max_size``...) pass straight
through. What it adds is a :class:`~wslab.lab.transcript.Transcript` of every send, receive and close,
and, when the target is a :class:`~wslab.lab.server.LabServer`, waiting for the server's side of the
connection to finish before reporting a close, so the server's log is complete when a cell prints it.

    async with wslab.connect(server, "/ws") as ws:        # in a cell: top-level await
        await ws.send("hello")
        await ws.recv()                                   # prints: you ← Message received: hello

    wslab.exchange(server, "/ws", "hello", "bye")         # anywhere, no await needed

    async with wslab.bots(server, "/ws/{name}", ["ada", "bo"]) as team:
        await team["ada"].send("hi")
        for bot in team:
            await bot.recv()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .exceptions import ClientClosed, ServerStopped
from .server import LabServer
from .transcript import EVENT, RECEIVED, SENT, WAITED, Transcript, describe_close, describe_message

__all__ = ["Bots", "LabClient", "bots", "connect", "exchange", "run_sync"]

T = TypeVar("T")
Message = str | bytes
SERVER_DONE_TIMEOUT = 2.0  # how long to wait for the server's handler to finish after a close
_REFUSALS = {
    403: " (no WebSocket route at this path, or the endpoint closed before accepting)",
    500: " (the endpoint raised an exception before accepting: see the server's log)",
}


def _url(target: LabServer | str, path: str) -> str:
    if isinstance(target, LabServer):
        return target.ws_url(path)
    return target.rstrip("/") + "/" + path.lstrip("/") if path not in ("", "/") else target


def _proxy_for(url: str) -> str | bool | None:
    """No proxy for a loopback address (a proxy from $HTTPS_PROXY cannot reach this machine's 127.0.0.1);
    otherwise websockets' default, the proxy the environment names."""
    host = (urlsplit(url).hostname or "").lower()
    return None if host in ("localhost", "::1") or host.startswith("127.") else True


_named: dict[tuple[str, str], LabClient] = {}  # the open client of each name, per server


class LabClient:
    """One WebSocket client with a name and a transcript. Made by :func:`connect` or :func:`bots`.

    A client given a name (``name="ada"``, or a bot) is the only open one of that name on its server:
    opening another ``ada`` there closes the earlier one first, so re-running a cell that logs a bot in
    replaces it instead of colliding with it ("the name 'ada' is already taken").
    """

    def __init__(self, target: LabServer | str, path: str = "/", *, name: str | None = None,
                 transcript: Transcript | None = None, **options: Any) -> None:
        self.name = name or "you"
        self._key = (urlsplit(_url(target, path)).netloc, name) if name else None
        self.path = path
        self.url = _url(target, path)
        self.server = target if isinstance(target, LabServer) else None
        self.transcript = transcript if transcript is not None else Transcript()
        self._options = options
        self._connection: ClientConnection | None = None
        self._local_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the event loop it was opened on
        self._closed_noted = False

    # -- opening and closing -----------------------------------------------------------------------
    async def open(self) -> LabClient:
        """Connect (``async with`` and ``await`` call this for you)."""
        if self.server is not None and not self.server.running:
            raise ServerStopped(f"The server {self.server.name!r} is stopped; serve the app again, then "
                                "connect to the new server.")
        earlier = _named.get(self._key) if self._key else None
        if earlier is not None and earlier is not self and earlier._connection is not None \
                and earlier._connection.close_code is None:
            await earlier._replaced_by(self.name)
        try:
            self._connection = await ws_connect(self.url, **{"proxy": _proxy_for(self.url), **self._options})
        except InvalidStatus as exc:
            status = exc.response.status_code
            refusal = f"handshake refused: HTTP {status}{_REFUSALS.get(status, '')}"
            self.transcript.add(self.name, EVENT, refusal)
            raise
        self._local_port = self._connection.local_address[1]
        self._loop = asyncio.get_running_loop()
        if self._key:
            _named[self._key] = self
        return self

    async def _replaced_by(self, name: str | None) -> None:
        """Close, from whichever event loop is running: its own, or another (a check's) while it runs. One
        whose event loop has ended is left as it is (nothing can run its close)."""
        closing = self.close(1000, f"replaced by a new connection named {name!r}")
        if self._loop is asyncio.get_running_loop():
            await closing
        elif self._loop is not None and self._loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(closing, self._loop))
        else:
            closing.close()

    def __await__(self) -> Any:
        return self.open().__await__()

    async def __aenter__(self) -> LabClient:
        return await self.open()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def connection(self) -> ClientConnection:
        """The underlying websockets connection, for anything this helper does not wrap."""
        if self._connection is None:
            raise RuntimeError(f"{self.name} is not connected yet: use `async with` or `await` first.")
        return self._connection

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection (if the server has not already) and note how it ended."""
        connection = self.connection
        await connection.close(code, reason)
        await self._note_closed(by_us=True)

    @property
    def close_code(self) -> int | None:
        """The close code, once closed: the server's if it closed first, else ours; 1006 if none."""
        return self.connection.close_code

    @property
    def close_reason(self) -> str | None:
        return self.connection.close_reason

    async def _note_closed(self, *, by_us: bool = False) -> None:
        if self._closed_noted:
            return
        self._closed_noted = True
        await self.connection.wait_closed()
        await self._server_side_done()
        closed = self.connection.protocol.close_exc
        self.transcript.add(self.name, EVENT, describe_close(closed, by_us=by_us))

    async def _server_side_done(self) -> None:
        """Wait (briefly) until the server's handler for this connection has returned."""
        if self.server is None or self._local_port is None:
            return
        session = self.server.sessions.for_client_port(self._local_port)
        if session is not None:
            # A handler that ignores the close: give up waiting and report what the client saw. The shield
            # keeps the timeout from cancelling the session's own future, which others wait on too.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SERVER_DONE_TIMEOUT):
                    await asyncio.shield(asyncio.wrap_future(session.done))

    # -- sending and receiving ---------------------------------------------------------------------
    async def send(self, message: Message | dict[str, Any] | list[Any]) -> None:
        """Send text or bytes as they are; a dict or a list is sent as a JSON text frame."""
        data = message if isinstance(message, (str, bytes)) else json.dumps(message)
        closed = self.connection.protocol.close_exc if self.connection.close_code is not None else None
        if closed is not None:  # websockets would say "sent 1000 (OK); then received 1000 (OK)"
            how = describe_close(closed, by_us=closed.sent is not None and not closed.rcvd_then_sent)
            self.transcript.add(self.name, EVENT, f"cannot send {describe_message(data)}: already {how}")
            raise ClientClosed(self.name, closed, how)
        self.transcript.add(self.name, SENT, describe_message(data))
        try:
            await self.connection.send(data)
        except ConnectionClosed:
            await self._note_closed()
            raise

    async def recv(self, timeout: float = 5.0) -> Message:
        """The next message. Raises ``ConnectionClosed`` if the connection ends, ``TimeoutError`` if
        nothing comes within ``timeout`` seconds; either way the transcript says so first."""
        try:
            async with asyncio.timeout(timeout):
                message = await self.connection.recv()
        except ConnectionClosed:
            await self._note_closed()
            raise
        except TimeoutError:
            self.transcript.add(self.name, WAITED, f"nothing received within {timeout:g} s")
            raise TimeoutError(f"{self.name} received nothing within {timeout:g} s") from None
        self.transcript.add(self.name, RECEIVED, describe_message(message))
        return message

    async def recv_json(self, timeout: float = 5.0) -> Any:
        """The next message, parsed as JSON."""
        return json.loads(await self.recv(timeout))

    async def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Wait for the server to close the connection, noting any message that still arrives.
        Returns the close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.recv(timeout)
        except ConnectionClosed:
            return self.close_code

    def __repr__(self) -> str:
        return f"LabClient({self.name!r}, {self.path!r})"


def connect(target: LabServer | str, path: str = "/", *, name: str | None = None,
            transcript: Transcript | None = None, **options: Any) -> LabClient:
    """A client for ``path`` on ``target`` (a server from :func:`~wslab.serve`, or a ``ws://`` URL).

    Use it with ``async with`` (closed for you at the end) or ``await`` it (close it yourself). A
    ``name`` (the transcript says ``you`` without one) makes it the only open client of that name on
    the server: connecting another one of that name closes this one first.
    Every send, receive and close is printed as it happens; pass ``transcript=Transcript(live=False)``
    to collect the lines instead. Other keyword arguments go to ``websockets.asyncio.client.connect``.
    """
    return LabClient(target, path, name=name, transcript=transcript, **options)


class Bots:
    """Several named clients sharing one transcript; ``team["ada"]`` or ``for bot in team``."""

    def __init__(self, clients: Sequence[LabClient], transcript: Transcript) -> None:
        self.clients = {client.name: client for client in clients}
        self.transcript = transcript

    def __getitem__(self, name: str) -> LabClient:
        return self.clients[name]

    def __iter__(self) -> Iterator[LabClient]:
        return iter(self.clients.values())

    def __len__(self) -> int:
        return len(self.clients)

    async def __aenter__(self) -> Bots:
        opened: list[LabClient] = []
        try:
            for client in self:  # one after the other, so they join in a fixed order
                opened.append(await client.open())
        except BaseException:
            for client in opened:
                await client.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every bot, in order."""
        for client in self:
            if client._connection is not None:
                await client.close()


def bots(target: LabServer | str, path: str, names: Sequence[str], *,
         transcript: Transcript | None = None, **options: Any) -> Bots:
    """Named clients that connect in order; ``{name}`` in ``path`` becomes each bot's name.

    Example::

        async with wslab.bots(server, "/ws/{name}", ["ada", "bo", "cy"]) as team:
            await team["ada"].send("hello all")
            for bot in team:
                await bot.recv()
    """
    shared = transcript if transcript is not None else Transcript()
    clients = [LabClient(target, path.replace("{name}", n), name=n, transcript=shared, **options)
               for n in names]
    return Bots(clients, shared)


def run_sync(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run ``coro`` to completion from synchronous code, even in a cell whose event loop is running:
    it runs on a fresh event loop in a helper thread."""
    result: list[T] = []
    error: list[BaseException] = []

    def runner() -> None:
        loop = asyncio.new_event_loop()
        try:
            result.append(loop.run_until_complete(coro))
        except BaseException as exc:
            error.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=runner, name="wslab-run-sync", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"the exchange did not finish within {timeout:g} s")
    if error:
        raise error[0]
    return result[0]


def exchange(target: LabServer | str, path: str, *messages: Message | dict[str, Any],
             name: str | None = None, replies: int = 1, timeout: float = 5.0, show: bool = True,
             **options: Any) -> list[Message]:
    """Connect, send each message and read ``replies`` replies to each, close; return the replies.

    The synchronous form, for one-shot exchanges (no ``await`` needed)::

        wslab.exchange(server, "/ws", "hello", "world")

    If the server closes the connection or stays silent, the transcript says so and the replies so
    far are returned.
    """
    transcript = Transcript(live=False)

    async def talk() -> list[Message]:
        received: list[Message] = []
        async with connect(target, path, name=name, transcript=transcript, **options) as client:
            try:
                for message in messages:
                    await client.send(message)
                    for _ in range(replies):
                        received.append(await client.recv(timeout))
            except (ConnectionClosed, TimeoutError):
                pass
        return received

    try:
        return run_sync(talk(), timeout=timeout * (len(messages) * replies + 2))
    finally:
        if show and transcript.lines:
            print(transcript)
