"""Each check passes on the notebook's own answer, says "not done" on its stub, and fails with a useful
report on plausible wrong answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from apps import shout_title_case, single_endpoint
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

import wslab
from wslab.checks import (
    CheckResult,
    check_announce,
    check_count,
    check_heartbeat,
    check_history,
    check_no_echo,
    check_reactions,
    check_reverse,
    check_room_permissions,
    check_shout,
    check_since,
    check_stream_history,
    check_sum,
    check_symbols,
    check_typing,
    check_typing_everywhere,
    check_who,
)
from wslab.tools.student import has_solution, stub_solutions

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
EXERCISES: dict[str, tuple[str, str, Callable[[Any], CheckResult]]] = {
    "shout": ("01_echo", "shout_app", check_shout),
    "sum": ("01_echo", "sum_app", check_sum),
    "reverse": ("01_echo", "reverse_app", check_reverse),
    "count": ("02_broadcast", "count_app", check_count),
    "no echo": ("02_broadcast", "no_echo_app", check_no_echo),
    "who": ("03_rooms", "who_app", check_who),
    "history": ("03_rooms", "history_app", check_history),
    "room permissions": ("04_auth", "permissions_app", check_room_permissions),
    "announce": ("04_auth", "announce_app", check_announce),
    "symbols": ("05_streaming", "symbols_app", check_symbols),
    "since": ("05_streaming", "since_app", check_since),
    "heartbeat": ("05_streaming", "alive_app", check_heartbeat),
    "typing": ("06_complete_app", "typing_app", check_typing),
    "reactions": ("06_complete_app", "reactions_app", check_reactions),
    "typing everywhere": ("08_scaling", "SharedTypingRooms", check_typing_everywhere),
    "stream history": ("08_scaling", "RoomHistory", check_stream_history),
}


def answer_app(notebook: str, app_name: str, *, stub: bool = False) -> Any:
    """Run the notebook's answer cell that defines ``app_name`` (``app_name = ...`` or ``class app_name``)
    and return what it made."""
    path = NOTEBOOKS / f"{notebook}.ipynb"
    defines = re.compile(rf"^class {re.escape(app_name)}\b", re.M)
    cells = [c.source for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and has_solution(c.source)
             and (f"{app_name} = " in c.source or defines.search(c.source))]
    assert len(cells) == 1, f"expected one answer cell defining {app_name}"
    namespace: dict[str, Any] = {"FastAPI": FastAPI, "WebSocket": WebSocket,
                                 "WebSocketDisconnect": WebSocketDisconnect, "json": json, "wslab": wslab}
    source = stub_solutions(cells[0]) if stub else cells[0]
    # dont_inherit: run the cell as a notebook would, without this module's `from __future__ import
    # annotations` (a pydantic model in the cell needs real annotations).
    exec(compile(source, f"<{notebook} answer>", "exec", dont_inherit=True), namespace)
    return namespace[app_name]


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_notebook_answer_passes(exercise: str) -> None:
    notebook, app_name, check = EXERCISES[exercise]
    result = check(answer_app(notebook, app_name))
    assert result.passed, str(result)
    assert str(result).startswith(f"✅ Exercise {int(notebook[:2])}.")


@pytest.mark.parametrize("exercise", EXERCISES)
def test_the_stub_is_not_done_yet_and_does_not_raise(exercise: str) -> None:
    notebook, app_name, check = EXERCISES[exercise]
    result = check(answer_app(notebook, app_name, stub=True))
    assert result.status == "not done"
    assert "not done yet" in str(result) and "NotImplementedError" in str(result)
    assert "Hint:" in str(result)


def test_passing_the_handler_function_instead_of_the_app_says_so() -> None:
    result = check_shout(shout_title_case)
    assert result.status == "failed"
    assert "you passed the function shout_title_case(); pass the FastAPI app" in str(result)


def test_a_handler_that_raises_before_accepting_is_a_500_with_the_log() -> None:
    async def no_accept(websocket: WebSocket) -> None:
        await websocket.send_text("hi")  # forgot accept()

    report = str(check_shout(single_endpoint("/shout", no_accept)))
    assert "(HTTP 500): your handler raised an exception before accepting" in report
    assert "The server logged:" in report and "accept" in report


HOGGING_HANDLER = """
from fastapi import FastAPI, WebSocket
from wslab.checks import check_shout
app = FastAPI()

@app.websocket("/shout")
async def shout(websocket: WebSocket):
    await websocket.accept()
    while True:
        try:
            await websocket.send_text((await websocket.receive_text()).upper())
        except Exception:
            continue  # after the client leaves, receive raises at once: this loop never yields again

print(check_shout(app))
"""


def test_a_handler_that_never_yields_gets_a_verdict_not_a_hang() -> None:
    # The spinning server thread cannot be stopped from outside, so it runs in a process of its own.
    result = subprocess.run([sys.executable, "-c", HOGGING_HANDLER], capture_output=True, text=True,
                            timeout=120)
    assert "kept running after the client left, so the server could not stop" in result.stdout, result.stderr


def test_an_endpoint_at_the_wrong_path_is_named_in_the_verdict() -> None:
    result = check_shout(single_endpoint("/shouting", shout_title_case))
    assert result.status == "failed" and "HTTP 403" in str(result) and "right path" in str(result)


def test_something_that_is_not_an_app_fails_clearly() -> None:
    result = check_shout(None)
    assert result.status == "failed" and "expected your app" in str(result)


def test_a_check_leaves_no_server_running() -> None:
    check_shout(single_endpoint("/shout", shout_title_case))
    assert not [s for s in wslab.running_servers() if s.name.startswith("check ")]
