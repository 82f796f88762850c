"""Each failure scenario run on the tutorial's code and on the hardened code: the defect shows on the naive
app and not on the hardened one. Each test compares what was observed with what the kind of app predicts,
so a failure names the observation that differed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi import FastAPI

import wslab
from wslab import LabServer, Transcript
from wslab.demos import scenarios
from wslab.demos.naive import naive_broadcast_app, naive_rooms_app
from wslab.reference.manager import broadcast_app
from wslab.reference.rooms import rooms_app

KINDS = ["naive", "hardened"]
CHAPTER_02: dict[str, Callable[[], FastAPI]] = {"naive": naive_broadcast_app, "hardened": broadcast_app}
CHAPTER_03: dict[str, Callable[[], FastAPI]] = {"naive": naive_rooms_app, "hardened": rooms_app}
LOBBY = "/chat/lobby/{name}"
LOST = "connection lost without a close frame: 1006 (abnormal closure)"


@contextmanager
def serving(app: FastAPI) -> Iterator[LabServer]:
    with wslab.serve(app, name="t-scenarios") as server:  # a fresh server: naive rooms keep dead entries
        yield server


def errors(server: LabServer) -> int:
    """How many records the server logged at ERROR or above."""
    return sum(record.levelno >= logging.ERROR for record in server.log.records)


def quiet() -> Transcript:
    return Transcript(live=False)


def got(lines: list[str], who: str, *parts: str) -> bool:
    """Whether ``who`` received a message containing every one of ``parts``."""
    return any(line.startswith(f"{who} ← ") and all(part in line for part in parts) for line in lines)


# -- a member's connection drops just as someone speaks --------------------------------------------------
DEAD_PEER = [
    pytest.param(CHAPTER_02, "/ws/{name}", scenarios.as_text, "cy ← ada: hello", id="chapter-02"),
    pytest.param(CHAPTER_03, LOBBY, scenarios.as_chat,
                 'cy ← {"type":"message","user":"ada","content":"hello"}', id="chapter-03"),
]


def dead_peer(app: FastAPI, path: str, say: Callable[[str], Any], cy_hears: str) -> dict[str, bool]:
    with serving(app) as server:
        lines = wslab.run_sync(scenarios.dead_peer(server, path, say=say, transcript=quiet())).lines
        logged = errors(server)
    return {
        "ada's connection was lost": f"ada ✕ {LOST}" in lines,
        "ada stayed connected until she closed": "ada ✕ closed: 1000 (normal closure)" in lines,
        "cy got ada's message": cy_hears in lines,
        "the server logged an ERROR": logged > 0,
    }


def defect(naive: bool) -> dict[str, bool]:
    return {
        "ada's connection was lost": naive,
        "ada stayed connected until she closed": not naive,
        "cy got ada's message": not naive,
        "the server logged an ERROR": naive,
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("apps", "path", "say", "cy_hears"), DEAD_PEER)
def test_a_dead_peer_breaks_the_speaker_only_on_the_naive_app(
        kind: str, apps: dict[str, Callable[[], FastAPI]], path: str, say: Callable[[str], Any],
        cy_hears: str) -> None:
    assert dead_peer(apps[kind](), path, say, cy_hears) == defect(kind == "naive")


def test_the_dead_peer_defect_shows_on_every_run() -> None:
    runs = [dead_peer(naive_broadcast_app(), "/ws/{name}", scenarios.as_text, "cy ← ada: hello")
            for _ in range(5)]
    assert runs == [defect(True)] * 5


# -- a member stops reading while another sends a lot ----------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_a_stalled_reader_freezes_the_room_only_on_the_naive_app(kind: str) -> None:
    with serving(CHAPTER_02[kind]()) as server:
        report = wslab.run_sync(scenarios.stalled_reader(server))
    naive = kind == "naive"
    assert {
        "the room froze": report.froze,
        "cy got every message": report.delivered == report.sent,
        "bo was closed with 1013": "1013" in report.bo_close,
    } == {"the room froze": naive, "cy got every message": not naive, "bo was closed with 1013": not naive}


# -- a member sends a frame the server does not expect ---------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [
    pytest.param("not json", id="invalid-json"),
    pytest.param([1, 2], id="array"),
    pytest.param({"type": "message"}, id="no-content"),
    pytest.param(b"\x00", id="binary"),
])
def test_a_bad_frame_empties_the_room_only_on_the_naive_app(kind: str, bad: Any) -> None:
    with serving(CHAPTER_03[kind]()) as server:
        lines = wslab.run_sync(scenarios.bad_input(server, LOBBY, bad, transcript=quiet())).lines
        logged = errors(server)
    naive = kind == "naive"
    assert {
        "ada lost her connection": f"ada ✕ {LOST}" in lines,
        "bo lost his connection": f"bo ✕ {LOST}" in lines,
        "cy lost her connection": f"cy ✕ {LOST}" in lines,
        "ada got an error frame": got(lines, "ada", '"type":"error"'),
        "everyone got bo's and cy's messages": all(
            got(lines, listener, '"type":"message"', f'"user":"{speaker}"', f"hi, I am {speaker}")
            for listener in ("ada", "bo", "cy") for speaker in ("bo", "cy")),
        "the server logged an ERROR": logged > 0,
    } == {
        "ada lost her connection": naive,
        "bo lost his connection": naive,
        "cy lost her connection": naive,
        "ada got an error frame": not naive,
        "everyone got bo's and cy's messages": not naive,
        "the server logged an ERROR": naive,
    }


# -- a second client takes a name already in the room ----------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_an_impostor_takes_private_messages_only_on_the_naive_app(kind: str) -> None:
    with serving(CHAPTER_03[kind]()) as server:
        lines = wslab.run_sync(scenarios.impostor(server, transcript=quiet())).lines
    naive = kind == "naive"
    assert {
        "mallory got ada's private message": got(lines, "mallory", "swordfish"),
        "ada got her private message": got(lines, "ada", "swordfish"),
        "mallory was refused with 1008": any(line.startswith("mallory ✕ closed by the server: 1008")
                                             for line in lines),
    } == {
        "mallory got ada's private message": naive,
        "ada got her private message": not naive,
        "mallory was refused with 1008": not naive,
    }


# -- a private message to someone who is not there --------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_a_private_message_to_nobody_is_lost_silently_only_on_the_naive_app(kind: str) -> None:
    with serving(CHAPTER_03[kind]()) as server:
        lines = wslab.run_sync(scenarios.unknown_recipient(server, transcript=quiet())).lines
    naive = kind == "naive"
    assert {
        "ada got nothing": "ada ⌛ nothing" in lines,
        "ada got an error frame": got(lines, "ada", '"type":"error"', "zed"),
    } == {"ada got nothing": naive, "ada got an error frame": not naive}


# -- everyone leaves at once -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_everyone_leaving_at_once_logs_errors_only_on_the_naive_app(kind: str) -> None:
    with serving(CHAPTER_03[kind]()) as server:
        wslab.run_sync(scenarios.everyone_leaves(server, LOBBY, transcript=quiet()))
        logged = errors(server)
    naive = kind == "naive"
    assert {
        "several handlers logged an ERROR": logged >= 2,
        "the server logged no ERROR": logged == 0,
    } == {"several handlers logged an ERROR": naive, "the server logged no ERROR": not naive}
