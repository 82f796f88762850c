"""Checks for chapter 06, the complete app: a typing indicator and emoji reactions.

Both exercises subclass :class:`~wslab.reference.app.AppRooms` and override its ``relay`` hook, which sees
only frames within the rate limit; the app is ``create_app(rooms_type=YourRooms)``, at ``/ws/chat/{room}``.
"""

from __future__ import annotations

from typing import Any

from websockets.exceptions import ConnectionClosed

from wslab.lab.client import LabClient, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import Transcript
from wslab.reference.app import AppRooms

from .auth import _has, _join, _next, _nothing
from .result import CheckResult, Mismatch, run_check

__all__ = ["REACTIONS", "check_reactions", "check_typing"]

REACTIONS = ("👍", "❤️", "😂", "🎉", "🤔")  # the emoji exercise 6.2 accepts


def _rooms(app: Any) -> AppRooms:
    rooms = getattr(getattr(app, "state", None), "rooms", None)
    if not isinstance(rooms, AppRooms):
        raise Mismatch("the app should be create_app(rooms_type=YourRooms)", "app.state.rooms: an AppRooms",
                       f"app.state.rooms is {rooms!r}")
    return rooms


async def _room(server: LabServer, app: Any, transcript: Transcript, room: str,
                *names: str) -> list[LabClient]:
    """``names`` logged in to ``room``, each having seen everyone's join. The caller closes them."""
    tokens = _rooms(app).tokens
    bots: list[LabClient] = []
    for name in names:
        # max_queue=None: a bot that stops reading (frames left unread at the end) must not stall its
        # closing handshake behind them for the whole close timeout.
        bot = await connect(server, f"/ws/chat/{room}", name=name, transcript=transcript, max_queue=None)
        bots.append(bot)
        await _join(bot, tokens.issue(name), f"{name} logs in to the {room}")
        for earlier in bots[:-1]:
            await _next(earlier, f"{earlier.name} sees {name} join", f"{name}'s join frame")
    return bots


async def _closed_with(bot: LabClient, code: int, step: str) -> None:
    expected = f"closed with {code}"
    try:
        for _ in range(100):  # what was already queued for it, then the close
            await bot.recv_json(3.0)
    except TimeoutError:
        raise Mismatch(step, expected, "still open") from None
    except ConnectionClosed:
        if bot.close_code != code:
            raise Mismatch(step, expected, f"closed with {bot.close_code} {bot.close_reason or ''}") from None
        return
    raise Mismatch(step, expected, "still open after 100 frames")


def check_typing(app: Any) -> CheckResult:
    """Exercise 6.1: ``{"type": "typing"}`` from a user reaches everyone else in the room as ``{"type":
    "typing", "user": <that user>}``: not the sender, not other rooms, and the user comes from the token
    whatever the frame says. Typing frames count against the rate limit; chat still works."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        lobby = await _room(server, app, transcript, "lobby", "ada", "bo", "cy")
        kitchen = await _room(server, app, transcript, "kitchen", "dee")
        ada, bo, cy = lobby
        (dee,) = kitchen
        try:
            await ada.send({"type": "typing"})
            typing = {"type": "typing", "user": "ada"}
            for bot in (bo, cy):
                step = f"{bot.name}, in ada's room, should see that ada is typing"
                _has(await _next(bot, step, typing), typing, step)
            await ada.send({"type": "typing", "user": "bo"})
            step = "a typing frame that claims to be from bo, sent by ada, should say ada"
            _has(await _next(cy, step, typing), typing, step)
            await ada.send({"type": "message", "content": "hello"})
            message = {"type": "message", "user": "ada", "content": "hello"}
            step = "ada should not see her own typing frames (her next frame is her message)"
            _has(await _next(ada, step, message), message, step)
            await dee.send({"type": "message", "content": "anyone?"})
            step = "dee, in the kitchen, should never see the lobby's typing (her next frame is her message)"
            mine = {"type": "message", "user": "dee", "content": "anyone?"}
            _has(await _next(dee, step, mine), mine, step)
            for _ in range(40):
                await cy.send({"type": "typing"})
            await _closed_with(cy, 1008, "40 typing frames at once are a flood: the rate limit should close "
                                         "cy with 1008 (handle them in relay, not handle)")
        finally:
            for bot in (*lobby, *kitchen):
                await bot.close()

    return run_check(
        "Exercise 6.1 (typing indicator)", app, scenario,
        passed="everyone else in the room sees who is typing.",
        hint="override relay(self, room, user, client, data): if frame_type(data) == 'typing', send "
             "{'type': 'typing', 'user': user} to every member of room.members except client, and return; "
             "otherwise call super().relay(room, user, client, data).",
    )


def check_reactions(app: Any) -> CheckResult:
    """Exercise 6.2: ``{"type": "reaction", "emoji": e}`` with ``e`` one of :data:`REACTIONS` reaches
    everyone in the room, the sender included, as ``{"type": "reaction", "user": u, "emoji": e}``.
    Any other emoji, a missing or non-string one, gets an ``error`` frame (with a ``message``) to the
    sender only; the connection stays open."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        lobby = await _room(server, app, transcript, "lobby", "ada", "bo")
        kitchen = await _room(server, app, transcript, "kitchen", "cy")
        ada, bo = lobby
        (cy,) = kitchen
        try:
            for emoji in ("👍", "🎉"):
                await bo.send({"type": "reaction", "emoji": emoji})
                reaction = {"type": "reaction", "user": "bo", "emoji": emoji}
                for bot in (ada, bo):
                    step = f"{bot.name} should see bo's {emoji} reaction (the sender too)"
                    _has(await _next(bot, step, reaction), reaction, step)
            for bad in ({"emoji": "👎"}, {"emoji": "<b>hi</b>"}, {"emoji": 42}, {}, {"emoji": "👍" * 500}):
                await ada.send({"type": "reaction", **bad})
                step = (f"a reaction with {bad or 'no emoji'} should get an error frame, "
                        "{'type': 'error', 'message': 'why'}, to ada only")
                error = await _next(ada, step, {"type": "error", "message": "(text saying why)"})
                _has(error, {"type": "error"}, step)
                if not isinstance(error.get("message"), str) or not error["message"]:
                    raise Mismatch(step, {"type": "error", "message": "(text saying why)"}, error)
            await ada.send({"type": "message", "content": "still here"})
            message = {"type": "message", "user": "ada", "content": "still here"}
            step = "after the bad reactions ada's connection should stay open and chat should work"
            _has(await _next(ada, step, message), message, step)
            step = "bo should see none of ada's refused reactions (his next frame is her message)"
            _has(await _next(bo, step, message), message, step)
            await _nothing(cy, "cy, in the kitchen, should see nothing of the lobby")
        finally:
            for bot in (*lobby, *kitchen):
                await bot.close()

    return run_check(
        "Exercise 6.2 (reactions)", app, scenario,
        passed="reactions reach the room, and nothing else gets through.",
        hint="in relay, if frame_type(data) == 'reaction', validate it with the Reaction model (emoji: "
             "Literal[REACTIONS]); on ValidationError, client.send({'type': 'error', 'message': ...}) and "
             "return; else send {'type': 'reaction', 'user': user, 'emoji': ...} to every member of "
             "room.members, and return. Other frames: super().relay(...).",
    )
