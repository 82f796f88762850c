"""Checks for chapter 03, rooms: a ``/who`` command and the room's history for late joiners.

Both exercises extend :class:`~wslab.reference.rooms.ChatRooms` and are served at ``/chat/{room}/{user}``.
"""

from __future__ import annotations

from typing import Any

from wslab.lab.client import LabClient, bots, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import Transcript

from .result import CheckResult, Mismatch, expect, run_check

__all__ = ["check_history", "check_who"]


def _say(content: str) -> dict[str, str]:
    return {"type": "message", "content": content}


async def _frame(bot: LabClient, step: str) -> Any:
    frame = await bot.recv_json()
    if not isinstance(frame, dict):
        raise Mismatch(step, "a JSON object", frame)
    return frame


async def _skip_presence(bot: LabClient, step: str) -> Any:
    """The next frame that is not a join or a leave."""
    for _ in range(20):
        frame = await _frame(bot, step)
        if frame.get("type") not in ("join", "leave"):
            return frame
    raise Mismatch(step, "a frame other than join/leave", "only join and leave frames")


async def _quiet(bot: LabClient, what: str) -> None:
    try:
        frame = await _skip_presence(bot, what)
    except TimeoutError:
        return
    raise Mismatch(f"{bot.name} should not receive {what}", "(nothing)", frame)


def check_who(app: Any) -> CheckResult:
    """Exercise 3.1: ``{"type": "message", "content": "/who"}`` is answered, to the sender only, with
    ``{"type": "users", "users": [...]}`` (the room's users in join order); a frame that is not JSON
    still gets an ``error`` frame, and other messages still reach the room."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        lobby = bots(server, "/chat/lobby/{name}", ["bo", "ada"], transcript=transcript)
        async with lobby as team, connect(server, "/chat/attic/cy", name="cy", transcript=transcript):
            ada, bo = team["ada"], team["bo"]
            await ada.send(_say("/who"))
            expect(await _skip_presence(ada, "/who"), {"type": "users", "users": ["bo", "ada"]},
                   "/who in the lobby should list bo and ada, in the order they joined")
            await _quiet(bo, "ada's /who or its answer")
            await ada.send("/who")  # not JSON: must get an error frame, as any other bad frame does
            answer = await _skip_presence(ada, "an error frame for a frame that is not JSON")
            expect(answer.get("type"), "error",
                   "a frame that is not JSON should get an error frame (and the connection stays open)")
            await bo.send(_say("hi"))
            for bot in team:
                expect(await _skip_presence(bot, "bo's message"),
                       {"type": "message", "user": "bo", "content": "hi"},
                       "other messages should still reach the room")

    return run_check(
        "Exercise 3.1 (who)", app, scenario,
        passed="/who lists the room's users to the one who asked.",
        hint="in handle(): parse(data) inside try/except ProtocolError; if it is a ChatMessage whose "
             "content is '/who', client.send(json.dumps({'type': 'users', 'users': room.users})) and "
             "return; otherwise call super().handle(room, user, client, data).",
    )


def check_history(app: Any) -> CheckResult:
    """Exercise 3.2: right after the ``join`` frames, a newcomer gets
    ``{"type": "history", "messages": [{"user": u, "content": c}, ...]}`` with the room's last 10
    messages, oldest first (an empty list in a new room), private messages left out; rooms keep
    separate histories."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/chat/lobby/ada", name="ada", transcript=transcript) as ada:
            expect(await _skip_presence(ada, "ada's history"), {"type": "history", "messages": []},
                   "the first user in a new room should get an empty history")
            for n in range(12):
                await ada.send(_say(f"message {n}"))
                await _skip_presence(ada, "ada's own message")
            expected = [{"user": "ada", "content": f"message {n}"} for n in range(2, 12)]
            async with connect(server, "/chat/lobby/bo", name="bo", transcript=transcript) as bo:
                expect(await _skip_presence(bo, "bo's history"), {"type": "history", "messages": expected},
                       "bo should get the lobby's last 10 messages, oldest first")
                await ada.send({"type": "private", "to": "bo", "content": "psst"})
                await _skip_presence(bo, "ada's private message")
                async with connect(server, "/chat/lobby/cy", name="cy", transcript=transcript) as cy:
                    history = await _skip_presence(cy, "cy's history")
                    expect(history, {"type": "history", "messages": expected},
                           "private messages are not part of the history: cy should get what bo got")
            async with connect(server, "/chat/attic/dee", name="dee", transcript=transcript) as dee:
                expect(await _skip_presence(dee, "dee's history"), {"type": "history", "messages": []},
                       "another room has its own (empty) history")

    return run_check(
        "Exercise 3.2 (history)", app, scenario,
        passed="late joiners see what they missed, room by room.",
        hint="keep a collections.deque(maxlen=10) per room name; append {'user': user, 'content': ...} "
             "in handle() for each ChatMessage (then call super().handle), and send the history frame in "
             "joined().",
    )
