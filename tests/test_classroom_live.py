"""A whole class in real processes: ``wslab serve --class`` in a process of its own, 30 learners posting the
verdicts of real checks on the chapters' answers, their stubs and wrong answers, the instructor's key and a
line typed into the server's terminal, and the server restarted mid-session."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from test_checks_testing import notebook_test
from websockets.asyncio.client import connect

import wslab
from wslab.checks.result import CheckResult
from wslab.checks.testing import check_private_test
from wslab.lab.class_member import ClassMember

LEARNERS = 30
WAIT = 15.0  # seconds for the whole class to reach a state (30 learners reconnecting on 2 shared cores)
SECRET = "s" * 40  # the same secret across the restart: the instructor's key stays valid


@dataclass
class Served:
    process: subprocess.Popen[str]
    url: str
    key: str
    said: list[str]

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=10)
        return err


def serve_class(port: int = 0) -> Served:
    env = {**os.environ, "WSLAB_SECRET": SECRET}
    process = subprocess.Popen([sys.executable, "-m", "wslab", "serve", "--class", "--passcode", "owl",
                                "--port", str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    said = []
    for _ in range(10):  # bounded: the banner is a handful of lines
        line = process.stdout.readline()
        said.append(line)
        if "type a line here" in line:
            break
    url = said[0].split(" at ")[1].strip()
    (page,) = [line for line in said if "the class's page is at" in line]
    key = page.split("#key=")[1].strip()
    assert page.split(" at ")[1].startswith(url + "class#key=")
    return Served(process, url, key, said)


def results() -> dict[str, CheckResult]:
    """Real verdicts: chapter 07's check on its answer, its stub and a test that asserts nothing."""
    def asserts_nothing(app: Any) -> None:
        pass

    made = {"right": check_private_test(notebook_test("test_private_is_private")),
            "stub": check_private_test(notebook_test("test_private_is_private", stub=True)),
            "wrong": check_private_test(asserts_nothing)}
    assert [result.status for result in made.values()] == ["passed", "not done", "failed"]
    return made


async def grid_when(url: str, key: str, expected: dict[str, dict[str, str]],
                    connected: int) -> dict[str, Any]:
    """The first grid the instructor's socket gets that shows ``expected`` with ``connected`` learners."""
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(WAIT):
            for _ in range(200):  # bounded: a process that just started may not answer yet
                try:
                    ws = await connect(url.replace("http", "ws") + "ws/class/instructor")
                    break
                except OSError:
                    await asyncio.sleep(0.05)
            async with ws:
                await ws.send(json.dumps({"type": "auth", "token": key}))
                while True:
                    last = json.loads(await ws.recv())
                    if cells(last) == expected and last["connected"] == connected:
                        return last
    except TimeoutError:
        raise AssertionError(f"the grid never showed what was expected; last: {cells(last)}") from None


def cells(grid: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {learner["name"]: {ex: cell["status"] for ex, cell in learner["cells"].items()}
            for learner in grid.get("learners", [])}


@pytest.fixture
def learners() -> Iterator[list[ClassMember]]:
    made: list[ClassMember] = []
    yield made
    for member in made:
        member.stop(timeout=2)


def test_thirty_learners_a_restart_and_an_announcement_from_the_terminal(learners: list[ClassMember]) -> None:
    verdicts = results()
    served = serve_class()
    try:
        expected: dict[str, dict[str, str]] = {}
        for n in range(LEARNERS):
            name = f"learner{n:02d}"
            for _ in range(100):  # bounded: the process is still starting to answer
                try:
                    member = ClassMember(name, served.url, "owl", retry_min=0.1, retry_max=1.0).start()
                    break
                except wslab.WslabError:
                    time.sleep(0.05)  # polling a process we started, not synchronising two threads
            learners.append(member)
            # each learner shows a few real verdicts: the last one counts
            story = ["stub", "wrong", "right"][: n % 3 + 1]
            for kind in story:
                result = verdicts[kind]
                member.report(result.exercise, result.status, result.summary)
            expected[name] = {"7.1": verdicts[story[-1]].status}
        assert all(member.wait_delivered(n % 3 + 1, WAIT) for n, member in enumerate(learners))
        grid = wslab.run_sync(grid_when(served.url, served.key, expected, LEARNERS), timeout=WAIT + 5)
        (exercise,) = grid["exercises"]
        assert exercise["passed"] == LEARNERS // 3
        assert exercise["mistake"] == {"kind": "your test also passes on the app where a private message "
                                               "also reaches everyone else in the room, so it would not "
                                               "catch that bug.", "learners": 2 * LEARNERS // 3}

        # the server goes away; some learners keep working meanwhile; a new process takes the same port
        port = int(served.url.rsplit(":", 1)[1].strip("/"))
        err = served.stop()
        assert served.key not in err and "Traceback" not in err
        for member in learners[:10]:
            member.report("Exercise 1.1 (shout)", "passed")
            expected[member.name]["1.1"] = "passed"
        served = serve_class(port)
        grid = wslab.run_sync(grid_when(served.url, served.key, expected, LEARNERS), timeout=WAIT + 5)
        assert [ex["passed"] for ex in grid["exercises"]] == [10, LEARNERS // 3]
        assert all(member.connects == 2 for member in learners)

        # a line typed into the server's terminal reaches every notebook, once
        assert served.process.stdin is not None and served.process.stdout is not None
        served.process.stdin.write("Break until 11:00\n")
        served.process.stdin.flush()
        lines = (served.process.stdout.readline() for _ in range(500))  # bounded; access log lines between
        assert next(line for line in lines if line.startswith("wslab:")) == (
            f"wslab: announced to {LEARNERS} connections.\n")
        for member in learners:
            for _ in range(200):  # bounded; the notice travels through another thread
                notices = member.take_notices()
                if notices:
                    break
                time.sleep(0.01)
            assert notices == ["📣 Your instructor: Break until 11:00"], member.name
    finally:
        for member in learners:
            member.stop(timeout=2)
        err = served.stop()
    assert "Traceback" not in err


def test_a_line_typed_into_wslab_serve_is_announced_in_every_chat_room() -> None:
    process = subprocess.Popen([sys.executable, "-m", "wslab", "serve", "--port", "0"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        url = process.stdout.readline().split(" at ")[1].strip()
        banner = [process.stdout.readline() for _ in range(2)]
        assert "type a line here and press Enter to announce it to everyone" in banner[-1], banner

        async def chat() -> dict[str, Any]:
            import httpx

            for _ in range(100):  # bounded: the process is still starting to answer
                try:
                    login = httpx.post(url + "token", json={"username": "ada"})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            async with connect(url.replace("http", "ws") + "ws/chat/lobby") as ws:
                await ws.send(json.dumps({"type": "auth", "token": login.json()["access_token"]}))
                assert json.loads(await ws.recv())["type"] == "join"
                assert process.stdin is not None
                process.stdin.write("Lunch is here\n")
                process.stdin.flush()
                async with asyncio.timeout(WAIT):
                    frame: dict[str, Any] = json.loads(await ws.recv())
                    return frame

        announced = wslab.run_sync(chat(), timeout=WAIT + 5)
        assert announced == {"type": "announcement", "content": "Lunch is here"}
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
    assert "wslab: announced to 1 connection.\n" in out and "Traceback" not in err
