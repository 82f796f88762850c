"""Checks for chapter 05, streaming: symbol subscriptions, replaying missed notifications, and a heartbeat.

Exercises 5.1 and 5.2 extend :func:`~wslab.reference.streaming.streaming_app`; the checks move its feed and
publish notifications through ``app.state``, on the server's loop, and log in with tokens from
``app.state.tokens``. Exercise 5.3 is an endpoint of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from websockets.exceptions import ConnectionClosed

from wslab.demos.streaming_scenarios import cancel_app_tasks, server_tasks
from wslab.lab.client import LabClient, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import EVENT, Transcript
from wslab.reference.auth import Tokens
from wslab.reference.feeds import LiveNotifications, PriceFeed

from .aimed import Aim, Missed, expect_or
from .result import CheckResult, Mismatch, expect, run_check

__all__ = ["ANSWER_WITHIN", "PING_AFTER", "PONG_WITHIN", "check_heartbeat", "check_since", "check_symbols"]

PING_AFTER = 0.5  # exercise 5.3: seconds of silence before the endpoint pings
PONG_WITHIN = 0.5  # exercise 5.3: seconds the client then has to answer
SLACK = 0.1  # what a timer may fire early by, as the client measures it
PATIENCE = 2.0  # seconds to wait for a frame that should come
ANSWER_WITHIN = 0.25  # exercise 5.3: seconds a ping may wait for its pong (a loop on a sleep is slower)


def _state(server: LabServer, name: str, kind: type[Any]) -> Any:
    app = server.sessions.app
    value = getattr(getattr(app, "state", None), name, None)
    if not isinstance(value, kind):
        raise Mismatch(f"the app should keep its {kind.__name__} in app.state.{name}: make it with "
                       "streaming_app(...)", kind.__name__, value)
    return value


async def _frame(client: LabClient, step: str) -> Any:
    try:
        frame = await client.recv_json(PATIENCE)
    except TimeoutError:
        raise Mismatch(step, "a frame", f"nothing within {PATIENCE:g} s") from None
    except ConnectionClosed:
        raise Mismatch(step, "a frame", f"the connection closed ({client.close_code})") from None
    except ValueError as exc:  # text that is not JSON, such as the tutorial's "ping"
        expected = 'a JSON object such as {"type": "ping"}'
        raise Mismatch(step, expected, f"text that is not JSON ({exc})") from None
    if not isinstance(frame, dict):
        raise Mismatch(step, "a JSON object", frame)
    return frame


# -- exercise 5.1 ---------------------------------------------------------------------------------------
async def _next_prices(server: LabServer, feed: PriceFeed, client: LabClient, step: str) -> list[str]:
    """Acknowledge the last prices, move the feed, and return the symbols of the prices that come."""
    await client.send({"type": "ack"})

    async def move() -> None:
        feed.step()

    await server.acall(move())
    frame = await _frame(client, step)
    if frame.get("type") != "prices":
        raise Mismatch(step, "a prices frame", frame)
    return sorted(frame.get("prices", {}))


def check_symbols(app: Any) -> CheckResult:
    """Exercise 5.1: ``{"type": "subscribe", "symbols": [...]}`` narrows this connection's prices to those
    symbols and ``{"type": "unsubscribe", ...}`` removes some, each answered with
    ``{"type": "subscribed", "symbols": [sorted]}``; an unknown symbol gets an ``error`` and changes
    nothing; acks and pings work as before; other connections are not affected."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        feed = _state(server, "feed", PriceFeed)
        everything = sorted(feed.symbols)
        async with connect(server, "/ws/prices", name="ada", transcript=transcript) as ada, \
                connect(server, "/ws/prices", name="bo", transcript=transcript) as bo:
            for client in (ada, bo):
                await _frame(client, "a new client should get the current prices first")
            steps: list[tuple[dict[str, Any], dict[str, Any], list[str], str]] = [
                ({"type": "subscribe", "symbols": ["ACME"]}, {"type": "subscribed", "symbols": ["ACME"]},
                 ["ACME"], "after subscribing to ACME, prices should hold ACME only"),
                ({"type": "subscribe", "symbols": ["GLOBEX", "ACME"]},
                 {"type": "subscribed", "symbols": ["ACME", "GLOBEX"]},
                 ["ACME", "GLOBEX"], "subscribing to GLOBEX and ACME should give exactly those two"),
                ({"type": "unsubscribe", "symbols": ["ACME"]}, {"type": "subscribed", "symbols": ["GLOBEX"]},
                 ["GLOBEX"], "after unsubscribing from ACME, only GLOBEX should be left"),
            ]
            for sent, reply, symbols, step in steps:
                await ada.send(sent)
                expect(await _frame(ada, f"the answer to {json.dumps(sent)}"), reply,
                       f"{json.dumps(sent)} should be answered with {json.dumps(reply)}")
                expect(await _next_prices(server, feed, ada, step), symbols, step)
                if symbols == ["ACME"]:  # each connection has its own symbols
                    expect(await _next_prices(server, feed, bo, "bo's next prices"), everything,
                           "bo never subscribed: he should still get every symbol")
            await ada.send({"type": "subscribe", "symbols": ["NOPE"]})
            error = await _frame(ada, "an unknown symbol should get an error frame")
            if error.get("type") != "error" or not str(error.get("message", "")).strip():
                raise Mismatch("subscribing to an unknown symbol should get an error frame",
                               {"type": "error", "message": "unknown symbol: NOPE"}, error)
            expect(await _next_prices(server, feed, ada, "after the error, ada should still get GLOBEX"),
                   ["GLOBEX"], "an unknown symbol should change nothing")
            await ada.send({"type": "ping"})
            expect(await _frame(ada, "a ping"), {"type": "pong"}, "a ping should still get a pong")

    return run_check(
        "Exercise 5.1 (symbols)", app, scenario,
        passed="each connection gets the symbols it asked for, and nothing else changed.",
        hint="in handle(subscription, frame): for a dict whose type is subscribe or unsubscribe, check every "
             "symbol is in subscription.feed.symbols (else return an error frame), set subscription.symbols, "
             "and return {'type': 'subscribed', 'symbols': sorted(subscription.symbols)}; pass every other "
             "frame to handle_price_frame(subscription, frame).",
    )


