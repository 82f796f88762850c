"""Run a FastAPI (or any ASGI) app with uvicorn inside the current Python process.

A notebook cell cannot block on ``uvicorn.run()``, and a server task on the kernel's own event loop
deadlocks any synchronous client in a cell and takes the kernel down when its port is taken (uvicorn
calls ``sys.exit``). So :func:`serve` runs uvicorn in a daemon thread with an event loop of its own,
built here rather than through ``asyncio.run`` so that it still works after ``nest_asyncio2.apply()``.

    >>> server = serve(app, name="echo")      # returns once the server is listening
    >>> server.ws_url("/ws")                  # 'ws://127.0.0.1:<port>/ws'
    >>> server.browser_url                    # what to show a browser (proxied on JupyterHub and Binder)
    >>> server.stop()                         # idempotent; frees the port

Serving again under the same name stops the previous server first and listens on the same port (also
after a stop), so re-running a cell never fails with "address already in use", and a browser page opened
on the old server reconnects to the new one. Every server is stopped when the process exits.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import errno
import socket
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

import uvicorn
from starlette.types import ASGIApp

from wslab.reference.manager import MAX_FRAME
from wslab.reference.wsprotocol import WebSocketProtocol

from .exceptions import AppStartupError, PortInUseError, ServerStartError, ServerStopped, ServerTimeoutError
from .proxy import browser_url
from .serverlog import ServerLog, attach, detach
from .sessions import SessionTracker

__all__ = ["LabServer", "running_servers", "serve"]

T = TypeVar("T")
HOST = "127.0.0.1"
DEFAULT_NAME = "default"
HAND_OVER_GRACE = 0.1  # seconds a replaced server lets connections it just accepted send their request
_UVICORN_GIVES_UP = "Application startup failed. Exiting."

_servers: dict[str, LabServer] = {}
_last_port: dict[str, int] = {}  # the port each name was last served on
_servers_lock = threading.Lock()


def serve(app: ASGIApp, *, port: int = 0, name: str | None = None, timeout: float = 10.0) -> LabServer:
    """Serve ``app`` on 127.0.0.1 in a background thread and return once it is listening.

    ``port=0`` lets the operating system pick a free port (read it from ``.port``). ``name`` identifies
    the server within this process: serving again under a name already in use stops that server first
    and takes over its port, so pages opened on it reconnect (no name means the name ``"default"``). A
    fixed ``port`` that one of this process's own servers still holds is freed the same way.

    Raises :class:`PortInUseError` if another program holds the port, :class:`AppStartupError` if the
    app's startup fails, :class:`ServerTimeoutError` if it is not listening within ``timeout`` seconds.

    Example::

        server = wslab.serve(app, name="echo")
        async with wslab.connect(server, "/ws") as ws:
            await ws.send("hello")
            await ws.recv()
        server.stop()
    """
    name = name or DEFAULT_NAME
    # The same name keeps its port, even after a stop: a page opened on the old server reconnects to the
    # new one by itself.
    earlier = port or _last_port.get(name, 0)
    with _servers_lock:
        stale = [s for s in _servers.values() if s.name == name or (port and s.port == port)]
    # A running server on that port hands its listening socket over, so the port never stops listening:
    # a page that loads while the server is replaced waits in the socket's queue for the new server
    # instead of being refused (or, through jupyter-server-proxy, shown a 500 page).
    handed_over = next((old._hand_over() for old in stale if old.running and old.port == earlier), None)
    for old in stale:
        old.stop()
    server = LabServer(app, name=name, port=earlier, listener=handed_over)
    try:
        server._start(timeout)
    except PortInUseError:
        if port:
            raise
        server = LabServer(app, name=name)  # another program took the old port meanwhile: any free one
        server._start(timeout)
    with _servers_lock:
        _servers[name] = server
        _last_port[name] = server.port
    return server


def running_servers() -> list[LabServer]:
    """The servers this process started that are still running, by name."""
    with _servers_lock:
        return sorted((s for s in _servers.values() if s.running), key=lambda s: s.name)


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, telling us the moment it is listening."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_started = on_started
        self.handing_over = False  # its listening socket goes on to the next server of its name

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.handing_over:
            # Stop accepting, then give the connections just accepted time to send their request: uvicorn's
            # shutdown closes at once a connection that has not sent one yet, and its client sees a reset.
            # The listening socket lives on in the next server, which accepts what comes meanwhile.
            for server in self.servers:
                server.close()
            await asyncio.sleep(HAND_OVER_GRACE)
        await super().shutdown(sockets=sockets)


class LabServer:
    """A uvicorn server running in a background thread of this process. Made by :func:`serve`."""

    def __init__(self, app: ASGIApp, *, name: str, port: int = 0,
                 listener: socket.socket | None = None) -> None:
        self.name = name
        self.log = ServerLog()
        self.sessions = SessionTracker(app)
        self._requested_port = port
        self._listener = listener  # a listening socket to serve on instead of binding one
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._finished = threading.Event()
        self._settled = threading.Event()  # started, or finished without starting
        self._failure: BaseException | None = None
        self._stopped = False
        config = uvicorn.Config(
            self.sessions,
            interface="asgi3",
            lifespan="auto",
            ws=WebSocketProtocol,  # websockets-sansio, with a close that never hangs on a stalled client
            ws_max_size=MAX_FRAME,  # a bigger frame is refused (1009) from its header, before it is buffered
            log_config=None,  # leave the process's logging alone; serverlog captures our records
            log_level="info",
            timeout_graceful_shutdown=2,
        )
        self._uvicorn = _Uvicorn(config, self._on_started)
        self._thread = threading.Thread(target=self._run, name=f"wslab-server-{name}", daemon=True)

    # -- addresses ---------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The server's HTTP address, for example ``http://127.0.0.1:41234``."""
        return f"http://{HOST}:{self.port}"

    @property
    def browser_url(self) -> str:
        """The address a browser should open: ``http://127.0.0.1:<port>/`` on a laptop, the proxied path
        (``/user/<name>/proxy/<port>/``) on JupyterHub or Binder; see :mod:`wslab.lab.proxy`. Code in the
        kernel (clients, a headless browser, tests) uses :attr:`url`."""
        return browser_url(self.port)

    def ws_url(self, path: str = "/") -> str:
        """The WebSocket address of ``path`` on this server, for example ``ws://127.0.0.1:41234/ws``."""
        return f"ws://{HOST}:{self.port}/{path.lstrip('/')}"

    @property
    def running(self) -> bool:
        return self._started.is_set() and not self._finished.is_set()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LabServer({self.name!r}, {state})"

    # -- lifecycle ---------------------------------------------------------------------------------
    def _start(self, timeout: float) -> None:
        sock = self._listener or _bind(self._requested_port, self.name)
        self.port = sock.getsockname()[1]
        self._socket = sock
        self._thread.start()
        if not self._settled.wait(timeout):
            self.stop()
            raise ServerTimeoutError(
                f"The server {self.name!r} did not start listening within {timeout:g} s. Its app's "
                "startup (lifespan) is probably waiting for something; fix it, or pass a larger timeout."
            )
        if not self._started.is_set():
            self._thread.join()
            logged = self.log.lines("ERROR", show_level=False)
            problems = [line for line in logged if line not in ("Traceback", _UVICORN_GIVES_UP)]
            raise AppStartupError(
                f"The app served as {self.name!r} failed to start: "
                f"{'; '.join(problems) or repr(self._failure)}. "
                "Fix the app's startup code and run the cell again."
            ) from self._failure

    def _on_started(self) -> None:
        self._started.set()
        self._settled.set()

    def _run(self) -> None:
        attach(threading.get_ident(), self.log)
        loop = asyncio.new_event_loop()  # our own loop: asyncio.run is what nest_asyncio2 patches
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._uvicorn.serve(sockets=[self._socket]))
        except BaseException as exc:  # uvicorn raises SystemExit when startup fails
            self._failure = exc
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._socket.close()
                detach(threading.get_ident())
                self._finished.set()
                self._settled.set()

    def _hand_over(self) -> socket.socket:
        """A duplicate of the listening socket, which keeps listening after this server stops: connections
        wait in its queue until another server accepts them."""
        self._uvicorn.handing_over = True
        return self._socket.dup()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server and free its port. Safe to call more than once."""
        if not self._stopped:
            self._stopped = True
            self._uvicorn.should_exit = True
            if self._thread.is_alive():
                self._thread.join(timeout)
            if self._thread.is_alive():  # a handler ignores shutdown: stop waiting for it
                self._uvicorn.force_exit = True
                if self.answers(0.5):  # unless it holds the loop, which then cannot even see force_exit
                    self._thread.join(timeout)
        with _servers_lock:
            if _servers.get(self.name) is self:
                del _servers[self.name]

    def __enter__(self) -> LabServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- running code on the server's loop ---------------------------------------------------------
    def _submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        if not self.running or self._loop is None:
            coro.close()
            raise ServerStopped(f"The server {self.name!r} is stopped; serve the app again first.")
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("call() was used on the server's own thread; just await the coroutine.")
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coro`` on the server's event loop, wait for it and return its result.

        This is how a cell reaches the server's connections, for example to push a message to every
        connected client::

            async def announce(text):
                manager.broadcast(text)

            server.call(announce("hello"))
        """
        future = self._submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise ServerTimeoutError(
                f"The coroutine did not finish on the server {self.name!r} within {timeout:g} s "
                "and was cancelled."
            ) from None

    async def acall(self, coro: Coroutine[Any, Any, T]) -> T:
        """Like :meth:`call`, but awaitable, so the cell's own event loop keeps running meanwhile."""
        return await asyncio.wrap_future(self._submit(coro))

    @contextlib.contextmanager
    def paused(self, timeout: float = 5.0) -> Iterator[None]:
        """Hold the server's event loop still while the block runs, as a long CPU-bound step would.

        Whatever clients do meanwhile (send, close, drop their connection) reaches the server at once
        when the block ends, in the order it happened. The failure demonstrations use this to make a
        race happen on every run instead of once in a while. The loop is released after ``timeout``
        seconds even if the block is still running.
        """
        loop = self._loop
        if not self.running or loop is None:
            raise ServerStopped(f"The server {self.name!r} is stopped; serve the app again first.")
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            holding.set()
            release.wait(timeout)

        loop.call_soon_threadsafe(hold)
        if not holding.wait(timeout):
            release.set()
            raise ServerTimeoutError(f"The server {self.name!r} did not pause within {timeout:g} s.")
        try:
            yield
        finally:
            release.set()

    def answers(self, timeout: float = 1.0) -> bool:
        """True if the server's event loop runs a callback within ``timeout``; False while something holds
        it (a handler looping without an await, a ``time.sleep``), or when the server is stopped."""
        loop = self._loop
        if not self.running or loop is None:
            return False
        answered = threading.Event()
        try:
            loop.call_soon_threadsafe(answered.set)
        except RuntimeError:  # the loop closed meanwhile
            return False
        return answered.wait(timeout)

    # -- what happened -----------------------------------------------------------------------------
    def print_log(self, level: int | str = "WARNING") -> None:
        """Print what the server logged since the last ``print_log()``, at ``level`` or above."""
        lines = self.log.take_new(level)
        print("\n".join(lines) if lines else f"(server {self.name!r} logged nothing)")

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no WebSocket handler is running; True if that happened within ``timeout``."""
        return self.sessions.wait_idle(timeout)


def _bind(port: int, name: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"Port {port} on {HOST} is already in use by another program, so {name!r} cannot "
                "listen there. Serve with port=0 to get a free port, or stop the other program."
            ) from exc
        raise ServerStartError(f"Cannot listen on {HOST} port {port} for {name!r}: {exc}") from exc
    return sock


@atexit.register
def _stop_all() -> None:
    with _servers_lock:
        servers = list(_servers.values())
    for server in servers:
        server.stop(timeout=2.0)
