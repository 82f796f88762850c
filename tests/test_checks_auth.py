"""Chapter 04's checks fail, with a useful report, on plausible wrong answers (the notebook's own
answers and stubs are covered by test_checks.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from wslab.checks import check_announce, check_room_permissions
from wslab.reference.auth import Identity, Tokens
from wslab.reference.manager import Client
from wslab.reference.protocol import MAX_CONTENT, frame_type
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
        if not isinstance(frame.get("content"), str) or not 1 <= len(frame["content"]) <= MAX_CONTENT:
            client.send({"type": "error", "message": "an announcement needs text"})
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
    assert result.status == "failed" and "bo should get kim's announcement" in str(result)


class CaseFolded(SecureRooms):
    def allowed(self, identity: Identity, room_name: str) -> bool:
        rooms = identity.claims.get("rooms")
        return rooms is None or room_name.lower() in {room.lower() for room in rooms}


class Prefix(SecureRooms):
    def allowed(self, identity: Identity, room_name: str) -> bool:
        rooms = identity.claims.get("rooms")
        return rooms is None or any(room_name.startswith(room) for room in rooms)


class HostsGoAnywhere(SecureRooms):
    def allowed(self, identity: Identity, room_name: str) -> bool:
        rooms = identity.claims.get("rooms")
        return rooms is None or identity.role == "host" or room_name in rooms


class ByMatch(SecureRooms):
    def allowed(self, identity: Identity, room_name: str) -> bool:
        match identity.claims:
            case {"rooms": list(rooms)}:
                return room_name in rooms
            case {"rooms": _}:
                return False
            case _:
                return True


def test_permissions_accept_a_match_statement() -> None:
    result = check_room_permissions(secure_app(ByMatch(Tokens())))
    assert result.passed, str(result)


@pytest.mark.parametrize(("rooms", "reported"), [
    (CaseFolded, "not 'Lobby' (another room)"),
    (Prefix, "not the room 'lobby-staff'"),
    (HostsGoAnywhere, "is a host's, but lists only the lobby"),
])
def test_permissions_refuse_near_matches_and_role_bypasses(rooms: type[SecureRooms], reported: str) -> None:
    result = check_room_permissions(secure_app(rooms(Tokens())))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert "exactly" in result.hint or "whatever the role" in result.hint, str(result)


def test_the_permissions_stub_hint_does_not_give_the_answer() -> None:
    class Stub(SecureRooms):
        def allowed(self, identity: Identity, room_name: str) -> bool:
            raise NotImplementedError

    result = check_room_permissions(secure_app(Stub(Tokens())))
    assert result.status == "not done" and "identity.claims" in result.hint
    assert "rooms is None" not in result.hint and "room_name in rooms" not in result.hint


class Validated(SecureRooms):
    """Announcements as the exercise wants them, with an extra field; subclasses break one thing each."""

    def sender(self, user: str, frame: dict[str, Any]) -> str:
        return user

    def may_announce(self, user: str, client: Client, frame: dict[str, Any]) -> bool:
        return identity_of(client).role == "host"

    def content_ok(self, content: Any) -> bool:
        return isinstance(content, str) and 1 <= len(content) <= MAX_CONTENT

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) != "announce":
            super().handle(room, user, client, data)
            return
        frame = json.loads(data)
        if not self.may_announce(user, client, frame):
            client.send({"type": "error", "message": "only a host may announce"})
            return
        if not self.content_ok(frame.get("content")):
            client.send({"type": "error", "message": "announce: content must be text"})
            return
        for each in list(self.rooms.values()):
            each.broadcast({"type": "announcement", "from": self.sender(user, frame),
                            "content": frame.get("content"), "room": room.name})


class FromField(Validated):
    def sender(self, user: str, frame: dict[str, Any]) -> str:
        return str(frame.get("from") or user)


class RoleField(Validated):
    def may_announce(self, user: str, client: Client, frame: dict[str, Any]) -> bool:
        return frame.get("role", identity_of(client).role) == "host"


class NameBased(Validated):
    def may_announce(self, user: str, client: Client, frame: dict[str, Any]) -> bool:
        return user in {"kim", "lin"}


class RoleAtJoin(Validated):
    """The role remembered per connection at join: a renewed token is never looked at again."""

    def __init__(self, tokens: Tokens) -> None:
        super().__init__(tokens)
        self.hosts: set[Client] = set()

    def joined(self, room: Room, user: str, client: Client) -> None:
        super().joined(room, user, client)
        if identity_of(client).role == "host":
            self.hosts.add(client)

    def may_announce(self, user: str, client: Client, frame: dict[str, Any]) -> bool:
        return client in self.hosts


class Unchecked(Validated):
    def content_ok(self, content: Any) -> bool:
        return True


class NoLimit(Validated):
    def content_ok(self, content: Any) -> bool:
        return isinstance(content, str) and bool(content)


def test_announcements_accept_extra_fields_and_room_broadcast() -> None:
    result = check_announce(secure_app(Validated(Tokens())))
    assert result.passed, str(result)


@pytest.mark.parametrize(("rooms", "reported", "hinted"), [
    (FromField, "the frame's \"from\" says bo", "never a field of the frame"),
    (RoleField, "bo's token says role user, whatever his frame says", "from the token"),
    (NameBased, "this kim's token says role user (the name is not what counts)", "not a name"),
    (RoleAtJoin, "kim renewed her token with one that says role user", "rather than remembering it"),
    (Unchecked, "an announcement without content is not valid", "validate the content"),
    (NoLimit, f"an announcement over {MAX_CONTENT} characters is not valid", "validate the content"),
])
def test_announcements_refuse_forged_fields_and_invalid_input(rooms: type[SecureRooms], reported: str,
                                                              hinted: str) -> None:
    result = check_announce(secure_app(rooms(Tokens())))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert hinted in result.hint, str(result)
