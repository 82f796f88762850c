"""Checks for chapter 01, the echo endpoint: text, JSON and binary frames, and a clean disconnect.

Every check also fails if the server logged an error (see :func:`~wslab.checks.result.run_check`), so a
handler that crashes when the client leaves does not pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from wslab.lab.client import LabClient, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import EVENT, Transcript

from .result import CheckResult, Mismatch, expect, run_check

__all__ = ["check_reverse", "check_shout", "check_sum"]

DROP_WAIT = 3.0  # seconds the check waits for a handler to end after its client left, before judging it
HELD = 1.0  # seconds the server's loop may take to run a callback before the check calls it held by a handler
# Seconds a client that leaves politely waits for the server's close frame (websockets waits 10 by default):
# a server whose loop runs replies at once; one held by a spinning handler never does.
CLOSE_WAIT = 2.0


def _errors_logged(server: LabServer) -> int:
    return len([r for r in server.log.records if r.levelno >= logging.ERROR])


async def _ended_quietly(server: LabServer, port: int, errors_before: int, step: str, hint: str) -> None:
    """The handler of the client that was on ``port`` has ended without raising or logging an error."""
    session = server.sessions.for_client_port(port)
    if session is None:
        return
    deadline = asyncio.get_running_loop().time() + DROP_WAIT
    while not session.done.done() and (left := deadline - asyncio.get_running_loop().time()) > 0:
        if not await asyncio.to_thread(server.answers, HELD):  # not slow: the handler holds the server
            raise Mismatch(step, "the handler ends", "it still runs, and the server answers nothing else",
                           hint)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(HELD, left)):
                await asyncio.shield(asyncio.wrap_future(session.done))
    await asyncio.sleep(0)  # uvicorn logs a handler's traceback right after it returns: let that land
    if not session.done.done():
        return  # slow to end is not wrong; one that never ends, or logs later, is judged when the check ends
    logged = [r for r in server.log.records if r.levelno >= logging.ERROR][errors_before:]
    if session.error is not None or logged:
        error = session.error
        got = f"{type(error).__name__}: {error}" if error is not None else logged[0].getMessage()
        raise Mismatch(step, "nothing logged", got, hint)


async def _leave(ws: LabClient, server: LabServer, transcript: Transcript, hint: str, *,
                 drop: bool = False) -> None:
    """``ws`` leaves while its handler waits for the next message: with a close frame, or (``drop``) by
    dropping its TCP connection without one (a laptop lid closed, a train in a tunnel). Either way the
    handler must end without an error."""
    port, errors_before = ws.connection.local_address[1], _errors_logged(server)
    if drop:
        ws.connection.transport.abort()
        transcript.add(ws.name, EVENT, "drops the connection: no close frame (a closed laptop lid)")
        step = ("a client that drops its connection without a close frame should end the handler quietly, "
                "as a polite close does")
    else:
        await ws.close()
        step = "a client that closes the connection should end the handler quietly"
    await _ended_quietly(server, port, errors_before, step, hint)


def check_shout(app: Any) -> CheckResult:
    """Exercise 1.1: ``/shout`` answers every text message in capitals (``upper()``, so "ß" becomes "SS")
    for as long as the client stays, and a client that leaves, politely or by dropping its connection,
    makes no error in the server's log. Refuses: no ``except WebSocketDisconnect`` (an ERROR for every
    leave), one answer then the end, ``swapcase``, ASCII-only capitals, a loop that spins after the client
    left."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/shout", transcript=transcript, close_timeout=CLOSE_WAIT) as ws:
            for text in ("hello", "Grüße aus Köln", "it's 3 pm", "again", "and once more"):
                await ws.send(text)
                expect(await ws.recv(), text.upper(), f"the reply to {text!r} should be {text.upper()!r}",
                       "str has a method for capitals that knows every alphabet.")
            await _leave(ws, server, transcript, LEAVING)
        async with connect(server, "/shout", name="bo", transcript=transcript) as bo:
            await bo.send("bye")
            expect(await bo.recv(), "BYE", "the reply to 'bye' should be 'BYE'")
            await _leave(bo, server, transcript, LEAVING, drop=True)

    return run_check(
        "Exercise 1.1 (shout)", app, scenario,
        passed="/shout answers in capitals, and closing the connection logs nothing.",
        hint="start from section 3's fixed echo: the same loop, with one change to what is sent back.",
    )


LEAVING = ("when the client leaves, politely or not, the waiting receive raises WebSocketDisconnect: catch "
           "that one (not every exception) around the loop, as section 3 does.")


