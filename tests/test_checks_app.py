"""Chapter 06's checks fail, with a useful report, on plausible wrong answers (the notebook's own answers
and stubs are covered by test_checks.py)."""

from __future__ import annotations

from wslab.checks import check_reactions, check_typing
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
