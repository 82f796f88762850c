"""Chapter 06's checks fail, with a useful report, on plausible wrong answers (the notebook's own answers
and stubs are covered by test_checks.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError

from wslab.checks import CheckResult, check_reactions, check_typing
from wslab.checks.app import REACTIONS
from wslab.reference.app import AppRooms, create_app
from wslab.reference.manager import Client
from wslab.reference.protocol import frame_type
from wslab.reference.rooms import Room


class TypingToEveryone(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            for member in room.members.values():
                member.send({"type": "typing", "user": user})
            return
        super().relay(room, user, client, data)


class TypingBeforeTheLimit(AppRooms):
    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":  # overrides handle: typing frames skip the rate limit
            for member in room.members.values():
                if member is not client:
                    member.send({"type": "typing", "user": user})
            return
        super().handle(room, user, client, data)


class TypingWithTheFramesName(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            import json

            claimed = json.loads(data).get("user", user)
            for member in room.members.values():
                if member is not client:
                    member.send({"type": "typing", "user": claimed})
            return
        super().relay(room, user, client, data)


class TypingEverywhere(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            for other in self.rooms.values():
                for member in other.members.values():
                    if member is not client:
                        member.send({"type": "typing", "user": user})
            return
        super().relay(room, user, client, data)


def test_the_reference_app_has_no_typing_indicator() -> None:
    result = check_typing(create_app())
    assert result.status == "failed" and "should see that ada is typing" in str(result)


def test_typing_echoed_to_the_sender_fails() -> None:
    result = check_typing(create_app(rooms_type=TypingToEveryone))
    assert result.status == "failed" and "ada should not see her own typing frames" in str(result)


def test_typing_that_skips_the_rate_limit_fails() -> None:
    result = check_typing(create_app(rooms_type=TypingBeforeTheLimit))
    assert result.status == "failed" and "the rate limit should close cy with 1008" in str(result)


def test_typing_that_believes_the_frame_fails() -> None:
    result = check_typing(create_app(rooms_type=TypingWithTheFramesName))
    assert result.status == "failed" and "claims to be from bo" in str(result)


def test_typing_sent_to_every_room_fails() -> None:
    result = check_typing(create_app(rooms_type=TypingEverywhere))
    assert result.status == "failed" and "dee, in the kitchen" in str(result)


class ReactAnything(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            import json

            emoji = json.loads(data).get("emoji")
            for member in room.members.values():
                member.send({"type": "reaction", "user": user, "emoji": emoji})
            return
        super().relay(room, user, client, data)


class ReactToOthersOnly(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            import json

            emoji = json.loads(data).get("emoji")
            if emoji not in REACTIONS:
                client.send({"type": "error", "message": "no"})
                return
            for member in room.members.values():
                if member is not client:
                    member.send({"type": "reaction", "user": user, "emoji": emoji})
            return
        super().relay(room, user, client, data)


class ReactAndCloseOnBadInput(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            import json

            emoji = json.loads(data).get("emoji")
            if emoji not in REACTIONS:
                client.close(1008, "bad reaction")
                return
            for member in room.members.values():
                member.send({"type": "reaction", "user": user, "emoji": emoji})
            return
        super().relay(room, user, client, data)


class ReactWithAnErrorThePageCannotShow(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            import json

            emoji = json.loads(data).get("emoji")
            if emoji not in REACTIONS:
                client.send({"type": "error", "error": "not allowed"})  # the page shows frame.message
                return
            for member in room.members.values():
                member.send({"type": "reaction", "user": user, "emoji": emoji})
            return
        super().relay(room, user, client, data)


def test_reactions_whose_error_frame_has_no_message_fail() -> None:
    result = check_reactions(create_app(rooms_type=ReactWithAnErrorThePageCannotShow))
    assert result.status == "failed" and "{'type': 'error', 'message': 'why'}" in str(result), str(result)


def test_reactions_without_validation_fail() -> None:
    result = check_reactions(create_app(rooms_type=ReactAnything))
    assert result.status == "failed" and "should get an error frame" in str(result)


def test_reactions_not_shown_to_the_sender_fail() -> None:
    result = check_reactions(create_app(rooms_type=ReactToOthersOnly))
    assert result.status == "failed" and "bo should see bo's 👍 reaction (the sender too)" in str(result)


def test_reactions_that_close_on_bad_input_fail() -> None:
    result = check_reactions(create_app(rooms_type=ReactAndCloseOnBadInput))
    assert result.status == "failed" and "the connection closed: 1008" in str(result)


def test_a_check_given_something_else_than_the_complete_app_says_so() -> None:
    from wslab.reference.secure_rooms import secure_app

    result = check_typing(secure_app())
    assert result.status == "failed" and "create_app(rooms_type=YourRooms)" in str(result)


# -- what a learner who wants past the check would write, and the correct variants --------------------------
class Reaction(BaseModel):
    type: Literal["reaction"]
    emoji: Literal[REACTIONS]


def validated(data: str | bytes) -> Reaction | None:
    try:
        return Reaction.model_validate_json(data)
    except ValidationError:
        return None


class TypingRelaysTheClientsFrame(AppRooms):
    """The client's frame with the user set: whatever else the client put in it reaches everyone."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            frame = json.loads(data)
            frame["user"] = user
            room.broadcast(frame, exclude=client)
            return
        super().relay(room, user, client, data)


