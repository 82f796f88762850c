"""Each check passes on the notebook's own answer, says "not done" on its stub, and fails with a useful
report on plausible wrong answers."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
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


def test_reverse_that_does_not_close_on_text_fails_and_says_so() -> None:
    result = check_reverse(single_endpoint("/reverse", reverse_that_ignores_text))
    assert result.status == "failed"
    assert result.details[:2] == ["expected: 1003", "got:      'still open 2 s after the text frame'"]


async def reverse_that_crashes_on_disconnect(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message.get("text") is not None:
            await websocket.close(code=1003)
            return
        await websocket.send_bytes(message["bytes"][::-1])  # KeyError when the client leaves


async def reverse_that_refuses_empty_bytes(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if not message.get("bytes"):
            await websocket.close(code=1003)
            return
        await websocket.send_bytes(message["bytes"][::-1])


async def shout_that_logs_an_error_on_disconnect(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text((await websocket.receive_text()).upper())
    except WebSocketDisconnect:
        logging.getLogger("uvicorn.error").error("client left!")


async def shout_three_times_only(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        for _ in range(3):
            await websocket.send_text((await websocket.receive_text()).upper())
    except WebSocketDisconnect:
        pass


async def shout_that_lingers_after_the_client_left(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text((await websocket.receive_text()).upper())
    except WebSocketDisconnect:
        await asyncio.sleep(3)


def sum_handler(reply: Callable[[Any], Any]) -> Callable[[WebSocket], Any]:
    async def handler(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                try:
                    answer = reply(json.loads(text))
                except Exception as exc:
                    answer = {"error": str(exc) or type(exc).__name__}
                if isinstance(answer, str):
                    await websocket.send_text(answer)
                else:
                    await websocket.send_json(answer)
        except WebSocketDisconnect:
            pass

    return handler


@pytest.mark.parametrize(("handler", "reported"), [
    (reverse_that_crashes_on_disconnect, "KeyError: 'bytes'"),
    (reverse_that_refuses_empty_bytes, "you ✕ closed by the server: 1003"),
])
def test_reverse_wrong_answers_fail(handler: Callable[..., Any], reported: str) -> None:
    result = check_reverse(single_endpoint("/reverse", handler))
    assert result.status == "failed" and reported in str(result), str(result)


@pytest.mark.parametrize(("handler", "reported"), [
    (shout_that_logs_an_error_on_disconnect, "but the server logged an error"),
    (shout_three_times_only, "closed before the check was finished"),
    (shout_that_lingers_after_the_client_left, "✅"),  # slow to finish is not wrong
])
def test_shout_answers_are_judged_on_behaviour(handler: Callable[..., Any], reported: str) -> None:
    result = check_shout(single_endpoint("/shout", handler))
    assert reported in str(result), str(result)


@pytest.mark.parametrize(("reply", "reported"), [
    (lambda d: {"sum": sum(float(n) for n in d["numbers"]) if isinstance(d["numbers"], list) else 1/0},
     "the reply to {'numbers': ['1', '2']} should be an error"),
    (lambda d: {"sum": sum(d["numbers"])} if isinstance(d["numbers"], list) else {"error": ""},
     "should be an error"),
    (lambda d: f"the sum is {sum(d['numbers'])}", "the reply to '[1, 2, 3.5]' should be JSON"),
])
def test_sum_wrong_answers_fail_and_show_the_reply(reply: Callable[[Any], Any], reported: str) -> None:
    result = check_sum(single_endpoint("/sum", sum_handler(reply)))
    assert result.status == "failed" and reported in str(result), str(result)
    assert result.details[1].startswith("got:      ")


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


def manager_chat(on_message: Callable[[Any, Any, str, str], bool]) -> FastAPI:
    """A chapter 02 chat whose messages go to ``on_message(manager, client, name, text)`` first; it
    returns True when it has handled the message itself."""
    from wslab.reference.manager import ConnectionManager

    manager = ConnectionManager()
    app = FastAPI()

    @app.websocket("/ws/{name}")
    async def chat(websocket: WebSocket, name: str) -> None:
        try:
            async with manager.connect(websocket) as client:
                async for message in client.messages():
                    if not on_message(manager, client, name, str(message)):
                        manager.broadcast(f"{name}: {message}")
        finally:
            manager.broadcast(f"{name} left the chat")

    return app


def count_broadcasts_the_answer(manager: Any, client: Any, name: str, text: str) -> bool:
    if text == "/count":
        manager.broadcast(f"{len(manager)} online")
        return True
    return False


def count_is_off_by_one(manager: Any, client: Any, name: str, text: str) -> bool:
    if text == "/count":
        client.send(f"{len(manager) - 1} online")
        return True
    return False


def echo_to_everyone(manager: Any, client: Any, name: str, text: str) -> bool:
    return False


@pytest.mark.parametrize(("check", "handler", "reported"), [
    (check_count, count_broadcasts_the_answer, "bo should not receive ada's /count or its answer"),
    (check_count, count_is_off_by_one, "'2 online'"),
    (check_no_echo, echo_to_everyone, "ada should not receive her own message back"),
])
def test_broadcast_wrong_answers_fail(check: Callable[[Any], CheckResult], handler: Any,
                                     reported: str) -> None:
    result = check(manager_chat(handler))
    assert result.status == "failed" and reported in str(result), str(result)