async def _reply_json(ws: LabClient, sent: object) -> Any:
    reply = await ws.recv()
    try:
        return json.loads(reply)
    except (TypeError, ValueError):
        raise Mismatch(f"the reply to {sent!r} should be JSON", "a JSON object", reply,
                       "send a dict with websocket.send_json(), not text.") from None


BAD_SUMS: list[str | dict[str, Any] | list[Any]] = [
    "this is not JSON", "null", {"values": [1]}, {"numbers": "12"}, {"numbers": ""}, {"numbers": {}},
    {"numbers": None}, {"numbers": ["1", "2"]}, {"numbers": [1, None]}, {"numbers": [True]}, [1, 2],
]


def check_sum(app: Any) -> CheckResult:
    """Exercise 1.2: ``/sum`` replies ``{"sum": ...}`` to ``{"numbers": [...]}`` and an
    ``{"error": "..."}`` object to anything else, keeping the connection open. Extra fields in a reply
    are fine (``{"sum": 6.5, "count": 3}``). Refuses: ``true`` counted as 1, strings converted to numbers,
    ``sum()`` trusted on whatever "numbers" holds (``""`` and ``{}`` "sum" to 0), ``receive_json`` (text
    that is not JSON ends the connection), closing on bad input, an empty error."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/sum", transcript=transcript) as ws:
            for numbers, total in (([1, 2, 3.5], 6.5), ([], 0)):
                await ws.send({"numbers": numbers})
                reply = await _reply_json(ws, {"numbers": numbers})
                if not (isinstance(reply, dict) and reply.get("sum") == total and "error" not in reply):
                    raise Mismatch(f"the reply to {numbers} should hold \"sum\": {total}", {"sum": total},
                                   reply, "reply with an object whose \"sum\" is the total (an empty "
                                   "list adds up to 0).")
            for bad in BAD_SUMS:
                await ws.send(bad)
                reply = await _reply_json(ws, bad)
                if not (isinstance(reply, dict) and isinstance(reply.get("error"), str)
                        and reply["error"].strip()):
                    raise Mismatch(f"the reply to {bad!r} should be an error", {"error": "what is wrong"},
                                   reply, _SUM_HINT)

    return run_check(
        "Exercise 1.2 (sum)", app, scenario,
        passed="/sum adds up numbers, answers bad input with an error object and stays open.",
        hint="start with receive_text() and json.loads(): what can the text be, and what can \"numbers\" "
             "hold? Each wrong case needs an {\"error\": ...} reply, not an exception.",
    )


_SUM_HINT = ("check before adding: the JSON must be an object whose \"numbers\" is a list (isinstance), and "
             "every item an int or a float; True is an int in Python, so rule bool out explicitly.")


_DISCONNECT = ("receive() gives a 'websocket.disconnect' message when the client leaves, politely or not: "
               "look at message['type'] first, and return.")


def check_reverse(app: Any) -> CheckResult:
    """Exercise 1.3: ``/reverse`` sends every binary frame back reversed (``b""`` too), ends quietly
    when the client leaves, politely or by dropping its connection, and closes the connection with code
    1003 (unsupported data) on a text frame. Refuses: ``b""`` taken for text, a text frame answered or
    closed with another code, ``receive_bytes`` (a text frame crashes it), no branch for the disconnect
    message (a dropped client makes the handler close or send on a dead connection)."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/reverse", transcript=transcript, close_timeout=CLOSE_WAIT) as ws:
            for data in (b"\x01\x02\x03", b"wslab", b""):
                await ws.send(data)
                expect(await ws.recv(), data[::-1], f"the reply to {data!r} should be {data[::-1]!r}",
                       "b'' is a binary frame too, and it is falsy: test for None, not for truth.")
            await _leave(ws, server, transcript, _DISCONNECT)
        async with connect(server, "/reverse", name="bo", transcript=transcript) as bo:
            await bo.send(b"bye")
            expect(await bo.recv(), b"eyb", "the reply to b'bye' should be b'eyb'")
            await _leave(bo, server, transcript, _DISCONNECT, drop=True)
        async with connect(server, "/reverse", transcript=transcript) as ws:
            await ws.send("text, not bytes")
            code: int | str | None
            try:
                code = await ws.wait_closed(timeout=2.0)
            except TimeoutError:
                code = "still open 2 s after the text frame"
            expect(code, 1003, "a text frame should close the connection with code 1003",
                   "close with the code the task names, then stop the loop.")

    return run_check(
        "Exercise 1.3 (reverse)", app, scenario,
        passed="/reverse turns bytes around, ends quietly when the client leaves, and refuses text "
               "with close code 1003.",
        hint="start from section 4: receive() gives a dict for every kind of message. Which keys tell a "
             "binary frame, a text frame and a client that left apart?",
    )
