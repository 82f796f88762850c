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

from .frames import has as _has
from .frames import join as _join
from .frames import next_frame as _next
from .frames import nothing as _nothing
from .result import CheckResult, Mismatch, run_check

__all__ = ["REACTIONS", "check_reactions", "check_typing"]

REACTIONS = ("👍", "❤️", "😂", "🎉", "🤔")  # the emoji exercise 6.2 accepts
FLOOD = 40  # frames sent at once to prove the rate limit applies (its burst is 20)

FLOOD_HINT = ("handle your frame in relay, not in handle: handle takes a token from the sender's rate limit "
              "first, then calls relay, so only frames that reach relay are counted.")
FROM_TOKEN_HINT = ("the name comes from the token: use the user argument relay is given, never a field of "
                   "the frame the client sent.")
OWN_FIELDS_HINT = ("build the frame you send from what you checked (the type, the user from the token, the "
                   "validated fields), not from the client's frame: whatever else a client puts in it must "
                   "not reach anyone.")


def _no_client_fields(frame: Any, step: str) -> None:
    """The relayed frame carries none of the fields a client slipped into its own frame."""
    if isinstance(frame, dict) and "note" in frame:
        raise Mismatch(step, "no 'note' field (the client made it up)", frame, OWN_FIELDS_HINT)


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


async def _closed_with(bot: LabClient, code: int, step: str, hint: str = FLOOD_HINT) -> None:
    expected = f"closed with {code}"
    try:
        for _ in range(100):  # what was already queued for it, then the close
            await bot.recv_json(3.0)
    except TimeoutError:
        raise Mismatch(step, expected, "still open", hint) from None
    except ConnectionClosed:
        if bot.close_code != code:
            raise Mismatch(step, expected, f"closed with {bot.close_code} {bot.close_reason or ''}",
                           hint) from None
        return
    raise Mismatch(step, expected, "still open after 100 frames", hint)


def check_typing(app: Any) -> CheckResult:
    """Exercise 6.1: ``{"type": "typing"}`` from a user reaches everyone else in the room as ``{"type":
    "typing", "user": <that user>}``: not the sender, not other rooms, and the user comes from the token
    whatever the frame says. Typing frames count against the rate limit; chat still works.

    Refused, among others: the name taken from the frame; the client's frame relayed with the user set (its
    other fields reach everyone); the sender included; every room; typing frames handled in ``handle``,
    before the rate limit (a flood of them is never stopped)."""

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
                _has(await _next(bot, step, typing), typing, step,
                     "in relay, when frame_type(data) is 'typing', send {'type': 'typing', 'user': ...} to "
                     "the other members of the room, then return.")
            await ada.send({"type": "typing", "user": "bo", "note": "<img src=x onerror=alert(1)>"})
            step = "a typing frame that claims to be from bo, sent by ada, should say ada"
            frame = await _next(cy, step, typing)
            _has(frame, typing, step, FROM_TOKEN_HINT)
            _no_client_fields(frame, "ada's typing frame had a 'note' field of her own: cy should not get it")
            await ada.send({"type": "message", "content": "hello"})
            message = {"type": "message", "user": "ada", "content": "hello"}
            step = "ada should not see her own typing frames (her next frame is her message)"
            _has(await _next(ada, step, message), message, step,
                 "send the typing frame to every member but the sender (client).")
            await dee.send({"type": "message", "content": "anyone?"})
            step = "dee, in the kitchen, should never see the lobby's typing (her next frame is her message)"
            mine = {"type": "message", "user": "dee", "content": "anyone?"}
            _has(await _next(dee, step, mine), mine, step,
                 "room.members holds the members of the sender's room only: loop over it, not over every "
                 "room.")
            for _ in range(FLOOD):
                await cy.send({"type": "typing"})
            await _closed_with(cy, 1008, f"{FLOOD} typing frames at once are a flood: the rate limit should "
                                         "close cy with 1008")
        finally:
            for bot in (*lobby, *kitchen):
                await bot.close()

    return run_check(
        "Exercise 6.1 (typing indicator)", app, scenario,
        passed="everyone else in the room sees who is typing.",
        hint="start in relay: recognise a typing frame with frame_type(data), and think about who should "
             "receive what (the exercise lists it). Everything else goes on to super().relay(...).",
    )


