"""The chapter 05 checks fail, with a report that names the problem, on plausible wrong answers. (That each
passes on the notebook's answer and says "not done" on its stub is tested with every chapter's, in
test_checks.py.)"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from wslab.checks.result import CheckResult
from wslab.checks.streaming import PING_AFTER, PONG_WITHIN, check_heartbeat, check_since, check_symbols
from wslab.reference.feeds import Inbox, LiveNotifications, Notifications, PriceFeed, Subscription
from wslab.reference.streaming import handle_price_frame, streaming_app

Frame = dict[str, Any]


def failed(result: CheckResult, reported: str) -> None:
    assert result.status == "failed" and reported in str(result), str(result)
    assert "Hint:" in str(result)


def aimed(result: CheckResult, reported: str, hint: str) -> None:
    """Failed, naming ``reported``, with a hint that speaks of ``hint`` (aimed at that failure)."""
    failed(result, reported)
    assert hint in result.hint, result.hint


# -- exercise 5.1: symbols ---------------------------------------------------------------------------------
def symbols(frame: Any) -> list[str] | None:
    if isinstance(frame, dict) and frame.get("type") in ("subscribe", "unsubscribe"):
        wanted = frame.get("symbols")
        return list(wanted) if isinstance(wanted, list) else []
    return None


def replies_but_does_not_filter(subscription: Subscription, frame: Any) -> Frame | None:
    wanted = symbols(frame)
    if wanted is None:
        return handle_price_frame(subscription, frame)
    return {"type": "subscribed", "symbols": sorted(wanted)}


SHARED: set[str] = set()


def one_set_for_every_connection(subscription: Subscription, frame: Any) -> Frame | None:
    wanted = symbols(frame)
    if wanted is None:
        return handle_price_frame(subscription, frame)
    if frame["type"] == "subscribe":
        SHARED.clear()
        SHARED.update(wanted)
    else:
        SHARED.difference_update(wanted)
    for other in subscription.feed._subscriptions:  # every connection shares the answer
        other.symbols = set(SHARED)
    return {"type": "subscribed", "symbols": sorted(SHARED)}


def forgets_the_other_frames(subscription: Subscription, frame: Any) -> Frame | None:
    wanted = symbols(frame)
    if wanted is None:
        return {"type": "error", "message": "unknown frame"}
    subscription.symbols = set(wanted) if frame["type"] == "subscribe" else subscription.symbols - set(wanted)
    return {"type": "subscribed", "symbols": sorted(subscription.symbols)}


def accepts_any_symbol(subscription: Subscription, frame: Any) -> Frame | None:
    wanted = symbols(frame)
    if wanted is None:
        return handle_price_frame(subscription, frame)
    subscription.symbols = set(wanted) if frame["type"] == "subscribe" else subscription.symbols - set(wanted)
    return {"type": "subscribed", "symbols": sorted(subscription.symbols)}


def unsubscribe_replaces_too(subscription: Subscription, frame: Any) -> Frame | None:
    wanted = symbols(frame)
    if wanted is None:
        return handle_price_frame(subscription, frame)
    if not set(wanted) <= set(subscription.feed.symbols):
        return {"type": "error", "message": "unknown symbol"}
    subscription.symbols = set(wanted)
    return {"type": "subscribed", "symbols": sorted(subscription.symbols)}


def shared_set(subscription: Subscription, frame: Any) -> Frame | None:
    """Every connection's subscription.symbols is the same set object."""
    wanted = symbols(frame)
    if wanted is None:
        return handle_price_frame(subscription, frame)
    if not set(wanted) <= set(subscription.feed.symbols):
        return {"type": "error", "message": "unknown symbol"}
    if frame["type"] == "subscribe":
        SHARED.clear()
        SHARED.update(wanted)
    else:
        SHARED.difference_update(wanted)
    subscription.symbols = SHARED
    return {"type": "subscribed", "symbols": sorted(SHARED)}


def crashes_without_symbols(subscription: Subscription, frame: Any) -> Frame | None:
    if isinstance(frame, dict) and frame.get("type") in ("subscribe", "unsubscribe"):
        wanted = set(frame["symbols"])
        if not wanted <= set(subscription.feed.symbols):
            return {"type": "error", "message": "unknown symbol"}
        subscription.symbols = wanted if frame["type"] == "subscribe" else subscription.symbols - wanted
        return {"type": "subscribed", "symbols": sorted(subscription.symbols)}
    return handle_price_frame(subscription, frame)


