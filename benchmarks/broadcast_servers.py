"""The servers that ``benchmarks/broadcast.py`` compares, and what it reads of their processes.

Each runs alone in a process (``python broadcast_servers.py --serve KIND --port PORT``, through
:func:`subprocess_server.serve_script`), on 127.0.0.1, relaying every text a client sends to everyone in
one room, the sender included. The ASGI ones run under uvicorn with wslab's own WebSocket protocol
(``wslab.reference.wsprotocol.WebSocketProtocol``, uvicorn's ``websockets-sansio``): each ``send_text``
there encodes the text to UTF-8, frames it and writes it to the transport, per recipient.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadgen import SECRET
from subprocess_server import serve_script

# What each server does for one message of the room (the figures' legend).
KINDS = {
    "app": "the complete app, create_app() (rate limit lifted), logged-in clients: per frame the rate limit, "
           "a JSON parse and a pydantic validation, one encode; per recipient a queue put, a switch to its "
           "writer task, an ASGI send",
    "app-quiet": "the same, with join/leave frames sent to the newcomer only (so 5,000 can join at all)",
    "manager": "ConnectionManager's broadcast_app(): per recipient a queue put, a writer task switch, "
               "an ASGI send",
    "naive": "the tutorial's loop (wslab.demos.naive): await send_text to each, in the speaker's handler",
    "floor": "a Starlette endpoint doing nothing but await send_text to each: the cheapest ASGI broadcast",
    "bare": "websockets.broadcast(): one UTF-8 encode, then per recipient a frame and a transport write; no "
            "task, no ASGI",
    "socketio": "python-socketio's AsyncServer.emit to a room (ASGIApp): one encode, per recipient a task, "
                "an Engine.IO queue, a writer task switch, an ASGI send",
}
ROOM = "lobby"


# -- the servers ------------------------------------------------------------------------------------------
def raise_nofile() -> None:
    """As many open files as this process may have: thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 2**16
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def serve(kind: str, port: int) -> None:
    """Run the server ``kind`` in this process until it is terminated. With ``$BENCH_GC_LOG`` set, the
    garbage collector's passes and time so far go to that file on SIGUSR1 (broadcast_profile.py)."""
    raise_nofile()
    if os.environ.get("BENCH_GC_LOG"):
        _log_gc(Path(os.environ["BENCH_GC_LOG"]))
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # "socket.send() raised exception" at the end
    if kind == "bare":
        return asyncio.run(_bare(port))
    import uvicorn

    from wslab.reference.manager import MAX_FRAME
    from wslab.reference.wsprotocol import WebSocketProtocol

    uvicorn.run(_asgi_app(kind), host="127.0.0.1", port=port, ws=WebSocketProtocol, ws_max_size=MAX_FRAME,
                log_level="warning", backlog=4096)


