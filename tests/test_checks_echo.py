"""Chapter 01's checks: the answers that defeat the chapter's lesson are refused, with a verdict naming what
is wrong, and plausible correct variants pass (the notebook's own answers and stubs: test_checks.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from apps import shout_title_case, single_endpoint
from fastapi import WebSocket, WebSocketDisconnect

from wslab.checks import check_reverse, check_shout, check_sum


async def shout_without_catching_disconnect(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        await websocket.send_text((await websocket.receive_text()).upper())


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
    assert "a client that closes the connection should end the handler quietly" in report
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
    (shout_that_logs_an_error_on_disconnect, "should end the handler quietly"),
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
    (lambda d: f"the sum is {sum(d['numbers'])}", "the reply to {'numbers': [1, 2, 3.5]} should be JSON"),
])
def test_sum_wrong_answers_fail_and_show_the_reply(reply: Callable[[Any], Any], reported: str) -> None:
    result = check_sum(single_endpoint("/sum", sum_handler(reply)))
    assert result.status == "failed" and reported in str(result), str(result)
    assert result.details[1].startswith("got:      ")


# -- what this chapter's checks add: a dropped connection, extra fields, more kinds of bad input -------
async def shout_via_generator(websocket: WebSocket) -> None:
    async def texts() -> AsyncIterator[str]:
        try:
            while True:
                yield await websocket.receive_text()
        except WebSocketDisconnect:
            return

    await websocket.accept()
    async for text in texts():
        await websocket.send_text(text.upper())


async def shout_with_receive(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"].upper())


async def shout_ascii_only(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text("".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in text))
    except WebSocketDisconnect:
        pass


@pytest.mark.parametrize("handler", [shout_via_generator, shout_with_receive])
def test_shout_accepts_correct_variants(handler: Callable[..., Any]) -> None:
    result = check_shout(single_endpoint("/shout", handler))
    assert result.passed, str(result)


@pytest.mark.parametrize(("handler", "reported", "hinted"), [
    (shout_without_catching_disconnect, "a client that closes the connection should end the handler quietly",
     "WebSocketDisconnect"),
    (shout_ascii_only, "the reply to 'Grüße aus Köln' should be 'GRÜSSE AUS KÖLN'", "every alphabet"),
])
def test_shout_refuses_lesson_defeating_answers(handler: Callable[..., Any], reported: str,
                                                hinted: str) -> None:
    result = check_shout(single_endpoint("/shout", handler))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert hinted in result.hint, str(result)


async def reverse_without_a_disconnect_branch(websocket: WebSocket) -> None:
    """Right for a polite close (closing a connection that is already closed raises nothing here), wrong
    for a dropped one: the disconnect message has no bytes, so it is taken for text."""
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message.get("bytes") is None:
            await websocket.close(code=1003)
            return
        await websocket.send_bytes(message["bytes"][::-1])


async def reverse_that_echoes_the_disconnect(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if "text" in message:
            await websocket.close(code=1003)
            return
        await websocket.send_bytes((message.get("bytes") or b"")[::-1])


async def reverse_with_match(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        match await websocket.receive():
            case {"type": "websocket.disconnect"}:
                return
            case {"bytes": bytes() as data}:
                await websocket.send_bytes(bytes(reversed(data)))
            case _:
                await websocket.close(code=1003, reason="binary frames only")
                return


def test_reverse_accepts_a_match_statement() -> None:
    result = check_reverse(single_endpoint("/reverse", reverse_with_match))
    assert result.passed, str(result)


@pytest.mark.parametrize("handler", [reverse_without_a_disconnect_branch, reverse_that_echoes_the_disconnect])
def test_reverse_refuses_a_handler_with_no_branch_for_the_disconnect(handler: Callable[..., Any]) -> None:
    result = check_reverse(single_endpoint("/reverse", handler))
    assert result.status == "failed", str(result)
    assert "should end the handler quietly" in result.summary, str(result)
    assert "websocket.disconnect" in result.hint, str(result)


def sum_reply(numbers_ok: Callable[[Any], bool], extra: dict[str, Any] | None = None) -> Callable[[Any], Any]:
    def reply(data: Any) -> Any:
        numbers = data.get("numbers") if isinstance(data, dict) else None
        if not numbers_ok(numbers):
            return {"error": "send an object like {\"numbers\": [1, 2, 3]}"}
        return {"sum": sum(numbers), **(extra or {"count": len(numbers)})}

    return reply


def strict(numbers: Any) -> bool:
    return isinstance(numbers, list) and all(
        isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers)


def test_sum_accepts_extra_fields_in_the_reply() -> None:
    result = check_sum(single_endpoint("/sum", sum_handler(sum_reply(strict))))
    assert result.passed, str(result)


@pytest.mark.parametrize(("numbers_ok", "reported"), [
    (lambda n: n is not None and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in n),
     "the reply to {'numbers': ''} should be an error"),  # "" and {} have nothing to add up
    (lambda n: isinstance(n, list) and all(isinstance(x, (int, float)) for x in n),
     "the reply to {'numbers': [True]} should be an error"),
])
def test_sum_refuses_numbers_it_did_not_check(numbers_ok: Callable[[Any], bool], reported: str) -> None:
    result = check_sum(single_endpoint("/sum", sum_handler(sum_reply(numbers_ok))))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert "isinstance" in result.hint, str(result)


def test_a_wrong_sum_is_named_as_such_and_an_extra_field_is_not() -> None:
    result = check_sum(single_endpoint("/sum", sum_handler(lambda d: {"sum": 6, "count": 3})))
    assert result.status == "failed"
    assert "the reply to [1, 2, 3.5] should hold \"sum\": 6.5" in result.summary, str(result)
    assert result.details[:2] == ["expected: {'sum': 6.5}", "got:      {'sum': 6, 'count': 3}"]