def ignores_unknown_on_unsubscribe(subscription: Subscription, frame: Any) -> Frame | None:
    wanted = symbols(frame)
    if wanted is None or frame["type"] == "subscribe":
        return checked(subscription, frame)
    subscription.symbols = subscription.symbols - set(wanted)
    return {"type": "subscribed", "symbols": sorted(subscription.symbols)}


def applies_the_known_ones(subscription: Subscription, frame: Any) -> Frame | None:
    wanted = symbols(frame)
    if wanted is None:
        return handle_price_frame(subscription, frame)
    known = {symbol for symbol in wanted if symbol in subscription.feed.symbols}
    subscription.symbols = known if frame["type"] == "subscribe" else subscription.symbols - known
    if known != set(wanted):
        return {"type": "error", "message": "some symbols are unknown"}
    return {"type": "subscribed", "symbols": sorted(subscription.symbols)}


def unsorted_reply(subscription: Subscription, frame: Any) -> Frame | None:
    reply = checked(subscription, frame)
    if reply is not None and reply["type"] == "subscribed":
        reply["symbols"] = sorted(reply["symbols"], reverse=True)
    return reply


@pytest.mark.parametrize(("handle", "reported", "hint"), [
    (replies_but_does_not_filter, "after subscribing to ACME, ada's prices should hold ACME only",
     "set subscription.symbols"),
    (one_set_for_every_connection, "bo never subscribed: he should still get every symbol",
     "each connection has its own Subscription"),
    (shared_set, "after bo's subscription, ada's prices should hold ACME",
     "never one that other connections"),
    (forgets_the_other_frames, "got:      {'type': 'error', 'message': 'unknown frame'}",
     "must still reach handle_price_frame"),
    (accepts_any_symbol, '{"type": "subscribe", "symbols": ["NOPE"]} should get an error frame',
     "every symbol in it one of subscription.feed.symbols"),
    (unsubscribe_replaces_too, '{"type": "unsubscribe", "symbols": ["ACME"]} should be answered with',
     "unsubscribe removes"),
    (crashes_without_symbols, "your code raised KeyError: 'symbols'", "start in handle_symbols"),
    (ignores_unknown_on_unsubscribe, '"symbols": ["GLOBEX", "NOPE"]} should get an error',
     "(for unsubscribe too)"),
    (applies_the_known_ones, "after the unknown symbols, ada's prices should still hold GLOBEX",
     "a request with one bad symbol changes nothing"),
    (unsorted_reply, "should be answered with", "a set has no order"),
])
def test_symbols_wrong_answers_fail(handle: Callable[[Subscription, Any], Frame | None], reported: str,
                                    hint: str) -> None:
    aimed(check_symbols(streaming_app(PriceFeed(), handle=handle)), reported, hint)


def checked(subscription: Subscription, frame: Any) -> Frame | None:
    """A correct answer: every symbol checked first, then this connection's own set changed."""
    wanted = symbols(frame)
    if wanted is None:
        return handle_price_frame(subscription, frame)
    if not isinstance(frame.get("symbols"), list) or not set(wanted) <= set(subscription.feed.symbols):
        return {"type": "error", "message": "unknown symbol"}
    subscription.symbols = set(wanted) if frame["type"] == "subscribe" else subscription.symbols - set(wanted)
    return {"type": "subscribed", "symbols": sorted(subscription.symbols)}


def with_a_count(subscription: Subscription, frame: Any) -> Frame | None:
    reply = checked(subscription, frame)
    if reply is not None and reply["type"] == "subscribed":
        reply["count"] = len(reply["symbols"])  # an extra field is fine
    return reply


def with_match(subscription: Subscription, frame: Any) -> Frame | None:
    match frame:
        case {"type": "subscribe" | "unsubscribe" as kind, "symbols": list(wanted)} \
                if set(wanted) <= set(subscription.feed.symbols):
            if kind == "subscribe":
                subscription.symbols = set(wanted)
            else:
                subscription.symbols.difference_update(wanted)  # in place: the set is this connection's
            return {"type": "subscribed", "symbols": sorted(subscription.symbols)}
        case {"type": "subscribe" | "unsubscribe"}:
            return {"type": "error", "message": "symbols: a list of the feed's symbols"}
        case _:
            return handle_price_frame(subscription, frame)


