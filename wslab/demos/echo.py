"""The echo app as chapter 01 ends it: the browser page at ``/`` and an echo endpoint at ``/ws`` that
ends quietly when the client leaves. The setup check and the benchmarks serve it; chapter 01 serves
the page with endpoints of its own.

    server = wslab.serve(echo_app(), name="echo")
    server = wslab.serve(echo_app(my_endpoint), name="echo")
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse

from wslab.reference.pages import page

__all__ = ["echo", "echo_app"]


async def echo(websocket: WebSocket) -> None:
    """Send every text message back as it came, until the client leaves."""
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect:
        pass  # the client left: the normal end of the conversation


def echo_app(endpoint: Callable[[WebSocket], Awaitable[None]] = echo) -> FastAPI:
    """A new app with the echo page at ``/`` and ``endpoint`` (by default :func:`echo`) at ``/ws``."""
    app = FastAPI()
    app.get("/", response_class=HTMLResponse)(lambda: page("echo"))
    app.websocket("/ws")(endpoint)  # what the @app.websocket("/ws") decorator does
    return app
