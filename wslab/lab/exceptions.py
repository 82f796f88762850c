"""The errors wslab raises. Each message names what went wrong and what to do next."""

from __future__ import annotations

__all__ = [
    "AppStartupError",
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
