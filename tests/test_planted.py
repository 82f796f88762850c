"""Each planted bug is a real bug, and the only one: a scenario over a real server shows it on its variant,
and behaves on the complete app and on every other variant exactly as the wire protocol says."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from fastapi import FastAPI

import wslab
from wslab import LabClient, LabServer, Transcript
from wslab.demos.planted import BUGS, Bug, planted_app
from wslab.reference.app import AppRooms, create_app

Scenario = Callable[[LabServer], Coroutine[Any, Any, Any]]


async def joined(server: LabServer, name: str, transcript: Transcript) -> LabClient:
    """``name`` logged in to the lobby, its own join frame read. The caller closes it."""
    app: Any = server.sessions.app
    rooms: AppRooms = app.state.rooms
    client: LabClient = await wslab.connect(server, "/ws/chat/lobby", name=name, transcript=transcript)
    await client.send({"type": "auth", "token": rooms.tokens.issue(name)})
    frame = await client.recv_json(2)
    assert frame["type"] == "join" and frame["user"] == name, frame
    return client


async def private_then_public(server: LabServer) -> Any:
    """ada, bo and cy are in the room; ada sends bo a private message, then everyone a public one.
    What does cy receive next?"""
    transcript = Transcript(live=False)
    ada, bo, cy = [await joined(server, name, transcript) for name in ("ada", "bo", "cy")]
    for client, joins in ((ada, 2), (bo, 1)):
        for _ in range(joins):
            await client.recv_json(2)
    await ada.send({"type": "private", "to": "bo", "content": "psst"})
    await ada.send({"type": "message", "content": "hi all"})
    received = await cy.recv_json(2)
    for client in (ada, bo, cy):
        await client.close()
    return received


async def bo_leaves(server: LabServer) -> Any:
    """ada and bo are in the room; bo leaves. What does ada receive?"""
    transcript = Transcript(live=False)
    ada = await joined(server, "ada", transcript)
    bo = await joined(server, "bo", transcript)
    await ada.recv_json(2)
    await bo.close()
    received = await ada.recv_json(2)
    await ada.close()
    return received


async def claims_to_be_bo(server: LabServer) -> Any:
    """ada sends a message whose frame says it is from bo. Whom does it come back from?"""
    ada = await joined(server, "ada", Transcript(live=False))
    await ada.send({"type": "message", "content": "hi", "user": "bo"})
    received = await ada.recv_json(2)
    await ada.close()
    return received


async def not_json_then_message(server: LabServer) -> Any:
    """ada sends a frame that is not JSON, then a message. What does she receive, and is she still in?"""
    ada = await joined(server, "ada", Transcript(live=False))
    await ada.send("{oops")
    received: list[Any] = []
    try:
        received.append((await ada.recv_json(2))["type"])
        await ada.send({"type": "message", "content": "still here"})
        received.append(await ada.recv_json(2))
    except Exception:
        received.append(f"closed: {ada.close_code} {ada.close_reason}")
    await ada.close()
    return received


SCENARIOS: dict[Bug, tuple[Scenario, Any]] = {  # each bug's scenario, and what the complete app does
    "private leak": (private_then_public, {"type": "message", "user": "ada", "content": "hi all"}),
    "stale leave": (bo_leaves, {"type": "leave", "user": "bo", "count": 1, "version": 3}),
    "trusted sender": (claims_to_be_bo, {"type": "message", "user": "ada", "content": "hi"}),
    "bad json closes": (not_json_then_message,
                        ["error", {"type": "message", "user": "ada", "content": "still here"}]),
}


def observe(app: FastAPI, scenario: Scenario) -> Any:
    with wslab.serve(app, name="planted") as server:
        seen: Any = wslab.run_sync(scenario(server), timeout=10)
        server.wait_idle(2)
    assert not server.sessions.errors() and not server.log.lines("ERROR")
    return seen


def test_every_bug_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(BUGS)


@pytest.mark.parametrize("bug", BUGS)
def test_the_complete_app_behaves(bug: Bug) -> None:
    scenario, expected = SCENARIOS[bug]
    assert observe(create_app(), scenario) == expected


@pytest.mark.parametrize("bug", BUGS)
def test_the_planted_bug_shows(bug: Bug) -> None:
    scenario, expected = SCENARIOS[bug]
    assert observe(planted_app(bug), scenario) != expected


@pytest.mark.parametrize("bug", BUGS)
def test_each_variant_has_one_bug_only(bug: Bug) -> None:
    for other, (scenario, expected) in SCENARIOS.items():
        if other != bug:
            assert observe(planted_app(bug), scenario) == expected, f"{bug} also breaks {other}"


def test_what_each_bug_looks_like() -> None:
    private = {"type": "private", "from": "ada", "to": "bo", "content": "psst"}
    assert observe(planted_app("private leak"), private_then_public) == private
    assert observe(planted_app("stale leave"), bo_leaves) == {"type": "leave", "user": "bo", "count": 2,
                                                              "version": 3}
    assert observe(planted_app("trusted sender"), claims_to_be_bo)["user"] == "bo"
    assert observe(planted_app("bad json closes"), not_json_then_message) == ["closed: 1003 invalid JSON"]


def test_the_variants_take_the_complete_apps_options() -> None:
    app = planted_app("private leak", burst=3)
    rooms = app.state.rooms
    assert type(rooms).__name__ == "LeakyPrivateRooms" and rooms.burst == 3
    assert json.loads(json.dumps(rooms.status())) == []


def test_an_unknown_bug_is_refused_with_the_list() -> None:
    with pytest.raises(ValueError, match="the bugs are: private leak, stale leave, trusted sender"):
        planted_app("typo")  # type: ignore[arg-type]
