"""Checks for chapter 04, auth: room permissions carried in the token, and announcements by hosts.

Both exercises extend :class:`~wslab.reference.secure_rooms.SecureRooms` and are served by
:func:`~wslab.reference.secure_rooms.secure_app` at ``/chat/{room}``; the checks issue their tokens with the
app's own :class:`~wslab.reference.auth.Tokens` (``app.state.rooms.tokens``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from websockets.exceptions import ConnectionClosed

from wslab.lab.client import LabClient, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import Transcript
from wslab.reference.auth import Tokens
from wslab.reference.protocol import MAX_CONTENT

from .frames import has as _has
from .frames import join as _join
from .frames import next_frame as _next
from .frames import nothing as _nothing
from .result import CheckResult, Mismatch, run_check

__all__ = ["check_announce", "check_room_permissions"]


def _tokens(app: Any) -> Tokens:
    rooms = getattr(getattr(app, "state", None), "rooms", None)
    tokens = getattr(rooms, "tokens", None)
    if not isinstance(tokens, Tokens):
        raise Mismatch("the app should be secure_app(YourRooms(tokens))", "app.state.rooms.tokens",
                       f"app.state.rooms is {rooms!r}")
    return tokens


async def _refused(bot: LabClient, token: str, step: str, hint: str = "") -> None:
    """Authenticate ``bot``, which should be closed with 1008 and a reason before it receives anything."""
    expected = "closed with 1008 (policy violation) and a reason, before any frame"
    await bot.send({"type": "auth", "token": token})
    try:
        frame = await bot.recv_json(3.0)
    except TimeoutError:
        raise Mismatch(step, expected, "still open", hint) from None
    except ConnectionClosed:
        if bot.close_code != 1008 or not bot.close_reason:
            raise Mismatch(step, expected, f"closed with {bot.close_code} {bot.close_reason or ''}",
                           hint) from None
        return
    raise Mismatch(step, expected, frame, hint)


def check_room_permissions(app: Any) -> CheckResult:
    """Exercise 4.1: a token with a ``rooms`` claim (a list of room names) may join only those rooms,
    compared exactly: any other is closed with 1008 and a reason, before joining. A token without the
    claim may join any room. Refuses:

    - the claim ignored, or required (a token without it must still get in);
    - an empty list read as "every room";
    - part of a name (``"lob"``), a prefix (``"lobby-staff"``) or another case (``"Lobby"``) let in;
    - a role that skips the check (a host's token with a rooms claim is held to it too);
    - the check made after joining (in ``joined``): the room would see the user come and go.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        tokens = _tokens(app)
        lobby_only = tokens.issue("ada", rooms=["lobby"])
        async with connect(server, "/chat/attic", name="bo", transcript=transcript) as bo:
            step = "bo's token has no rooms claim, so he may join any room"
            _has(await _join(bo, tokens.issue("bo"), step), {"type": "join", "user": "bo", "users": ["bo"]},
                 step, "no claim in the token means no limit: what does claims.get() give for a missing key?")
            async with connect(server, "/chat/lobby", name="ada", transcript=transcript) as ada:
                step = "ada's token lists the lobby, so she may join it"
                joined = {"type": "join", "user": "ada", "users": ["ada"]}
                _has(await _join(ada, lobby_only, step), joined, step)
            exact = "room names are compared whole and exactly, as list membership does"
            for room, token, why, hint in (
                    ("attic", lobby_only, "does not list the attic", "read the rooms claim of the token."),
                    ("lob", lobby_only, "lists the lobby, not the room 'lob'", exact),
                    ("lobby-staff", lobby_only, "lists the lobby, not the room 'lobby-staff'", exact),
                    ("Lobby", lobby_only, "lists 'lobby', not 'Lobby' (another room)", exact),
                    ("lobby", tokens.issue("ada", rooms=[]), "lists no room at all",
                     "an empty list is a claim too: it allows no room. Tell 'no claim' from 'empty claim'."),
                    ("attic", tokens.issue("ada", role="host", rooms=["lobby"]),
                     "is a host's, but lists only the lobby", "the claim holds whatever the role.")):
                async with connect(server, f"/chat/{room}", name="ada", transcript=transcript) as ada:
                    await _refused(ada, token, f"ada's token {why}", hint)
            await _nothing(bo, "bo, in the attic, should never see ada join it",
                           "allowed() runs before the user joins: decide there, not after joining.")

    return run_check(
        "Exercise 4.1 (room permissions)", app, scenario,
        passed="tokens now say which rooms their user may enter.",
        hint="start from identity.claims, a dict of what the token carries: print it for a token issued with "
             "rooms=[...] and for one without. allowed() answers True (come in) or False (1008).",
    )


def check_announce(app: Any) -> CheckResult:
    """Exercise 4.2: a user whose token has ``role="host"`` (whatever the name) sends ``{"type":
    "announce", "content": ...}`` and everyone in every room receives ``{"type": "announcement",
    "from": user, "content": ...}`` (extra fields are fine); anyone else, and any announcement whose content
    is not valid text, gets an ``error`` frame and nobody receives anything. Chat still works. Refuses:

    - announcements by anyone, or by name (a user called "host", or called "kim" with the role user);
    - the role or the sender taken from the frame (``"role": "host"``, ``"from": "bo"``): identity comes
      from the token;
    - the role remembered from the join (by name or by connection): after a renewed token that says
      "user", the same connection may no longer announce;
    - content relayed unchecked: missing, a number, empty, or over the limit;
    - one room only.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        tokens = _tokens(app)
        async with contextlib.AsyncExitStack() as stack:
            people: dict[str, LabClient] = {}
            for name, room, user, role in (("kim", "lobby", "kim", "host"), ("host", "lobby", "host", "user"),
                                           ("bo", "attic", "bo", "user"), ("lin", "attic", "lin", "host"),
                                           ("kim in the cellar", "cellar", "kim", "user")):
                bot = await stack.enter_async_context(connect(server, f"/chat/{room}", name=name,
                                                              transcript=transcript))
                await _join(bot, tokens.issue(user, role=role), f"{name} logs in")
                people[name] = bot
            kim, bo = people["kim"], people["bo"]
            token_not_frame = "identity comes from the token (identity_of(client)), never from the frame."
            for name, frame, why, hint in (
                    ("host", {"content": "free pizza"}, "the user called host has the role user",
                     "check the sender's role, not their name."),
                    ("kim in the cellar", {"content": "kim here"},
                     "this kim's token says role user (the name is not what counts)",
                     "check the role of this connection's token, not a name."),
                    ("bo", {"content": "I am a host now", "role": "host"},
                     "bo's token says role user, whatever his frame says", token_not_frame),
                    ("kim", {}, "an announcement without content is not valid", ""),
                    ("kim", {"content": 5}, "an announcement whose content is not text is not valid", ""),
                    ("kim", {"content": ""}, "an empty announcement is not valid", ""),
                    ("kim", {"content": "x" * (MAX_CONTENT + 1)},
                     f"an announcement over {MAX_CONTENT} characters is not valid", "")):
                await people[name].send({"type": "announce", **frame})
                step = f"{why}: {name}'s announce should get an error frame, and nobody anything"
                hint = hint or ("validate the content as a chat message's is (text, 1 to MAX_CONTENT "
                                "characters) and answer anything else with an error frame.")
                _has(await _next(people[name], step, "an error frame", presence=False), {"type": "error"},
                     step, hint)
            await kim.send({"type": "announce", "content": "break in 5 minutes", "from": "bo"})
            announcement = {"type": "announcement", "from": "kim", "content": "break in 5 minutes"}
            for name, bot in people.items():
                step = (f"{name} should get kim's announcement, from kim (the frame's \"from\" says bo), "
                        "and nothing before it")
                _has(await _next(bot, step, announcement, presence=False), announcement, step,
                     "send to every member of every room (self.rooms); the sender is `user`, "
                     "never a field of the frame.")
            await people["lin"].send({"type": "announce", "content": "lunch at 12"})
            announcement = {"type": "announcement", "from": "lin", "content": "lunch at 12"}
            for name, bot in people.items():
                step = f"lin is a host too: {name} should get her announcement"
                _has(await _next(bot, step, announcement, presence=False), announcement, step,
                     "any token whose role is host may announce, whatever its name.")
            await kim.send({"type": "auth", "token": tokens.issue("kim")})  # renewed: role user from now on
            await kim.send({"type": "announce", "content": "still a host?"})
            step = "kim renewed her token with one that says role user: her announce should get an error"
            _has(await _next(kim, step, "an error frame", presence=False), {"type": "error"}, step,
                 "read the role from the connection's current token each time (identity_of(client)), "
                 "rather than remembering it from the join.")
            await bo.send({"type": "message", "content": "ok"})
            step = "ordinary messages should still work"
            message = {"type": "message", "user": "bo", "content": "ok"}
            _has(await _next(bo, step, message, presence=False), message, step,
                 "call super().handle(...) for every frame that is not an announce.")

    return run_check(
        "Exercise 4.2 (announce)", app, scenario,
        passed="hosts can speak to every room; nobody else can.",
        hint="start in handle(): tell an announce frame from the rest (frame_type(data), from "
             "wslab.reference.protocol, reads a frame's type safely) and pass the rest to super().handle. "
             "Then: who may announce, according to what? And what must the "
             "content be before anyone receives it?",
    )
