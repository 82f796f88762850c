"""Checks for chapter 07, testing: a test is worth the bugs it catches.

In each exercise the learner writes a test of the complete chat app, a function that takes the app:
``def test_x(app): ...`` (with Starlette's ``TestClient``) or ``async def test_x(app): ...`` (with a real
server, ``wslab.serve(app)``). The check runs it four times, each time on a new app and within a time limit:

1. on the complete app (:func:`~wslab.reference.app.create_app`), where it must pass;
2. on the complete app written another way (its classes subclassed; for 7.2, a leave frame that comes a second
   late), where it must pass too: a test that judges the code, or guesses how fast the server is, fails here;
3. on the same app with one bug planted in it (:mod:`wslab.demos.planted`), where it must fail;
4. on the bug written another way (for 7.1, the leaked copies come later), where it must fail too: a test
   that recognises the planted code, or waits a while for a frame that should not come, passes here.

A test that hangs is stopped: the check closes the connections of the app under test and stops the
servers the test started, so that a ``receive_json()`` waiting forever returns, then reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.websockets import WebSocketDisconnect

from wslab.demos.planted import Bug, planted_app
from wslab.lab.server import LabServer, running_servers
from wslab.reference.app import AppRooms, create_app
from wslab.reference.manager import Client
from wslab.reference.protocol import Leave, Private, encode
from wslab.reference.rooms import Room

from .result import CheckResult

__all__ = ["RUN_TIMEOUT", "check_leave_test", "check_private_test", "check_sender_test"]

RUN_TIMEOUT = 10.0  # seconds one run of the learner's test may take
RELEASE_TIMEOUT = 3.0  # seconds a stopped test then gets to end


@dataclass
class _Run:
    """How one run of the learner's test ended."""

    error: BaseException | None = None
    hung: bool = False

    @property
    def passed(self) -> bool:
        return self.error is None and not self.hung


def _run(test: Callable[[Any], Any], app: FastAPI, timeout: float) -> _Run:
    """Run ``test(app)`` in a thread of its own (awaiting it on a new event loop if it is a coroutine),
    at most ``timeout`` seconds."""
    outcome: list[BaseException | None] = []
    servers_before = set(running_servers())

    def target() -> None:
        try:
            result = test(app)
            if inspect.isawaitable(result):
                loop = asyncio.new_event_loop()  # not asyncio.run: nest_asyncio2 may have patched it
                try:
                    loop.run_until_complete(result)
                finally:
                    loop.close()
        except BaseException as exc:  # the verdict, whatever it is
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=target, name="wslab-check-test", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        _release(app, set(running_servers()) - servers_before)
        thread.join(RELEASE_TIMEOUT)
        return _Run(hung=True)
    return _Run(error=outcome[0])


def _release(app: FastAPI, servers: set[LabServer]) -> None:
    """Unblock a test that waits for a frame that never comes: close every connection in the app's
    rooms (a ``TestClient`` receive then gets the close) and stop the servers the test started."""
    rooms = getattr(app.state, "rooms", None)
    if isinstance(rooms, AppRooms):
        for room in tuple(rooms.rooms.values()):
            for client in tuple(room.members.values()):
                handler = client._handler
                if handler is not None:
                    with contextlib.suppress(RuntimeError):  # its loop has closed meanwhile
                        handler.get_loop().call_soon_threadsafe(client.kick, 1011, "the check gave up")
    for server in servers:
        server.stop(timeout=RELEASE_TIMEOUT)


def _describe(error: BaseException) -> str:
    """An exception in one line (its message's first), in words where its own ``str`` says nothing."""
    status = getattr(error, "status_code", None)
    if isinstance(status, int):  # TestClient's WebSocketDenialResponse: the handshake was refused
        return f"{type(error).__name__}: the handshake was refused with HTTP {status}"
    if isinstance(error, WebSocketDisconnect):
        reason = f" {error.reason!r}" if error.reason else ""
        return f"WebSocketDisconnect: the server closed the connection ({error.code}{reason})"
    text = str(error).strip().split("\n")[0]  # pytest's rewritten asserts add lines of explanation
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _where(error: BaseException, test: Callable[[Any], Any]) -> list[str]:
    """The line of the learner's test the exception came through, if any."""
    code = getattr(test, "__code__", None)
    if code is None:
        return []
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == code.co_filename]
    if not frames or not frames[-1].line:
        return []
    return [f"  in {frames[-1].name}(): {frames[-1].line}"]


def _not_a_test(test: Any) -> str | None:
    """Why ``test`` cannot be run as ``test(app)``, or None."""
    if not callable(test):
        return f"expected your test function (def test_...(app): ...), got {test!r}."
    try:
        inspect.signature(test).bind(None)
    except TypeError:
        return (f"{getattr(test, '__name__', 'your test')}() should take one argument, the app under test: "
                "def test_...(app): ...")
    except ValueError:  # no signature to inspect (a builtin): let the run say what happens
        return None
    return None


# -- the apps a test runs on ----------------------------------------------------------------------------
SLOW_LEAVE = 1.0  # seconds the "written another way" app of 7.2 takes to send a leave frame


