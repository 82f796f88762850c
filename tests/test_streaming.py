"""The streaming endpoints on a real server. No task outlives its connection: counted on the server's loop
after 500 connections to each endpoint, against the tutorial's endpoint that leaks one task per connection. A
slow price reader holds nobody up and reads the latest prices when it resumes. A silent peer is pinged, then
closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from apps import service_lines
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

import wslab
from wslab import LabClient, LabServer, Transcript
from wslab.demos import streaming_scenarios as live
from wslab.demos.naive import naive_notifications_app, naive_prices_app
from wslab.reference.auth import Tokens
from wslab.reference.feeds import Notifications, PriceFeed
from wslab.reference.streaming import Heartbeat, streaming_app, until_first_done

ENDPOINTS = ["/ws/prices", "/ws/notifications"]
NOTIFICATIONS = "/ws/notifications"
TOKENS = Tokens()  # what the streaming apps here verify tokens with


def hardened(feed: PriceFeed | None = None, hub: Notifications | None = None, **options: Any) -> FastAPI:
    """:func:`streaming_app` whose notifications take tokens from ``TOKENS``."""
    return streaming_app(feed, hub, tokens=TOKENS, **options)


def auth(user: str, **claims: Any) -> dict[str, str]:
    return {"type": "auth", "token": TOKENS.issue(user, **claims)}


def token_for(path: str, user: str = "ada") -> str | None:
    """What a client of ``path`` logs in with: a token on the notifications endpoint, nothing on prices."""
    return TOKENS.issue(user) if path.startswith(NOTIFICATIONS) else None


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[LabServer]:
    """``app`` served; on a clean exit every handler has ended, no task is left and nothing was logged as an
    ERROR."""
    with wslab.serve(app, name="t-streaming") as server:
        yield server
        assert server.wait_idle(5.0)
        assert live.server_tasks(server) == {}
    assert server.log.lines("ERROR") == []


@contextlib.contextmanager
def serving_naive(app: FastAPI) -> Iterator[LabServer]:
    """The tutorial's app served; what it leaked is cancelled before the server stops."""
    with wslab.serve(app, name="t-streaming-naive") as server:
        try:
            yield server
        finally:
            live.cancel_app_tasks(server)


def quiet(server: LabServer, path: str, **options: Any) -> wslab.LabClient:
    return wslab.connect(server, path, transcript=Transcript(live=False), **options)


@contextlib.asynccontextmanager
async def client_of(server: LabServer, path: str, user: str = "ada",
                    **options: Any) -> AsyncIterator[LabClient]:
    """A quiet client of ``path``; on the notifications endpoint, logged in as ``user`` (its first frame)
    and welcomed: from then on, every notification published for ``user`` reaches it."""
    async with quiet(server, path, **options) as client:
        token = token_for(path, user)
        if token is not None:
            await client.send({"type": "auth", "token": token})
            assert await frame(client) == {"type": "welcome", "user": user}
        yield client


async def frame(client: wslab.LabClient) -> Any:
    return json.loads(await client.recv(5.0))


# -- no task outlives its connection -------------------------------------------------------------------------
@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_task_outlives_its_connection_after_500_connections(path: str) -> None:
    with serving(hardened()) as server:
        assert live.server_tasks(server) == {}
        assert wslab.run_sync(live.churn(server, path, 500, token=token_for(path)), timeout=120)
        assert live.server_tasks(server) == {}


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_task_outlives_a_connection_that_drops_without_a_close_frame(path: str) -> None:
    async def drop(server: LabServer, cycles: int) -> None:
        for _ in range(cycles):
            connection = await ws_connect(server.ws_url(path), compression=None)
            token = token_for(path)
            if token is not None:
                await connection.send(json.dumps({"type": "auth", "token": token}))
            connection.transport.abort()
            await connection.wait_closed()

    with serving(hardened()) as server:
        wslab.run_sync(drop(server, 100), timeout=60)
        assert server.wait_idle(5.0)
        assert live.server_tasks(server) == {}


