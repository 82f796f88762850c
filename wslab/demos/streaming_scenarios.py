"""Make the streaming failures happen on demand, the same way on every run, and count what is left behind.

Counting, on the server's own event loop (a task's name is its coroutine's):

- :func:`server_tasks`: the tasks running in the server besides uvicorn's own, for example
  ``{"notification_listener": 200}``; a connection's handler still running counts as ``"handler"``;
- :func:`cancel_app_tasks`: cancel and await the tasks the app started and left behind, so the server can
  stop without Python complaining that pending tasks were destroyed.

Scenarios, each working on the tutorial's code and on the hardened code alike:

- :func:`churn`: clients connect and leave, many times;
- :func:`slow_reader`: one client of the price feed stops reading while the prices move, then reads again;
- :func:`silent_peer`: a client stays connected but falls silent (its program hangs, its laptop sleeps).

The price feed moves only when a scenario steps it (:func:`step`), each step once every reader that keeps
up has received the one before, so what each client receives is the same on every run.

Helpers for cells: :func:`step` moves a feed on the server's loop; :func:`catch_up` waits until the server has
handled what a client sent; :func:`wait_for_log` waits for a log message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from wslab.lab.client import connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import EVENT, RECEIVED, WAITED, Transcript
from wslab.reference.feeds import PriceFeed, Prices

__all__ = [
    "SlowReport", "cancel_app_tasks", "catch_up", "churn", "server_tasks", "silent_peer",
    "slow_reader", "step", "wait_for_log",
]

_UVICORN_OWN = ("Server.serve", "LifespanOn.main")  # the server itself and its lifespan, always there


def _name(task: asyncio.Task[Any]) -> str:
    coroutine = task.get_coro()
    qualname = getattr(coroutine, "__qualname__", type(coroutine).__name__)
    if qualname.endswith(".run_asgi"):  # uvicorn runs each connection's endpoint in one of these
        return "handler"
    return qualname if qualname in _UVICORN_OWN else qualname.rsplit(".", 1)[-1]


async def _tasks() -> list[asyncio.Task[Any]]:
    current = asyncio.current_task()
    return [task for task in asyncio.all_tasks() if task is not current and _name(task) not in _UVICORN_OWN]


def server_tasks(server: LabServer) -> dict[str, int]:
    """The tasks running on ``server``'s event loop besides uvicorn's own, by coroutine name.

        server_tasks(server)       # {} when nothing is connected and nothing leaked
    """

    async def count() -> dict[str, int]:
        return dict(sorted(collections.Counter(_name(task) for task in await _tasks()).items()))

    return server.call(count())


def cancel_app_tasks(server: LabServer) -> int:
    """Cancel the tasks the app started on ``server`` and left running (handlers excepted), wait for them
    to end, and return how many there were. uvicorn stops only the tasks it started itself."""

    async def cancel() -> int:
        leftovers = [task for task in await _tasks() if _name(task) != "handler"]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        return len(leftovers)

    return server.call(cancel())


async def wait_for_log(server: LabServer, text: str, timeout: float = 5.0) -> bool:
    """Wait until ``server`` has logged a message containing ``text``; False if not within ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not any(text in record.getMessage() for record in server.log.records):
                await asyncio.sleep(0.01)
    except TimeoutError:
        return False
    return True


async def catch_up(server: LabServer) -> None:
    """Return once ``server`` has handled what reached it before this call: a frame a client has sent, say.

    Its loop may have been woken by that frame and by this call at the same turn, in either order; a second
    trip through the loop lands at a later turn, after the frame was read."""

    async def nothing() -> None:
        pass

    for _ in range(2):
        await server.acall(nothing())


async def churn(server: LabServer, path: str, cycles: int, *, token: str | None = None,
                settle: float = 2.0) -> bool:
    """Connect to ``path`` and close again, ``cycles`` times in a row, like clients that come and go; with
    a ``token``, each sends ``{"type": "auth", "token": ...}`` first. Then wait up to ``settle`` seconds
    for every handler to finish; True if they all did."""
    auth = None if token is None else json.dumps({"type": "auth", "token": token})
    for _ in range(cycles):
        async with ws_connect(server.ws_url(path), compression=None) as client:
            if auth is not None:
                await client.send(auth)
    return await asyncio.to_thread(server.wait_idle, settle)


async def _step(feed: PriceFeed, ticks: int) -> Prices:
    for _ in range(ticks):
        feed.step()
    return feed.latest


def step(server: LabServer, feed: PriceFeed, ticks: int = 1) -> Prices:
    """Move ``feed`` (served by ``server``) ``ticks`` times, on the server's loop; return the new prices."""
    return server.call(_step(feed, ticks))