class _Room(Room):
    """A room as the complete app has it, written another way; with ``slow``, a leave frame comes
    :data:`SLOW_LEAVE` seconds after the user has gone (a busy server: still correct)."""

    slow = False

    def leave(self, user: str, client: Client) -> None:
        if not self.slow:
            super().leave(user, client)
            return
        if self.members.get(user) is client:
            del self.members[user]
            self.version += 1
            frame = Leave(user=user, count=len(self.members), version=self.version)
            asyncio.get_running_loop().call_later(SLOW_LEAVE, self.broadcast, frame)


class _SlowRoom(_Room):
    slow = True


class _Rooms(AppRooms):
    """The complete app, its rooms class subclassed and its methods overridden, doing what the complete app
    does: a test that judges the code rather than what it sends fails here."""

    room_type: type[Room] = _Room

    def room(self, name: str) -> Room:
        return self.rooms.setdefault(name, self.room_type(name))

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        super().relay(room, user, client, data)


class _SlowLeaveRooms(_Rooms):
    room_type = _SlowRoom


class _LateLeakRooms(AppRooms):
    """Bug 7.1, written another way: a private message reaches bo and ada at once, and everyone else in the
    room a moment later, with the room's next frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._leaks: dict[str, list[tuple[str, tuple[str, str]]]] = {}  # room → (text, who has it already)

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        for text, spared in self._leaks.pop(room.name, []):
            for name, member in room.members.items():
                if name not in spared:
                    member.send(text)
        frame = _json(data)
        super().handle(room, user, client, data)
        if isinstance(frame, dict) and frame.get("type") == "private" and frame.get("to") in room.members:
            to, content = frame["to"], frame.get("content")
            if isinstance(to, str) and isinstance(content, str):
                text = encode(Private.model_validate({"from": user, "to": to, "content": content}))
                self._leaks.setdefault(room.name, []).append((text, (user, to)))


class _CountsTheLeaverRoom(_Room):
    """Bug 7.2, written another way: :meth:`leave` is the complete app's, but the leave frame, on its way
    out, counts the user who left again."""

    def broadcast(self, frame: Any, *, exclude: Client | None = None) -> None:
        if isinstance(frame, Leave) and frame.count is not None:
            frame = Leave(user=frame.user, count=frame.count + 1, version=frame.version)
        super().broadcast(frame, exclude=exclude)


class _CountsTheLeaverRooms(_Rooms):
    room_type = _CountsTheLeaverRoom


class _TrustedInHandle(AppRooms):
    """Bug 7.3, written another way: the claimed name is believed in handle, in a class that is also
    called AppRooms."""

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        frame = _json(data)
        claimed = frame.get("user") if isinstance(frame, dict) else None
        super().handle(room, claimed if isinstance(claimed, str) and claimed else user, client, data)


_TrustedInHandle.__name__ = _TrustedInHandle.__qualname__ = "AppRooms"


def _json(data: str | bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


@dataclass
class _Exercise:
    """What one exercise of chapter 07 runs a learner's test on, and says."""

    name: str
    bug: Bug
    the_bug: str  # "a private message also reaches everyone else in the room"
    start: str  # the hint on a stub, and when nothing more precise applies
    misses: str  # the hint when the test passes on the planted bug
    another_good: type[AppRooms]  # the complete app written another way
    another_good_is: str  # what that app does differently
    another_bug: type[AppRooms]  # the bug written another way
    another_bug_is: str  # how
    misses_another: str  # the hint when the test passes on it


HOW_NOT_CODE = ("test what the app sends, over the wire, never how its code is written (its classes, their "
                "names, their source) nor how fast it answers: wait for each frame with a limit, and compare "
                "whole frames.")
HUNG_HINT = ("wait only for frames that must come, each with a limit (next_frame's timeout), never for one "
             "that should not come: on the right app it never does.")


def _judge(exercise: _Exercise, test: Any, *, timeout: float) -> CheckResult:
    title = exercise.name
    problem = _not_a_test(test)
    if problem is not None:
        return CheckResult(title, "failed", problem, exercise.start)
    not_done = CheckResult(title, "not done", "not done yet: your test still raises NotImplementedError. "
                           "Replace the stub with your test and run both cells again.", exercise.start)
    goods = [("the complete app", create_app(), HUNG_HINT),
             (f"the complete app written another way ({exercise.another_good_is})",
              create_app(rooms_type=exercise.another_good), HOW_NOT_CODE)]
    for which, app, hint in goods:
        good = _run(test, app, timeout)
        if isinstance(good.error, NotImplementedError):
            return not_done
        if good.hung:
            return CheckResult(title, "failed", f"not right yet: on {which} your test did not finish within "
                               f"{timeout:g} s. Does it wait for a frame that never comes? TestClient's "
                               "receive_json() waits forever: wait for a frame that must come instead.", hint)
        if good.error is not None:
            details = [f"On {which} it failed with: {_describe(good.error)}", *_where(good.error, test)]
            hint = HOW_NOT_CODE if which != "the complete app" else (
                "read the line above: what does your test expect that the complete app does not do? Read "
                "every frame that comes first (the joins), and compare with what the app really sends.")
            return CheckResult(title, "failed", f"not right yet: your test fails on {which}, which does not "
                               "have the bug: it would fail on working code too.", hint, details)
    bads = [(exercise.the_bug, planted_app(exercise.bug), exercise.misses),
            (f"{exercise.the_bug}, written another way ({exercise.another_bug_is})",
             create_app(rooms_type=exercise.another_bug), exercise.misses_another)]
    caught: BaseException | None = None
    for the_bug, app, hint in bads:
        bad = _run(test, app, timeout)
        if isinstance(bad.error, NotImplementedError):
            return not_done
        if bad.hung:
            return CheckResult(title, "failed", f"not right yet: on the app where {the_bug}, your test "
                               f"did not finish within {timeout:g} s. A test should fail, not hang: wait for "
                               "each frame with a limit, or for a frame that must come.", HUNG_HINT)
        if bad.error is None:
            return CheckResult(title, "failed", f"not right yet: your test also passes on the app where "
                               f"{the_bug}, so it would not catch that bug.", hint)
        caught = caught or bad.error
    assert caught is not None
    return CheckResult(title, "passed", f"your test passes on the complete app and fails on the app where "
                       f"{exercise.the_bug}, however the bug is written: it catches the bug.", "",
                       [f"On the app with the bug it failed with: {_describe(caught)}"])


