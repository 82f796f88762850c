"""Checks for chapter 03, rooms: a ``/who`` command and the room's history for late joiners.

Both exercises extend :class:`~wslab.reference.rooms.ChatRooms` and are served at ``/chat/{room}/{user}``.
"""

from __future__ import annotations

from typing import Any

from wslab.lab.client import LabClient, bots, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import Transcript
from wslab.reference.protocol import MAX_CONTENT

from .result import CheckResult, Mismatch, expect, run_check

__all__ = ["check_history", "check_who"]

QUIET = 0.5  # seconds a check waits to be sure a frame does not come


def _say(content: str) -> dict[str, str]:
    return {"type": "message", "content": content}


async def _frame(bot: LabClient, step: str, wait: float = 5.0) -> Any:
    frame = await bot.recv_json(wait)
    if not isinstance(frame, dict):
        raise Mismatch(step, "a JSON object", frame)
    return frame


async def _skip_presence(bot: LabClient, step: str, wait: float = 3.0, hint: str = "", *,
                         quiet: bool = False) -> Any:
    """The next frame that is not a join or a leave; a :class:`Mismatch` for ``step`` if none comes within
    ``wait`` seconds (a ``TimeoutError`` if ``quiet``: nothing was the point)."""
    for _ in range(20):
        try:
            frame = await _frame(bot, step, wait)
        except TimeoutError:
            if quiet:
                raise
            raise Mismatch(step, "a frame", f"nothing within {wait:g} s", hint) from None
        if frame.get("type") not in ("join", "leave"):
            return frame
    raise Mismatch(step, "a frame other than join/leave", "only join and leave frames")


async def _quiet(bot: LabClient, what: str, hint: str = "") -> None:
    try:
        frame = await _skip_presence(bot, what, QUIET, quiet=True)
    except TimeoutError:
        return
    raise Mismatch(f"{bot.name} should not receive {what}", "(nothing)", frame, hint)


def _has(frame: Any, expected: dict[str, Any], step: str, hint: str = "") -> None:
    """Like :func:`expect`, but extra fields (a room, an id) are fine, as the wire protocol says."""
    if not all(frame.get(key) == value for key, value in expected.items()):
        raise Mismatch(step, expected, frame, hint)


