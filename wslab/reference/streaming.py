"""Stream live prices and notifications over WebSockets without leaking tasks or letting a slow reader hurt
anyone. The feeds themselves (one producer, many subscribers) are in :mod:`wslab.reference.feeds`.

The tutorial's notifications endpoint starts a listener with ``asyncio.create_task`` and never stops it, so
every connection leaves a task running for good; its price endpoint only sends, so it cannot hear its client.
Here:

- **No task outlives its connection:** a handler's tasks run under :func:`until_first_done`, a task group
  that ends when the first of them ends (the client left, sending failed) and cancels and awaits the rest.
- **Receive and send at once:** each endpoint runs a reader (client frames, heartbeat, disconnect) and a
  writer (prices or notifications) in that group.
- **Prices:** a client is sent new prices only after it acknowledged the last (``{"type": "ack"}``). The
  network buffers between server and client hold megabytes that the server cannot see through ASGI; the
  ack keeps them empty, so a slow reader gets the latest prices when it reads again, never a backlog, and
  nobody waits for it (publishing never waits: :class:`~wslab.reference.feeds.PriceFeed`).
- **Notifications are personal:** the user comes from a token sent as the first frame
  (:func:`~wslab.reference.auth.authenticate`), never from the URL, and the connection closes with 1008
  when the token expires, unless the client sends a fresh ``auth`` frame for the same user first.
  Prices are public: anyone may follow them.
- **Notifications:** every one published while the client is connected is delivered, in order, numbered
  per user (``seq``); a client that comes back with ``?since=N`` (the last ``seq`` it saw) first gets the
  ones it missed, of the last :data:`~wslab.reference.feeds.KEEP` kept; a connection whose queue is full
  is closed with 1013 (too slow) rather than silently skipped.
- **Heartbeat:** a client silent for ``Heartbeat.interval`` seconds gets ``{"type": "ping"}``; silent
  ``Heartbeat.timeout`` seconds more, it is taken for dead and closed with 1011. (uvicorn's protocol-level
  ping does this too, every 20 s by default, server-wide; this deadline is the endpoint's own.)
- **Logged:** every close the endpoints decide is logged once, at INFO, with who, the code and why (never
  a token or a notification); a client that leaves on its own, at DEBUG.
- **One process:** feeds and subscribers live in this process's memory.

JSON frames: server → client ``prices``, ``welcome``, ``notification``, ``ping``, ``pong``, ``error``;
client → server ``auth`` (notifications: first, then to renew), ``ack`` (prices), ``ping``, ``pong``. ::

    feed, hub, tokens = PriceFeed(), Notifications(), Tokens(secret)
    app = streaming_app(feed, hub, tokens=tokens, tick_every=1.0)   # /ws/prices and /ws/notifications
    hub.publish("ada", {"text": "your order shipped"})   # from code on the server's event loop
    # a client: connect to /ws/notifications?since=0, send {"type": "auth", "token": tokens.issue("ada")}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from .auth import AUTH_TIMEOUT, CLOSE_POLICY, AuthError, Tokens, authenticate
from .feeds import Frame, LiveNotifications, Notifications, PriceFeed, Subscription
from .manager import CLOSE_TOO_SLOW, who
from .protocol import ProtocolError, loads

__all__ = [
    "CLOSE_SILENT", "Heartbeat", "handle_price_frame", "receive_json", "send_json", "serve_notifications",
    "stream_notifications", "stream_prices", "streaming_app", "until_first_done",
]

CLOSE_SILENT = 1011  # what uvicorn and the websockets library send a peer that missed its pong
CLOSE_TIMEOUT = 1.0  # seconds a close may take before we stop waiting for it

_log = logging.getLogger(__name__)  # each close an endpoint decides (INFO), each client that leaves (DEBUG)


async def until_first_done(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutines`` as tasks of one group until the first of them returns, then cancel the others
    and wait for them: when this returns, none of them is running. An exception raised by one of them
    cancels the others too and propagates (unwrapped, when it is the only one).

    The shape of a handler that receives and sends at once::

        await websocket.accept()
        await until_first_done(read(websocket), write(websocket))   # ends when either ends
    """
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in coroutines]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
    except BaseExceptionGroup as error:
        if len(error.exceptions) == 1:
            raise error.exceptions[0] from None
        raise


@dataclass(frozen=True)
class Heartbeat:
    """How long a client may stay silent. After ``interval`` seconds without a frame from it, the endpoint
    sends ``{"type": "ping"}``; after ``timeout`` seconds more, it closes the connection with 1011. Any
    frame counts as a sign of life; a client answers a ping with ``{"type": "pong"}``."""

    interval: float = 20.0
    timeout: float = 20.0


async def send_json(websocket: WebSocket, frame: Frame) -> bool:
    """Send ``frame`` as a JSON text frame; False if the connection is gone or closing.

    Two tasks may send on one connection: uvicorn writes each frame whole, so frames never interleave."""
    try:
        await websocket.send_text(json.dumps(frame))
    except (WebSocketDisconnect, RuntimeError, OSError):  # the client left, or another task closed it
        return False
    return True