def _log_gc(path: Path) -> None:
    """Count the garbage collector's passes and time; write them to ``path`` on SIGUSR1 (nothing is
    written while collecting, which would add to what is measured)."""
    import gc
    import json
    import signal
    import time

    totals = {"passes": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
    began = [0.0]

    def measure(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.thread_time()
        else:
            totals["passes"][info["generation"]] += 1
            totals["seconds"][info["generation"]] += time.thread_time() - began[0]  # CPU, not wall

    gc.callbacks.append(measure)
    signal.signal(signal.SIGUSR1, lambda signum, frame: path.write_text(json.dumps(totals)))


def _asgi_app(kind: str) -> Any:
    if kind in ("app", "app-quiet"):
        from wslab.reference.app import create_app

        return create_app(secret=SECRET, broker=_quiet_broker() if kind == "app-quiet" else None,
                          rate=1e6, burst=10**6)
    if kind == "manager":
        from wslab.reference.manager import broadcast_app

        return broadcast_app()
    if kind == "naive":
        from wslab.demos.naive import naive_broadcast_app

        return naive_broadcast_app()
    if kind == "floor":
        return _floor()
    if kind == "socketio":
        return _socketio()
    raise ValueError(f"no server called {kind!r}: choose one of {', '.join(KINDS)}")


def _quiet_broker() -> Any:
    from wslab.reference.broker import MemoryBroker
    from wslab.reference.manager import Client
    from wslab.reference.protocol import Join, encode
    from wslab.reference.rooms import Room

    class QuietRoom(Room):
        """Presence told to the newcomer alone: N joins cost N frames instead of N²/2 lists."""

        def join(self, user: str, client: Client) -> bool:
            if user in self.members:
                return False
            self.members[user] = client
            client.send(encode(Join(user=user, users=[user])))
            return True

        def leave(self, user: str, client: Client) -> None:
            if self.members.get(user) is client:
                del self.members[user]

    class QuietBroker(MemoryBroker):
        def room(self, name: str) -> Room:
            return QuietRoom(name)

    return QuietBroker()


def _floor() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    sockets: dict[WebSocket, None] = {}

    async def relay(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets[websocket] = None
        try:
            while True:
                text = await websocket.receive_text()
                for other in list(sockets):
                    await other.send_text(text)
        except WebSocketDisconnect:
            pass
        finally:
            sockets.pop(websocket, None)

    return Starlette(routes=[WebSocketRoute("/ws/{name}", relay)])


def _socketio() -> Any:
    import socketio  # the bench dependency group: python3 run.py bench broadcast

    sio = socketio.AsyncServer(async_mode="asgi")

    @sio.event
    async def connect(sid: str, environ: dict[str, Any]) -> None:
        await sio.enter_room(sid, ROOM)

    @sio.on("message")
    async def message(sid: str, data: Any) -> None:
        await sio.emit("message", data, room=ROOM)

    return socketio.ASGIApp(sio)


async def _bare(port: int) -> None:
    import websockets
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve
    from websockets.exceptions import ConnectionClosed

    connections: set[ServerConnection] = set()

    async def relay(connection: ServerConnection) -> None:
        name = connection.request.path.removeprefix("/ws/") if connection.request else ""
        connections.add(connection)
        try:
            async for message in connection:
                if isinstance(message, str):
                    websockets.broadcast(connections, f"{name}: {message}")
        except ConnectionClosed:
            pass
        finally:
            connections.discard(connection)

    async with ws_serve(relay, "127.0.0.1", port, backlog=4096) as server:
        await server.serve_forever()


SERVER_CPU = max(os.sched_getaffinity(0))  # the core the servers run on: the last one this process may use


def server_cpus() -> set[int]:
    return {SERVER_CPU}


def pin_clients() -> None:
    """This process and the load generators it starts run on every core but the server's."""
    cpus = os.sched_getaffinity(0)
    if len(cpus) > 1:
        os.sched_setaffinity(0, cpus - server_cpus())


# -- what the benchmark reads of a server -------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    """CPU time of process ``pid`` so far, every thread: the scheduler's nanoseconds
    (/proc/PID/task/*/schedstat), finer than the 10 ms ticks of /proc/PID/stat."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


@dataclass
class Server:
    """A server process: its port, and its CPU time and memory from /proc."""

    kind: str
    port: int
    pid: int
    log: Path

    def threads(self) -> list[Path]:
        return list(Path(f"/proc/{self.pid}/task").iterdir())

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    def memory_kb(self, field: str = "VmRSS") -> int:
        """``VmRSS`` (resident now) or ``VmHWM`` (peak), in KB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"/proc/{self.pid}/status has no {field}")

    def pin(self, cpus: set[int]) -> None:
        """Run every thread of the server on ``cpus`` only (threads made later inherit it)."""
        for task in self.threads():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)

    def errors(self) -> int:
        """Tracebacks the server logged so far."""
        return self.log.read_text(errors="replace").count("Traceback")


@contextlib.contextmanager
def server(kind: str) -> Iterator[Server]:
    """The server ``kind`` in a process of its own, stopped when the block ends."""
    with serve_script(Path(__file__), kind) as (port, pid, log):
        yield Server(kind, port, pid, log)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=KINDS, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve(args.serve, args.port)


if __name__ == "__main__":
    main()
