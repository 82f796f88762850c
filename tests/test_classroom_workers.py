"""The live classroom on two workers sharing a real Redis: a learner on each, the instructor's page on either,
what the instructor says on one reaching the learners of the other, and a worker that starts late getting the
whole grid from the others."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

import wslab
from wslab.lab.class_member import ClassMember
from wslab.lab.server import LabServer
from wslab.reference.classroom import Classroom, class_app

SECRET = "the-workers-of-one-class-share-a-secret"
WAIT = 10.0


@pytest.fixture(scope="module")
def redis() -> Iterator[wslab.RedisServer]:
    with wslab.RedisServer() as server:
        yield server


def worker(redis: wslab.RedisServer, name: str) -> tuple[LabServer, Classroom]:
    app: FastAPI = class_app(passcode="owl", secret=SECRET, broker=redis.url)
    server = wslab.serve(app, name=name)
    classroom: Classroom = app.state.classroom
    assert classroom.bus is not None
    server.call(classroom.bus.wait_connected())
    return server, classroom


async def grid_when(server: LabServer, classroom: Classroom,
                    done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    async with connect(server.ws_url("/ws/class/instructor")) as ws:
        await ws.send(json.dumps({"type": "auth", "token": classroom.instructor_token()}))
        last: dict[str, Any] = {}
        try:
            async with asyncio.timeout(WAIT):
                while not done(last := json.loads(await ws.recv())):
                    pass
        except TimeoutError:
            raise AssertionError(f"the grid never got there; last: {last}") from None
        return last


def statuses(grid: dict[str, Any]) -> dict[str, Any]:
    return {one["name"]: ({ex: cell["status"] for ex, cell in one["cells"].items()}, one["connected"])
            for one in grid.get("learners", [])}


def test_two_workers_keep_one_grid_and_a_late_worker_gets_it_whole(redis: wslab.RedisServer) -> None:
    servers: list[LabServer] = []
    members: list[ClassMember] = []
    try:
        one, first = worker(redis, "t-class-w1")
        two, second = worker(redis, "t-class-w2")
        servers += [one, two]
        ada = ClassMember("ada", one.url, "owl").start()
        bo = ClassMember("bo", two.url, "owl").start()
        members += [ada, bo]
        ada.report("Exercise 2.2 (no echo)", "failed", "not right yet: ada got her own message back.")
        ada.report("Exercise 2.2 (no echo)", "passed")
        bo.report("Exercise 2.2 (no echo)", "failed", "not right yet: ada got her own message back.")
        assert ada.wait_delivered(2, WAIT) and bo.wait_delivered(1, WAIT)
        expected = {"ada": ({"2.2": "passed"}, True), "bo": ({"2.2": "failed"}, True)}
        for server, classroom in ((one, first), (two, second)):  # either worker shows everyone
            grid = wslab.run_sync(grid_when(server, classroom, lambda g: statuses(g) == expected))
            assert grid["exercises"][0]["mistake"] == {"kind": "ada got her own message back.", "learners": 2}

        # the instructor speaks on worker two: ada, on worker one, hears it once
        async def say() -> None:
            async with connect(two.ws_url("/ws/class/instructor")) as page:
                await page.send(json.dumps({"type": "auth", "token": second.instructor_token()}))
                await page.recv()
                await page.send(json.dumps({"type": "say", "kind": "chapter", "content": "chapter 03"}))
                await page.recv()  # the grid that lists what was said: it was handled

        wslab.run_sync(say())
        for member in (ada, bo):
            for _ in range(500):  # bounded; the notice travels through Redis and the learner's thread
                notices = member.take_notices()
                if notices:
                    break
                wslab.run_sync(asyncio.sleep(0.01))
            assert notices == ["➡️  Your instructor: we're moving on: chapter 03"], member.name

        # a third worker starts late: the others tell it everything; bo leaves, and every grid says so
        three, third = worker(redis, "t-class-w3")
        servers.append(three)
        wslab.run_sync(grid_when(three, third, lambda g: statuses(g) == expected))
        bo.stop()
        gone = {**expected, "bo": ({"2.2": "failed"}, False)}
        wslab.run_sync(grid_when(three, third, lambda g: statuses(g) == gone))
        # a worker that stops says so: ada, connected to it, is no longer counted as connected anywhere
        one.stop()
        wslab.run_sync(grid_when(three, third, lambda g: not statuses(g)["ada"][1]))
    finally:
        for member in members:
            member.stop(timeout=2)
        for server in servers:
            server.stop()
