"""The live classroom's server (wslab.reference.classroom) with real learners (wslab.lab.classroom) on a real
port-0 server: the grid, what the instructor says, and every bad input refused while the grid stays right."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

import wslab
from wslab.lab.class_member import ClassJoinError, ClassMember, mistake_of
from wslab.lab.server import LabServer
from wslab.reference.classroom import MAX_BATCH, Classroom, class_app
from wslab.reference.manager import MAX_FRAME

WAIT = 5.0  # seconds any one step may take


@pytest.fixture(autouse=True)
def class_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where join_class keeps the membership for the other kernels: a folder of this test's own."""
    monkeypatch.setenv("WSLAB_CLASS_DIR", str(tmp_path / "class"))
    return tmp_path / "class"


@pytest.fixture
def served() -> Iterator[tuple[LabServer, Classroom]]:
    app = class_app(passcode="owl")
    server = wslab.serve(app, name="t-classroom")
    yield server, app.state.classroom
    server.stop()


@pytest.fixture
def members() -> Iterator[Callable[..., ClassMember]]:
    made: list[ClassMember] = []

    def make(name: str, server: LabServer, passcode: str = "owl", **options: Any) -> ClassMember:
        member = ClassMember(name, server.url, passcode, **options)
        made.append(member)
        return member.start()

    yield make
    for member in made:
        member.stop()


def token(server: LabServer, name: str) -> str:
    response = httpx.post(server.url.rstrip("/") + "/token", json={"username": name, "passcode": "owl"})
    return str(response.json()["access_token"])


async def grid_until(server: LabServer, classroom: Classroom, done: Callable[[dict[str, Any]], bool]
                     ) -> dict[str, Any]:
    """Open the instructor's socket and return the first grid for which ``done`` is true."""
    async with connect(server.ws_url("/ws/class/instructor")) as ws:
        await ws.send(json.dumps({"type": "auth", "token": classroom.instructor_token()}))
        async with asyncio.timeout(WAIT):
            while True:
                grid = json.loads(await ws.recv())
                if done(grid):
                    return grid


