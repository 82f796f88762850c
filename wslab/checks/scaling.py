"""Checks for chapter 08, scaling out: a typing indicator on every worker, and a room's history in Redis.

Each check starts a Redis of its own (:class:`~wslab.lab.redis_server.RedisServer`, Debian's ``redis-server``)
and stops it at the end. Exercise 8.1 serves the learner's :class:`~wslab.reference.app.AppRooms` subclass as
two workers, two in-kernel servers of ``create_app(rooms_type=..., broker=<that Redis>)`` with one token
secret; exercise 8.2 drives the learner's history class against that Redis directly.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import json
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from redis.asyncio import Redis

from wslab.lab.client import LabClient, connect
from wslab.lab.redis_server import RedisServer, RedisServerError
from wslab.lab.server import LabServer
from wslab.lab.transcript import RECEIVED, SENT, Transcript
from wslab.reference.app import AppRooms, create_app
from wslab.reference.auth import Tokens

from .app import FLOOD as TYPING_FLOOD
from .app import FROM_TOKEN_HINT, _closed_with, _no_client_fields, _rooms
from .frames import has as _has
from .frames import next_frame as _next
from .result import CheckResult, Mismatch, expect, run_check_on_servers

__all__ = ["HISTORY_SIZE", "check_stream_history", "check_typing_everywhere"]

SECRET = "wslab-check-8.1-both-workers-sign-tokens-with-this"  # a token issued by one verifies on the other
HISTORY_SIZE = 100  # the size exercise 8.2's history is made with
FLOOD = 350  # frames saved to one room to see the stream capped
# XADD's approximate trimming (maxlen=100, approximate=True) drops only whole nodes of the stream, and a
# node holds at most 100 entries (stream-node-max-entries) and 4096 bytes (stream-node-max-bytes), Redis 7's
# defaults. Measured with Redis 7.0.15 and this check's frames: 149 entries after 350 saves (at most 167
# over 1000 saves); with tiny frames, where nodes fill up to 100 entries, 150 (at most 199). Exactly 100
# with approximate=False; 350 uncapped. So a capped history holds size to 2 * size entries.
MOST = 2 * HISTORY_SIZE
EVERY_WORKER = "one room.broadcast(...) reaches everyone in the room on every worker, this one included."


def _with_redis(exercise: str, hint: str, run: Callable[[str], CheckResult]) -> CheckResult:
    """``run(url)`` with a Redis of the check's own at ``url``; a failed verdict saying how to get one if
    ``redis-server`` is missing."""
    try:
        redis = RedisServer().start()
    except RedisServerError as exc:
        return CheckResult(exercise, "failed", f"this check starts a Redis of its own, and could not: {exc}",
                           hint)
    try:
        return run(redis.url)
    finally:
        redis.stop()


def _what(value: Any) -> str:
    if inspect.isclass(value):
        return f"the class {value.__name__}"
    if inspect.isfunction(value):
        return f"the function {value.__name__}()"
    if hasattr(getattr(value, "state", None), "rooms"):
        return "an app (the check makes its own apps)"
    if isinstance(value, (type(None), str, int, float, list, dict, tuple)):
        return repr(value)
    return f"an instance of {type(value).__name__} (the class is what the check needs)"


async def _arrive(bot: LabClient, user: str, step: str) -> None:
    """Read ``bot``'s frames up to ``user``'s ``join`` (a few presence frames may come first)."""
    for _ in range(5):
        frame = await _next(bot, step, f"{user}'s join frame")
        if isinstance(frame, dict) and frame.get("type") == "join" and frame.get("user") == user:
            return
    raise Mismatch(step, f"{user}'s join frame", "5 other frames")


def check_typing_everywhere(rooms_type: Any) -> CheckResult:
    """Exercise 8.1: chapter 06's typing indicator with rooms shared through Redis. ``rooms_type`` is an
    :class:`~wslab.reference.app.AppRooms` subclass; ``{"type": "typing"}`` from a user must reach everyone
    else in the room *on every worker* as ``{"type": "typing", "user": <that user>}``: not the sender, not
    other rooms, with the user from the token. Typing frames count against the rate limit.

    Refused, among others: chapter 06's loop over ``room.members`` (this worker's connections only); that
    loop and a broadcast both; no ``exclude``; no ``return`` (the frame also reaches ``super().relay``); the
    name from the frame; the client's frame relayed (its other fields reach everyone); every room; typing
    handled in ``handle``, before the rate limit."""
    exercise = "Exercise 8.1 (typing everywhere)"
    hint = ("start from chapter 06's answer, in relay; the exercise says what room.members holds with a "
            "broker, and which method of the room reaches every worker.")
    if not (inspect.isclass(rooms_type) and issubclass(rooms_type, AppRooms)):
        what = _what(rooms_type)
        if inspect.isclass(rooms_type):
            what += ", which does not subclass AppRooms"
        return CheckResult(exercise, "failed", "pass your rooms class itself, a subclass of AppRooms: "
                           f"check_typing_everywhere(SharedTypingRooms), not {what}.", hint)

    def run(url: str) -> CheckResult:
        apps = [create_app(rooms_type=rooms_type, broker=url, secret=SECRET) for _ in range(2)]
        tokens = _rooms(apps[0]).tokens

        async def scenario(servers: list[LabServer], transcript: Transcript) -> None:
            bots: list[LabClient] = []
            try:
                await _typing_everywhere(servers, tokens, transcript, bots)
            finally:
                for bot in bots:
                    await bot.close()

        return run_check_on_servers(
            exercise, apps, scenario, hint=hint,
            passed="everyone else in the room sees who is typing, on every worker.")

    return _with_redis(exercise, hint, run)


async def _typing_everywhere(servers: list[LabServer], tokens: Tokens, transcript: Transcript,
                             bots: list[LabClient]) -> None:
    """Exercise 8.1's steps, with ``servers[0]`` and ``servers[1]`` as the two workers; the bots it makes
    go in ``bots``, for the caller to close."""

    async def login(server: LabServer, room: str, name: str, *others: LabClient) -> LabClient:
        where = "ada's server" if server is servers[0] else "the other server"
        # max_queue=None: frames left unread at the end must not stall the closing handshake.
        bot = connect(server, f"/ws/chat/{room}", name=name, transcript=transcript, max_queue=None)
        await bot.open()
        bots.append(bot)
        await bot.send({"type": "auth", "token": tokens.issue(name)})
        await _arrive(bot, name, f"{name} logs in to the {room} on {where}")
        for other in others:
            await _arrive(other, name, f"{other.name} sees {name} join the {room} on {where}")
        return bot

    ada = await login(servers[0], "lobby", "ada")
    cy = await login(servers[0], "lobby", "cy", ada)
    bo = await login(servers[1], "lobby", "bo", ada, cy)
    dee = await login(servers[1], "kitchen", "dee")
    eve = await login(servers[0], "kitchen", "eve", dee)
    typing = {"type": "typing", "user": "ada"}
    hello = {"type": "message", "user": "ada", "content": "hello"}
    await ada.send({"type": "typing"})
    await ada.send({"type": "message", "content": "hello"})  # bo's next frame if the typing missed him
    step = "cy, in the lobby on ada's server, should see that ada is typing"
    _has(await _next(cy, step, typing), typing, step,
         "in relay, when frame_type(data) is 'typing', send {'type': 'typing', 'user': ...} to the room, "
         "then return.")
    step = ("cy should get ada's typing frame once, then her message (room.broadcast reaches this server's "
            "members too: no loop over room.members is needed)")
    _has(await _next(cy, step, hello), hello, step, EVERY_WORKER)
    step = ("bo should see that ada is typing. He is in the lobby too, but on the other server: room.members "
            "holds only this server's connections (ada's and cy's), so a loop over it never reaches him")
    _has(await _next(bo, step, typing), typing, step,
         "the room has a method that reaches its members on every worker: the exercise names it.")
    step = "bo should get ada's typing frame once, then her message"
    _has(await _next(bo, step, hello), hello, step, EVERY_WORKER)
    step = "ada should not see her own typing frames (her next frame is her message)"
    frame = await _next(ada, step, hello)
    hint = "room.broadcast can leave one client out: look at its exclude argument."
    if isinstance(frame, dict) and frame.get("type") == "error":
        step = ("ada's typing frame got an error back: once relay has handled a typing frame it should "
                "return, not pass it on to super().relay")
        hint = "return once the typing frame is handled: super().relay does not know typing frames."
    _has(frame, hello, step, hint)
    await ada.send({"type": "typing", "user": "bo", "note": "<img src=x onerror=alert(1)>"})
    for bot in (cy, bo):
        step = f"a typing frame that claims to be from bo, sent by ada, should say ada to {bot.name}"
        frame = await _next(bot, step, typing)
        _has(frame, typing, step, FROM_TOKEN_HINT)
        _no_client_fields(frame, f"ada's typing frame had a 'note' field of her own: {bot.name} should not "
                                 "get it")
    await dee.send({"type": "message", "content": "anyone?"})
    anyone = {"type": "message", "user": "dee", "content": "anyone?"}
    for bot, where, whose in ((dee, "the other server", "her own"), (eve, "ada's server", "dee's")):
        step = (f"{bot.name}, in the kitchen on {where}, should never see the lobby's typing (her next "
                f"frame is {whose} message)")
        _has(await _next(bot, step, anyone), anyone, step,
             "broadcast to the sender's room (relay's room argument), not to every room or channel.")
    for _ in range(TYPING_FLOOD):
        await cy.send({"type": "typing"})
    await _closed_with(cy, 1008, f"{TYPING_FLOOD} typing frames at once are a flood: the rate limit should "
                                 "close cy with 1008")


def _frame(user: str, content: str) -> dict[str, Any]:
    return {"type": "message", "user": user, "content": content}


@contextlib.contextmanager
def _unawaited_kept_quiet() -> Iterator[None]:
    """Silence Python's "coroutine ... was never awaited" while the learner's code runs, and until what it
    left is collected: a redis call without await makes such a coroutine, and the verdict says so in words,
    not with a RuntimeWarning (an error in the test run, noise in the notebook, maybe cells later)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
        try:
            yield
        finally:
            # A failed step's traceback holds the learner's frames, in a cycle: collected now, their
            # coroutines go while the warning is silenced.
            gc.collect()


