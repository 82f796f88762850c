"""Checks for chapter 01, the echo endpoint: text, JSON and binary frames, and a clean disconnect.

Every check also fails if the server logged an error (see :func:`~wslab.checks.result.run_check`), so a
handler that crashes when the client leaves does not pass.
"""

from __future__ import annotations

import json
from typing import Any

from wslab.lab.client import LabClient, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import Transcript

from .result import CheckResult, Mismatch, expect, run_check

__all__ = ["check_reverse", "check_shout", "check_sum"]


def check_shout(app: Any) -> CheckResult:
    """Exercise 1.1: ``/shout`` answers every text message in capitals for as long as the client stays,
    and a client that leaves makes no error in the server's log."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/shout", transcript=transcript) as ws:
            for text in ("hello", "Grüße aus Köln", "it's 3 pm", "again", "and once more"):
                await ws.send(text)
                expect(await ws.recv(), text.upper(), f"the reply to {text!r} should be {text.upper()!r}")

    return run_check(
        "Exercise 1.1 (shout)", app, scenario,
        passed="/shout answers in capitals, and closing the connection logs nothing.",
        hint="reply with text.upper() in a loop; wrap the loop in try/except WebSocketDisconnect so a "
             "client leaving ends the handler quietly.",
    )


async def _reply_json(ws: LabClient, sent: object) -> Any:
    reply = await ws.recv()
    try:
        return json.loads(reply)
    except (TypeError, ValueError):
        raise Mismatch(f"the reply to {sent!r} should be JSON", "a JSON object", reply) from None


def check_sum(app: Any) -> CheckResult:
    """Exercise 1.2: ``/sum`` replies ``{"sum": ...}`` to ``{"numbers": [...]}`` and an
    ``{"error": "..."}`` object to anything else, keeping the connection open."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/sum", transcript=transcript) as ws:
            await ws.send({"numbers": [1, 2, 3.5]})
            expect(await _reply_json(ws, "[1, 2, 3.5]"), {"sum": 6.5}, "the sum of [1, 2, 3.5] is 6.5")
            bad_inputs: list[str | dict[str, Any] | list[Any]] = [
                "this is not JSON", {"values": [1]}, {"numbers": "12"}, {"numbers": ["1", "2"]},
                {"numbers": [True]}, [1, 2],
            ]
            for bad in bad_inputs:
                await ws.send(bad)
                reply = await _reply_json(ws, bad)
                if not (isinstance(reply, dict) and isinstance(reply.get("error"), str)
                        and reply["error"].strip()):
                    raise Mismatch(f"the reply to {bad!r} should be an error", {"error": "what is wrong"},
                                   reply)
            await ws.send({"numbers": []})
            expect(await _reply_json(ws, "[]"), {"sum": 0}, "the sum of an empty list is 0")

    return run_check(
        "Exercise 1.2 (sum)", app, scenario,
        passed="/sum adds up numbers, answers bad input with an error object and stays open.",
        hint="use websocket.receive_text() and json.loads() inside try/except ValueError; check that the "
             "result is a dict whose 'numbers' is a list of int or float (bool is not a number here) "
             "before adding them up.",
    )


def check_reverse(app: Any) -> CheckResult:
    """Exercise 1.3: ``/reverse`` sends every binary frame back reversed, ends quietly when the client
    leaves, and closes the connection with code 1003 (unsupported data) on a text frame."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/reverse", transcript=transcript) as ws:
            for data in (b"\x01\x02\x03", b"wslab", b""):
                await ws.send(data)
                expect(await ws.recv(), data[::-1], f"the reply to {data!r} should be {data[::-1]!r}")
        async with connect(server, "/reverse", transcript=transcript) as ws:
            await ws.send("text, not bytes")
            code: int | str | None
            try:
                code = await ws.wait_closed(timeout=2.0)
            except TimeoutError:
                code = "still open 2 s after the text frame"
            expect(code, 1003, "a text frame should close the connection with code 1003")

    return run_check(
        "Exercise 1.3 (reverse)", app, scenario,
        passed="/reverse turns bytes around, ends quietly when the client leaves, and refuses text "
               "with close code 1003.",
        hint="message = await websocket.receive() gives a dict: its 'type' is 'websocket.disconnect' "
             "when the client leaves; otherwise message.get('bytes') holds a binary frame (possibly "
             "b'') and message.get('text') a text frame. Close with await websocket.close(code=1003).",
    )
