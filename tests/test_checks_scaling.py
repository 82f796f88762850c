"""Chapter 08's checks fail, with a report a learner understands, on plausible wrong answers; each runs on a
real Redis of its own (the notebook's own answers and stubs are covered by test_checks.py)."""

from __future__ import annotations

import ast
import gc
import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis

import wslab
from wslab.checks import CheckResult, check_stream_history, check_typing_everywhere
from wslab.reference.app import AppRooms, create_app
from wslab.reference.auth import Tokens
from wslab.reference.broker.shared_room import SharedRoom
from wslab.reference.manager import Client
from wslab.reference.protocol import frame_type
from wslab.reference.rooms import Room


class SharedTyping(AppRooms):
    """The answer."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            assert isinstance(room, SharedRoom)
            room.broadcast({"type": "typing", "user": user}, exclude=client)
            return
        super().relay(room, user, client, data)


class ChapterSixTyping(AppRooms):
    """Chapter 06's answer: a loop over this worker's members."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            for member in room.members.values():
                if member is not client:
                    member.send({"type": "typing", "user": user})
            return
        super().relay(room, user, client, data)


class LoopAndBroadcast(AppRooms):
    """Chapter 06's loop kept, and room.broadcast added: this worker's members get it twice."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            assert isinstance(room, SharedRoom)
            for member in room.members.values():
                if member is not client:
                    member.send({"type": "typing", "user": user})
            room.broadcast({"type": "typing", "user": user}, exclude=client)
            return
        super().relay(room, user, client, data)


class BroadcastToEveryone(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            assert isinstance(room, SharedRoom)
            room.broadcast({"type": "typing", "user": user})
            return
        super().relay(room, user, client, data)


class BroadcastTheFramesName(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            assert isinstance(room, SharedRoom)
            room.broadcast({"type": "typing", "user": json.loads(data).get("user", user)}, exclude=client)
            return
        super().relay(room, user, client, data)


class BroadcastWithoutReturn(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            assert isinstance(room, SharedRoom)
            room.broadcast({"type": "typing", "user": user}, exclude=client)
        super().relay(room, user, client, data)  # the typing frame too: an error frame for an unknown type


class BroadcastBeforeTheLimit(AppRooms):
    def handle(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":  # overrides handle: typing frames skip the rate limit
            assert isinstance(room, SharedRoom)
            room.broadcast({"type": "typing", "user": user}, exclude=client)
            return
        super().handle(room, user, client, data)


class BroadcastToEveryRoom(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            for other in self.rooms.values():
                assert isinstance(other, SharedRoom)
                other.broadcast({"type": "typing", "user": user}, exclude=client)
            return
        super().relay(room, user, client, data)


class BroadcastTheRawFrame(AppRooms):
    """room.broadcast(data, ...) with the text as it came: broadcast wants a dict, and raises."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            assert isinstance(room, SharedRoom)
            room.broadcast(data, exclude=client)
            return
        super().relay(room, user, client, data)


class BroadcastTheClientsFrame(AppRooms):
    """The client's frame with the user set: whatever else the client put in it reaches everyone."""

    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            assert isinstance(room, SharedRoom)
            room.broadcast({**json.loads(data), "user": user}, exclude=client)
            return
        super().relay(room, user, client, data)


def test_the_answer_passes_and_leaves_no_server_running() -> None:
    result = check_typing_everywhere(SharedTyping)
    assert result.status == "passed", str(result)
    assert str(result) == ("✅ Exercise 8.1 (typing everywhere): everyone else in the room sees who is "
                           "typing, on every worker.")
    assert not [s for s in wslab.running_servers() if s.name.startswith("check ")]


def test_chapter_six_answer_fails_saying_bo_is_on_the_other_server() -> None:
    result = check_typing_everywhere(ChapterSixTyping)
    assert result.status == "failed"
    assert result.summary == (
        "not right yet: bo should see that ada is typing. He is in the lobby too, but on the other server: "
        "room.members holds only this server's connections (ada's and cy's), so a loop over it never reaches "
        "him.")
    assert result.hint == ("the room has a method that reaches its members on every worker: the exercise "
                           "names it.")
    assert result.details[:2] == ["expected: {'type': 'typing', 'user': 'ada'}",
                                  "got:      {'type': 'message', 'user': 'ada', 'content': 'hello'}"]
    assert "cy ← {\"type\": \"typing\", \"user\": \"ada\"}" in str(result)  # ada's own server had it


