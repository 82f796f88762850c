"""Chapter 07's checks: each passes on the notebook's own test, says "not done" on its stub, and fails,
saying why, on plausible wrong tests: one that asserts nothing, one that fails on the complete app too, one
that hangs."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from websockets.asyncio.client import connect

import wslab
from wslab.checks.result import CheckResult
from wslab.checks.testing import check_leave_test, check_private_test, check_sender_test
from wslab.demos.planted import LeakyPrivateRooms
from wslab.reference.app import AppRooms
from wslab.reference.rooms import Room
from wslab.tools.student import has_solution, stub_solutions

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "07_testing.ipynb"
HELPERS = ("def token_for(", "async def next_frame(")  # the cells defining the helpers the answers use
EXERCISES: dict[str, tuple[str, Callable[..., CheckResult]]] = {
    "7.1": ("test_private_is_private", check_private_test),
    "7.2": ("test_leave_lists_who_is_left", check_leave_test),
    "7.3": ("test_the_sender_comes_from_the_token", check_sender_test),
}
Test = Callable[[FastAPI], Any]


def notebook_test(name: str, *, stub: bool = False) -> Test:
    """The notebook's answer defining ``name`` (or its stub), run after the cells of the helpers it uses."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    cells = [c.source for c in notebook.cells if c.cell_type == "code"]
    namespace: dict[str, Any] = {}
    for marker in HELPERS:
        (helper,) = [source for source in cells if marker in source]
        exec(helper, namespace)
    (answer,) = [source for source in cells if has_solution(source) and f"def {name}(" in source]
    exec(stub_solutions(answer) if stub else answer, namespace)
    test: Test = namespace[name]
    return test


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_notebook_answer_passes(exercise: str) -> None:
    name, check = EXERCISES[exercise]
    result = check(notebook_test(name))
    assert result.passed, str(result)
    assert str(result).startswith(f"✅ Exercise {exercise} (")
    assert "On the app with the bug it failed with: AssertionError: " in str(result)


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_stub_is_not_done_yet_and_does_not_raise(exercise: str) -> None:
    name, check = EXERCISES[exercise]
    result = check(notebook_test(name, stub=True))
    assert result.status == "not done", str(result)
    assert "not done yet" in str(result) and "NotImplementedError" in str(result) and "Hint:" in str(result)


# -- helpers for the wrong answers below --------------------------------------------------------------
@contextlib.contextmanager
def joined(client: TestClient, name: str) -> Iterator[WebSocketTestSession]:
    token = client.post("/token", json={"username": name}).json()["access_token"]
    with client.websocket_connect("/ws/chat/lobby") as ws:
        ws.send_json({"type": "auth", "token": token})
        assert ws.receive_json()["type"] == "join"
        yield ws


def room_of_three(app: FastAPI, play: Callable[[Any, Any, Any], object]) -> None:
    """ada, bo and cy in the lobby, every join frame read; then ``play(ada, bo, cy)``."""
    with TestClient(app) as client, joined(client, "ada") as ada, joined(client, "bo") as bo, \
            joined(client, "cy") as cy:
        for ws, joins in ((ada, 2), (bo, 1)):
            for _ in range(joins):
                ws.receive_json()
        play(ada, bo, cy)


def psst(ada: Any) -> dict[str, str]:
    ada.send_json({"type": "private", "to": "bo", "content": "psst"})
    return {"type": "private", "from": "ada", "to": "bo", "content": "psst"}


# -- exercise 7.1 ---------------------------------------------------------------------------------------
def asserts_nothing(app: FastAPI) -> None:
    room_of_three(app, lambda ada, bo, cy: psst(ada))


def only_checks_that_bo_gets_it(app: FastAPI) -> None:
    def play(ada: Any, bo: Any, cy: Any) -> None:
        private = psst(ada)
        assert bo.receive_json() == private

    room_of_three(app, play)


def expects_no_copy_for_the_sender(app: FastAPI) -> None:
    def play(ada: Any, bo: Any, cy: Any) -> None:
        psst(ada)
        ada.send_json({"type": "message", "content": "hi all"})
        assert ada.receive_json()["type"] == "message", "ada got a copy of her private"

    room_of_three(app, play)


def waits_for_what_should_not_come(app: FastAPI) -> None:
    def play(ada: Any, bo: Any, cy: Any) -> None:
        psst(ada)
        assert cy.receive_json()["type"] != "private"  # on the right app, nothing ever comes

    room_of_three(app, play)


def test_a_test_that_asserts_nothing_fails() -> None:
    result = check_private_test(asserts_nothing)
    assert result.status == "failed", str(result)
    assert "your test also passes on the app where a private message also reaches everyone" in str(result)
    assert "Hint: a leak shows only to someone who is neither the sender nor the recipient" in str(result)