@pytest.mark.parametrize("handle", [checked, with_a_count, with_match])
def test_symbols_correct_variants_pass(handle: Callable[[Subscription, Any], Frame | None]) -> None:
    result = check_symbols(streaming_app(PriceFeed(), handle=handle))
    assert result.passed, str(result)


def test_an_app_without_a_feed_in_its_state_is_told_how_to_make_one() -> None:
    failed(check_symbols(FastAPI()), "the app should keep its PriceFeed in app.state.feed")


# -- exercise 5.2: since -----------------------------------------------------------------------------------
class Kept(LiveNotifications):
    """Keeps frames per user (``keep`` of them; None: all), and replays those ``wanted`` says: the exercise's
    shape, on the hub without memory it starts from."""

    keep: int | None = 20
    shared = False

    def __init__(self) -> None:
        super().__init__()
        self.history: defaultdict[str, deque[Frame]] = defaultdict(lambda: deque(maxlen=self.keep))

    def _kept(self, user: str) -> deque[Frame]:
        return self.history["everyone" if self.shared else user]

    def publish(self, user: str, notification: Any) -> Frame:
        frame = super().publish(user, notification)
        self._kept(user).append(frame)
        return frame

    def wanted(self, frame: Frame, since: int | None) -> bool:
        return since is not None and frame["seq"] > since

    def subscribe(self, user: str, since: int | None = None) -> Inbox:
        inbox = super().subscribe(user, since)
        for frame in self._kept(user):
            if self.wanted(frame, since):
                inbox.put_frame(frame)
        return inbox


class ReplaysEverything(Kept):
    def wanted(self, frame: Frame, since: int | None) -> bool:
        return since is not None


class ReplaysWithoutSince(Kept):
    def wanted(self, frame: Frame, since: int | None) -> bool:
        return frame["seq"] > (since or 0)


class KeepsEverything(Kept):
    keep = None


class OneHistoryForEveryone(Kept):
    shared = True


class KeepsNothing(LiveNotifications):
    pass


class ReplaysTwice(Notifications):
    """The exercise's answer written on the reference hub, which replays already."""

    def subscribe(self, user: str, since: int | None = None) -> Inbox:
        inbox = super().subscribe(user, since)
        for frame in self.history(user):
            if since is not None and frame["seq"] > since:
                inbox.put_frame(frame)
        return inbox


class ReplaysToEveryConnection(Kept):
    """Queues the replay in every open inbox of the user, not only the one that asked."""

    def subscribe(self, user: str, since: int | None = None) -> Inbox:
        inbox = LiveNotifications.subscribe(self, user, since)
        for frame in self._kept(user):
            if self.wanted(frame, since):
                for other in self._inboxes.get(user, []):
                    other.put_frame(frame)
        return inbox


class ReplaysOnlyATruthySince(Kept):
    def wanted(self, frame: Frame, since: int | None) -> bool:
        return bool(since) and frame["seq"] > (since or 0)


@pytest.mark.parametrize(("hub", "reported", "hint"), [
    (ReplaysEverything, "with since=1, ada should first get the notifications she missed",
     "replay the kept frames with a larger seq"),
    (ReplaysWithoutSince, "without since, a client gets live notifications only", "since is None"),
    (KeepsEverything, "only the last 20 notifications are kept", "keep only each user's last 20"),
    (ReplaysOnlyATruthySince, "only the last 20 notifications are kept", "since=0 is a request too"),
    (OneHistoryForEveryone, "each user has a history of their own", "keep a history per user"),
    (KeepsNothing, "got:      ['nothing within 2 s']", "replay the kept frames"),
    (ReplaysTwice, "then live ones, without repeats", "each frame once"),
    (ReplaysToEveryConnection, "ada's phone was online all along", "not in every inbox of the user"),
])
def test_since_wrong_answers_fail(hub: type[LiveNotifications], reported: str, hint: str) -> None:
    aimed(check_since(streaming_app(hub=hub())), reported, hint)