# -- exercise 5.2 ---------------------------------------------------------------------------------------
async def _publish(server: LabServer, hub: LiveNotifications, user: str, count: int) -> None:
    async def publish() -> None:
        for _ in range(count):
            hub.publish(user, {"text": f"for {user}"})

    await server.acall(publish())


async def _seqs(client: LabClient, count: int, expected: list[int], step: str) -> None:
    got = [(await _frame(client, step)).get("seq") for _ in range(count)]
    expect(got, expected, step)


def check_since(app: Any) -> CheckResult:
    """Exercise 5.2: ``/ws/notifications?since=N`` (the user from the token in the first frame) first sends
    the user's kept notifications with ``seq`` above N, oldest first (the last 20 per user are kept), then
    live ones; without ``since``, live ones only."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        hub = _state(server, "notifications", LiveNotifications)
        tokens = _state(server, "tokens", Tokens)

        @contextlib.asynccontextmanager
        async def log_in(user: str, query: str = "") -> AsyncIterator[LabClient]:
            path = f"/ws/notifications{query}"
            async with connect(server, path, name=user, transcript=transcript) as client:
                await client.send({"type": "auth", "token": tokens.issue(user)})
                expect(await _frame(client, f"{user} logs in"), {"type": "welcome", "user": user},
                       f"{user} logs in: the endpoint welcomes her or him first")
                yield client

        await _publish(server, hub, "ada", 3)
        async with log_in("ada", "?since=1") as ada:
            await _seqs(ada, 2, [2, 3], "with since=1, ada should first get the notifications she missed: "
                                        "seq 2 and 3")
            await _publish(server, hub, "ada", 1)
            await _seqs(ada, 1, [4], "then live ones, without repeats")
        await _publish(server, hub, "ada", 3)
        async with log_in("ada", "?since=7") as ada:
            await _publish(server, hub, "ada", 1)
            await _seqs(ada, 1, [8], "with since=7 nothing was missed: the first notification should be the "
                                     "live one, seq 8")
        await _publish(server, hub, "bo", 2)
        async with log_in("bo") as bo:
            await _publish(server, hub, "bo", 1)
            await _seqs(bo, 1, [3], "without since, a client gets live notifications only")
        await _publish(server, hub, "cy", 25)
        async with log_in("cy", "?since=0") as cy:
            await _seqs(cy, 20, list(range(6, 26)), "only the last 20 notifications are kept: since=0 should "
                                                     "replay seq 6 to 25")
            await _publish(server, hub, "cy", 1)
            await _seqs(cy, 1, [26], "then the live ones")
        async with log_in("bo", "?since=0") as bo:
            await _seqs(bo, 3, [1, 2, 3], "each user has a history of their own: bo with since=0 should get "
                                          "his own three notifications, seq 1 to 3")
            await _publish(server, hub, "bo", 1)
            await _seqs(bo, 1, [4], "then the live ones")

    return run_check(
        "Exercise 5.2 (since)", app, scenario,
        passed="a client that comes back gets what it missed, in order, once.",
        hint="in publish(): frame = super().publish(user, notification), then append it to "
             "self.history[user], a deque(maxlen=20); in subscribe(): inbox = super().subscribe(user, "
             "since), then if since is not None, inbox.put_frame(frame) for each kept frame of seq > since.",
    )


# -- exercise 5.3 ---------------------------------------------------------------------------------------
HEARTBEAT_START = ("not done yet? Start where the loop waits for the client's next message: that wait is "
                   "what must not last for ever. Section 6 and the exercise name the tool to bound it.")
LEAK_HINT = ("a task started for a connection must end with it: prefer no task at all (bound the receive "
             "itself with a timeout), or cancel the task in a finally when the handler returns.")


async def _ping_after_silence(client: LabClient, since: float) -> None:
    step = f"after {PING_AFTER:g} s of silence the server should send a ping"
    hint = ("when the wait for the next message times out, send {'type': 'ping'} and wait again, this time "
            "for PONG_WITHIN seconds.")
    try:
        frame = await _frame(client, step)
    except Missed:
        raise
    except Mismatch as missed:
        wanted = missed.expected if "JSON" in str(missed.expected) else {"type": "ping"}
        raise Missed(step, wanted, missed.got, hint) from None
    expect_or(frame, {"type": "ping"}, step, hint)
    silent = time.monotonic() - since
    if silent < PING_AFTER - SLACK:
        raise Missed(f"a ping should come only after {PING_AFTER:g} s without a frame from the client",
                     f"a ping after {PING_AFTER:g} s", f"a ping after {silent:.1f} s",
                     "the clock is the client's silence: start it again at every frame the client sends, "
                     "and ping only when it reaches PING_AFTER.")


async def _pong(client: LabClient, step: str) -> None:
    """Send a ping; the pong must come at once (not at the next tick of a sleeping loop)."""
    await client.send({"type": "ping"})
    sent = time.monotonic()
    hint = ("every frame the client sends shows it is alive, whether or not the server has just pinged: "
            "handle it as usual (a ping gets its pong) and start the clock again.")
    try:
        frame = await _frame(client, step)
    except Mismatch as missed:
        wanted = missed.expected if "JSON" in str(missed.expected) else {"type": "pong"}
        raise Missed(step, wanted, missed.got, hint) from None
    expect_or(frame, {"type": "pong"}, step, hint)
    waited = time.monotonic() - sent
    if waited > ANSWER_WITHIN:
        raise Missed(f"{step}: a ping should be answered at once", f"a pong within {ANSWER_WITHIN:g} s",
                     f"a pong after {waited:.2f} s",
                     "does the loop sleep and then look whether a message came? Wait on the receive itself, "
                     "bounded by a timeout, so that a frame is handled the moment it arrives.")


async def _left_behind(server: LabServer, visits: int) -> None:
    """Once every handler has returned, no task the app started may still run; cancel any that do."""
    if not await asyncio.to_thread(server.wait_idle, PATIENCE):
        raise Missed(f"after {visits} visits every client had left, but a handler was still running",
                     "every handler returned", f"{server.sessions.active} still running",
                     "return from the handler once the connection is closed (after a disconnect, and right "
                     "after closing it yourself with 1011).")
    tasks = await asyncio.to_thread(server_tasks, server)
    if tasks:
        await asyncio.to_thread(cancel_app_tasks, server)  # so that the server can stop cleanly
        left = ", ".join(f"{name} ×{count}" for name, count in tasks.items())
        raise Missed(f"after {visits} visits and every client gone, tasks your code started were still "
                     f"running ({sum(tasks.values())}): {left}",
                     "no task left once the connections have closed", tasks, LEAK_HINT)


def check_heartbeat(app: Any) -> CheckResult:
    """Exercise 5.3: ``/ws/alive`` sends ``{"type": "ping"}`` after 0.5 s without a frame from the client
    and closes with 1011 if nothing comes within 0.5 s more; any frame resets the clock; it answers
    ``{"type": "ping"}`` with ``{"type": "pong"}``.

    Five clients visit: ada answers every ping, dee answers a ping with a ping of her own (any frame is an
    answer), bo talks every 0.1 s, cy stays silent, eve's connection drops without a close frame. Then no
    handler and no task the app started may still be running. Refused, among others:

    - a watchdog task per connection that is never cancelled (a leak, even when it never raises);
    - a loop that sleeps and then looks whether a frame came (frames wait for their answer);
    - only a ``pong`` counts as an answer to a ping (a message or the client's own ping is dropped);
    - pinging on a fixed schedule whatever the traffic; pinging too early; never pinging;
    - closing without a ping, too early, with 1000, or never.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/ws/alive", name="ada", transcript=transcript) as ada:
            since = time.monotonic()
            for _ in range(2):  # she answers every ping: she stays
                await _ping_after_silence(ada, since)
                await ada.send({"type": "pong"})
                since = time.monotonic()
            await _pong(ada, "a client's ping should get a pong")
        async with connect(server, "/ws/alive", name="dee", transcript=transcript) as dee:
            await _ping_after_silence(dee, time.monotonic())
            await _pong(dee, "dee answers the server's ping with a ping of her own: any frame is an answer, "
                             "and her ping should get its pong")
            await _ping_after_silence(dee, time.monotonic())  # still open, and the clock started again
        async with connect(server, "/ws/alive", name="bo", transcript=transcript) as bo:
            for _ in range(8):  # he talks every 0.1 s: never silent long enough to be pinged
                await _pong(bo, "a client that sends a frame every 0.1 s is alive: answer it, never ping it")
                await asyncio.sleep(PING_AFTER / 5)
        async with connect(server, "/ws/alive", name="cy", transcript=transcript) as cy:
            await _ping_after_silence(cy, time.monotonic())
            pinged = time.monotonic()
            code: int | str | None
            try:
                code = await cy.wait_closed(PONG_WITHIN + PATIENCE)
            except TimeoutError:
                code = f"still open {PONG_WITHIN + PATIENCE:g} s after the ping"
            expect_or(code, 1011, "a client that does not answer the ping should be closed with 1011",
                      "when the second wait (PONG_WITHIN) times out too, close with code 1011 and return: "
                      "1011 tells the client the connection was given up, not that all is well.")
            waited = time.monotonic() - pinged
            if waited < PONG_WITHIN - SLACK:
                raise Missed(f"the client should get {PONG_WITHIN:g} s to answer the ping",
                             f"closed {PONG_WITHIN:g} s after the ping", f"closed after {waited:.1f} s",
                             "after the ping, wait PONG_WITHIN seconds for any frame before closing.")
        eve = await connect(server, "/ws/alive", name="eve", transcript=transcript)
        try:
            await _pong(eve, "a client's ping should get a pong")
        finally:
            eve.connection.transport.abort()  # her network goes: no close frame
            transcript.add("eve", EVENT, "her connection drops (no close frame)")
            await eve.connection.wait_closed()
        await _left_behind(server, 5)

    aim = Aim()
    return aim.apply(run_check(
        "Exercise 5.3 (heartbeat)", app, aim.watch(scenario),
        passed="silent clients are pinged, and closed if they stay silent; talkative ones are left alone; "
               "nothing outlives its connection.",
        hint=HEARTBEAT_START,
    ))
