"""Checks for chapter 05, streaming: symbol subscriptions, replaying missed notifications, and a heartbeat.

Exercises 5.1 and 5.2 extend :func:`~wslab.reference.streaming.streaming_app`; the checks move its feed and
publish notifications through ``app.state``, on the server's loop, and log in with tokens from
``app.state.tokens``. Exercise 5.3 is an endpoint of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.exceptions import ConnectionClosed

from wslab.demos.streaming_scenarios import cancel_app_tasks, catch_up, server_tasks
from wslab.lab.client import LabClient, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import EVENT, Transcript
from wslab.reference.auth import Tokens
from wslab.reference.feeds import LiveNotifications, PriceFeed

from .result import CheckResult, Mismatch, expect, run_check

__all__ = ["ANSWER_WITHIN", "PING_AFTER", "PONG_WITHIN", "check_heartbeat", "check_since", "check_symbols"]

PING_AFTER = 0.5  # exercise 5.3: seconds of silence before the endpoint pings
PONG_WITHIN = 0.5  # exercise 5.3: seconds the client then has to answer
SLACK = 0.1  # what a timer may fire early by, as the client measures it
PATIENCE = 2.0  # seconds to wait for a frame that should come
ANSWER_WITHIN = 0.3  # exercise 5.3: seconds bo's pings may wait for their pongs, as a median (a sleeping loop
#                     makes most of them wait longer)


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
SYMBOLS_START = ("start in handle_symbols: look at the frame's type first; the exercise says "
                 "what each kind of frame asks for and what it is answered with.")
OWN_SYMBOLS_HINT = ("each connection has its own Subscription: change only this connection's "
                    "subscription.symbols, with a set of its own, never one that other connections share.")


async def _next_prices(server: LabServer, feed: PriceFeed, clients: dict[str, LabClient],
                       step: str) -> dict[str, list[str]]:
    """Acknowledge the last prices on every client, move the feed, and return the symbols of the prices
    each client gets next."""
    for client in clients.values():
        await client.send({"type": "ack"})

    async def move() -> None:
        feed.step()

    await server.acall(move())
    got: dict[str, list[str]] = {}
    for name, client in clients.items():
        frame = await _frame(client, f"{step} ({name}'s next prices)")
        if frame.get("type") != "prices":
            raise Mismatch(f"{step}: {name} should get the next prices", "a prices frame", frame,
                           "every frame that is not subscribe or unsubscribe (acks, pings) must still reach "
                           "handle_price_frame(subscription, frame), as before.")
        got[name] = sorted(frame.get("prices", {}))
    return got


async def _subscribed(client: LabClient, sent: dict[str, Any], symbols: list[str]) -> None:
    """Send ``sent``; the answer must be a subscribed frame listing ``symbols``, sorted (more fields are
    fine)."""
    await client.send(sent)
    reply = await _frame(client, f"the answer to {json.dumps(sent)}")
    wanted = {"type": "subscribed", "symbols": symbols}
    if reply.get("type") != "subscribed" or reply.get("symbols") != symbols:
        unsorted = reply.get("type") == "subscribed" and isinstance(reply.get("symbols"), list) \
            and sorted(map(str, reply["symbols"])) == symbols
        raise Mismatch(f"{json.dumps(sent)} should be answered with {json.dumps(wanted)}", wanted, reply,
                       "a set has no order: answer with the symbols sorted." if unsorted else
                       "subscribe replaces this connection's symbols with the ones asked for; unsubscribe "
                       "removes the ones asked for from those it has. Answer with what it then has.")


async def _refused(client: LabClient, sent: Any, why: str) -> None:
    await client.send(sent)
    step = f"{why}: {json.dumps(sent)} should get an error frame and change nothing"
    reply = await _frame(client, step)
    if reply.get("type") != "error" or not str(reply.get("message", "")).strip():
        raise Mismatch(step, {"type": "error", "message": "..."}, reply,
                       "check the whole request before changing anything: symbols must be a list, and every "
                       "symbol in it one of subscription.feed.symbols (for unsubscribe too); otherwise "
                       "return an error frame.")


def check_symbols(app: Any) -> CheckResult:
    """Exercise 5.1: ``{"type": "subscribe", "symbols": [...]}`` narrows this connection's prices to those
    symbols and ``{"type": "unsubscribe", ...}`` removes some, each answered with
    ``{"type": "subscribed", "symbols": [sorted]}`` (more fields are fine); an unknown symbol, or a request
    without a list of symbols, gets an ``error`` and changes nothing; acks and pings work as before.

    ada and bo subscribe to different symbols while cy never does. Refused, among others:

    - one set of symbols shared by every connection (bo's subscription changes ada's prices, or cy's);
    - replying ``subscribed`` without filtering; forgetting to pass acks on to ``handle_price_frame``;
    - an unknown symbol accepted, dropped or ignored (on unsubscribe too), or applied partly;
    - a request without ``symbols`` (or not a list) crashing the connection; an unsorted reply.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        feed = _state(server, "feed", PriceFeed)
        everything = sorted(feed.symbols)
        async with connect(server, "/ws/prices", name="ada", transcript=transcript) as ada, \
                connect(server, "/ws/prices", name="bo", transcript=transcript) as bo, \
                connect(server, "/ws/prices", name="cy", transcript=transcript) as cy:
            clients = {"ada": ada, "bo": bo, "cy": cy}
            for client in clients.values():
                await _frame(client, "a new client should get the current prices first")
            await _subscribed(ada, {"type": "subscribe", "symbols": ["ACME"]}, ["ACME"])
            got = await _next_prices(server, feed, clients, "after ada subscribed to ACME")
            expect(got["ada"], ["ACME"], "after subscribing to ACME, ada's prices should hold ACME only",
                   "after subscribe, set subscription.symbols to the symbols asked for: the prices "
                   "the feed sends this connection are filtered by it.")
            expect(got["bo"], everything, "bo never subscribed: he should still get every symbol",
                   OWN_SYMBOLS_HINT)
            await _subscribed(bo, {"type": "subscribe", "symbols": ["INITECH", "GLOBEX"]},
                              ["GLOBEX", "INITECH"])
            got = await _next_prices(server, feed, clients, "after bo subscribed to INITECH and GLOBEX")
            expected = {"ada": ["ACME"], "bo": ["GLOBEX", "INITECH"], "cy": everything}
            for name, symbols in expected.items():
                expect(got[name], symbols, "each connection has its own symbols: after bo's "
                       f"subscription, {name}'s prices should hold {', '.join(symbols)}", OWN_SYMBOLS_HINT)
            await _subscribed(ada, {"type": "subscribe", "symbols": ["GLOBEX", "ACME"]}, ["ACME", "GLOBEX"])
            await _subscribed(ada, {"type": "unsubscribe", "symbols": ["ACME"]}, ["GLOBEX"])
            await _refused(ada, {"type": "subscribe", "symbols": ["NOPE"]}, "an unknown symbol")
            await _refused(ada, {"type": "subscribe", "symbols": ["ACME", "NOPE"]}, "an unknown symbol")
            await _refused(ada, {"type": "unsubscribe", "symbols": ["GLOBEX", "NOPE"]}, "an unknown symbol")
            for refused in ("unknown symbols", "requests without a list of symbols"):
                if refused != "unknown symbols":
                    await _refused(ada, {"type": "subscribe"}, "no symbols")
                    await _refused(ada, {"type": "unsubscribe", "symbols": 7}, "symbols that are not a list")
                got = await _next_prices(server, feed, clients, f"after the {refused}")
                expected = {"ada": ["GLOBEX"], "bo": ["GLOBEX", "INITECH"], "cy": everything}
                for name, symbols in expected.items():
                    expect(got[name], symbols, f"a refused request should change nothing: after the "
                           f"{refused}, {name}'s prices should still hold {', '.join(symbols)}",
                           "check every symbol before you change subscription.symbols: a request with "
                           "one bad symbol changes nothing at all.")
            await ada.send({"type": "ping"})
            expect(await _frame(ada, "a ping"), {"type": "pong"}, "a ping should still get a pong",
                   "pass every frame that is not subscribe or unsubscribe to handle_price_frame.")

    return run_check(
        "Exercise 5.1 (symbols)", app, scenario,
        passed="each connection gets the symbols it asked for, and nothing else changed.",
        hint=SYMBOLS_START,
    )


# -- exercise 5.2 ---------------------------------------------------------------------------------------
async def _publish(server: LabServer, hub: LiveNotifications, user: str, count: int) -> None:
    async def publish() -> None:
        for _ in range(count):
            hub.publish(user, {"text": f"for {user}"})

    await server.acall(publish())


async def _seqs(client: LabClient, count: int, expected: list[int], step: str,
                hint: str | Callable[[list[Any]], str]) -> None:
    got: list[Any] = []
    for _ in range(count):
        try:
            got.append((await _frame(client, step)).get("seq"))
        except Mismatch as missed:
            got.append(missed.got)
            break
    if got != expected:
        raise Mismatch(step, expected, got, hint(got) if callable(hint) else hint)


SINCE_START = ("start in publish(): the frame it returns is what a client that is away would "
               "miss, so keep it where subscribe() can find it again; then let subscribe() queue what this "
               "client has not seen.")
REPLAY_HINT = ("since=N means the client has seen everything up to seq N: replay the kept frames with a "
               "larger seq, oldest first, into the inbox super().subscribe() returned; the live ones follow.")


def _last_20(got: list[Any]) -> str:
    if got and not isinstance(got[0], int):  # nothing came at all
        return ("since=0 is a request too (the client has seen nothing): test since against None, not for "
                "being true.")
    return "keep only each user's last 20 notifications: older ones are dropped as new ones come."


def check_since(app: Any) -> CheckResult:
    """Exercise 5.2: ``/ws/notifications?since=N`` (the user from the token in the first frame) first sends
    the user's kept notifications with ``seq`` above N, oldest first (the last 20 per user are kept), then
    live ones; without ``since``, live ones only.

    Refused, among others: replaying everything kept, or from N rather than after it; replaying to a client
    without ``since``, or not at all for ``since=0``; a replay that repeats what the hub already queued; a
    replay sent to every open connection of the user instead of the one that asked (ada's phone and her
    laptop); keeping everything; one history for every user."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        hub = _state(server, "notifications", LiveNotifications)
        tokens = _state(server, "tokens", Tokens)

        @contextlib.asynccontextmanager
        async def log_in(user: str, query: str = "", name: str | None = None) -> AsyncIterator[LabClient]:
            path = f"/ws/notifications{query}"
            async with connect(server, path, name=name or user, transcript=transcript) as client:
                await client.send({"type": "auth", "token": tokens.issue(user)})
                expect(await _frame(client, f"{user} logs in"), {"type": "welcome", "user": user},
                       f"{user} logs in: the endpoint welcomes her or him first")
                yield client

        await _publish(server, hub, "ada", 3)
        async with log_in("ada", "?since=1") as ada:
            await _seqs(ada, 2, [2, 3], "with since=1, ada should first get the notifications she missed: "
                                        "seq 2 and 3", REPLAY_HINT)
            await _publish(server, hub, "ada", 1)
            await _seqs(ada, 1, [4], "then live ones, without repeats",
                        "each frame once: replay only what the hub does not queue already (LiveNotifications "
                        "replays nothing by itself; the reference Notifications does), and each kept frame "
                        "once.")
        await _publish(server, hub, "ada", 3)
        async with log_in("ada", "?since=7") as ada:
            await _publish(server, hub, "ada", 1)
            await _seqs(ada, 1, [8], "with since=7 nothing was missed: the first notification should be the "
                                     "live one, seq 8", REPLAY_HINT)
        await _publish(server, hub, "bo", 2)
        async with log_in("bo") as bo:
            await _publish(server, hub, "bo", 1)
            await _seqs(bo, 1, [3], "without since, a client gets live notifications only",
                        "since is None for a new client: replay nothing then.")
        async with log_in("ada", name="ada's phone") as phone, \
                log_in("ada", "?since=7", name="ada's laptop") as laptop:
            await _seqs(laptop, 1, [8], "ada's laptop comes back with since=7: it should get seq 8",
                        REPLAY_HINT)
            await _publish(server, hub, "ada", 1)
            await _seqs(phone, 1, [9], "ada's phone was online all along: it should get the live "
                                       "notification seq 9 only, not the laptop's replay",
                        "a replay belongs to the connection that asked for it: queue it in the inbox "
                        "super().subscribe() just returned, not in every inbox of the user.")
        await _publish(server, hub, "cy", 25)
        async with log_in("cy", "?since=0") as cy:
            await _seqs(cy, 20, list(range(6, 26)), "only the last 20 notifications are kept: since=0 should "
                                                     "replay seq 6 to 25", _last_20)
            await _publish(server, hub, "cy", 1)
            await _seqs(cy, 1, [26], "then the live ones", REPLAY_HINT)
        async with log_in("bo", "?since=0") as bo:
            await _seqs(bo, 3, [1, 2, 3], "each user has a history of their own: bo with since=0 should get "
                                          "his own three notifications, seq 1 to 3",
                        "keep a history per user (self.history[user]), and replay only the user's own.")
            await _publish(server, hub, "bo", 1)
            await _seqs(bo, 1, [4], "then the live ones", REPLAY_HINT)

    return run_check(
        "Exercise 5.2 (since)", app, scenario,
        passed="a client that comes back gets what it missed, in order, once, and only that client.",
        hint=SINCE_START,
    )


# -- exercise 5.3 ---------------------------------------------------------------------------------------
HEARTBEAT_START = ("start where the loop waits for the client's next message: that wait is "
                   "what must not last for ever. Section 6 and the exercise name the tool to bound it.")
LEAK_HINT = ("a task started for a connection must end with it: prefer no task at all (bound the receive "
             "itself with a timeout), or cancel the task in a finally when the handler returns.")


async def _ping_after_silence(client: LabClient, since: float | None) -> None:
    """The next frame must be a ping; with ``since`` (when the client last sent a frame), not too early. (From
    a connection's start the client cannot tell when the server's clock started: no timing then.)"""
    step = f"after {PING_AFTER:g} s of silence the server should send a ping"
    hint = ("when the wait for the next message times out, send {'type': 'ping'} and wait again, this time "
            "for PONG_WITHIN seconds.")
    try:
        frame = await _frame(client, step)
    except Mismatch as missed:
        if missed.hint:
            raise
        wanted = missed.expected if "JSON" in str(missed.expected) else {"type": "ping"}
        raise Mismatch(step, wanted, missed.got, hint) from None
    expect(frame, {"type": "ping"}, step, hint)
    silent = 0.0 if since is None else time.monotonic() - since
    if since is not None and silent < PING_AFTER - SLACK:
        raise Mismatch(f"a ping should come only after {PING_AFTER:g} s without a frame from the client",
                       f"a ping after {PING_AFTER:g} s", f"a ping after {silent:.1f} s",
                       "the clock is the client's silence: start it again at every frame the client sends, "
                       "and ping only when it reaches PING_AFTER.")


async def _pong(client: LabClient, step: str) -> tuple[float, float]:
    """Send a ping; a pong must come. Returns when the ping was sent and how long its pong took."""
    sent = time.monotonic()
    await client.send({"type": "ping"})
    hint = ("every frame the client sends shows it is alive, whether or not the server has just pinged: "
            "handle it as usual (a ping gets its pong) and start the clock again.")
    try:
        frame = await _frame(client, step)
    except Mismatch as missed:
        wanted = missed.expected if "JSON" in str(missed.expected) else {"type": "pong"}
        raise Mismatch(step, wanted, missed.got, hint) from None
    expect(frame, {"type": "pong"}, step, hint)
    return sent, time.monotonic() - sent


def _answered_at_once(waits: list[float], step: str) -> None:
    """The pongs must come at once, not at the next tick of a sleeping loop. Judged by the middle wait: a
    loop that sleeps makes most of them wait, while a busy machine only delays a few."""
    middle = statistics.median(waits)
    if middle > ANSWER_WITHIN:
        shown = ", ".join(f"{wait:.2f}" for wait in waits)
        raise Mismatch(f"{step}: a ping should be answered at once",
                       f"pongs within {ANSWER_WITHIN:g} s", f"pongs after {middle:.2f} s in the middle "
                       f"(each: {shown} s)",
                       "does the loop sleep and then look whether a message came? Wait on the receive "
                       "itself, bounded by a timeout, so that a frame is handled the moment it arrives.")


async def _left_behind(server: LabServer, visits: int) -> None:
    """Once every handler has returned, no task the app started may still run; cancel any that do."""
    if not await asyncio.to_thread(server.wait_idle, PATIENCE):
        raise Mismatch(f"after {visits} visits every client had left, but a handler was still running",
                       "every handler returned", f"{server.sessions.active} still running",
                       "return from the handler once the connection is closed (after a disconnect, and right "
                       "after closing it yourself with 1011).")
    tasks = await asyncio.to_thread(server_tasks, server)
    if tasks:  # a task cancelled as the handler returned ends at the loop's next turns: give it those
        await catch_up(server)
        tasks = await asyncio.to_thread(server_tasks, server)
    if tasks:
        await asyncio.to_thread(cancel_app_tasks, server)  # so that the server can stop cleanly
        left = ", ".join(f"{name} ×{count}" for name, count in tasks.items())
        raise Mismatch(f"after {visits} visits and every client gone, tasks your code started were still "
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
            since: float | None = None
            for _ in range(2):  # she answers every ping: she stays
                await _ping_after_silence(ada, since)
                since = time.monotonic()  # before sending: the server's clock cannot start earlier
                await ada.send({"type": "pong"})
            await _pong(ada, "a client's ping should get a pong")
        async with connect(server, "/ws/alive", name="dee", transcript=transcript) as dee:
            await _ping_after_silence(dee, None)
            spoke, _ = await _pong(dee, "dee answers the server's ping with a ping of her own: any frame is "
                                        "an answer, and her ping should get its pong")
            await _ping_after_silence(dee, spoke)  # still open, and the clock started again
        async with connect(server, "/ws/alive", name="bo", transcript=transcript) as bo:
            talks = "a client that sends a frame every 0.1 s is alive: answer it, never ping it"
            waits: list[float] = []
            for _ in range(8):  # he talks every 0.1 s: never silent long enough to be pinged
                waits.append((await _pong(bo, talks))[1])
                if sum(wait > ANSWER_WITHIN for wait in waits) > 4:
                    break  # more than half of the 8 are late: the verdict cannot change
                await asyncio.sleep(PING_AFTER / 5)
            _answered_at_once(waits, "bo pings every 0.1 s")
        async with connect(server, "/ws/alive", name="cy", transcript=transcript) as cy:
            session = server.sessions.for_client_port(cy.connection.local_address[1])
            await _ping_after_silence(cy, None)
            pinged = time.monotonic()
            code: int | str | None
            try:
                code = await cy.wait_closed(PONG_WITHIN + PATIENCE)
            except TimeoutError:
                code = f"still open {PONG_WITHIN + PATIENCE:g} s after the ping"
            expect(code, 1011, "a client that does not answer the ping should be closed with 1011",
                   "when the second wait (PONG_WITHIN) times out too, close with code 1011 and return: "
                   "1011 tells the client the connection was given up, not that all is well.")
            waited = time.monotonic() - pinged  # from when cy read the ping, unless the server's times say
            if session is not None and session.closed_at is not None and session.first_sent is not None:
                waited = session.closed_at - session.first_sent  # (a busy client reads the ping late; the
                # ping is the first frame cy got, and an answer may send another just before closing)
            if waited < PONG_WITHIN - 2 * SLACK:
                raise Mismatch(f"the client should get {PONG_WITHIN:g} s to answer the ping",
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

    return run_check(
        "Exercise 5.3 (heartbeat)", app, scenario,
        passed="silent clients are pinged, and closed if they stay silent; talkative ones are left alone; "
               "nothing outlives its connection.",
        hint=HEARTBEAT_START,
    )