async def _send_within(websocket: WebSocket, frame: Frame, seconds: float | None) -> bool:
    """:func:`send_json`, but a client that has not read for ``seconds`` (its buffers are full, so the send
    waits) is too slow: it is closed with 1013, and the answer is False."""
    try:
        async with asyncio.timeout(seconds):
            return await send_json(websocket, frame)
    except TimeoutError:
        await _close(websocket, CLOSE_TOO_SLOW, f"too slow: it read nothing for {seconds:g} s")
        return False


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Log the decision, then close (``reason`` goes to both: it names no token or notification)."""
    _log.info("%s - closed %d: %s", who(websocket), code, reason)
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(CLOSE_TIMEOUT):  # a peer that stopped reading must not hold us
            await websocket.close(code, reason)


async def receive_json(websocket: WebSocket, heartbeat: Heartbeat | None = None) -> AsyncIterator[Any]:
    """Each frame the client sends, parsed as JSON (a frame that is not JSON, or JSON nested too deeply to
    parse, comes as it is: ``str`` or ``bytes``), until the client leaves or, with a ``heartbeat``, stays
    silent past its deadline; then the connection is closed with :data:`CLOSE_SILENT`.

        async for frame in receive_json(websocket, Heartbeat(interval=5, timeout=5)):
            ...
    """
    pinged = False
    while True:
        wait = None if heartbeat is None else heartbeat.timeout if pinged else heartbeat.interval
        try:
            async with asyncio.timeout(wait):
                message = await websocket.receive()
        except TimeoutError:
            assert heartbeat is not None
            if pinged:
                silent = heartbeat.interval + heartbeat.timeout
                await _close(websocket, CLOSE_SILENT, f"heartbeat: nothing received for {silent:g} s")
                return
            pinged = True  # the ping too must not wait for a client that stopped reading
            if not await _send_within(websocket, {"type": "ping"}, heartbeat.timeout):
                return
            continue
        pinged = False
        if message["type"] == "websocket.disconnect":
            _log.debug("%s - left (%s)", who(websocket), message.get("code", "no close frame"))
            return
        data = message.get("text")
        if data is None:
            yield message.get("bytes") or b""
            continue
        try:
            frame = loads(data)
        except ProtocolError:  # not JSON, or nested too deeply to parse
            frame = data
        yield frame


def _heartbeat_reply(frame: Any, known: str) -> Frame | None:
    """The reply to a frame: a pong to a ping, nothing to a pong, an error (naming ``known``) to the rest."""
    if isinstance(frame, dict) and frame.get("type") == "ping":
        return {"type": "pong"}
    if isinstance(frame, dict) and frame.get("type") == "pong":
        return None
    return {"type": "error", "message": f"expected a JSON object of type {known}, got {_shown(frame)}"}


def _shown(frame: Any) -> str:
    """The start of what the client sent, for an error frame."""
    if isinstance(frame, bytes):
        return "a binary frame"
    try:
        return json.dumps(frame)[:80]
    except RecursionError:  # JSON that Python 3.14 on parses this deep, but cannot write back
        return "JSON nested too deeply"


def handle_price_frame(subscription: Subscription, frame: Any) -> Frame | None:
    """Answer one client frame of ``/ws/prices``: ``ack`` releases the next prices, ``ping`` gets a
    ``pong``, ``pong`` is a sign of life; anything else gets an ``error``. Returns the reply, if any."""
    if isinstance(frame, dict) and frame.get("type") == "ack":
        subscription.ack()
        return None
    return _heartbeat_reply(frame, "ack, ping or pong")


async def stream_prices(websocket: WebSocket, feed: PriceFeed, *, heartbeat: Heartbeat | None = Heartbeat(),
                        window: int = 1,
                        handle: Callable[[Subscription, Any], Frame | None] = handle_price_frame) -> None:
    """Serve ``feed`` on ``websocket`` until the client leaves or goes silent; ``handle`` answers what
    the client sends (:func:`handle_price_frame`, or your own that calls it for what it leaves alone)."""
    patience = None if heartbeat is None else heartbeat.timeout  # for replies to a client that stops reading
    if websocket.application_state == WebSocketState.CONNECTING:  # not accepted yet (auth may have)
        await websocket.accept()
    with feed.subscribe(window) as subscription:

        async def read() -> None:
            async for frame in receive_json(websocket, heartbeat):
                reply = handle(subscription, frame)
                if reply is not None and not await _send_within(websocket, reply, patience):
                    return

        async def write() -> None:
            while True:
                prices = await subscription.next()
                if not await send_json(websocket, prices.frame(subscription.symbols)):
                    return

        await until_first_done(read(), write())


async def stream_notifications(websocket: WebSocket, user: str, hub: LiveNotifications, *,
                               since: int | None = None, heartbeat: Heartbeat | None = Heartbeat(),
                               handle: Callable[[Any], Frame | None] | None = None) -> None:
    """Send ``user`` their notifications on ``websocket`` until the client leaves or goes silent: first
    ``{"type": "welcome", "user": ...}`` (from then on, nothing published misses it), then those after
    ``since`` if the hub keeps them, then live ones. A client whose inbox overflows (it does not read fast
    enough) is closed with 1013. ``handle`` answers what the client sends (default: a ping gets a pong).
    ``user`` must be who the client proved to be: :func:`serve_notifications` takes it from a token."""
    patience = None if heartbeat is None else heartbeat.timeout  # for replies to a client that stops reading
    if websocket.application_state == WebSocketState.CONNECTING:  # not accepted yet (auth may have)
        await websocket.accept()
    with hub.subscribe(user, since) as inbox:
        if not await _send_within(websocket, {"type": "welcome", "user": user}, patience):
            return

        async def read() -> None:
            async for frame in receive_json(websocket, heartbeat):
                reply = _heartbeat_reply(frame, "ping or pong") if handle is None else handle(frame)
                if reply is not None and not await _send_within(websocket, reply, patience):
                    return

        async def write() -> None:
            while True:
                if not await send_json(websocket, await inbox.get()):
                    return

        async def watch() -> None:  # acts at once, even while write() is stuck in a send
            await inbox.wait_overflow()
            await _close(websocket, CLOSE_TOO_SLOW, f"too slow: {inbox.maxsize} notifications were waiting")

        await until_first_done(read(), write(), watch())


async def serve_notifications(websocket: WebSocket, hub: LiveNotifications, tokens: Tokens, *,
                              since: int | None = None, heartbeat: Heartbeat | None = Heartbeat(),
                              auth_timeout: float = AUTH_TIMEOUT) -> None:
    """``/ws/notifications``: whose notifications a connection gets comes from the token in its first
    frame (:func:`~wslab.reference.auth.authenticate`: 1008 and the reason without a valid one), never
    from the URL. Then :func:`stream_notifications` for that user, from ``since`` on, until the client
    leaves or goes silent, or its token expires: then 1008, unless the client sent a fresh ``{"type":
    "auth", "token": ...}`` for the same user before (a token for another user gets an ``error``)."""
    identity = await authenticate(websocket, tokens, timeout=auth_timeout)
    if identity is None:
        return
    loop = asyncio.get_running_loop()

    def renew_or_reply(frame: Any) -> Frame | None:
        if not (isinstance(frame, dict) and frame.get("type") == "auth"):
            return _heartbeat_reply(frame, "auth, ping or pong")
        token = frame.get("token")
        try:
            fresh = tokens.verify(token if isinstance(token, str) else None)
        except AuthError as exc:
            return {"type": "error", "message": f"auth: {exc}"}
        if fresh.user != identity.user:
            return {"type": "error", "message": f"auth: that token is for {fresh.user}, not {identity.user}"}
        websocket.state.identity = fresh
        expiry.reschedule(loop.time() + fresh.expires_in)
        return None

    try:
        async with asyncio.timeout(identity.expires_in) as expiry:
            await stream_notifications(websocket, identity.user, hub, since=since, heartbeat=heartbeat,
                                       handle=renew_or_reply)
    except TimeoutError:
        if not expiry.expired():
            raise
        await _close(websocket, CLOSE_POLICY, "token expired: log in again")


def streaming_app(feed: PriceFeed | None = None, hub: LiveNotifications | None = None, *,
                  tokens: Tokens | None = None, heartbeat: Heartbeat | None = Heartbeat(),
                  tick_every: float | None = None, auth_timeout: float = AUTH_TIMEOUT,
                  handle: Callable[[Subscription, Any], Frame | None] = handle_price_frame) -> FastAPI:
    """``/ws/prices`` serves ``feed`` to anyone; ``/ws/notifications?since=N`` serves each user the
    notifications of ``hub`` (by default a :class:`~wslab.reference.feeds.Notifications`, which keeps the
    last ones for ``since``), the user named by the token in the first frame (:func:`serve_notifications`).
    ``tokens`` verifies them: give the one that issues your users' tokens (default: a random secret). All
    three are kept in ``app.state`` (``feed``, ``notifications``, ``tokens``). With ``tick_every``, the
    feed steps that often while the app runs; without, only when your code calls ``feed.step()``."""
    feed = feed if feed is not None else PriceFeed()
    hub = hub if hub is not None else Notifications()
    tokens = tokens if tokens is not None else Tokens()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = asyncio.create_task(feed.run(tick_every)) if tick_every else None
        try:
            yield
        finally:  # the app's own task ends with the app, as a connection's tasks end with it
            if producer is not None:
                producer.cancel()
                await asyncio.gather(producer, return_exceptions=True)

    app = FastAPI(lifespan=lifespan)
    app.state.feed, app.state.notifications, app.state.tokens = feed, hub, tokens

    @app.websocket("/ws/prices")
    async def prices(websocket: WebSocket) -> None:
        await stream_prices(websocket, feed, heartbeat=heartbeat, handle=handle)

    @app.websocket("/ws/notifications")
    async def notifications(websocket: WebSocket, since: int | None = None) -> None:
        await serve_notifications(websocket, hub, tokens, since=since, heartbeat=heartbeat,
                                  auth_timeout=auth_timeout)

    return app