def _on_a_coroutine(exc: BaseException) -> bool:
    """Whether ``exc`` came from using a coroutine object as if it were Redis's reply: a redis call not
    awaited (its message says coroutine, or one of its frames holds a coroutine never started)."""
    return "coroutine" in str(exc) or any(
        inspect.iscoroutine(value) and inspect.getcoroutinestate(value) == inspect.CORO_CREATED
        for frame, _ in traceback.walk_tb(exc.__traceback__) for value in frame.f_locals.values())


async def _call(transcript: Transcript, what: str, call: Callable[[], Any], awaited: str,
                who: str = "check") -> Any:
    """Await the learner's ``call()`` (``what`` says which, ``awaited`` what it should await), noted in the
    transcript as ``who``'s; what it raises becomes a :class:`Mismatch` saying so (but
    ``NotImplementedError``: not done yet)."""
    transcript.add(who, SENT, what)
    try:
        result = call()
        if not inspect.isawaitable(result):
            raise Mismatch(f"{what} should be awaitable: define it with async def", "a coroutine", result)
        value = await result
    except (NotImplementedError, Mismatch):
        raise
    except json.JSONDecodeError as exc:
        raise Mismatch(f"{what} could not read a frame back: what save stored is not JSON (str(frame) is not "
                       "JSON; json.dumps(frame) is)", "frames stored as JSON", f"JSONDecodeError: {exc}"
                       ) from None
    except Exception as exc:
        if type(exc).__name__ == "DataError":
            why = (": a stream entry's fields are strings, so store the frame as JSON in one field, "
                   "{'frame': json.dumps(frame)}")
        elif _on_a_coroutine(exc):
            why = (": a redis call in it was not awaited, so it gave a coroutine, not Redis's reply "
                   f"({awaited})")
        else:
            why = ""
        raise Mismatch(f"{what} raised {type(exc).__name__}{why}", "no exception",
                       f"{type(exc).__name__}: {exc}") from None
    if value is not None:
        transcript.add(who, RECEIVED, json.dumps(value, ensure_ascii=False, default=repr))
    return value


