"""Tiny apps the tests serve, and clients for them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

import wslab
from wslab import LabClient, LabServer, Transcript
from wslab.lab.serverlog import scrub


@contextlib.contextmanager
def service_logs_debug() -> Iterator[None]:
    """The reference service's loggers (``wslab.reference.*``) at DEBUG for the block, to see the leaves too;
    serve inside it (a server sets INFO only on loggers left unset)."""
    logger = logging.getLogger("wslab.reference")
    before = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.setLevel(before)


def service_lines(server: LabServer) -> list[str]:
    """What the reference service logged on ``server``: ``LEVEL logger: message``, the ports scrubbed."""
    return [f"{record.levelname} {record.name}: {scrub(record.getMessage())}" for record in server.log.records
            if record.name.startswith("wslab.reference")]


def echo_app(prefix: str = "") -> FastAPI:
    """/ws echoes text and ends quietly on disconnect; /naive never catches the disconnect;
    /quit closes with 1000 "bye" on the text "quit"."""
    app = FastAPI()

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                if text == "quit":
                    await websocket.close(1000, "bye")
                    return
                await websocket.send_text(prefix + text)
        except WebSocketDisconnect:
            pass

    @app.websocket("/naive")
    async def naive(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_text(await websocket.receive_text())

    @app.websocket("/named/{name}")
    async def named(websocket: WebSocket, name: str) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(f"{name}: {await websocket.receive_text()}")
        except WebSocketDisconnect:
            pass

    return app


def failing_startup_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("the database is not reachable")
        yield

    return FastAPI(lifespan=lifespan)


@asynccontextmanager
async def chat(server: LabServer, *names: str, **options: Any) -> AsyncIterator[dict[str, LabClient]]:
    """Clients on /ws/{name}, connected one at a time. Each says "here" and waits until everyone so
    far has it, so each is known to be in the manager before the next one connects."""
    transcript = Transcript(live=False)
    async with contextlib.AsyncExitStack() as stack:
        team: dict[str, LabClient] = {}
        for name in names:
            client = wslab.connect(server, f"/ws/{name}", name=name, transcript=transcript, **options)
            team[name] = await stack.enter_async_context(client)
            await team[name].send("here")
            for bot in team.values():
                assert await bot.recv() == f"{name}: here"
        yield team


def single_endpoint(path: str, handler: Callable[..., Any]) -> FastAPI:
    """An app with one WebSocket endpoint: ``handler`` at ``path``."""
    app = FastAPI()
    app.websocket(path)(handler)
    return app


async def shout_title_case(websocket: WebSocket) -> None:
    """A wrong answer to 1.1 that catches the disconnect: Title Case instead of capitals."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text((await websocket.receive_text()).title())
    except WebSocketDisconnect:
        pass
