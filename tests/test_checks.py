"""Each check passes on the notebook's own answer, says "not done" on its stub, and fails with a useful
report on plausible wrong answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

import wslab
from wslab.checks import CheckResult, check_reverse, check_shout, check_sum
from wslab.student import has_solution, stub_solutions

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "01_echo.ipynb"
EXERCISES: dict[str, tuple[str, Callable[[Any], CheckResult]]] = {
    "shout": ("shout_app", check_shout),
    "sum": ("sum_app", check_sum),
    "reverse": ("reverse_app", check_reverse),
}


def answer_app(app_name: str, *, stub: bool = False) -> Any:
    """Run the notebook's answer cell that defines ``app_name`` and return the app it made."""
    cells = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells
             if c.cell_type == "code" and has_solution(c.source) and f"{app_name} = " in c.source]
    assert len(cells) == 1, f"expected one answer cell defining {app_name}"
    namespace: dict[str, Any] = {"FastAPI": FastAPI, "WebSocket": WebSocket,
                                 "WebSocketDisconnect": WebSocketDisconnect, "json": json, "wslab": wslab}
    exec(stub_solutions(cells[0]) if stub else cells[0], namespace)
    return namespace[app_name]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_notebook_answer_passes(exercise: str) -> None:
    app_name, check = EXERCISES[exercise]
    result = check(answer_app(app_name))
    assert result.passed, str(result)
    assert str(result).startswith("✅ Exercise 1.")


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_stub_is_not_done_yet_and_does_not_raise(exercise: str) -> None:
    app_name, check = EXERCISES[exercise]
    result = check(answer_app(app_name, stub=True))
    assert result.status == "not done"
    assert "not done yet" in str(result) and "NotImplementedError" in str(result)
    assert "Hint:" in str(result)


def single_endpoint(path: str, handler: Callable[..., Any]) -> FastAPI:
    app = FastAPI()
    app.websocket(path)(handler)
    return app


async def shout_without_catching_disconnect(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text((await websocket.receive_text()).upper())


async def shout_title_case(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text((await websocket.receive_text()).title())
    except WebSocketDisconnect:
        pass


async def sum_that_closes_on_bad_input(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        data = await websocket.receive_json()  # invalid JSON raises here and ends the connection
        await websocket.send_json({"sum": sum(data["numbers"])})


async def reverse_that_ignores_text(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await websocket.send_bytes(message["bytes"][::-1])


def test_shout_that_logs_on_disconnect_fails_and_shows_the_log() -> None:
    result = check_shout(single_endpoint("/shout", shout_without_catching_disconnect))
    assert result.status == "failed"
    report = str(result)
    assert "the replies were right, but your handler raised an exception" in report
    assert "WebSocketDisconnect" in report and "The server logged:" in report


def test_shout_with_the_wrong_transformation_shows_sent_expected_and_got() -> None:
    result = check_shout(single_endpoint("/shout", shout_title_case))
    assert result.status == "failed"
    assert result.details[:2] == ["expected: 'HELLO'", "got:      'Hello'"]
    assert "you → hello" in str(result) and "you ← Hello" in str(result)


def test_sum_that_drops_the_connection_on_bad_input_fails() -> None:
    result = check_sum(single_endpoint("/sum", sum_that_closes_on_bad_input))
    assert result.status == "failed"
    assert "the connection closed before the check was finished" in str(result)


def test_reverse_that_does_not_close_on_text_fails_in_time() -> None:
    result = check_reverse(single_endpoint("/reverse", reverse_that_ignores_text))
    assert result.status == "failed"
    assert "did not answer in time" in str(result)


def test_an_endpoint_at_the_wrong_path_is_named_in_the_verdict() -> None:
    result = check_shout(single_endpoint("/shouting", shout_title_case))
    assert result.status == "failed" and "HTTP 403" in str(result) and "right path" in str(result)


def test_something_that_is_not_an_app_fails_clearly() -> None:
    result = check_shout(None)
    assert result.status == "failed" and "expected your app" in str(result)


def test_a_check_leaves_no_server_running() -> None:
    check_shout(single_endpoint("/shout", shout_title_case))
    assert not [s for s in wslab.running_servers() if s.name.startswith("check ")]