def _recent_step(got: Any, saved: list[dict[str, Any]], room: str, count: int, held: int) -> str:
    """Why ``recent(room, count)`` gave ``got`` instead of the last ``count`` of ``saved``, with ``held``
    entries in the room's stream."""
    asked = f"recent({room!r}, {count})"
    if got == [] and held:
        return (f"the {room}'s stream holds {held} entries but {asked} gave []: redis-py's xrevrange takes "
                "max before min ('+', '-'), or leave both out")
    items = got if isinstance(got, list) else []
    if items and all(isinstance(item, (list, tuple)) and len(item) == 2 for item in items):
        return (f"{asked} should give the frames themselves, as dicts, not the stream's (ID, fields) "
                "entries: json.loads the field that holds each frame")
    if items and all(isinstance(item, str) for item in items):
        return f"{asked} should give the frames as dicts, not as text: json.loads each one"
    if got == saved[-count:][::-1]:
        return f"{asked} gave the last {count} frames newest first, as XREVRANGE does: reverse them"
    if got == saved[:count]:
        return (f"{asked} gave the first {count} frames of the room: XRANGE with count starts at the oldest. "
                f"XREVRANGE with count gives the newest, then reverse them")
    return f"{asked} should give the last {count} frames saved to the {room}, oldest first"