@pytest.mark.parametrize(("rooms_type", "reported"), [
    (AppRooms, "cy, in the lobby on ada's server, should see that ada is typing"),
    (LoopAndBroadcast, "cy should get ada's typing frame once, then her message"),
    (BroadcastToEveryone, "ada should not see her own typing frames"),
    (BroadcastWithoutReturn, "ada's typing frame got an error back: once relay has handled a typing frame it "
                             "should return, not pass it on to super().relay"),
    (BroadcastTheFramesName, "a typing frame that claims to be from bo, sent by ada, should say ada to cy"),
    (BroadcastToEveryRoom, "dee, in the kitchen on the other server, should never see the lobby's typing"),
    (BroadcastBeforeTheLimit, "the rate limit should close cy with 1008"),
    (BroadcastTheClientsFrame, "ada's typing frame had a 'note' field of her own: cy should not get it"),
])
def test_typing_everywhere_wrong_answers_fail(rooms_type: type[AppRooms], reported: str) -> None:
    result = check_typing_everywhere(rooms_type)
    assert result.status == "failed" and reported in result.summary, str(result)


@pytest.mark.parametrize(("rooms_type", "hint"), [
    (BroadcastBeforeTheLimit, "in relay, not in handle"),
    (BroadcastTheClientsFrame, "not from the client's frame"),
    (BroadcastTheFramesName, "the name comes from the token"),
    (BroadcastToEveryone, "exclude argument"),
])
def test_typing_everywhere_hints_aim_at_the_failure(rooms_type: type[AppRooms], hint: str) -> None:
    result = check_typing_everywhere(rooms_type)
    assert hint in result.hint, str(result)


def test_the_typing_everywhere_stub_hint_does_not_give_the_answer() -> None:
    class Stub(AppRooms):
        def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
            raise NotImplementedError

    result = check_typing_everywhere(Stub)
    assert result.status == "not done" and "start from chapter 06's answer" in result.hint
    assert "broadcast" not in result.hint and "exclude" not in result.hint


def test_typing_everywhere_leads_with_the_exception_the_handler_raised() -> None:
    result = check_typing_everywhere(BroadcastTheRawFrame)
    assert result.status == "failed"
    assert result.summary == (
        "not right yet: your code raised TypeError: a frame is a protocol model or a dict, not str (see what "
        "the server logged below); then: cy, in the lobby on ada's server, should see that ada is typing.")
    assert "TypeError: a frame is a protocol model or a dict, not str" in str(result).split("The server "
                                                                                            "logged:")[1]


@pytest.mark.parametrize(("given", "reported"), [
    (SharedTyping(Tokens()), "not an instance of SharedTyping (the class is what the check needs)"),
    (create_app(rooms_type=SharedTyping), "not an app (the check makes its own apps)"),
    (SharedTyping.relay, "not the function relay()"),
    (dict, "not the class dict, which does not subclass AppRooms"),
    (None, "not None"),
])
def test_typing_everywhere_wants_the_rooms_class(given: Any, reported: str) -> None:
    result = check_typing_everywhere(given)
    assert result.status == "failed"
    assert result.summary.startswith("pass your rooms class itself, a subclass of AppRooms: "
                                     "check_typing_everywhere(SharedTypingRooms), ")
    assert reported in result.summary, result.summary


class RoomHistory:
    """The answer."""

    def __init__(self, redis: Redis, size: int = 100) -> None:
        self.redis, self.size = redis, size

    def key(self, room: str) -> str:
        return f"history:{room}"

    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), {"frame": json.dumps(frame)}, maxlen=self.size,
                              approximate=True)

    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrevrange(self.key(room), count=count)
        return [json.loads(fields["frame"]) for _, fields in reversed(entries)]


class ExactlyCapped(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), {"frame": json.dumps(frame)}, maxlen=self.size)


class OldestFirst(RoomHistory):
    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrange(self.key(room), count=count)
        return [json.loads(fields["frame"]) for _, fields in entries]


class NewestFirst(RoomHistory):
    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrevrange(self.key(room), count=count)
        return [json.loads(fields["frame"]) for _, fields in entries]


class Uncapped(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), {"frame": json.dumps(frame)})


class CappedAtTen(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), {"frame": json.dumps(frame)}, maxlen=10)


class OneStreamForAll(RoomHistory):
    def key(self, room: str) -> str:
        return "history"


class InAList(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.rpush(self.key(room), json.dumps(frame))
        await self.redis.ltrim(self.key(room), -self.size, -1)

    async def recent(self, room: str, count: int = 10) -> Any:
        return [json.loads(text) for text in await self.redis.lrange(self.key(room), -count, -1)]


class RawEntries(RoomHistory):
    async def recent(self, room: str, count: int = 10) -> Any:
        return list(reversed(await self.redis.xrevrange(self.key(room), count=count)))


class SavedWithStr(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), {"frame": str(frame)}, maxlen=self.size, approximate=True)