def cells(grid: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {learner["name"]: {ex: cell["status"] for ex, cell in learner["cells"].items()}
            for learner in grid["learners"]}


async def learner_socket(server: LabServer, name: str) -> ClientConnection:
    ws = await connect(server.ws_url("/ws/class"))
    await ws.send(json.dumps({"type": "auth", "token": token(server, name)}))
    assert json.loads(await ws.recv()) == {"type": "welcome", "user": name}
    return ws


def verdict(ident: str, exercise: str = "2.2", status: str = "passed", **extra: Any) -> dict[str, Any]:
    return {"id": ident, "exercise": exercise, "status": status, "at": time.time(), **extra}


async def reply(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        frame: dict[str, Any] = json.loads(await ws.recv())
        return frame


# -- the grid ---------------------------------------------------------------------------------------
def test_verdicts_fill_the_grid_with_pass_counts_and_the_most_common_mistake(
        served: tuple[LabServer, Classroom], members: Callable[..., ClassMember]) -> None:
    server, classroom = served
    ada, bo, cy = (members(name, server) for name in ("ada", "bo", "cy"))
    ada.report("Exercise 2.2 (no echo)", "failed", "not right yet: the reply to 'hi' should be 'HI'.")
    ada.report("Exercise 2.2 (no echo)", "passed", "everyone but the sender got it.")
    bo.report("Exercise 2.2 (no echo)", "failed", "not right yet: the reply to 'yo' should be 'YO'.")
    cy.report("Exercise 2.2 (no echo)", "failed", "not right yet: your code raised KeyError: 'user'; then: x")
    cy.report("Exercise 1.1 (shout)", "not done", "not done yet")
    assert ada.wait_delivered(2, WAIT) and bo.wait_delivered(1, WAIT) and cy.wait_delivered(2, WAIT)
    grid = wslab.run_sync(grid_until(server, classroom, lambda g: g["connected"] == 3))
    assert cells(grid) == {"ada": {"2.2": "passed"}, "bo": {"2.2": "failed"},
                           "cy": {"2.2": "failed", "1.1": "not done"}}
    assert [(ex["id"], ex["title"], ex["passed"]) for ex in grid["exercises"]] == [
        ("1.1", "shout", 0), ("2.2", "no echo", 1)]
    # ada and bo met the same kind of mistake (the quoted values differ); cy another one
    assert grid["exercises"][1]["mistake"] == {"kind": "the reply to … should be ….", "learners": 2}
    assert classroom.csv().splitlines() == ["learner,1.1,2.2", "ada,,passed", "bo,,failed",
                                            "cy,not done,failed"]


def test_a_mistake_leaves_the_notebook_without_values_or_code() -> None:
    assert mistake_of("not right yet: your code raised NameError: name 'secret_var' is not defined; "
                      "then: x") == "your code raised NameError"
    assert mistake_of('not right yet: expected your app (a FastAPI object), got <function f at 0x1>.') == (
        "expected your app (a FastAPI object), got ….")
    assert mistake_of("not right yet: the server did not answer in time.") == (
        "the server did not answer in time.")


def test_resent_verdicts_count_once_and_the_newest_wins(served: tuple[LabServer, Classroom]) -> None:
    server, classroom = served

    async def scenario() -> None:
        ws = await learner_socket(server, "ada")
        batch = [verdict("a" * 8, status="failed", mistake="m"), verdict("b" * 8, status="passed")]
        for _ in range(3):  # a reconnect sends the whole history again
            await ws.send(json.dumps({"type": "verdicts", "verdicts": batch}))
            assert await reply(ws) == {"type": "ack", "ids": ["a" * 8, "b" * 8]}
        await ws.close()

    wslab.run_sync(scenario())
    learner = classroom.learners["ada"]
    assert learner.seen == {"a" * 8, "b" * 8} and learner.latest["2.2"].status == "passed"
    assert classroom.common_mistake("2.2") == {"kind": "m", "learners": 1}


# -- speaking to the room ---------------------------------------------------------------------------
def test_what_the_instructor_says_reaches_notebooks_and_chat_pages(
        served: tuple[LabServer, Classroom], members: Callable[..., ClassMember]) -> None:
    server, classroom = served
    ada = members("ada", server)
    changed: list[str] = []
    ada.on_change = lambda member: changed.append(member.state)

    async def scenario() -> list[dict[str, Any]]:
        async with connect(server.ws_url("/ws/chat/lobby")) as chat:
            await chat.send(json.dumps({"type": "auth", "token": token(server, "bo")}))
            assert (await reply(chat))["type"] == "join"
            async with connect(server.ws_url("/ws/class/instructor")) as page:
                await page.send(json.dumps({"type": "auth", "token": classroom.instructor_token()}))
                await reply(page)
                await page.send(json.dumps({"type": "say", "kind": "chapter", "content": "chapter 04"}))
                await page.send(json.dumps({"type": "say", "kind": "hint", "exercise": "2.2",
                                            "content": "exclude the sender"}))
                return [await reply(chat), await reply(chat)]

    chat_frames = wslab.run_sync(scenario())
    assert [(frame["type"], frame["content"]) for frame in chat_frames] == [
        ("announcement", "Next: chapter 04"), ("announcement", "Hint for 2.2: exclude the sender")]
    notices: list[str] = []  # (on_change also tells of ada's connection: wait for the notices themselves)
    assert wslab.run_sync(_until(lambda: notices.extend(ada.take_notices()) or len(notices) >= 2))
    assert notices == ["➡️  Your instructor: we're moving on: chapter 04",
                       "💡 Hint from your instructor for 2.2: exclude the sender"]
    assert changed and ada.take_notices() == []


async def _until(condition: Callable[[], bool]) -> bool:
    """Poll a condition another thread makes true (bounded: WAIT seconds)."""
    for _ in range(int(WAIT / 0.02)):
        if condition():
            return True
        await asyncio.sleep(0.02)
    return False


# -- reconnection -----------------------------------------------------------------------------------
def test_a_learner_comes_back_after_a_restart_and_resends_what_was_made_offline(
        members: Callable[..., ClassMember]) -> None:
    server = wslab.serve(class_app(passcode="owl"), name="t-classroom-restart")
    try:
        ada = members("ada", server, retry_min=0.05, retry_max=0.2)
        ada.report("Exercise 1.1 (shout)", "passed")
        assert ada.wait_delivered(1, WAIT)
        server.stop()
        ada.report("Exercise 1.2 (sum)", "failed", "not right yet: the sum of [] is 0.")  # made offline
        app = class_app(passcode="owl")  # a new process would have a new secret: ada logs in again
        server = wslab.serve(app, name="t-classroom-restart")  # the same name keeps the port
        classroom: Classroom = app.state.classroom
        grid = wslab.run_sync(grid_until(server, classroom, lambda g: len(cells(g).get("ada", {})) == 2))
        assert cells(grid) == {"ada": {"1.1": "passed", "1.2": "failed"}}
        assert ada.connects == 2 and len(classroom.learners["ada"].seen) == 2
    finally:
        server.stop()


def test_reporting_a_verdict_never_waits_for_the_network(members: Callable[..., ClassMember]) -> None:
    server = wslab.serve(class_app(passcode="owl"), name="t-classroom-fast")
    ada = members("ada", server, retry_min=5, retry_max=5)
    server.stop()  # offline: every verdict waits in the queue
    took = []
    for n in range(500):
        start = time.perf_counter()
        ada.report(f"Exercise 1.{n % 3 + 1} (x)", "failed", "not right yet: the reply to 'a' should be 'A'.")
        took.append(time.perf_counter() - start)
    took.sort()
    assert took[len(took) // 2] < 0.001 and took[-5] < 0.005, took[-5:]


def test_joining_with_a_wrong_passcode_or_no_server_says_so(served: tuple[LabServer, Classroom]) -> None:
    server, _ = served
    with pytest.raises(ClassJoinError, match="wrong or missing passcode"):
        ClassMember("ada", server.url, "cat").start()
    with pytest.raises(ClassJoinError, match="cannot log in here: use 1 to 32 letters"):
        ClassMember("a b", server.url, "owl").start()
    with pytest.raises(ClassJoinError, match="is not the class's address"):
        ClassMember("ada", "192.168.1.20:8000", "owl")


# -- bad input --------------------------------------------------------------------------------------
def test_a_learner_cannot_post_for_another_and_bad_frames_get_clear_errors(
        served: tuple[LabServer, Classroom]) -> None:
    server, classroom = served

    async def scenario() -> list[str]:
        ws = await learner_socket(server, "ada")
        errors = []
        for frame in ({"type": "verdicts", "user": "bo", "verdicts": [verdict("c" * 8)]},
                      {"type": "verdicts", "verdicts": [verdict("d" * 8, name="bo")]},
                      "not json", [1, 2],
                      {"type": "verdicts", "verdicts": [verdict("e" * 8, status="great")]},
                      {"type": "verdicts", "verdicts": [verdict("short")]},
                      {"type": "verdicts", "verdicts": [verdict(f"{n:08d}") for n in range(MAX_BATCH + 1)]}):
            await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
            answer = await reply(ws)
            assert answer["type"] in ("error", "ack"), answer
            errors.append(answer.get("message", "ack"))
        await ws.send(json.dumps({"type": "verdicts", "verdicts": [verdict("f" * 8)]}))
        assert await reply(ws) == {"type": "ack", "ids": ["f" * 8]}  # still open, still counted
        await ws.close()
        return errors

    errors = wslab.run_sync(scenario())
    assert "cannot post for anyone else" in errors[0]
    # a forged field inside a verdict is ignored: identity comes from the token
    assert errors[1] == "ack" and "bo" not in classroom.learners
    assert errors[2].startswith("not valid JSON") and "JSON object" in errors[3]
    assert "verdicts.0.status" in errors[4] and "verdicts.0.id" in errors[5] and '"verdicts"' in errors[6]
    assert set(classroom.learners) == {"ada"} and classroom.learners["ada"].seen == {"d" * 8, "f" * 8}


def test_floods_oversized_frames_and_wrong_keys_are_refused_and_others_are_unharmed(
        served: tuple[LabServer, Classroom], members: Callable[..., ClassMember]) -> None:
    server, classroom = served
    bo = members("bo", server)
    bo.report("Exercise 2.1 (count)", "passed")
    assert bo.wait_delivered(1, WAIT)

    async def closed(ws: ClientConnection) -> tuple[int, str]:
        with pytest.raises(ConnectionClosed) as info:
            async with asyncio.timeout(WAIT):
                while True:
                    await ws.recv()
        await ws.close()  # lets its socket go now, not when it is collected during another test
        assert info.value.rcvd is not None
        return info.value.rcvd.code, info.value.rcvd.reason

    async def scenario() -> list[tuple[int, str]]:
        seen = []
        flood = await learner_socket(server, "flood")
        for n in range(200):  # as fast as it can: the rate limit closes it
            frame = {"type": "verdicts", "verdicts": [verdict(f"{n:08d}", exercise="2.1", status="failed")]}
            try:
                await flood.send(json.dumps(frame))
            except ConnectionClosed:
                break
        seen.append(await closed(flood))
        big = await learner_socket(server, "big")
        await big.send("x" * (MAX_FRAME + 1))
        seen.append(await closed(big))
        async with connect(server.ws_url("/ws/class/instructor")) as page:  # a learner's token
            await page.send(json.dumps({"type": "auth", "token": token(server, "ada")}))
            seen.append(await closed(page))
        async with connect(server.ws_url("/ws/class")) as nobody:
            await nobody.send(json.dumps({"type": "auth", "token": "forged.token.here"}))
            seen.append(await closed(nobody))
        return seen

    flood, big, page, nobody = wslab.run_sync(scenario())
    assert flood[0] == 1008 and "too many messages" in flood[1]
    assert big[0] == 1009
    assert page == (1008, "this is the instructor's page: open the address `wslab serve --class` printed")
    assert nobody[0] == 1008 and nobody[1].startswith("auth: not a token")
    grid = wslab.run_sync(grid_until(server, classroom, lambda g: g["connected"] == 1))
    assert cells(grid)["bo"] == {"2.1": "passed"}
    assert [ex["passed"] for ex in grid["exercises"]] == [1]


# -- the notebook's side ----------------------------------------------------------------------------
def quiet_shout_app() -> FastAPI:
    """A wrong answer to exercise 1.1: /shout echoes the text as it came."""
    app = FastAPI()

    @app.websocket("/shout")
    async def shout(websocket: WebSocket) -> None:
        await websocket.accept()
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                await websocket.send_text(await websocket.receive_text())

    return app


def test_a_shown_check_is_sent_once_with_its_kind_of_mistake_and_brings_what_the_instructor_said(
        served: tuple[LabServer, Classroom], capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.lib.pretty import pretty

    from wslab.checks.echo import check_shout

    server, classroom = served
    wrong = check_shout(quiet_shout_app())  # a real check on a wrong answer: it echoes, not shouts
    assert wrong.status == "failed"
    assert pretty(wrong) == str(wrong)  # outside a class, a verdict shows as it always did
    wslab.join_class("ada", server.url, passcode="owl")
    try:
        assert "🎓 Class at" in capsys.readouterr().out  # the status line, printed outside Jupyter
        shown = pretty(wrong)
        assert shown == str(wrong)
        pretty(wrong)  # shown again (a re-displayed output): still one verdict
        grid = wslab.run_sync(grid_until(server, classroom, lambda g: bool(cells(g).get("ada"))))
        server.call(classroom.say("Break until 11:00"))
        assert cells(grid) == {"ada": {"1.1": "failed"}} and len(classroom.learners["ada"].seen) == 1
        mistake = grid["exercises"][0]["mistake"]["kind"]
        assert mistake == "the reply to … should be …." and "hello" not in json.dumps(grid)
        from wslab.lab import classroom as learner_side

        member = learner_side._member
        assert member is not None
        assert wslab.run_sync(_until(lambda: bool(member._notices)))
        assert pretty(wrong) == f"{wrong}\n📣 Your instructor: Break until 11:00"
    finally:
        wslab.leave_class()
    assert capsys.readouterr().out == "Left the class: nothing more is sent.\n"
    assert pretty(wrong) == str(wrong)


def test_without_an_address_joining_says_how_and_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    wslab.join_class("ada", "", "")
    assert capsys.readouterr().out.startswith("Not in a class. To join one, fill in your name")
    wslab.leave_class()
    assert capsys.readouterr().out == "Not in a class.\n"


def test_every_chapters_kernel_joins_the_class_chapter_00_joined(
        served: tuple[LabServer, Classroom], class_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.lib.pretty import pretty

    from wslab.checks.result import CheckResult
    from wslab.lab import classroom as learner_side

    server, classroom = served
    wslab.join_class("ada", server.url, passcode="owl")  # chapter 00's kernel
    pretty(CheckResult("Exercise 1.1 (shout)", "passed", "ok"))
    assert learner_side._member is not None and learner_side._member.wait_delivered(1, WAIT)
    learner_side._member.stop()
    learner_side._member, learner_side._looked = None, False  # chapter 02's kernel: a new process
    try:
        shown = pretty(CheckResult("Exercise 2.2 (no echo)", "failed", "not right yet: bo got it twice."))
        assert f"🎓 In class at {server.url}/ as ada: your verdicts go to your instructor" in shown
        member = learner_side._member
        assert member is not None and member.wait_delivered(2, WAIT)  # chapter 01's verdict, sent again
        assert [v["exercise"] for v in member.history] == ["1.1", "2.2"]
        assert {ex: v.status for ex, v in classroom.learners["ada"].latest.items()} == {
            "1.1": "passed", "2.2": "failed"}
    finally:
        wslab.leave_class()
    assert not (class_dir / "member.json").exists() and not (class_dir / "verdicts.jsonl").exists()
    learner_side._looked = False  # yet another kernel, after leaving: nothing is sent
    assert pretty(CheckResult("Exercise 3.1 (who)", "passed", "ok")) == "✅ Exercise 3.1 (who): ok"
    assert learner_side._member is None
