"""The errors wslab raises. Each message names what went wrong and what to do next."""

from __future__ import annotations

from websockets.exceptions import ConnectionClosed

__all__ = [
    "AppStartupError",
    "ClientClosed",
    "PortInUseError",
    "ServerStartError",
    "ServerStopped",
    "ServerTimeoutError",
    "WslabError",
]


class WslabError(Exception):
    """Base class of every error wslab raises on purpose."""


class ServerStartError(WslabError):
    """An in-kernel server did not start; the message says why."""


class PortInUseError(ServerStartError):
    """The requested port is taken by another program."""


class AppStartupError(ServerStartError):
    """The app failed during startup (its lifespan raised, or it could not be loaded)."""


class ServerTimeoutError(ServerStartError):
    """The server did not start listening, or did not answer, within the timeout."""


class ServerStopped(WslabError):
    """The server was stopped, so it cannot run anything any more."""


class ClientClosed(WslabError, ConnectionClosed):
    """A client was asked to send on a connection that is already closed. It is a ``ConnectionClosed``
    too, so code that catches the websockets library's exception catches it."""

    def __init__(self, name: str, closed: ConnectionClosed, how: str) -> None:
        super().__init__(closed.rcvd, closed.sent, closed.rcvd_then_sent)
        self.name = name
        self.how = how

    def __str__(self) -> str:
        return (f"{self.name}'s connection is already closed ({self.how}), so nothing was sent. "
                f"Connect again (wslab.connect) to send more.")