class TextBack(RoomHistory):
    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrevrange(self.key(room), count=count)
        return [fields["frame"] for _, fields in reversed(entries)]


class FieldsAsTheFrame(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), frame, maxlen=self.size, approximate=True)


class SavedWithoutAwait(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        self.redis.xadd(self.key(room), {"frame": json.dumps(frame)}, maxlen=self.size,
                        approximate=True)


class RecentWithoutAwait(RoomHistory):
    async def recent(self, room: str, count: int = 10) -> Any:
        entries: Any = self.redis.xrevrange(self.key(room), count=count)
        return [json.loads(fields["frame"]) for _, fields in reversed(entries)]


class MinAndMaxSwapped(RoomHistory):
    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrevrange(self.key(room), "-", "+", count=count)
        return [json.loads(fields["frame"]) for _, fields in reversed(entries)]


class NotAsync(RoomHistory):
    def recent(self, room: str, count: int = 10) -> Any:  # type: ignore[override]
        return []


@pytest.mark.parametrize("history_type", [RoomHistory, ExactlyCapped])
def test_a_capped_stream_history_passes(history_type: type[RoomHistory]) -> None:
    result = check_stream_history(history_type)
    assert str(result) == ("✅ Exercise 8.2 (stream history): each room keeps its recent frames in a capped "
                           "Redis stream, which every worker sees.")


@pytest.mark.parametrize(("history_type", "reported", "got"), [
    (OldestFirst, "recent('lobby', 3) gave the first 3 frames of the room: XRANGE with count starts at the "
                  "oldest. XREVRANGE with count gives the newest, then reverse them", None),
    (NewestFirst, "recent('lobby', 3) gave the last 3 frames newest first, as XREVRANGE does: reverse them",
     None),
    (Uncapped, "after 350 saves to the attic with size=100, its stream should keep about the last 100 "
               "frames: XADD with maxlen=self.size, approximate=True", "got:      '350 entries'"),
    (CappedAtTen, "its stream should keep about the last 100 frames", "expected: '100 to 200 entries'"),
    (OneStreamForAll, "saving to the lobby should add to its own stream at history:lobby (self.key(room)): "
                      "each room has a stream of its own", "the keys in Redis are ['history']"),
    (InAList, "history:lobby should be a Redis stream, made with XADD: it is a list", "got:      'list'"),
    (RawEntries, "recent('lobby', 3) should give the frames themselves, as dicts, not the stream's (ID, "
                 "fields) entries", None),
    (SavedWithStr, "each entry of the stream should hold its frame as JSON, in one field",
     "got:      {'frame': "),
    (TextBack, "recent('lobby', 3) should give the frames as dicts, not as text: json.loads each one", None),
    (FieldsAsTheFrame, "raised DataError: a stream entry's fields are strings, so store the frame as JSON "
                       "in one field, {'frame': json.dumps(frame)}", None),
    (NotAsync, "recent('lobby', 5) should be awaitable: define it with async def", None),
])
def test_stream_history_wrong_answers_fail(history_type: type[RoomHistory], reported: str,
                                           got: str | None) -> None:
    result = check_stream_history(history_type)
    assert result.status == "failed" and reported in result.summary, str(result)
    assert got is None or got in str(result), str(result)


def test_stream_history_asks_whether_xadd_was_awaited_when_nothing_reached_redis() -> None:
    result = check_stream_history(SavedWithoutAwait)
    assert result.status == "failed"
    assert result.summary == ("not right yet: after 7 saves, nothing reached Redis: save should write each "
                              "frame to Redis with XADD (and await it: without await, redis.asyncio makes "
                              "the command but never sends it).")
    assert "got:      'no key at all in Redis'" in str(result)
    gc.collect()  # no "coroutine ... was never awaited" left to warn (warnings are errors here)


def test_stream_history_says_a_redis_call_in_recent_was_not_awaited() -> None:
    result = check_stream_history(RecentWithoutAwait)
    assert result.status == "failed"
    assert result.summary == ("not right yet: recent('lobby', 5) raised TypeError: a redis call in it was "
                              "not awaited, so it gave a coroutine, not Redis's reply (entries = await "
                              "self.redis.xrevrange(...)).")
    assert "got:      \"TypeError: 'coroutine' object is not reversible\"" in str(result)
    gc.collect()


def test_stream_history_blames_no_await_only_when_a_coroutine_is_involved() -> None:
    result = check_stream_history(FieldsAsTheFrame)  # a DataError from an awaited xadd: no coroutine there
    assert "not awaited" not in result.summary, result.summary


def test_stream_history_says_the_stream_holds_entries_when_recent_gives_nothing() -> None:
    result = check_stream_history(MinAndMaxSwapped)
    assert result.status == "failed"
    assert result.summary == ("not right yet: the lobby's stream holds 5 entries but recent('lobby', 3) gave "
                              "[]: redis-py's xrevrange takes max before min ('+', '-'), or leave both out.")
    assert "got:      []" in str(result)


def test_stream_history_wants_the_class() -> None:
    result = check_stream_history(RoomHistory(Redis()))
    assert result.status == "failed"
    assert result.summary == ("pass your history class itself: check_stream_history(RoomHistory), not an "
                              "instance of RoomHistory (the class is what the check needs).")


@pytest.mark.parametrize(("check", "answer"), [(check_typing_everywhere, SharedTyping),
                                               (check_stream_history, RoomHistory)])
def test_a_missing_redis_server_fails_saying_how_to_install_it(
        monkeypatch: pytest.MonkeyPatch, check: Callable[[Any], CheckResult], answer: type) -> None:
    monkeypatch.setenv("WSLAB_REDIS_SERVER", "/nonexistent/redis-server")
    result = check(answer)
    assert result.status == "failed"
    assert result.summary.startswith("this check starts a Redis of its own, and could not: "
                                     "$WSLAB_REDIS_SERVER is /nonexistent/redis-server, which is not a "
                                     "program")
    assert "sudo apt-get install redis-server" in result.summary


class InMemory(RoomHistory):
    """Kept in the process's memory: another worker sees none of it."""

    def __init__(self, redis: Redis, size: int = 100) -> None:
        super().__init__(redis, size)
        self.kept: dict[str, list[dict[str, Any]]] = {}

    async def save(self, room: str, frame: dict[str, Any]) -> None:
        self.kept.setdefault(room, []).append(frame)

    async def recent(self, room: str, count: int = 10) -> Any:
        return self.kept.get(room, [])[-count:]


class WrittenButReadFromMemory(InMemory):
    """Written to Redis too, so the stream looks right, but read back from the process's memory."""

    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await RoomHistory.save(self, room, frame)
        await super().save(room, frame)


class SavedAsRepr(RoomHistory):
    """str(frame) stored, ast.literal_eval to read it: round-trips in Python, but it is not JSON."""

    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), {"frame": str(frame)}, maxlen=self.size, approximate=True)

    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrevrange(self.key(room), count=count)
        return [ast.literal_eval(fields["frame"]) for _, fields in reversed(entries)]