IN_PROCESS_HINT = ("keep the frames in Redis only: save writes them with XADD, and recent reads them back "
                   "from Redis every time, so that every worker (every RoomHistory on that Redis) sees the "
                   "same history. Nothing about the frames may stay in the object itself.")
JSON_HINT = ("store each frame as JSON text in one field of the entry (json.dumps(frame)) and read it back "
             "with json.loads: JSON is what every worker, and any other program, can read.")


def check_stream_history(history_type: Any) -> CheckResult:
    """Exercise 8.2: ``history_type(redis, size=100)`` keeps each room's last ``size`` frames in a Redis
    stream at ``history:{room}``. ``await save(room, frame)`` adds a frame (a dict), ``await recent(room,
    count)`` gives the last ``count`` frames as dicts, oldest first (``[]`` for a room never written),
    rooms are separate, and the stream stays capped at about ``size`` entries.

    Two histories on the same Redis, each with its own connection, stand for two workers: they save in turn
    and each must see every frame. Refused, among others: frames kept in the process's memory (even when
    they are also written to Redis); frames stored as Python's repr or one field per key instead of JSON;
    a list instead of a stream; newest first; the first frames instead of the last; no cap."""
    exercise = "Exercise 8.2 (stream history)"
    hint = ("start with save: one XADD per frame to the room's key (self.key(room)); the exercise's list "
            "says how to store a frame and how to keep the stream capped. Then recent reads them back.")
    if not inspect.isclass(history_type):
        return CheckResult(exercise, "failed", "pass your history class itself: "
                           f"check_stream_history(RoomHistory), not {_what(history_type)}.", hint)
    make: Any = history_type

    def run(url: str) -> CheckResult:
        async def scenario(servers: list[LabServer], transcript: Transcript) -> None:
            workers = [Redis.from_url(url, decode_responses=True) for _ in range(2)]
            try:
                await _history([make(redis, size=HISTORY_SIZE) for redis in workers], workers[0], transcript)
            finally:
                for redis in workers:
                    await redis.aclose()

        with _unawaited_kept_quiet():
            return run_check_on_servers(
                exercise, [], scenario, hint=hint,
                passed="each room keeps its recent frames in a capped Redis stream, which every worker "
                       "sees.")

    return _with_redis(exercise, hint, run)