PRIVATE = _Exercise(
    "Exercise 7.1 (private is private)", "private leak",
    the_bug="a private message also reaches everyone else in the room",
    start="start with a room where a leak could be seen (who would get what should not reach them?), and "
          "remember section 1: a test must never wait for a frame that should not come.",
    misses="a leak shows only to someone who is neither the sender nor the recipient: is there such a user "
           "in your room, and does your test look at what reaches them?",
    another_good=_Rooms, another_good_is="its rooms class subclassed, its relay overridden",
    another_bug=_LateLeakRooms, another_bug_is="the leaked copies sent a moment later, with the room's next "
                                               "frame",
    misses_another="waiting a while for a frame that should not come cannot tell 'never' from 'later'. Make "
                   "a frame that must come (a public message) and check that it is the third user's next "
                   "frame: had the private one reached them, it would come first.",
)
LEAVE = _Exercise(
    "Exercise 7.2 (who is left)", "stale leave",
    the_bug="the leave frame still counts the user who left",
    start="start from section 2's helpers (a real server, connected, next_frame): the exercise says who "
          "joins and how bo leaves; then check what ada is told against what is true.",
    misses="the bug is in how many the leave frame says are left: compare the whole frame.",
    another_good=_SlowLeaveRooms, another_good_is=f"its rooms subclassed, a leave frame that takes "
                                                  f"{SLOW_LEAVE:g} s to come",
    another_bug=_CountsTheLeaverRooms, another_bug_is="its Room.leave untouched, the count wrong on the way "
                                                      "out",
    misses_another=HOW_NOT_CODE,
)
SENDER = _Exercise(
    "Exercise 7.3 (who said it)", "trusted sender",
    the_bug='a "user" field sent by the client decides who a message is from',
    start="start from section 1's helpers: what could a client put in its frame to pass itself off as "
          "someone else, and what should everyone then see?",
    misses="send a frame that claims to come from another user, and check the name everyone receives.",
    another_good=_Rooms, another_good_is="its rooms class subclassed, its relay overridden",
    another_bug=_TrustedInHandle, another_bug_is="in handle rather than relay, in a class also called "
                                                 "AppRooms",
    misses_another=HOW_NOT_CODE,
)


def check_private_test(test: Any, *, timeout: float = RUN_TIMEOUT) -> CheckResult:
    """Exercise 7.1: ``test(app)`` passes on the complete app and fails when a private message also
    reaches everyone else in the room (``planted_app("private leak")``).

    Each test runs on the complete app, on it written another way (a subclass), on the planted bug, and on
    the bug written another way (the leaked copies arrive later). Refused: a test that asserts nothing or
    only what bo gets; one that inspects the app's classes or source; one that waits a while for a frame
    that should not come (it cannot tell "never" from "later"); one that hangs."""
    return _judge(PRIVATE, test, timeout=timeout)


def check_leave_test(test: Any, *, timeout: float = RUN_TIMEOUT) -> CheckResult:
    """Exercise 7.2: ``test(app)`` passes on the complete app and fails when a ``leave`` frame still
    counts the user who left (``planted_app("stale leave")``).

    Refused: a test that checks only the frame's type or user; one that inspects ``Room.leave``; one that
    sleeps, then barely waits for the leave frame (the complete app, written another way, sends it after
    a second); one that hangs."""
    return _judge(LEAVE, test, timeout=timeout)


def check_sender_test(test: Any, *, timeout: float = RUN_TIMEOUT) -> CheckResult:
    """Exercise 7.3: ``test(app)`` passes on the complete app and fails when a ``user`` field sent by the
    client decides who a message is from (``planted_app("trusted sender")``).

    Refused: a test that sends no forged field, or forges the sender's own name; one that recognises the
    planted class by its name or its methods; one that hangs."""
    return _judge(SENDER, test, timeout=timeout)