class KeepsCopiesAndSorts(Kept):
    """Another shape: copies of the frames kept, the replay sorted, a comprehension."""

    def publish(self, user: str, notification: Any) -> Frame:
        frame = LiveNotifications.publish(self, user, notification)
        self.history[user].append(dict(frame))
        return frame

    def subscribe(self, user: str, since: int | None = None) -> Inbox:
        inbox = LiveNotifications.subscribe(self, user, since)
        if since is None:
            return inbox
        missed = [frame for frame in self.history.get(user, ()) if frame["seq"] > since]
        for frame in sorted(missed, key=lambda f: f["seq"]):
            inbox.put_frame(dict(frame))
        return inbox


def test_the_hub_the_exercise_starts_from_passes_the_live_steps_of_since_but_not_the_replay() -> None:
    failed(check_since(streaming_app(hub=LiveNotifications())),
           "with since=1, ada should first get the notifications she missed")


@pytest.mark.parametrize("hub", [Notifications, Kept, KeepsCopiesAndSorts])
def test_since_correct_variants_pass(hub: type[LiveNotifications]) -> None:
    result = check_since(streaming_app(hub=hub()))
    assert result.passed, str(result)


# -- exercise 5.3: heartbeat -------------------------------------------------------------------------------
def alive_app(receive: Callable[[WebSocket], Any], *, pinger: bool = False) -> FastAPI:
    """/ws/alive: ``receive(websocket)`` returns the next message, or None when it closed the connection;
    pongs are answered here. With ``pinger``, a task pings every PING_AFTER seconds, whatever the traffic."""
    app = FastAPI()

    @app.websocket("/ws/alive")
    async def alive(websocket: WebSocket) -> None:
        await websocket.accept()

        async def ping_forever() -> None:
            while True:
                await asyncio.sleep(PING_AFTER)
                await websocket.send_json({"type": "ping"})

        task = asyncio.create_task(ping_forever()) if pinger else None
        try:
            while True:
                message = await receive(websocket)
                if message is None or message["type"] == "websocket.disconnect":
                    return
                if message.get("text") and json.loads(message["text"]).get("type") == "ping":
                    await websocket.send_json({"type": "pong"})
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    return app


def heartbeat(*, ping_after: float = PING_AFTER, pong_within: float | None = PONG_WITHIN, ping: bool = True,
              code: int = 1011, as_text: bool = False, farewell: bool = False) -> Callable[[WebSocket], Any]:
    """With ``farewell``, an error frame just before the close (a correct answer, written differently)."""

    async def receive(websocket: WebSocket) -> Any:
        try:
            async with asyncio.timeout(ping_after):
                return await websocket.receive()
        except TimeoutError:
            if ping and as_text:
                await websocket.send_text("ping")  # the tutorial's form, not this exercise's
            elif ping:
                await websocket.send_json({"type": "ping"})
            try:
                async with asyncio.timeout(pong_within if ping else 0):
                    return await websocket.receive()
            except TimeoutError:
                if farewell:
                    await websocket.send_json({"type": "error", "message": "no pong: closing"})
                await websocket.close(code, "no pong")
                return None

    return receive


async def receive_plainly(websocket: WebSocket) -> Any:
    return await websocket.receive()


@pytest.mark.parametrize(("app", "reported"), [
    (alive_app(heartbeat(pong_within=None)), "a client that does not answer the ping should be closed"),
    (alive_app(heartbeat(ping=False)), "got:      'the connection closed (1011)'"),
    (alive_app(receive_plainly, pinger=True), "a client that sends a frame every 0.1 s is alive"),
    (alive_app(heartbeat(code=1000)), "expected: 1011"),
    (alive_app(heartbeat(ping_after=0.1)), "a ping should come only after 0.5 s without a frame"),
    (alive_app(heartbeat(pong_within=0.1)), "the client should get 0.5 s to answer the ping"),
    (alive_app(heartbeat(as_text=True)), 'a JSON object such as {"type": "ping"}'),
], ids=["never-closes", "no-ping", "pings-whatever-the-traffic", "closes-with-1000", "pings-too-early",
        "closes-too-early", "pings-in-plain-text"])
def test_heartbeat_wrong_answers_fail(app: FastAPI, reported: str) -> None:
    failed(check_heartbeat(app), reported)