def test_a_test_that_checks_only_the_recipient_fails() -> None:
    result = check_private_test(only_checks_that_bo_gets_it)
    assert result.status == "failed" and "so it would not catch that bug" in str(result)


def test_a_test_that_fails_on_the_complete_app_says_where_and_why() -> None:
    result = check_private_test(expects_no_copy_for_the_sender)
    assert result.status == "failed", str(result)
    assert "your test fails on the complete app, which does not have the bug" in str(result)
    assert result.details == [
        "On the complete app it failed with: AssertionError: ada got a copy of her private",
        '  in play(): assert ada.receive_json()["type"] == "message", "ada got a copy of her private"',
    ]


def test_a_test_that_waits_forever_is_stopped_and_said_to_hang() -> None:
    threads = set(threading.enumerate())
    result = check_private_test(waits_for_what_should_not_come, timeout=1)
    assert result.status == "failed", str(result)
    assert "on the complete app your test did not finish within 1 s" in str(result)
    assert "receive_json() waits forever" in str(result)
    assert set(threading.enumerate()) <= threads, "the stopped test left a thread running"


def test_a_test_that_hangs_only_on_the_planted_app_is_said_to_hang() -> None:
    def hangs_on_the_bug(app: FastAPI) -> None:
        def play(ada: Any, bo: Any, cy: Any) -> None:
            if isinstance(app.state.rooms, LeakyPrivateRooms):
                cy.receive_json()  # the private message
                cy.receive_json()  # and nothing more, ever

        room_of_three(app, play)

    result = check_private_test(hangs_on_the_bug, timeout=1)
    assert result.status == "failed", str(result)
    assert "on the app where a private message also reaches everyone else in the room, your test did not " \
           "finish within 1 s. A test should fail, not hang" in str(result)


def test_a_refused_handshake_is_described_in_words() -> None:
    def from_another_site(app: FastAPI) -> None:
        with TestClient(app) as client, \
                client.websocket_connect("/ws/chat/lobby", headers={"origin": "http://evil.example"}):
            pass

    result = check_private_test(from_another_site)
    assert result.details[0] == ("On the complete app it failed with: WebSocketDenialResponse: the handshake "
                                 "was refused with HTTP 403")


# -- exercise 7.2 ---------------------------------------------------------------------------------------
def leave_with_testclient(count: int | None) -> Test:
    """A leave test with TestClient: bo leaves his ``with`` block; ada's next frame is checked, whole if
    ``count`` is given, else only its type and user."""

    def test(app: FastAPI) -> None:
        with TestClient(app) as client, joined(client, "ada") as ada:
            with joined(client, "bo"):
                ada.receive_json()
            frame = ada.receive_json()
            if count is None:
                assert frame["type"] == "leave" and frame["user"] == "bo", frame
            else:
                assert frame == {"type": "leave", "user": "bo", "count": count, "version": 3}, frame

    return test


def test_a_leave_test_with_testclient_passes_too() -> None:
    assert check_leave_test(leave_with_testclient(1)).passed


def test_a_leave_test_that_ignores_the_count_fails() -> None:
    result = check_leave_test(leave_with_testclient(None))
    assert result.status == "failed" and "the leave frame still counts the user who left" in str(result)


def test_a_leave_test_that_expects_an_empty_room_fails_on_the_complete_app() -> None:
    result = check_leave_test(leave_with_testclient(0))
    assert result.status == "failed" and "fails on the complete app" in str(result)
    assert "AssertionError: {'type': 'leave', 'user': 'bo', 'count': 1, 'version': 3}" in result.details[0]


async def waits_without_a_limit(app: FastAPI) -> None:
    with wslab.serve(app, name="stuck test") as server:
        async with connect(server.ws_url("/ws/chat/lobby")) as ws:
            await ws.recv()  # nobody logs in, and this waits with no limit for the auth timeout


def test_an_async_test_that_hangs_is_stopped_with_its_server() -> None:
    result = check_leave_test(waits_without_a_limit, timeout=1)
    assert result.status == "failed" and "did not finish within 1 s" in str(result)
    assert not [s for s in wslab.running_servers() if s.name == "stuck test"]


# -- exercise 7.3 ---------------------------------------------------------------------------------------
def sender_test(expected_user: str | None) -> Test:
    async def test(app: FastAPI) -> None:
        with wslab.serve(app, name="under test") as server:
            rooms = app.state.rooms
            async with connect(server.ws_url("/ws/chat/lobby")) as ada:
                await ada.send(json.dumps({"type": "auth", "token": rooms.tokens.issue("ada")}))
                await asyncio.wait_for(ada.recv(), 2)
                await ada.send(json.dumps({"type": "message", "content": "hi", "user": "bo"}))
                frame = json.loads(await asyncio.wait_for(ada.recv(), 2))
                assert frame["content"] == "hi", frame
                if expected_user is not None:
                    assert frame["user"] == expected_user, frame

    return test


