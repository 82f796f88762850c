"""Checks for chapter 01, the echo endpoint: text, JSON and binary frames, and a clean disconnect."""

from __future__ import annotations

import json
from typing import Any

from ..client import connect
from ..server import LabServer
from ..transcript import Transcript
from .result import CheckResult, expect, run_check

__all__ = ["check_reverse", "check_shout", "check_sum"]


def check_shout(app: Any) -> CheckResult:
    """Exercise 1.1: ``/shout`` answers every text message in capitals, and a client that leaves
    makes no error in the server's log."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/shout", transcript=transcript) as ws:
            for text in ("hello", "Grüße aus Köln", "it's 3 pm"):
                await ws.send(text)
                expect(await ws.recv(), text.upper(), f"the reply to {text!r} should be {text.upper()!r}")

    return run_check(
        "Exercise 1.1 (shout)", app, scenario,
        passed="/shout answers in capitals, and closing the connection logs nothing.",
        hint="reply with text.upper(); wrap the receive loop in try/except WebSocketDisconnect so a "
             "client leaving ends the handler quietly.",
    )


def check_sum(app: Any) -> CheckResult:
    """Exercise 1.2: ``/sum`` replies ``{"sum": ...}`` to ``{"numbers": [...]}`` and an
    ``{"error": ...}`` object to anything else, keeping the connection open."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/sum", transcript=transcript) as ws:
            await ws.send({"numbers": [1, 2, 3.5]})
            expect(json.loads(await ws.recv()), {"sum": 6.5}, "the reply to [1, 2, 3.5] should be 6.5")
            for bad in ("this is not JSON", {"values": [1]}, {"numbers": "12"}, [1, 2]):
                await ws.send(bad)
                reply = json.loads(await ws.recv())
                got_error = isinstance(reply, dict) and isinstance(reply.get("error"), str)
                expect(got_error, True, f"the reply to {bad!r} should be an object with an 'error' text")
            await ws.send({"numbers": []})
            expect(json.loads(await ws.recv()), {"sum": 0},
                   "after bad input the connection should still work: the sum of [] is 0")

    return run_check(
        "Exercise 1.2 (sum)", app, scenario,
        passed="/sum adds up numbers, answers bad input with an error object and stays open.",
        hint="use websocket.receive_text() and json.loads() inside try/except (ValueError); check that "
             "the result is a dict whose 'numbers' is a list of numbers before adding them up.",
    )


def check_reverse(app: Any) -> CheckResult:
    """Exercise 1.3: ``/reverse`` sends every binary frame back reversed and closes the connection
    with code 1003 (unsupported data) when it receives a text frame."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/reverse", transcript=transcript) as ws:
            for data in (b"\x01\x02\x03", b"wslab"):
                await ws.send(data)
                expect(await ws.recv(), data[::-1], f"the reply to {data!r} should be {data[::-1]!r}")
            await ws.send("text, not bytes")
            code = await ws.wait_closed(timeout=2.0)
            expect(code, 1003, "a text frame should close the connection with code 1003")

    return run_check(
        "Exercise 1.3 (reverse)", app, scenario,
        passed="/reverse turns bytes around and refuses text with close code 1003.",
        hint="message = await websocket.receive() gives a dict: message.get('bytes') holds a binary "
             "frame, message.get('text') a text frame, and its 'type' is 'websocket.disconnect' when the "
             "client leaves. Close with await websocket.close(code=1003).",
    )