async def _prices(client: ClientConnection, timeout: float) -> dict[str, Any]:
    """The next ``prices`` frame ``client`` receives (other frames are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await client.recv())
            if isinstance(frame, dict) and frame.get("type") == "prices":
                return frame


@dataclass
class SlowReport:
    """What :func:`slow_reader` saw."""

    ticks: int  # how often the prices moved while bo was busy
    on_time: bool  # ada and cy received every price before the next one was published
    first_tick: int  # the tick of the first prices bo read when he read again
    read: int  # messages bo read to reach the latest prices


async def slow_reader(server: LabServer, feed: PriceFeed, path: str = "/ws/prices", *, ticks: int = 50,
                      ack: bool = True, patience: float = 2.0) -> SlowReport:
    """ada, bo and cy follow the price feed. bo reads the current prices, then gets busy: he stops reading
    while the prices move ``ticks`` times. ada and cy read every price as it comes (and acknowledge it, with
    ``ack``). Are they held up? Then bo reads again: what does he get first, and how much does he have to
    read to be up to date?"""
    lines = Transcript()
    acknowledge = json.dumps({"type": "ack"})
    async with contextlib.AsyncExitStack() as stack:  # plain clients: a send-only handler never lets go
        ada, bo, cy = [await stack.enter_async_context(ws_connect(server.ws_url(path), compression=None))
                       for _ in range(3)]
        start = [(await _prices(client, patience))["tick"] for client in (ada, bo, cy)][0]  # the same three
        if ack:
            for client in (ada, cy):
                await client.send(acknowledge)
        print(f"ada, bo and cy read the current prices (tick {start}). bo gets busy and stops reading.")
        latest, on_time = start, True
        for _ in range(ticks):
            latest = (await server.acall(_step(feed, 1))).tick
            for client in (ada, cy):
                try:
                    on_time = on_time and (await _prices(client, patience))["tick"] == latest
                except TimeoutError:
                    on_time = False
                if ack:
                    await client.send(acknowledge)
        if on_time:
            lines.add("ada, cy", RECEIVED, f"every price, ticks {start + 1} to {latest}, each one before the "
                                           "next was published")
        else:
            lines.add("ada, cy", WAITED, "fell behind: a price did not reach them before the next one")
        lines.add("bo", "…", "reads again")
        if ack:
            await bo.send(acknowledge)  # done with the prices of tick `start`, at last
        report = SlowReport(ticks, on_time, -1, 0)
        while True:
            frame = await _prices(bo, patience)
            report.read += 1
            if report.read == 1:
                report.first_tick = frame["tick"]
                age = "the latest" if frame["tick"] == latest else f"{latest - frame['tick']} ticks old"
                lines.add("bo", RECEIVED, f"tick {frame['tick']} ({age}): {frame['prices']}")
            if frame["tick"] == latest:
                break
            if ack:
                await bo.send(acknowledge)
        lines.add("bo", "✓", f"up to date after reading {report.read} message{'s' * (report.read > 1)}")
    return report


async def silent_peer(server: LabServer, path: str, *, patience: float = 3.0, name: str = "bo",
                      token: str | None = None) -> Transcript:
    """``name`` connects to ``path`` (and, with a ``token``, sends ``{"type": "auth", "token": ...}``) and
    falls silent: his program hangs, so it neither reads nor sends, but his connection stays open (as when
    a laptop goes to sleep, or a network drops packets without a word). Does the server notice within
    ``patience`` seconds? Then he wakes up and reads what came."""
    transcript = Transcript()
    async with connect(server, path, name=name, transcript=transcript, ping_interval=None) as peer:
        session = server.sessions.for_client_port(peer.connection.local_address[1])
        assert session is not None
        if token is not None:
            await peer.send({"type": "auth", "token": token})
        peer.connection.transport.pause_reading()
        transcript.add(name, "…", "falls silent: reads nothing, sends nothing, keeps the connection open")
        try:
            async with asyncio.timeout(patience):
                await asyncio.shield(asyncio.wrap_future(session.done))
            transcript.add("server", EVENT, f"ended {name}'s connection")
        except TimeoutError:
            transcript.add("server", WAITED, f"still holds {name}'s connection after {patience:g} s")
        peer.connection.transport.resume_reading()
        transcript.add(name, "…", "wakes up and reads")
        try:
            while session.done.done():  # the server is done with him: read what it sent, up to the close
                await peer.recv(patience)
        except (ConnectionClosed, TimeoutError):
            pass
    server.wait_idle(2.0)
    return transcript