def leaks_a_quiet_watchdog() -> FastAPI:
    """A watchdog task per connection, never cancelled, that never raises: it outlives every connection."""
    app = FastAPI()

    @app.websocket("/ws/alive")
    async def alive(websocket: WebSocket) -> None:
        await websocket.accept()
        state = {"last": asyncio.get_running_loop().time(), "pinged": False, "closed": False}

        async def watchdog() -> None:
            while True:
                await asyncio.sleep(0.05)
                silent = asyncio.get_running_loop().time() - state["last"]
                if state["closed"]:
                    continue
                try:
                    if silent >= PING_AFTER + PONG_WITHIN:
                        state["closed"] = True
                        await websocket.close(1011)
                    elif silent >= PING_AFTER and not state["pinged"]:
                        state["pinged"] = True
                        await websocket.send_json({"type": "ping"})
                except Exception:  # quietly: nothing is ever logged
                    state["closed"] = True

        asyncio.create_task(watchdog())
        while True:
            try:
                message = await websocket.receive()
            except RuntimeError:  # the watchdog closed the connection
                return
            state["last"], state["pinged"] = asyncio.get_running_loop().time(), False
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") and json.loads(message["text"]).get("type") == "ping":
                await websocket.send_json({"type": "pong"})

    return app


def watchdog_task(*, cancel: bool) -> FastAPI:
    """A watchdog task per connection that pings and closes; with ``cancel``, cancelled when the handler
    returns (a correct, if roundabout, answer)."""
    app = FastAPI()

    @app.websocket("/ws/alive")
    async def alive(websocket: WebSocket) -> None:
        await websocket.accept()
        heard = asyncio.Event()

        async def watchdog() -> None:
            with contextlib.suppress(WebSocketDisconnect):  # the client may leave just as it pings
                while True:
                    try:
                        async with asyncio.timeout(PING_AFTER):
                            await heard.wait()
                    except TimeoutError:
                        await websocket.send_json({"type": "ping"})
                        try:
                            async with asyncio.timeout(PONG_WITHIN):
                                await heard.wait()
                        except TimeoutError:
                            await websocket.close(1011)
                            return
                    heard.clear()

        task = asyncio.create_task(watchdog())
        try:
            while True:
                try:
                    message = await websocket.receive()
                except RuntimeError:  # the watchdog closed the connection
                    return
                heard.set()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") and json.loads(message["text"]).get("type") == "ping":
                    await websocket.send_json({"type": "pong"})
        finally:
            if cancel:
                task.cancel()

    return app


def polls_on_a_sleep() -> FastAPI:
    """Sleeps PING_AFTER, then looks whether a frame came: a frame waits up to PING_AFTER for its answer."""
    app = FastAPI()

    @app.websocket("/ws/alive")
    async def alive(websocket: WebSocket) -> None:
        await websocket.accept()
        pending = asyncio.ensure_future(websocket.receive())
        while True:
            await asyncio.sleep(PING_AFTER)
            if not pending.done():
                await websocket.send_json({"type": "ping"})
                await asyncio.sleep(PONG_WITHIN)
                if not pending.done():
                    await websocket.close(1011)
                    return
            message = pending.result()
            pending = asyncio.ensure_future(websocket.receive())
            if message["type"] == "websocket.disconnect":
                pending.cancel()
                return
            if message.get("text") and json.loads(message["text"]).get("type") == "ping":
                await websocket.send_json({"type": "pong"})

    return app


def only_a_pong_answers(websocket_receive: Callable[[WebSocket], Any] = receive_plainly) -> FastAPI:
    """After its ping, waits for a pong and drops anything else unanswered (the client's own ping)."""

    async def receive(websocket: WebSocket) -> Any:
        try:
            async with asyncio.timeout(PING_AFTER):
                return await websocket_receive(websocket)
        except TimeoutError:
            await websocket.send_json({"type": "ping"})
            try:
                async with asyncio.timeout(PONG_WITHIN):
                    while True:
                        message = await websocket_receive(websocket)
                        if message["type"] == "websocket.disconnect":
                            return message
                        if json.loads(message.get("text") or "{}").get("type") == "pong":
                            return message
            except TimeoutError:
                await websocket.close(1011)
                return None

    return alive_app(receive)