BAD_REACTIONS: tuple[dict[str, Any], ...] = (
    {"emoji": "👎"}, {"emoji": "<b>hi</b>"}, {"emoji": 42}, {}, {"emoji": "👍" * 500}, {"emoji": ""},
    {"emoji": "❤"}, {"emoji": "👍🎉"}, {"emoji": ["👍"]},
)  # another emoji, HTML, a number, none, too long, empty, ❤ without its U+FE0F, two at once, a list


def check_reactions(app: Any) -> CheckResult:
    """Exercise 6.2: ``{"type": "reaction", "emoji": e}`` with ``e`` one of :data:`REACTIONS` reaches
    everyone in the room, the sender included, as ``{"type": "reaction", "user": u, "emoji": e}`` (more
    fields are fine). Any other emoji, a missing or non-string one, gets an ``error`` frame (with a
    ``message``) to the sender only; the connection stays open. Reactions count against the rate limit.

    Refused, among others: the name taken from the frame (a forged ``user``); the client's frame relayed as
    it came (its other fields reach everyone); a check by substring (``""``, a bare ``❤``, two emoji at once
    pass it); no validation; the error sent to the room; the sender left out; reactions handled in
    ``handle``, before the rate limit (a flood of them is never stopped)."""

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
                    _has(await _next(bot, step, reaction), reaction, step,
                         "send the reaction to every member of the room, the sender included.")
            await ada.send({"type": "reaction", "emoji": "🤔", "user": "bo", "note": "<script>"})
            reaction = {"type": "reaction", "user": "ada", "emoji": "🤔"}
            for bot in (ada, bo):
                step = f"ada's reaction claims to be from bo: {bot.name} should see it from ada"
                frame = await _next(bot, step, reaction)
                _has(frame, reaction, step, FROM_TOKEN_HINT)
                _no_client_fields(frame, f"ada's reaction had a 'note' field of her own: {bot.name} should "
                                         "not get it")
            for bad in BAD_REACTIONS:
                await ada.send({"type": "reaction", **bad})
                step = (f"a reaction with {bad or 'no emoji'} should get an error frame, "
                        "{'type': 'error', 'message': 'why'}, to ada only")
                error = await _next(ada, step, {"type": "error", "message": "(text saying why)"})
                hint = ("validate the whole frame with the Reaction model (Literal[REACTIONS] accepts "
                        "exactly those strings, not a part of one); on a ValidationError, send the error to "
                        "client and return.")
                _has(error, {"type": "error"}, step, hint)
                if not isinstance(error.get("message"), str) or not error["message"]:
                    raise Mismatch(step, {"type": "error", "message": "(text saying why)"}, error, hint)
            await ada.send({"type": "message", "content": "still here"})
            message = {"type": "message", "user": "ada", "content": "still here"}
            step = "after the bad reactions ada's connection should stay open and chat should work"
            _has(await _next(ada, step, message), message, step,
                 "after sending the error frame, return: one error per bad reaction, and the connection "
                 "stays open.")
            step = "bo should see none of ada's refused reactions (his next frame is her message)"
            _has(await _next(bo, step, message), message, step,
                 "a refused reaction concerns its sender only: send the error with client.send(...).")
            await _nothing(cy, "cy, in the kitchen, should see nothing of the lobby",
                           "room.members holds the sender's room only: send to it, not to every room.")
            for _ in range(FLOOD):
                await bo.send({"type": "reaction", "emoji": "🎉"})
            await _closed_with(bo, 1008, f"{FLOOD} reactions at once are a flood: the rate limit should "
                                         "close bo with 1008")
        finally:
            for bot in (*lobby, *kitchen):
                await bot.close()

    return run_check(
        "Exercise 6.2 (reactions)", app, scenario,
        passed="reactions reach the room, from whom the token says, and nothing else gets through.",
        hint="start in relay: recognise a reaction with frame_type(data), then let the Reaction model "
             "decide whether it is allowed (chapter 03 validated frames the same way).",
    )
