"""Checks for chapter 07, testing: a test is worth the bugs it catches.

In each exercise the learner writes a test of the complete chat app, a function that takes the app:
``def test_x(app): ...`` (with Starlette's ``TestClient``) or ``async def test_x(app): ...`` (with a real
server, ``wslab.serve(app)``). The check runs it twice, each time on a new app and within a time limit:

1. on the complete app (:func:`~wslab.reference.app.create_app`), where it must pass;
2. on the same app with one bug planted in it (:mod:`wslab.demos.planted`), where it must fail.

A test that hangs is stopped: the check closes the connections of the app under test and stops the
servers the test started, so that a ``receive_json()`` waiting forever returns, then reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
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


def _judge(exercise: str, test: Any, bug: Bug, *, the_bug: str, hint: str, timeout: float) -> CheckResult:
    problem = _not_a_test(test)
    if problem is not None:
        return CheckResult(exercise, "failed", problem, hint)
    not_done = CheckResult(exercise, "not done", "not done yet: your test still raises NotImplementedError. "
                           "Replace the stub with your test and run both cells again.", hint)
    good = _run(test, create_app(), timeout)
    if isinstance(good.error, NotImplementedError):
        return not_done
    if good.hung:
        return CheckResult(exercise, "failed", f"not right yet: on the complete app your test did not finish "
                           f"within {timeout:g} s. Does it wait for a frame that never comes? TestClient's "
                           "receive_json() waits forever: wait for a frame that must come instead.", hint)
    if good.error is not None:
        details = [f"On the complete app it failed with: {_describe(good.error)}", *_where(good.error, test)]
        return CheckResult(exercise, "failed", "not right yet: your test fails on the complete app, which "
                           "does not have the bug: it would fail on working code too.", hint, details)
    bad = _run(test, planted_app(bug), timeout)
    if isinstance(bad.error, NotImplementedError):
        return not_done
    if bad.hung:
        return CheckResult(exercise, "failed", f"not right yet: on the app where {the_bug}, your test "
                           f"did not finish within {timeout:g} s. A test should fail, not hang: wait for "
                           "each frame with a limit, or for a frame that must come.", hint)
    if bad.error is None:
        return CheckResult(exercise, "failed", f"not right yet: your test also passes on the app where "
                           f"{the_bug}, so it would not catch that bug.", hint)
    return CheckResult(exercise, "passed", f"your test passes on the complete app and fails on the app where "
                       f"{the_bug}: it catches the bug.", hint,
                       [f"On the app with the bug it failed with: {_describe(bad.error)}"])


def check_private_test(test: Any, *, timeout: float = RUN_TIMEOUT) -> CheckResult:
    """Exercise 7.1: ``test(app)`` passes on the complete app and fails when a private message also
    reaches everyone else in the room (``planted_app("private leak")``)."""
    return _judge(
        "Exercise 7.1 (private is private)", test, "private leak",
        the_bug="a private message also reaches everyone else in the room", timeout=timeout,
        hint="put three users in the room. After ada's private message to bo, have ada send a public "
             "message: cy's next frame must be that public one (the private one would have come first). "
             "Never wait for a frame that should not come: it would wait forever on the right app.",
    )


def check_leave_test(test: Any, *, timeout: float = RUN_TIMEOUT) -> CheckResult:
    """Exercise 7.2: ``test(app)`` passes on the complete app and fails when a ``leave`` frame still
    counts the user who left (``planted_app("stale leave")``)."""
    return _judge(
        "Exercise 7.2 (who is left)", test, "stale leave",
        the_bug="the leave frame still counts the user who left", timeout=timeout,
        hint="let ada and bo join, read ada's frame about bo's join, then let bo go (close his connection, "
             "or drop it): ada's next frame must be exactly "
             "{'type': 'leave', 'user': 'bo', 'count': 1, 'version': 3}.",
    )


def check_sender_test(test: Any, *, timeout: float = RUN_TIMEOUT) -> CheckResult:
    """Exercise 7.3: ``test(app)`` passes on the complete app and fails when a ``user`` field sent by the
    client decides who a message is from (``planted_app("trusted sender")``)."""
    return _judge(
        "Exercise 7.3 (who said it)", test, "trusted sender",
        the_bug='a "user" field sent by the client decides who a message is from', timeout=timeout,
        hint="have ada send {'type': 'message', 'content': 'hi', 'user': 'bo'}, a frame that claims to be "
             "from bo: the message that comes back must say 'user': 'ada', the name in her token.",
    )