@pytest.mark.parametrize(("app", "reported", "hint"), [
    (leaks_a_quiet_watchdog(), "tasks your code started were still running (5): watchdog ×5",
     "a task started for a connection must end with it"),
    (watchdog_task(cancel=False), "tasks your code started were still running",
     "cancel the task in a finally"),
    (polls_on_a_sleep(), "a ping should be answered at once", "Wait on the receive itself"),
    (only_a_pong_answers(), "dee answers the server's ping with a ping of her own",
     "every frame the client sends shows it is alive"),
], ids=["leaks-a-quiet-task", "leaks-a-watchdog", "polls-on-a-sleep", "only-a-pong-answers"])
def test_heartbeat_leaks_and_slow_or_deaf_loops_fail_with_an_aimed_hint(app: FastAPI, reported: str,
                                                                         hint: str) -> None:
    aimed(check_heartbeat(app), reported, hint)


def pinged_flag() -> FastAPI:
    """One timeout whose length depends on whether the server has pinged: another shape of the answer."""

    async def receive(websocket: WebSocket) -> Any:
        pinged = False
        while True:
            try:
                async with asyncio.timeout(PONG_WITHIN if pinged else PING_AFTER):
                    return await websocket.receive()
            except TimeoutError:
                if pinged:
                    await websocket.close(1011, "no pong")
                    return None
                pinged = True
                await websocket.send_json({"type": "ping"})

    return alive_app(receive)


async def receive_within(websocket: WebSocket, seconds: float) -> Any:
    try:
        return await asyncio.wait_for(websocket.receive(), seconds)
    except TimeoutError:
        return None


async def wait_for_helper(websocket: WebSocket) -> Any:
    """A helper around asyncio.wait_for instead of asyncio.timeout."""
    message = await receive_within(websocket, PING_AFTER)
    if message is None:
        await websocket.send_json({"type": "ping"})
        message = await receive_within(websocket, PONG_WITHIN)
        if message is None:
            await websocket.close(code=1011, reason="heartbeat: no pong")
    return message


def on_a_busy_machine() -> FastAPI:
    """The answer of timeout-twice on a machine so busy that two of bo's pongs wait 0.45 s (its loop stands
    still meanwhile, as when other processes have the CPU): still a correct answer."""
    pings = itertools.count()
    receive = heartbeat()

    async def stalled(websocket: WebSocket) -> Any:
        message = await receive(websocket)
        text = message.get("text") if message else None
        if text and json.loads(text).get("type") == "ping" and next(pings) in (2, 5):  # bo's 1st and 4th
            time.sleep(0.45)
        return message

    return alive_app(stalled)


@pytest.mark.parametrize("app", [
    alive_app(heartbeat()), pinged_flag(), alive_app(wait_for_helper), watchdog_task(cancel=True),
    on_a_busy_machine(), alive_app(heartbeat(farewell=True)),
], ids=["timeout-twice", "pinged-flag", "wait-for-helper", "watchdog-cancelled", "on-a-busy-machine",
        "says-why-before-closing"])
def test_heartbeat_correct_variants_pass(app: FastAPI) -> None:
    result = check_heartbeat(app)
    assert result.passed, str(result)


def test_the_heartbeat_stub_hint_does_not_give_the_answer() -> None:
    app = FastAPI()

    @app.websocket("/ws/alive")
    async def alive(websocket: WebSocket) -> None:
        await websocket.accept()
        raise NotImplementedError

    result = check_heartbeat(app)
    assert result.status == "not done" and "Hint:" in str(result)
    for answer in ("asyncio.timeout(", "1011", "send_json", "{'type': 'ping'}"):
        assert answer not in result.hint


class StubHub(LiveNotifications):
    def publish(self, user: str, notification: Any) -> Frame:
        raise NotImplementedError


def stub_handle(subscription: Subscription, frame: Any) -> Frame | None:
    raise NotImplementedError


@pytest.mark.parametrize(("result", "answers"), [
    (lambda: check_symbols(streaming_app(PriceFeed(), handle=stub_handle)),
     ("sorted(", "subscription.symbols =", "feed.symbols", "{'type': 'subscribed'")),
    (lambda: check_since(streaming_app(hub=StubHub())), ("deque(", "put_frame", "seq > since", "maxlen")),
], ids=["symbols", "since"])
def test_the_stub_hints_of_5_1_and_5_2_say_where_to_start(result: Callable[[], CheckResult],
                                                           answers: tuple[str, ...]) -> None:
    verdict = result()
    assert verdict.status == "not done" and verdict.hint.startswith("start in "), str(verdict)
    for answer in answers:
        assert answer not in verdict.hint
