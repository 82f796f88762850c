"""wslab: a hands-on workbook for real-time web programming with FastAPI WebSockets.

What the notebooks use, in one place::

    import wslab
    server = wslab.serve(app, name="echo")          # uvicorn inside this process
    async with wslab.connect(server, "/ws") as ws:  # a client that prints a transcript
        ...
"""

from __future__ import annotations

from .lab.classroom import join_class, leave_class
from .lab.client import Bots, LabClient, bots, connect, exchange, run_sync
from .lab.exceptions import (
    AppStartupError,
    ClientClosed,
    PortInUseError,
    ServerStartError,
    ServerStopped,
    ServerTimeoutError,
    WslabError,
)
from .lab.redis_server import RedisServer, RedisServerError
from .lab.server import LabServer, running_servers, serve
from .lab.transcript import Transcript
from .reference.pages import page
from .tools.doctor import diagnose

__all__ = [
    "AppStartupError",
    "ClientClosed",
    "Bots",
    "LabClient",
    "LabServer",
    "PortInUseError",
    "RedisServer",
    "RedisServerError",
    "ServerStartError",
    "ServerStopped",
    "ServerTimeoutError",
    "Transcript",
    "WslabError",
    "bots",
    "connect",
    "diagnose",
    "exchange",
    "join_class",
    "leave_class",
    "page",
    "run_sync",
    "running_servers",
    "serve",
]