class OneFieldPerKey(RoomHistory):
    async def save(self, room: str, frame: dict[str, Any]) -> None:
        fields = {key: value if isinstance(value, str) else json.dumps(value) for key, value in frame.items()}
        await self.redis.xadd(self.key(room), fields, maxlen=self.size, approximate=True)

    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrevrange(self.key(room), count=count)
        return [dict(fields) for _, fields in reversed(entries)]


@pytest.mark.parametrize(("history_type", "reported", "hint"), [
    (InMemory, "after 7 saves, nothing reached Redis", "keep the frames in Redis only"),
    (WrittenButReadFromMemory, "workers A and B took turns saving to the lobby: A's recent('lobby', 3) "
                               "should give every worker's frames, from Redis",
     "keep the frames in Redis only"),
    (SavedAsRepr, "each entry of the stream should hold its frame as JSON, in one field",
     "json.dumps(frame)"),
    (OneFieldPerKey, "each entry of the stream should hold its frame as JSON, in one field", "in one field"),
])
def test_stream_history_in_memory_or_not_json_fails(history_type: type[RoomHistory], reported: str,
                                                    hint: str) -> None:
    result = check_stream_history(history_type)
    assert result.status == "failed" and reported in result.summary, str(result)
    assert hint in result.hint, result.hint


class TailOfXrange(RoomHistory):
    """XRANGE of the whole (capped) stream, then its tail; another field name; non-ASCII kept as it is."""

    async def save(self, room: str, frame: dict[str, Any]) -> None:
        await self.redis.xadd(self.key(room), {"json": json.dumps(frame, ensure_ascii=False)},
                              maxlen=self.size, approximate=True)

    async def recent(self, room: str, count: int = 10) -> Any:
        entries = await self.redis.xrange(self.key(room))
        return [json.loads(fields["json"]) for _, fields in entries[-count:]] if count > 0 else []


def test_another_stream_history_passes() -> None:
    result = check_stream_history(TailOfXrange)
    assert result.passed, str(result)


def test_the_stream_history_stub_hint_says_where_to_start() -> None:
    class Stub(RoomHistory):
        async def save(self, room: str, frame: dict[str, Any]) -> None:
            raise NotImplementedError

    result = check_stream_history(Stub)
    assert result.status == "not done" and "start with save" in result.hint
    for answer in ("maxlen=", "approximate=True", "json.dumps", "XREVRANGE"):
        assert answer not in result.hint