def test_a_connection_runs_a_reader_and_a_writer_while_it_is_open() -> None:
    async def scenario(server: LabServer) -> dict[str, int]:
        async with client_of(server, NOTIFICATIONS) as ada:
            await ada.send({"type": "ping"})
            await ada.recv()
            return live.server_tasks(server)

    with serving(hardened()) as server:
        assert wslab.run_sync(scenario(server)) == {"handler": 1, "read": 1, "write": 1, "watch": 1}


def test_the_tutorial_notifications_endpoint_leaks_one_listener_per_connection() -> None:
    with serving_naive(naive_notifications_app()) as server:
        for total in (20, 40):
            wslab.run_sync(live.churn(server, "/ws/notifications/ada", 20))
            assert live.server_tasks(server) == {"notification_listener": total}
        assert live.cancel_app_tasks(server) == 40
        assert live.server_tasks(server) == {}


def test_a_leaked_listener_dies_unobserved_when_a_notification_comes() -> None:
    app = naive_notifications_app(poll=0.01)

    async def notify() -> None:
        app.state.inbox["ada"].append({"text": "your invoice is ready"})

    with serving_naive(app) as server:
        wslab.run_sync(live.churn(server, "/ws/notifications/ada", 5))
        server.call(notify())
        assert wslab.run_sync(live.wait_for_log(server, "Task exception was never retrieved"))
        assert live.server_tasks(server) == {"notification_listener": 4}
        errors = [r for r in server.log.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert type(errors[0].exc_info[1]) is WebSocketDisconnect


def test_the_app_producer_runs_with_the_app_and_ends_with_it() -> None:
    async def scenario(server: LabServer) -> tuple[list[int], dict[str, int]]:
        async with quiet(server, "/ws/prices") as ada:
            ticks = []
            for _ in range(3):
                ticks.append((await frame(ada))["tick"])
                await ada.send({"type": "ack"})
            return ticks, live.server_tasks(server)

    with wslab.serve(hardened(tick_every=0.01), name="t-streaming") as server:
        ticks, tasks = wslab.run_sync(scenario(server))
        assert server.wait_idle(5.0)
        assert live.server_tasks(server) == {"run": 1}  # the producer, and nothing else
    assert ticks == sorted(set(ticks)) and tasks["run"] == 1
    assert server.log.lines("ERROR") == []


# -- a slow reader of the price feed -------------------------------------------------------------------------
def test_a_slow_price_reader_holds_nobody_up_and_reads_the_latest_prices_when_it_resumes() -> None:
    feed = PriceFeed()
    with serving(hardened(feed)) as server:
        report = wslab.run_sync(live.slow_reader(server, feed, ticks=200))
    assert (report.on_time, report.first_tick, report.read) == (True, 200, 1)


def test_the_tutorial_price_loop_leaves_a_slow_reader_a_backlog_of_old_prices() -> None:
    feed = PriceFeed()
    with serving_naive(naive_prices_app(feed)) as server:
        report = wslab.run_sync(live.slow_reader(server, feed, ticks=100, ack=False))
        live.step(server, feed)  # the handlers of the clients that left find out, and end
        assert server.wait_idle(5.0)
    assert (report.on_time, report.first_tick, report.read) == (True, 1, 100)


def test_a_client_that_never_acks_does_not_slow_the_producer_or_the_others() -> None:
    async def scenario(server: LabServer, feed: PriceFeed) -> tuple[list[int], int]:
        async with quiet(server, "/ws/prices") as ada, quiet(server, "/ws/prices") as bo:
            await frame(bo)  # bo reads the first prices and never acknowledges them
            bo.connection.transport.pause_reading()  # nor reads anything at all
            await frame(ada)
            seen = []
            for _ in range(300):
                await ada.send({"type": "ack"})
                live.step(server, feed)
                seen.append((await frame(ada))["tick"])
            bo.connection.transport.resume_reading()
            return seen, len(feed)

    feed = PriceFeed()
    with serving(hardened(feed)) as server:
        seen, subscribers = wslab.run_sync(scenario(server, feed))
    assert seen == list(range(1, 301)) and subscribers == 2


# -- heartbeats and dead peers -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_peer_that_falls_silent_is_pinged_then_closed_with_1011(path: str) -> None:
    with serving(hardened(heartbeat=Heartbeat(interval=0.2, timeout=0.2))) as server:
        peer = live.silent_peer(server, path, patience=5.0, token=token_for(path, "bo"))
        lines = wslab.run_sync(peer).lines
    assert "server ✕ ended bo's connection" in lines
    assert 'bo ← {"type": "ping"}' in lines
    assert 'bo ✕ closed by the server: 1011 (internal error) "heartbeat: nothing received for 0.4 s"' in lines
    who = '"/ws/prices"' if path == "/ws/prices" else '"/ws/notifications" bo'
    assert service_lines(server) == [
        f"INFO wslab.reference.streaming: 127.0.0.1:<port> - {who} - closed 1011: heartbeat: nothing "
        "received for 0.4 s"]


def test_the_silent_peer_gets_the_whole_deadline() -> None:
    async def scenario(server: LabServer) -> float:
        started = time.monotonic()  # before the server accepts, when its clock starts: errs long, never short
        async with ws_connect(server.ws_url(NOTIFICATIONS), ping_interval=None) as bo:
            session = server.sessions.for_client_port(bo.local_address[1])
            assert session is not None
            await bo.send(json.dumps(auth("bo")))
            bo.transport.pause_reading()
            await asyncio.wait_for(asyncio.wrap_future(session.done), 5.0)
            waited = time.monotonic() - started
            bo.transport.resume_reading()  # to read the close frame, and not wait out close_timeout
            return waited

    with serving(hardened(heartbeat=Heartbeat(interval=0.2, timeout=0.3))) as server:
        assert wslab.run_sync(scenario(server)) >= 0.5


def test_a_client_that_answers_pings_stays_connected() -> None:
    async def scenario(server: LabServer, hub: Notifications) -> Any:
        async with client_of(server, NOTIFICATIONS) as ada:
            for _ in range(5):  # five deadlines pass; she answers each ping
                assert await frame(ada) == {"type": "ping"}
                await ada.send({"type": "pong"})

            async def publish() -> None:
                hub.publish("ada", {"text": "still there?"})

            await server.acall(publish())
            return await frame(ada)

    hub = Notifications()
    with serving(hardened(hub=hub, heartbeat=Heartbeat(interval=0.1, timeout=1.0))) as server:
        got = wslab.run_sync(scenario(server, hub))
    assert got == {"type": "notification", "seq": 1, "text": "still there?"}


def test_the_tutorial_endpoint_does_not_notice_a_silent_peer() -> None:
    with serving_naive(naive_notifications_app()) as server:
        lines = wslab.run_sync(live.silent_peer(server, "/ws/notifications/bo", patience=1.0)).lines
    assert "server ⌛ still holds bo's connection after 1 s" in lines


# -- receiving and sending at once ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_ping_gets_a_pong_and_bad_input_an_error_and_the_connection_stays(path: str) -> None:
    async def scenario(server: LabServer) -> list[Any]:
        async with client_of(server, path) as client:
            if path == "/ws/prices":
                await frame(client)  # the current prices
            replies = []
            for sent in ({"type": "ping"}, "not json", b"\x00", [1, 2], {"type": "shout"}, {"type": "ping"}):
                await client.send(sent)
                replies.append((await frame(client))["type"])
            return replies

    with serving(hardened()) as server:
        assert wslab.run_sync(scenario(server)) == ["pong", "error", "error", "error", "error", "pong"]


DEEP = 30_000  # levels of nesting that still fit in one 64 KB frame (as in test_protocol.py)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_deeply_nested_json_gets_an_error_frame_and_the_connection_stays(path: str) -> None:
    # Up to Python 3.13 the parser gives up on it (RecursionError); from 3.14 on it parses it. Either way the
    # client is told, and nothing is logged as an error (serving() checks).
    async def scenario(server: LabServer) -> tuple[Any, Any]:
        async with client_of(server, path) as client:
            if path == "/ws/prices":
                await frame(client)  # the current prices
            await client.connection.send("[" * DEEP + "]" * DEEP)
            reply = await frame(client)
            await client.send({"type": "ping"})
            return reply, await frame(client)

    with serving(hardened()) as server:
        reply, pong = wslab.run_sync(scenario(server))
    assert reply["type"] == "error" and reply["message"].startswith("expected a JSON object of type")
    assert pong == {"type": "pong"}


def sends_only_app() -> FastAPI:
    """The tutorial's price loop as written, with a short sleep."""
    app = FastAPI()

    @app.websocket("/ws/prices")
    async def price_stream(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_json({"type": "prices"})
                await asyncio.sleep(0.02)
        except WebSocketDisconnect:
            pass

    return app


@pytest.mark.parametrize(("app", "answered"), [(sends_only_app, False), (streaming_app, True)],
                         ids=["sends-only", "hardened"])
def test_a_handler_that_never_receives_never_answers_a_close_after_a_client_frame(app: Any,
                                                                                  answered: bool) -> None:
    # uvicorn delivers one message at a time and reads nothing more until the app calls receive(): chapter 05
    # shows this, and this test tells if a uvicorn release changes it.
    async def scenario(server: LabServer) -> bool:
        async with quiet(server, "/ws/prices", close_timeout=0.5) as ada:
            await ada.recv()
            await ada.send({"type": "subscribe"})
            await live.catch_up(server)  # the server has read her frame: her close comes after it
        return ada.connection.protocol.close_rcvd is not None

    with wslab.serve(app(), name="t-streaming") as server:
        assert wslab.run_sync(scenario(server)) is answered


def test_every_connection_of_a_user_gets_their_notifications_in_order_and_nobody_else_does() -> None:
    async def scenario(server: LabServer, hub: Notifications) -> list[list[Any]]:
        async with client_of(server, NOTIFICATIONS) as phone, client_of(server, NOTIFICATIONS) as laptop, \
                client_of(server, NOTIFICATIONS, "bo") as bo:

            async def publish() -> None:
                for number in range(3):
                    hub.publish("ada", {"n": number})
                hub.publish("bo", {"n": 0})

            await server.acall(publish())
            return [[(await frame(client))["seq"] for _ in range(count)]
                    for client, count in ((phone, 3), (laptop, 3), (bo, 1))]

    hub = Notifications()
    with serving(hardened(hub=hub)) as server:
        assert wslab.run_sync(scenario(server, hub)) == [[1, 2, 3], [1, 2, 3], [1]]


# -- whose notifications, and what was missed ----------------------------------------------------------------
async def publish_on(server: LabServer, hub: Notifications, *notifications: tuple[str, str]) -> None:
    """Publish each ``(user, text)`` on the server's loop, in order."""

    async def publish() -> None:
        for user, text in notifications:
            hub.publish(user, {"text": text})

    await server.acall(publish())


async def subscribed(client: LabClient) -> None:
    """Return once ``client``'s connection is subscribed: it answered a ping."""
    await client.send({"type": "ping"})
    assert await frame(client) == {"type": "pong"}


def test_nobody_reads_another_users_notifications_the_user_comes_from_the_token() -> None:
    async def scenario(server: LabServer, hub: Notifications) -> tuple[str, Any]:
        try:  # the tutorial's way: whoever opens /ws/notifications/ada reads ada's notifications
            async with quiet(server, "/ws/notifications/ada", name="bo") as spy:
                await subscribed(spy)
                await publish_on(server, hub, ("ada", "the door code is 4711"))
                spied = f"read {await frame(spy)}"
        except InvalidStatus as exc:
            spied = f"HTTP {exc.response.status_code}"
        async with client_of(server, NOTIFICATIONS, "bo") as bo:
            await publish_on(server, hub, ("ada", "the door code is 4711"), ("bo", "for bo"))
            return spied, await frame(bo)

    hub = Notifications()
    with serving(hardened(hub=hub)) as server:
        spied, got = wslab.run_sync(scenario(server, hub))
    assert spied == "HTTP 403"  # no such route: the URL names nobody
    assert got == {"type": "notification", "seq": 1, "text": "for bo"}


def test_a_connection_without_a_valid_token_first_is_closed_with_1008() -> None:
    async def scenario(server: LabServer) -> list[tuple[int | None, str | None]]:
        closes = []
        for first in ({"type": "ping"}, auth("ada", lifetime=-60)):
            async with quiet(server, NOTIFICATIONS) as client:
                await client.send(first)
                closes.append((await client.wait_closed(5.0), client.close_reason))
        return closes

    with serving(hardened()) as server:
        closes = wslab.run_sync(scenario(server))
    assert closes == [(1008, 'auth: expected {"type": "auth", "token": "..."}'),
                      (1008, "auth: token expired: log in again")]


def test_a_client_that_comes_back_with_since_first_gets_what_it_missed_then_live_ones_once() -> None:
    async def scenario(server: LabServer, hub: Notifications) -> list[Any]:
        await publish_on(server, hub, *[("ada", f"#{n}") for n in range(1, 4)], ("bo", "for bo"))
        async with client_of(server, f"{NOTIFICATIONS}?since=1") as ada:  # she saw seq 1, then dropped
            missed = [await frame(ada) for _ in range(2)]
            await publish_on(server, hub, ("ada", "#4"))
            return [*missed, await frame(ada)]

    hub = Notifications()
    with serving(hardened(hub=hub)) as server:
        got = wslab.run_sync(scenario(server, hub))
    assert got == [{"type": "notification", "seq": seq, "text": f"#{seq}"} for seq in (2, 3, 4)]


def test_a_token_expiring_during_the_connection_closes_it_with_1008_unless_renewed() -> None:
    async def scenario(server: LabServer) -> list[Any]:
        seen: list[Any] = []
        async with quiet(server, NOTIFICATIONS) as ada:
            await ada.send(auth("ada", lifetime=1))  # exp is whole seconds: 1 to 2 s from now
            seen.append(await frame(ada))
            await ada.send(auth("bo"))
            seen.append(await frame(ada))  # another user's token: refused, the connection stays
            seen.append((await ada.wait_closed(5.0), ada.close_reason))
        async with quiet(server, NOTIFICATIONS) as bo:
            await bo.send(auth("bo", lifetime=2))  # exp is whole seconds: 2 to 3 s from now
            await frame(bo)  # welcome
            await bo.send(auth("bo", lifetime=60))  # renewed before the first one expires
            try:
                async with asyncio.timeout(3.5):  # past the first token's expiry: still open
                    await bo.connection.wait_closed()
            except TimeoutError:
                await subscribed(bo)
                seen.append("bo still connected")
        return seen

    with serving(hardened()) as server:
        seen = wslab.run_sync(scenario(server))
    assert seen == [{"type": "welcome", "user": "ada"},
                    {"type": "error", "message": "auth: that token is for bo, not ada"},
                    (1008, "token expired: log in again"), "bo still connected"]
    assert service_lines(server) == [
        'INFO wslab.reference.streaming: 127.0.0.1:<port> - "/ws/notifications" ada - closed 1008: token '
        "expired: log in again"]


def test_a_notification_client_that_cannot_keep_up_is_closed_with_1013() -> None:
    async def scenario(server: LabServer, hub: Notifications) -> tuple[Any, int | None, str | None]:
        async with client_of(server, NOTIFICATIONS) as ada:

            async def burst() -> None:  # all at once: the writer cannot send one before the inbox is full
                for number in range(10):
                    hub.publish("ada", {"n": number})

            await server.acall(burst())
            first = await frame(ada)
            return first, await ada.wait_closed(), ada.close_reason

    hub = Notifications(max_pending=5)
    with serving(hardened(hub=hub)) as server:
        first, code, reason = wslab.run_sync(scenario(server, hub))
    assert first == {"type": "notification", "seq": 1, "n": 0}
    assert (code, reason) == (1013, "too slow: 5 notifications were waiting")
    assert service_lines(server) == [
        'INFO wslab.reference.streaming: 127.0.0.1:<port> - "/ws/notifications" ada - closed 1013: too slow: '
        "5 notifications were waiting"]


async def stalled_notifications(server: LabServer, hub: Notifications, then: int) -> bool:
    """ada connects and stops reading; 4 MB notifications are published until one waits in her inbox (her
    buffers are full and the writer is stuck in a send), then ``then`` more. Whether every handler ended
    within 5 s, while ada still reads nothing."""
    big = "x" * 4_000_000

    async def publish(count: int) -> int:
        for _ in range(count):
            hub.publish("ada", {"text": big})
        return sum(inbox.qsize() for inbox in hub._inboxes.get("ada", []))

    options = {"max_size": None, "ping_interval": None, "compression": None}
    async with ws_connect(server.ws_url(NOTIFICATIONS), **options) as ada:
        await ada.send(json.dumps(auth("ada")))
        assert json.loads(await ada.recv()) == {"type": "welcome", "user": "ada"}
        ada.transport.pause_reading()
        for _ in range(30):  # a few are enough to fill the buffers
            if await server.acall(publish(1)):
                break
        await server.acall(publish(then))
        ended = await asyncio.to_thread(server.wait_idle, 5.0)
        ada.transport.abort()
    return ended


def test_a_notification_client_that_stops_reading_is_closed_while_its_writer_is_stuck() -> None:
    hub = Notifications(max_pending=5)
    with serving(hardened(hub=hub)) as server:
        assert wslab.run_sync(stalled_notifications(server, hub, then=10))


def test_a_silent_client_that_stopped_reading_is_closed_though_the_ping_cannot_be_sent() -> None:
    hub = Notifications()
    with serving(hardened(hub=hub, heartbeat=Heartbeat(interval=0.3, timeout=0.3))) as server:
        assert wslab.run_sync(stalled_notifications(server, hub, then=0))


# -- until_first_done ----------------------------------------------------------------------------------------
async def forever(name: str, ended: list[str]) -> None:
    """Wait until cancelled; note ``name`` in ``ended`` on the way out."""
    try:
        await asyncio.Event().wait()
    finally:
        ended.append(name)


def test_until_first_done_cancels_and_awaits_the_others_when_one_returns() -> None:
    ended: list[str] = []

    async def soon() -> None:
        await asyncio.sleep(0)

    async def scenario() -> int:
        await until_first_done(forever("a", ended), soon(), forever("b", ended))
        return len(asyncio.all_tasks())  # this one only

    assert asyncio.run(scenario()) == 1
    assert sorted(ended) == ["a", "b"]


def test_until_first_done_raises_the_error_of_the_one_that_failed_unwrapped() -> None:
    ended: list[str] = []

    async def fails() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        asyncio.run(until_first_done(forever("forever", ended), fails()))
    assert ended == ["forever"]


def test_until_first_done_keeps_several_errors_in_a_group() -> None:
    async def fails(exc: Exception) -> None:
        raise exc

    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(until_first_done(fails(KeyError("a")), fails(ValueError("b"))))
    assert {type(e) for e in info.value.exceptions} == {KeyError, ValueError}


def test_until_first_done_cancelled_from_outside_ends_its_tasks_first() -> None:
    ended: list[str] = []

    async def scenario() -> bool:
        running = asyncio.create_task(until_first_done(forever("a", ended), forever("b", ended)))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        return running.cancelled()

    assert asyncio.run(scenario())
    assert sorted(ended) == ["a", "b"]