class TypingWithAnExtraField(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            room.broadcast({"type": "typing", "user": user, "room": room.name}, exclude=client)
            return
        super().relay(room, user, client, data)


class TypingWithMatch(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        match frame_type(data):
            case "typing":
                for name, member in room.members.items():
                    if name != user:
                        member.send({"type": "typing", "user": user})
            case _:
                super().relay(room, user, client, data)


class ReactionsRelayTheClientsFrame(AppRooms):
    """Validated, then the client's own frame relayed, its user believed if it has one."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            if validated(data) is None:
                client.send({"type": "error", "message": "not an allowed reaction"})
                return
            frame = json.loads(data)
            frame.setdefault("user", user)
            room.broadcast(frame)
            return
        super().relay(room, user, client, data)


class ReactionsRelayTheClientsFields(AppRooms):
    """Validated, the user from the token, but the client's other fields passed on."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            if validated(data) is None:
                client.send({"type": "error", "message": "not an allowed reaction"})
                return
            room.broadcast({**json.loads(data), "user": user})
            return
        super().relay(room, user, client, data)


class ReactionsBeforeTheLimit(AppRooms):
    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            reaction = validated(data)
            if reaction is None:
                client.send({"type": "error", "message": "not an allowed reaction"})
                return
            room.broadcast({"type": "reaction", "user": user, "emoji": reaction.emoji})
            return
        super().handle(room, user, client, data)


class ReactionsCheckedBySubstring(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            emoji = json.loads(data).get("emoji")
            if not isinstance(emoji, str) or emoji not in "".join(REACTIONS):
                client.send({"type": "error", "message": "not an allowed reaction"})
                return
            room.broadcast({"type": "reaction", "user": user, "emoji": emoji})
            return
        super().relay(room, user, client, data)


class ReactionsAsText(AppRooms):
    """room.broadcast given JSON text: it takes a dict or a protocol model, and raises."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "reaction":
            reaction = validated(data)
            if reaction is None:
                client.send({"type": "error", "message": "not an allowed reaction"})
                return
            room.broadcast(json.dumps({"type": "reaction", "user": user, "emoji": reaction.emoji}))
            return
        super().relay(room, user, client, data)


@pytest.mark.parametrize(("rooms", "check", "reported", "hint"), [
    (TypingRelaysTheClientsFrame, check_typing, "ada's typing frame had a 'note' field of her own",
     "not from the client's frame"),
    (TypingBeforeTheLimit, check_typing, "the rate limit should close cy with 1008",
     "in relay, not in handle"),
    (TypingWithTheFramesName, check_typing, "claims to be from bo", "the name comes from the token"),
    (ReactionsRelayTheClientsFrame, check_reactions, "ada's reaction claims to be from bo",
     "the name comes from the token"),
    (ReactionsRelayTheClientsFields, check_reactions, "ada's reaction had a 'note' field of her own",
     "not from the client's frame"),
    (ReactionsBeforeTheLimit, check_reactions, "40 reactions at once are a flood", "in relay, not in handle"),
    (ReactionsCheckedBySubstring, check_reactions, "a reaction with {'emoji': ''} should get an error frame",
     "not a part of one"),
    (ReactionsAsText, check_reactions, "your code raised TypeError: a frame is a protocol model or a dict",
     "start in relay"),
])
def test_answers_that_defeat_the_lesson_fail_with_an_aimed_hint(rooms: type[AppRooms],
                                                                 check: Callable[[Any], CheckResult],
                                                                 reported: str, hint: str) -> None:
    result = check(create_app(rooms_type=rooms))
    assert result.status == "failed" and reported in str(result), str(result)
    assert hint in result.hint, result.hint


class ReactionsWithAnExtraField(AppRooms):
    """The validated model, an extra field (the room), one broadcast: all fine."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) != "reaction":
            super().relay(room, user, client, data)
            return
        try:
            reaction = Reaction.model_validate_json(data)
        except ValidationError as error:
            client.send({"type": "error", "message": f"reaction: {error.errors()[0]['msg']}"})
            return
        room.broadcast({"type": "reaction", "user": user, "emoji": reaction.emoji, "room": room.name})


class ReactionsWithMatch(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        match frame_type(data), validated(data):
            case "reaction", None:
                client.send({"type": "error", "message": f"react with one of {' '.join(REACTIONS)}"})
            case "reaction", Reaction(emoji=emoji):
                for member in room.members.values():
                    member.send({"type": "reaction", "user": user, "emoji": emoji})
            case _:
                super().relay(room, user, client, data)


@pytest.mark.parametrize(("rooms", "check"), [
    (TypingWithAnExtraField, check_typing), (TypingWithMatch, check_typing),
    (ReactionsWithAnExtraField, check_reactions), (ReactionsWithMatch, check_reactions),
])
def test_correct_variants_pass(rooms: type[AppRooms], check: Callable[[Any], CheckResult]) -> None:
    result = check(create_app(rooms_type=rooms))
    assert result.passed, str(result)


@pytest.mark.parametrize("check", [check_typing, check_reactions])
def test_the_stub_hint_says_where_to_start_not_the_answer(check: Callable[[Any], CheckResult]) -> None:
    class Stub(AppRooms):
        def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
            raise NotImplementedError

    result = check(create_app(rooms_type=Stub))
    assert result.status == "not done" and "start in relay" in result.hint
    for answer in ("member.send", "room.members", "ValidationError", "client.send", "{'type'"):
        assert answer not in result.hint