def test_an_async_sender_test_passes() -> None:
    assert check_sender_test(sender_test("ada")).passed


def test_a_sender_test_that_checks_only_the_content_fails() -> None:
    result = check_sender_test(sender_test(None))
    assert result.status == "failed" and 'a "user" field sent by the client decides' in str(result)


def test_a_sender_test_that_believes_the_frame_fails_on_the_complete_app() -> None:
    result = check_sender_test(sender_test("bo"))
    assert result.status == "failed" and "fails on the complete app" in str(result)


# -- what is passed -------------------------------------------------------------------------------------
def test_something_that_is_not_a_test_fails_clearly() -> None:
    result = check_private_test(None)
    assert result.status == "failed" and "expected your test function" in str(result)


def test_a_test_without_the_app_argument_fails_clearly() -> None:
    def test_private() -> None:
        pass

    result = check_private_test(test_private)
    assert result.status == "failed"
    assert "test_private() should take one argument, the app under test" in str(result)


def test_a_check_leaves_no_server_running() -> None:
    check_sender_test(sender_test("ada"))
    assert not wslab.running_servers()


# -- tests that judge the code, wait for silence, or guess how long the server takes ----------------------
def private_judged_by_its_class(app: FastAPI) -> None:
    assert type(app.state.rooms).relay is AppRooms.relay, "relay was overridden"


def private_judged_by_its_source(app: FastAPI) -> None:
    assert "room.broadcast(Private" not in inspect.getsource(type(app.state.rooms))


def private_judged_by_silence(app: FastAPI) -> None:
    """Waits half a second on cy for the leaked copy, in a thread, and calls the silence a pass."""

    def play(ada: Any, bo: Any, cy: Any) -> None:
        psst(ada)
        bo.receive_json()
        got: list[Any] = []
        waiting = threading.Thread(target=lambda: got.append(cy.receive_json()), daemon=True)
        waiting.start()
        waiting.join(timeout=0.5)
        assert not got, got
        cy.send_json({"type": "message", "content": "done"})  # lets the waiting thread end
        waiting.join(timeout=2)

    room_of_three(app, play)


async def leave_after_a_sleep(app: FastAPI) -> None:
    """Sleeps a guess of how long the server needs, then barely waits for the leave frame."""
    with wslab.serve(app, name="under test") as server:
        rooms = app.state.rooms
        async with connect(server.ws_url("/ws/chat/lobby")) as ada:
            await ada.send(json.dumps({"type": "auth", "token": rooms.tokens.issue("ada")}))
            await asyncio.wait_for(ada.recv(), 2)
            async with connect(server.ws_url("/ws/chat/lobby")) as bo:
                await bo.send(json.dumps({"type": "auth", "token": rooms.tokens.issue("bo")}))
                await asyncio.wait_for(ada.recv(), 2)  # bo's join
            await asyncio.sleep(0.5)
            frame = json.loads(await asyncio.wait_for(ada.recv(), 0.05))
            assert frame == {"type": "leave", "user": "bo", "count": 1, "version": 3}, frame


def leave_judged_by_its_class(app: FastAPI) -> None:
    room = app.state.rooms.room("probe")
    assert type(room).leave is Room.leave
    app.state.rooms.rooms.pop("probe", None)


def sender_judged_by_the_class_name(app: FastAPI) -> None:
    assert type(app.state.rooms).__name__ == "AppRooms"


@pytest.mark.parametrize(("check", "test", "reported", "hint"), [
    (check_private_test, private_judged_by_its_class, "fails on the complete app written another way",
     "never how its code is written"),
    (check_private_test, private_judged_by_its_source, "written another way (the leaked copies sent a moment "
                                                       "later", "Make a frame that must come"),
    (check_private_test, private_judged_by_silence, "so it would not catch that bug",
     "cannot tell 'never' from 'later'"),
    (check_leave_test, leave_after_a_sleep, "fails on the complete app written another way (its rooms "
                                            "subclassed, a leave frame that takes 1 s to come)",
     "nor how fast it answers"),
    (check_leave_test, leave_judged_by_its_class, "fails on the complete app written another way",
     "never how its code is written"),
    (check_sender_test, sender_judged_by_the_class_name, "fails on the complete app written another way",
     "never how its code is written"),
])
def test_tests_that_judge_the_code_or_the_clock_fail(check: Callable[..., CheckResult], test: Test,
                                                      reported: str, hint: str) -> None:
    result = check(test)
    assert result.status == "failed" and reported in str(result), str(result)
    assert hint in result.hint, result.hint


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_stub_hint_says_where_to_start_not_the_answer(exercise: str) -> None:
    name, check = EXERCISES[exercise]
    hint = check(notebook_test(name, stub=True)).hint
    assert hint.startswith("start ")
    for answer in ("'user': 'bo'", "{'type': 'leave'", "public message", "three users"):
        assert answer not in hint
