"""Chapter 04's checks fail, with a useful report, on plausible wrong answers (the notebook's own
answers and stubs are covered by test_checks.py)."""

from __future__ import annotations

import json

from wslab.checks import check_announce, check_room_permissions
from wslab.reference.auth import Identity, Tokens
from wslab.reference.manager import Client
from wslab.reference.rooms import Room
from wslab.reference.secure_rooms import SecureRooms, identity_of, secure_app


def test_permissions_that_ignore_the_claim_fail() -> None:
    result = check_room_permissions(secure_app(SecureRooms(Tokens())))
    assert result.status == "failed" and "does not list the attic" in str(result)


def test_permissions_that_shut_out_tokens_without_the_claim_fail() -> None:
    class ClaimRequired(SecureRooms):
        def allowed(self, identity: Identity, room_name: str) -> bool:
            return room_name in identity.claims.get("rooms", [])

    result = check_room_permissions(secure_app(ClaimRequired(Tokens())))
    assert result.status == "failed" and "no rooms claim" in str(result)


def test_permissions_where_an_empty_list_means_every_room_fail() -> None:
    class EmptyMeansAll(SecureRooms):
        def allowed(self, identity: Identity, room_name: str) -> bool:
            rooms = identity.claims.get("rooms")
            return not rooms or room_name in rooms

    result = check_room_permissions(secure_app(EmptyMeansAll(Tokens())))
    assert result.status == "failed" and "lists no room at all" in str(result)


def test_permissions_that_match_part_of_a_name_fail() -> None:
    class Substring(SecureRooms):
        def allowed(self, identity: Identity, room_name: str) -> bool:
            rooms = identity.claims.get("rooms")
            return rooms is None or any(room_name in allowed for allowed in rooms)

    result = check_room_permissions(secure_app(Substring(Tokens())))
    assert result.status == "failed" and "not the room 'lob'" in str(result)


def test_permissions_checked_after_joining_fail() -> None:
    class InJoined(SecureRooms):
        def joined(self, room: Room, user: str, client: Client) -> None:
            super().joined(room, user, client)
            rooms = identity_of(client).claims.get("rooms")
            if rooms is not None and room.name not in rooms:
                client.close(1008, "not allowed here")

    result = check_room_permissions(secure_app(InJoined(Tokens())))
    assert result.status == "failed" and "before any frame" in str(result)


def test_an_app_without_secure_rooms_fails_clearly() -> None:
    from wslab.reference.rooms import rooms_app

    result = check_room_permissions(rooms_app())
    assert result.status == "failed" and "secure_app(YourRooms(tokens))" in str(result)


class Announcing(SecureRooms):
    """Announcements as the exercise wants them, but ``hosts_only`` and ``every_room`` can be broken."""

    hosts_only, every_room = True, True

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        frame = json.loads(data)
        if frame.get("type") != "announce":
            super().handle(room, user, client, data)
            return
        if self.hosts_only and identity_of(client).role != "host":
            client.send({"type": "error", "message": "only a host may announce"})
            return
        announcement = {"type": "announcement", "from": user, "content": frame["content"]}
        for each in self.rooms.values() if self.every_room else [room]:
            for member in each.members.values():
                member.send(announcement)


def test_the_right_announcements_pass() -> None:
    assert check_announce(secure_app(Announcing(Tokens()))).passed


def test_announcements_by_anyone_fail() -> None:
    class Anyone(Announcing):
        hosts_only = False

    result = check_announce(secure_app(Anyone(Tokens())))
    assert result.status == "failed" and "has the role user" in str(result)


def test_announcements_allowed_by_name_not_role_fail() -> None:
    class ByName(Announcing):
        hosts_only = False

        def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
            if user != "host" and json.loads(data).get("type") == "announce":
                client.send({"type": "error", "message": "only a host may announce"})
                return
            super().handle(room, user, client, data)

    result = check_announce(secure_app(ByName(Tokens())))
    assert result.status == "failed" and "has the role user" in str(result)


def test_announcements_to_one_room_only_fail() -> None:
    class OneRoom(Announcing):
        every_room = False

    result = check_announce(secure_app(OneRoom(Tokens())))
    assert result.status == "failed" and "in the attic" in str(result)
