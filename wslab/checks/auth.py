"""Checks for chapter 04, auth: room permissions carried in the token, and announcements by hosts.

Both exercises extend :class:`~wslab.reference.secure_rooms.SecureRooms` and are served by
:func:`~wslab.reference.secure_rooms.secure_app` at ``/chat/{room}``; the checks issue their tokens with the
app's own :class:`~wslab.reference.auth.Tokens` (``app.state.rooms.tokens``).
"""

from __future__ import annotations

from typing import Any

from websockets.exceptions import ConnectionClosed

from wslab.lab.client import LabClient, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import Transcript
from wslab.reference.auth import Tokens

from .result import CheckResult, Mismatch, run_check

__all__ = ["check_announce", "check_room_permissions"]


def _tokens(app: Any) -> Tokens:
    rooms = getattr(getattr(app, "state", None), "rooms", None)
    tokens = getattr(rooms, "tokens", None)
    if not isinstance(tokens, Tokens):
        raise Mismatch("the app should be secure_app(YourRooms(tokens))", "app.state.rooms.tokens",
                       f"app.state.rooms is {rooms!r}")
    return tokens


async def _next(bot: LabClient, step: str, expected: Any, wait: float = 3.0) -> Any:
    """The next frame ``bot`` receives, as JSON; a :class:`Mismatch` for ``step`` if none comes."""
    try:
        return await bot.recv_json(wait)
    except TimeoutError:
        raise Mismatch(step, expected, f"nothing within {wait:g} s") from None
    except ConnectionClosed:
        raise Mismatch(step, expected, f"the connection closed: {bot.close_code} {bot.close_reason or ''}"
                       ) from None


async def _join(bot: LabClient, token: str, step: str) -> Any:
    """Authenticate ``bot``; its first frame, which should be its ``join``."""
    await bot.send({"type": "auth", "token": token})
    return await _next(bot, step, "a join frame")


async def _refused(bot: LabClient, token: str, step: str) -> None:
    """Authenticate ``bot``, which should be closed with 1008 and a reason before it receives anything."""
    expected = "closed with 1008 (policy violation) and a reason, before any frame"
    await bot.send({"type": "auth", "token": token})
    try:
        frame = await bot.recv_json(3.0)
    except TimeoutError:
        raise Mismatch(step, expected, "still open") from None
    except ConnectionClosed:
        if bot.close_code != 1008 or not bot.close_reason:
            raise Mismatch(step, expected, f"closed with {bot.close_code} {bot.close_reason or ''}") from None
        return
    raise Mismatch(step, expected, frame)


async def _nothing(bot: LabClient, step: str) -> None:
    try:
        frame = await bot.recv_json(0.5)
    except TimeoutError:
        return
    raise Mismatch(step, "(nothing)", frame)


def _has(frame: Any, expected: dict[str, Any], step: str) -> None:
    """Like :func:`expect`, but extra fields (an id, a time) are fine."""
    if not (isinstance(frame, dict) and all(frame.get(key) == value for key, value in expected.items())):
        raise Mismatch(step, expected, frame)


def check_room_permissions(app: Any) -> CheckResult:
    """Exercise 4.1: a token with a ``rooms`` claim (a list of room names) may join only those rooms:
    any other is closed with 1008 and a reason, before joining. A token without the claim may join any
    room."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        tokens = _tokens(app)
        lobby_only = tokens.issue("ada", rooms=["lobby"])
        async with connect(server, "/chat/attic", name="bo", transcript=transcript) as bo:
            step = "bo's token has no rooms claim, so he may join any room"
            _has(await _join(bo, tokens.issue("bo"), step), {"type": "join", "user": "bo", "users": ["bo"]},
                 step)
            async with connect(server, "/chat/lobby", name="ada", transcript=transcript) as ada:
                step = "ada's token lists the lobby, so she may join it"
                joined = {"type": "join", "user": "ada", "users": ["ada"]}
                _has(await _join(ada, lobby_only, step), joined, step)
            for room, token, why in (("attic", lobby_only, "does not list the attic"),
                                     ("lob", lobby_only, "lists the lobby, not the room 'lob'"),
                                     ("lobby", tokens.issue("ada", rooms=[]), "lists no room at all")):
                async with connect(server, f"/chat/{room}", name="ada", transcript=transcript) as ada:
                    await _refused(ada, token, f"ada's token {why}")
            await _nothing(bo, "bo, in the attic, should never see ada join it")

    return run_check(
        "Exercise 4.1 (room permissions)", app, scenario,
        passed="tokens now say which rooms their user may enter.",
        hint="override allowed(self, identity, room_name): rooms = identity.claims.get('rooms'); "
             "return rooms is None or room_name in rooms.",
    )


def check_announce(app: Any) -> CheckResult:
    """Exercise 4.2: a user whose token has ``role="host"`` (whatever the name) sends ``{"type":
    "announce", "content": ...}`` and everyone in every room receives ``{"type": "announcement",
    "from": user, "content": ...}``; anyone else gets an ``error`` frame and nobody receives anything.
    Chat still works."""

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        tokens = _tokens(app)
        async with connect(server, "/chat/lobby", name="kim", transcript=transcript) as kim, \
                connect(server, "/chat/lobby", name="host", transcript=transcript) as host, \
                connect(server, "/chat/attic", name="bo", transcript=transcript) as bo:
            for bot, token in ((kim, tokens.issue("kim", role="host")), (host, tokens.issue("host")),
                               (bo, tokens.issue("bo"))):
                await _join(bot, token, f"{bot.name} logs in")
            await _next(kim, "kim sees the user called host join", "host's join frame")
            await host.send({"type": "announce", "content": "free pizza"})
            step = "the user called host has the role user, so its announce should get an error frame"
            _has(await _next(host, step, "an error frame"), {"type": "error"}, step)
            await kim.send({"type": "announce", "content": "break in 5 minutes"})
            announcement = {"type": "announcement", "from": "kim", "content": "break in 5 minutes"}
            for bot, where in ((kim, "the lobby"), (host, "the lobby"), (bo, "the attic")):
                step = f"{bot.name}, in {where}, should get kim's announcement (and nothing from host)"
                _has(await _next(bot, step, announcement), announcement, step)
            await bo.send({"type": "message", "content": "ok"})
            step = "ordinary messages should still work"
            message = {"type": "message", "user": "bo", "content": "ok"}
            _has(await _next(bo, step, message), message, step)

    return run_check(
        "Exercise 4.2 (announce)", app, scenario,
        passed="hosts can speak to every room; nobody else can.",
        hint="override handle(): if the frame is JSON with type 'announce', check identity_of(client).role "
             "== 'host' (else client.send an error frame), then client.send the announcement to every "
             "member of every room in self.rooms; otherwise call super().handle(...).",
    )