async def _history(histories: list[Any], redis: Redis, transcript: Transcript) -> None:
    """Exercise 8.2's steps: ``histories`` are two instances of the learner's class on the same Redis (two
    workers, A and B); ``redis`` is the check's own connection, to look at what is stored."""
    names = ("A", "B")

    async def recent(worker: int, room: str, count: int) -> Any:
        history = histories[worker]
        return await _call(transcript, f"recent({room!r}, {count})", lambda: history.recent(room, count),
                           "entries = await self.redis.xrevrange(...)", f"worker {names[worker]}")

    async def save(worker: int, room: str, frame: dict[str, Any]) -> None:
        history = histories[worker]
        await _call(transcript, f"save({room!r}, {frame})", lambda: history.save(room, frame),
                    "await self.redis.xadd(...)", f"worker {names[worker]}")

    expect(await recent(0, "lobby", 5), [], "recent() of a room nothing was saved to should be []")
    lobby = [{"type": "join", "user": "ada", "users": ["ada"]}, *(_frame("ada", str(n)) for n in range(1, 5))]
    lobby[-1] = {**lobby[-1], "typing": None, "urgent": True}  # JSON's null and true, in one frame
    kitchen = [_frame("bo", "k1"), _frame("bo", "k2")]
    saves = [("lobby", 0), ("lobby", 1), ("kitchen", 0), ("lobby", 2), ("lobby", 3), ("kitchen", 1),
             ("lobby", 4)]
    for turn, (room, n) in enumerate(saves):  # workers A and B take turns
        await save(turn % 2, room, (lobby if room == "lobby" else kitchen)[n])
    kind = str(await redis.type("history:lobby"))  # decode_responses=True: a str already
    if kind == "none":
        keys = sorted(await redis.keys("*"))
        if not keys:
            raise Mismatch(f"after {len(saves)} saves, nothing reached Redis: save should write each frame "
                           "to Redis with XADD (and await it: without await, redis.asyncio makes the command "
                           "but never sends it)", "a stream at history:lobby", "no key at all in Redis",
                           IN_PROCESS_HINT)
        raise Mismatch("saving to the lobby should add to its own stream at history:lobby (self.key(room)): "
                       "each room has a stream of its own", "a stream at history:lobby",
                       f"nothing there; the keys in Redis are {keys!r}")
    if kind != "stream":
        raise Mismatch(f"history:lobby should be a Redis stream, made with XADD: it is a {kind}. A stream "
                       "keeps an ID for each entry, and XADD's maxlen caps it", "stream", kind)
    held = await redis.xlen("history:lobby")
    expect(held, len(lobby), f"after {len(lobby)} saves to the lobby, its stream should hold {len(lobby)} "
           "entries (one XADD each)")
    entries = await redis.xrange("history:lobby")
    for (_, fields), frame in zip(entries or [], lobby, strict=False):
        if not any(_json(value) == frame for value in (fields or {}).values()):
            raise Mismatch("each entry of the stream should hold its frame as JSON, in one field",
                           {"frame": json.dumps(frame)}, fields, JSON_HINT)
    for worker in (0, 1):
        for count in (3, 10):
            got = await recent(worker, "lobby", count)
            if got != lobby[-count:]:
                mine = [lobby[n] for turn, (room, n) in enumerate(saves)
                        if room == "lobby" and turn % 2 == worker]
                if got == mine[-count:]:
                    raise Mismatch(f"workers A and B took turns saving to the lobby: {names[worker]}'s "
                                   f"recent('lobby', {count}) should give every worker's frames, from Redis",
                                   lobby[-count:], got, IN_PROCESS_HINT)
                raise Mismatch(_recent_step(got, lobby, "lobby", count, held), lobby[-count:], got)
    expect(await recent(1, "kitchen", 10), kitchen,
           "rooms are separate: recent('kitchen', 10) should give the kitchen's 2 frames, and nothing else")
    attic = [_frame("cy", str(n)) for n in range(FLOOD)]
    transcript.add("worker A", SENT, f"save('attic', ...) {FLOOD} times")
    for frame in attic:
        await histories[0].save("attic", frame)
    length = await redis.xlen("history:attic")
    if not HISTORY_SIZE <= length <= MOST:
        raise Mismatch(f"after {FLOOD} saves to the attic with size={HISTORY_SIZE}, its stream should keep "
                       f"about the last {HISTORY_SIZE} frames: XADD with maxlen=self.size, approximate=True",
                       f"{HISTORY_SIZE} to {MOST} entries", f"{length} entries")
    expect(await recent(1, "attic", 3), attic[-3:], "recent('attic', 3) should give the last 3 of its frames")


def _json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