def check_who(app: Any) -> CheckResult:
    """Exercise 3.1: ``{"type": "message", "content": "/who"}`` is answered, to the sender only, with
    ``{"type": "users", "users": [...]}`` (the room's users in join order; extra fields are fine); a frame
    that is not JSON still gets an ``error`` frame, and other messages still reach the room. Refuses:

    - the answer broadcast to the room, or the users of every room;
    - the raw text compared with one spelling of the frame: the same frame with its keys in another
      order, or an extra field, is still the command;
    - ``"content"`` looked up in any frame, or ``"/who"`` searched for in the text: a *private* message
      whose content is "/who" must reach the one it is for, and "what does /who do?" is a message;
    - ``json.loads`` without a ``try``: the handler crashes on a frame that is not JSON.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        lobby = bots(server, "/chat/lobby/{name}", ["bo", "ada"], transcript=transcript)
        async with lobby as team, connect(server, "/chat/attic/cy", name="cy", transcript=transcript):
            ada, bo = team["ada"], team["bo"]
            users = {"type": "users", "users": ["bo", "ada"]}
            await ada.send(_say("/who"))
            step = "/who in the lobby should list bo and ada, in the order they joined"
            hint = "room.users lists this room's users in join order; send them to `client`, who asked."
            _has(await _skip_presence(ada, step, hint=hint), users, step, hint)
            await _quiet(bo, "ada's /who or its answer",
                         "answer only the one who asked (client.send), and do not pass the command on.")
            await ada.send('{"content": "/who", "type": "message", "id": 7}')
            _has(await _skip_presence(ada, "/who spelled another way"), users,
                 "the same frame with its keys in another order and an extra id is still /who",
                 "compare what the frame means, not its text: parse it, then look at its type and content.")
            await ada.send({"type": "private", "to": "bo", "content": "/who"})
            private = {"type": "private", "from": "ada", "to": "bo", "content": "/who"}
            step = "a private message to bo whose content is '/who' is not the command: bo should receive it"
            hint = ("only a room message ({\"type\": \"message\"}) carries the command: check the frame's "
                    "type as well as its content.")
            _has(await _skip_presence(bo, step, hint=hint), private, step, hint)
            await _skip_presence(ada, "her copy of the private message")
            await bo.send(_say("what does /who do?"))
            step = "'what does /who do?' is a message, not the command: everyone should receive it"
            for bot in team:
                _has(await _skip_presence(bot, step, hint="the command is a content of exactly '/who'."),
                     {"type": "message", "user": "bo", "content": "what does /who do?"}, step,
                     "the command is a content of exactly '/who'.")
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
        hint="start from `data`, the raw frame: section 6 shows how parse() turns it into a validated "
             "frame, and what it raises for one it cannot trust. Which kind of frame, with which content, "
             "is the command? And who "
             "should hear the answer?",
    )


def _messages(frame: Any, step: str, expected: list[dict[str, str]], hint: str = "") -> None:
    """``frame`` should be a history holding ``expected``, in that order (extra fields are fine)."""
    history = frame.get("messages")
    if frame.get("type") != "history" or not isinstance(history, list):
        raise Mismatch(step, {"type": "history", "messages": expected}, frame, hint)
    if not (len(history) == len(expected) and all(
            isinstance(got, dict) and all(got.get(key) == value for key, value in want.items())
            for got, want in zip(history, expected, strict=True))):
        raise Mismatch(step, {"type": "history", "messages": expected}, frame, hint)


def check_history(app: Any) -> CheckResult:
    """Exercise 3.2: right after the ``join`` frames, a newcomer (and only the newcomer) gets
    ``{"type": "history", "messages": [{"user": u, "content": c}, ...]}`` with the room's last 10
    messages, oldest first (an empty list in a new room), private messages left out; rooms keep
    separate histories; extra fields are fine. Refuses:

    - the user taken from the frame (``{"type": "message", "content": ..., "user": "bo"}`` sent by ada is
      ada's message: identity comes from the connection);
    - recording before validating: an empty content, one over the limit, one that is not a string, a
      message without content and text that is not JSON are refused with an error and never kept;
    - the history broadcast to the room instead of sent to the newcomer;
    - private messages kept; one history for every room; newest first; no limit.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with connect(server, "/chat/lobby/ada", name="ada", transcript=transcript) as ada:
            _messages(await _skip_presence(ada, "ada's history"), "the first user in a new room should get "
                      "an empty history", [])
            invalid: list[Any] = [_say(""), _say("x" * (MAX_CONTENT + 1)), {"type": "message", "content": 5},
                                  {"type": "message"}, "not JSON"]
            for n in range(12):
                if n == 4:
                    for bad in invalid:
                        await ada.send(bad)
                        expect((await _skip_presence(ada, "an error frame")).get("type"), "error",
                               f"{str(bad)[:40]!r} is not a valid message: it should get an error frame")
                frame = {**_say(f"message {n}"), "user": "bo"} if n == 6 else _say(f"message {n}")
                await ada.send(frame)
                await _skip_presence(ada, "ada's own message")
            expected = [{"user": "ada", "content": f"message {n}"} for n in range(2, 12)]
            async with connect(server, "/chat/lobby/bo", name="bo", transcript=transcript) as bo:
                history = await _skip_presence(bo, "bo's history")
                kept = [entry.get("content") for entry in history.get("messages") or []
                        if isinstance(entry, dict)]
                if any(content not in [e["content"] for e in expected] for content in kept):
                    raise Mismatch("only valid messages belong in the history: bo should not see the frames "
                                   "ada got an error for", {"type": "history", "messages": expected}, history,
                                   "record a message only once it has been validated (parse(data) did not "
                                   "raise), and record what was validated.")
                _messages(history, "bo should get the lobby's last 10 messages, oldest first, each from the "
                          "user who sent it (ada sent message 6 with a field saying \"user\": \"bo\")",
                          expected, "the sender is the `user` this connection joined as, never a field of "
                          "the frame; and keep only the last 10, oldest first.")
                await ada.send({"type": "private", "to": "bo", "content": "psst"})
                expect((await _skip_presence(ada, "her copy of the private message")).get("type"), "private",
                       "ada should get no history when bo joins: the history is for the newcomer only",
                       "send the history to `client`, the newcomer, not to the room.")
                await _skip_presence(bo, "ada's private message")
                async with connect(server, "/chat/lobby/cy", name="cy", transcript=transcript) as cy:
                    _messages(await _skip_presence(cy, "cy's history"),
                              "private messages are not part of the history: cy should get what bo got",
                              expected, "keep room messages (ChatMessage) only.")
            async with connect(server, "/chat/attic/dee", name="dee", transcript=transcript) as dee:
                _messages(await _skip_presence(dee, "dee's history"), "another room has its own (empty) "
                          "history", [], "one history per room name.")

    return run_check(
        "Exercise 3.2 (history)", app, scenario,
        passed="late joiners see what they missed, room by room.",
        hint="two places to fill: handle() sees every frame a user sends (which of them belong in a room's "
             "history?), and joined() runs once for each newcomer. __init__ already gives you a place "
             "to keep each room's last 10.",
    )
