"""Chapter 03's checks: the answers that defeat the chapter's lesson are refused, with a verdict naming what
is wrong, and plausible correct variants pass (the notebook's own answers and stubs: test_checks.py)."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from typing import Any

import pytest

from wslab.checks import check_history, check_who
from wslab.reference.manager import Client
from wslab.reference.protocol import ChatMessage, ProtocolError, parse
from wslab.reference.rooms import ChatRooms, Room, rooms_app


def parsed(data: str | bytes) -> Any:
    try:
        return parse(data)
    except ProtocolError:
        return None


# -- 3.1 /who -----------------------------------------------------------------------------------------
class Who(ChatRooms):
    """/who as the exercise wants it; subclasses break one thing each."""

    def answer(self, room: Room, client: Client) -> None:
        client.send(json.dumps({"type": "users", "users": room.users}))

    def is_who(self, data: str | bytes) -> bool:
        frame = parsed(data)
        return isinstance(frame, ChatMessage) and frame.content == "/who"

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if self.is_who(data):
            self.answer(room, client)
            return
        super().handle(room, user, client, data)


class WhoWithExtraField(Who):
    def answer(self, room: Room, client: Client) -> None:
        client.send({"type": "users", "room": room.name, "users": room.users, "count": len(room.users)})


class WhoWithMatch(ChatRooms):
    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        match parsed(data):
            case ChatMessage(content="/who"):
                client.send({"type": "users", "users": room.users})
            case _:
                super().handle(room, user, client, data)


class WhoToEveryone(Who):
    def answer(self, room: Room, client: Client) -> None:
        room.broadcast({"type": "users", "users": room.users})


class WhoOfEveryRoom(Who):
    def answer(self, room: Room, client: Client) -> None:
        client.send({"type": "users", "users": [u for each in self.rooms.values() for u in each.users]})


class WhoSorted(Who):
    def answer(self, room: Room, client: Client) -> None:
        client.send({"type": "users", "users": sorted(room.users)})


class WhoByExactText(Who):
    def is_who(self, data: str | bytes) -> bool:
        return data in ('{"type": "message", "content": "/who"}', '{"type":"message","content":"/who"}')


class WhoInAnyFrame(Who):
    def is_who(self, data: str | bytes) -> bool:
        try:
            raw = json.loads(data)
        except ValueError:
            return False
        return isinstance(raw, dict) and raw.get("content") == "/who"


class WhoAsSubstring(Who):
    def is_who(self, data: str | bytes) -> bool:
        return isinstance(data, str) and "/who" in data


class WhoWithoutTry(Who):
    def is_who(self, data: str | bytes) -> bool:
        frame = json.loads(data)  # raises on text that is not JSON
        return bool(frame.get("type") == "message" and frame.get("content") == "/who")


@pytest.mark.parametrize("rooms", [Who, WhoWithExtraField, WhoWithMatch])
def test_who_accepts_correct_variants(rooms: type[ChatRooms]) -> None:
    result = check_who(rooms_app(rooms()))
    assert result.passed, str(result)


@pytest.mark.parametrize(("rooms", "reported", "hinted"), [
    (WhoToEveryone, "bo should not receive ada's /who or its answer", "only the one who asked"),
    (WhoOfEveryRoom, "should list bo and ada, in the order they joined", "room.users"),
    (WhoSorted, "should list bo and ada, in the order they joined", "join order"),
    (WhoByExactText, "keys in another order and an extra id is still /who", "not its text"),
    (WhoInAnyFrame, "a private message to bo whose content is '/who' is not the command", "type as well"),
    (WhoAsSubstring, "a private message to bo whose content is '/who' is not the command", "type as well"),
])
def test_who_refuses_lesson_defeating_answers(rooms: type[ChatRooms], reported: str, hinted: str) -> None:
    result = check_who(rooms_app(rooms()))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert hinted in result.hint, str(result)


def test_who_that_parses_without_a_try_names_the_crash() -> None:
    result = check_who(rooms_app(WhoWithoutTry()))
    assert result.status == "failed", str(result)
    assert "ada → /who" in str(result), str(result)
    assert result.summary.startswith("not right yet: your code raised JSONDecodeError"), str(result)


# -- 3.2 history --------------------------------------------------------------------------------------
class History(ChatRooms):
    """History as the exercise wants it; subclasses break one thing each."""

    def __init__(self) -> None:
        super().__init__()
        self.history: defaultdict[str, deque[dict[str, Any]]] = defaultdict(lambda: deque(maxlen=10))

    def frame(self, room: Room) -> dict[str, Any]:
        return {"type": "history", "messages": list(self.history[room.name])}

    def joined(self, room: Room, user: str, client: Client) -> None:
        client.send(self.frame(room))

    def record(self, room: Room, user: str, data: str | bytes) -> None:
        frame = parsed(data)
        if isinstance(frame, ChatMessage):
            self.history[room.name].append({"user": user, "content": frame.content})

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        self.record(room, user, data)
        super().handle(room, user, client, data)


class HistoryWithExtraFields(History):
    def frame(self, room: Room) -> dict[str, Any]:
        return {**super().frame(room), "room": room.name}

    def record(self, room: Room, user: str, data: str | bytes) -> None:
        frame = parsed(data)
        if isinstance(frame, ChatMessage):
            self.history[room.name].append({"user": user, "content": frame.content, "n": len(data)})


class HistoryAsSlicedList(ChatRooms):
    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[str, list[dict[str, str]]] = {}

    def joined(self, room: Room, user: str, client: Client) -> None:
        client.send({"type": "history", "messages": self.kept.get(room.name, [])[-10:]})

    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        super().handle(room, user, client, data)
        match parsed(data):
            case ChatMessage(content=content):
                self.kept.setdefault(room.name, []).append({"user": user, "content": content})


class HistoryUserFromFrame(History):
    def record(self, room: Room, user: str, data: str | bytes) -> None:
        if isinstance(parsed(data), ChatMessage):
            raw = json.loads(data)
            self.history[room.name].append({"user": raw.get("user") or user, "content": raw["content"]})


class HistoryBeforeValidation(History):
    def record(self, room: Room, user: str, data: str | bytes) -> None:
        try:
            raw = json.loads(data)
        except ValueError:
            return
        if isinstance(raw, dict) and raw.get("type") == "message":
            self.history[room.name].append({"user": user, "content": raw.get("content")})


class HistoryToEveryone(History):
    def joined(self, room: Room, user: str, client: Client) -> None:
        room.broadcast(self.frame(room))


class HistoryWithPrivates(History):
    def record(self, room: Room, user: str, data: str | bytes) -> None:
        frame = parsed(data)
        if frame is not None:
            self.history[room.name].append({"user": user, "content": frame.content})


class HistoryOfEveryRoom(History):
    def record(self, room: Room, user: str, data: str | bytes) -> None:
        frame = parsed(data)
        if isinstance(frame, ChatMessage):
            self.history["every room"].append({"user": user, "content": frame.content})

    def frame(self, room: Room) -> dict[str, Any]:
        return {"type": "history", "messages": list(self.history["every room"])}


class HistoryNewestFirst(History):
    def frame(self, room: Room) -> dict[str, Any]:
        return {"type": "history", "messages": list(reversed(self.history[room.name]))}


@pytest.mark.parametrize("rooms", [History, HistoryWithExtraFields, HistoryAsSlicedList])
def test_history_accepts_correct_variants(rooms: type[ChatRooms]) -> None:
    result = check_history(rooms_app(rooms()))
    assert result.passed, str(result)


@pytest.mark.parametrize(("rooms", "reported", "hinted"), [
    (HistoryUserFromFrame, "each from the user who sent it", "never a field of the frame"),
    (HistoryBeforeValidation, "only valid messages belong in the history", "once it has been validated"),
    (HistoryToEveryone, "the history is for the newcomer only", "not to the room"),
    (HistoryWithPrivates, "private messages are not part of the history", "room messages"),
    (HistoryOfEveryRoom, "another room has its own (empty) history", "one history per room"),
    (HistoryNewestFirst, "last 10 messages, oldest first", "oldest first"),
])
def test_history_refuses_lesson_defeating_answers(rooms: type[ChatRooms], reported: str, hinted: str) -> None:
    result = check_history(rooms_app(rooms()))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert hinted in result.hint, str(result)
