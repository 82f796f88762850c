from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from apps import service_lines, service_logs_debug

import wslab
from wslab import LabClient, LabServer, Transcript
from wslab.reference.manager import MAX_FRAME
from wslab.reference.presence import Presence
from wslab.reference.protocol import MAX_CONTENT, Message
from wslab.reference.rooms import ChatRooms, Room, rooms_app


@pytest.fixture
def rooms() -> ChatRooms:
    return ChatRooms()


@pytest.fixture
def server(rooms: ChatRooms) -> Iterator[LabServer]:
    """rooms_app(rooms) served; afterwards every handler has ended and nothing was logged as an ERROR."""
    with wslab.serve(rooms_app(rooms), name="t-rooms") as running:
        yield running
        assert running.wait_idle(5.0)
    assert running.log.lines("ERROR") == []


@contextlib.asynccontextmanager
async def members(server: LabServer, *where: str) -> AsyncIterator[dict[str, LabClient]]:
    """Clients for "room/user" each, connected one at a time; each one's join frame is read by everyone
    in its room before the next connects, so the frames the test reads next are its own."""
    transcript = Transcript(live=False)
    async with contextlib.AsyncExitStack() as stack:
        team: dict[str, LabClient] = {}
        room_of: dict[str, str] = {}
        for room_user in where:
            room, user = room_user.split("/")
            client = wslab.connect(server, f"/chat/{room}/{user}", name=user, transcript=transcript)
            team[user], room_of[user] = await stack.enter_async_context(client), room
            for name, bot in team.items():
                if room_of[name] == room:
                    assert (await bot.recv_json())["user"] == user
        yield team


def impostor(server: LabServer) -> LabClient:
    """A second client for the name "ada" in the lobby."""
    return wslab.connect(server, "/chat/lobby/ada", name="mallory", transcript=Transcript(live=False))


def message(user: str, content: str) -> dict[str, Any]:
    return {"type": "message", "user": user, "content": content}


def test_the_joiner_gets_the_whole_list_and_the_others_the_change_with_count_and_version(
        server: LabServer) -> None:
    transcript = Transcript(live=False)

    def user(name: str) -> LabClient:
        return wslab.connect(server, f"/chat/lobby/{name}", name=name, transcript=transcript)

    async def scenario() -> tuple[list[Any], list[Any]]:
        async with user("ada") as ada:
            seen_by_ada = [await ada.recv_json()]
            async with user("bo") as bo:
                seen_by_ada.append(await ada.recv_json())
                await bo.recv_json()
                async with user("cy") as cy:
                    seen_by_ada.append(await ada.recv_json())
                    await bo.close()
                    seen_by_ada.append(await ada.recv_json())
                    return seen_by_ada, [await cy.recv_json(), await cy.recv_json()]

    seen_by_ada, seen_by_cy = asyncio.run(scenario())
    assert seen_by_ada == [
        {"type": "join", "user": "ada", "users": ["ada"], "version": 1},
        {"type": "join", "user": "bo", "count": 2, "version": 2},
        {"type": "join", "user": "cy", "count": 3, "version": 3},
        {"type": "leave", "user": "bo", "count": 2, "version": 4},
    ]
    assert seen_by_cy == [{"type": "join", "user": "cy", "users": ["ada", "bo", "cy"], "version": 3},
                          {"type": "leave", "user": "bo", "count": 2, "version": 4}]


def test_who_gets_the_whole_list_at_the_current_version_for_the_sender_alone(server: LabServer) -> None:
    async def scenario() -> dict[str, Any]:
        async with members(server, "lobby/ada", "lobby/bo", "lobby/cy", "kitchen/dee") as team:
            await team["cy"].close()
            await team["ada"].recv_json()  # cy's leave
            await team["bo"].recv_json()
            await team["bo"].send({"type": "who"})
            await team["dee"].send({"type": "who"})
            await team["ada"].send({"type": "message", "content": "next"})
            return {name: await team[name].recv_json() for name in ("bo", "dee", "ada")}

    assert asyncio.run(scenario()) == {
        "bo": {"type": "users", "users": ["ada", "bo"], "version": 4},  # 3 joins and cy's leave
        "dee": {"type": "users", "users": ["dee"], "version": 1},  # each room has its own version
        "ada": message("ada", "next"),  # nothing about bo's question came first
    }


def test_n_joins_send_each_member_a_change_of_constant_size_and_the_list_once(server: LabServer) -> None:
    """The k-th join sends its list of k names once and a change to k-1 members: N joins deliver O(N²)
    bytes, where a list to everyone each time delivered O(N³)."""
    n = 40

    async def scenario() -> tuple[list[Presence], dict[str, int]]:
        transcript = Transcript(live=False)
        async with contextlib.AsyncExitStack() as stack:
            clients: list[LabClient] = []
            copies: list[Presence] = []
            largest = {"list": 0, "change": 0}
            for k in range(n):
                client = wslab.connect(server, f"/chat/hall/u{k}", name=f"u{k}", transcript=transcript)
                clients.append(await stack.enter_async_context(client))
                copies.append(Presence())
                for each, copy in zip(clients, copies, strict=True):
                    text = await each.recv()
                    frame = json.loads(text)
                    assert frame["user"] == f"u{k}" and copy.apply(frame), (each.name, frame, copy)
                    kind = "list" if "users" in frame else "change"
                    largest[kind] = max(largest[kind], len(text))
            # all at once: one by one, each waits out the leaves it does not read (50 s for the 40)
            await asyncio.gather(*(client.close() for client in clients))
            return copies, largest

    copies, largest = asyncio.run(scenario())
    everyone = [f"u{k}" for k in range(n)]
    assert all(copy.users == everyone and copy.version == n for copy in copies)
    assert largest["change"] <= len('{"type":"join","user":"u39","count":40,"version":40}')
    assert largest["list"] > n * len('"u0",')


def test_a_message_reaches_everyone_in_the_room_and_nobody_in_another_room(server: LabServer) -> None:
    async def scenario() -> dict[str, Any]:
        async with members(server, "lobby/ada", "lobby/bo", "kitchen/cy") as team:
            await team["ada"].send({"type": "message", "content": "hi lobby"})
            await team["cy"].send({"type": "message", "content": "hi kitchen"})
            return {name: await bot.recv_json() for name, bot in team.items()}

    assert asyncio.run(scenario()) == {  # cy's first frame is its own message: nothing from the lobby came
        "ada": message("ada", "hi lobby"),
        "bo": message("ada", "hi lobby"),
        "cy": message("cy", "hi kitchen"),
    }


def test_a_private_message_reaches_only_its_target_and_a_copy_to_the_sender(server: LabServer) -> None:
    async def scenario() -> dict[str, Any]:
        async with members(server, "lobby/ada", "lobby/bo", "lobby/cy") as team:
            await team["bo"].send({"type": "private", "to": "ada", "content": "psst"})
            await team["bo"].send({"type": "message", "content": "done"})
            return {name: await bot.recv_json() for name, bot in team.items()}

    private = {"type": "private", "from": "bo", "to": "ada", "content": "psst"}
    assert asyncio.run(scenario()) == {"ada": private, "bo": private, "cy": message("bo", "done")}


def test_a_private_message_to_oneself_arrives_once(server: LabServer) -> None:
    async def scenario() -> list[Any]:
        async with members(server, "lobby/ada") as team:
            await team["ada"].send({"type": "private", "to": "ada", "content": "note"})
            await team["ada"].send({"type": "message", "content": "done"})
            return [await team["ada"].recv_json() for _ in range(2)]

    assert asyncio.run(scenario()) == [
        {"type": "private", "from": "ada", "to": "ada", "content": "note"}, message("ada", "done"),
    ]


def test_a_private_message_to_an_unknown_user_gets_an_error_frame(server: LabServer) -> None:
    async def scenario() -> Any:
        async with members(server, "lobby/ada", "kitchen/zed") as team:  # zed is in another room
            await team["ada"].send({"type": "private", "to": "zed", "content": "hello?"})
            return await team["ada"].recv_json()

    assert asyncio.run(scenario()) == {
        "type": "error", "message": "no user 'zed' in this room: the message was not sent",
    }


def test_a_duplicate_name_is_refused_with_1008(server: LabServer) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        async with members(server, "lobby/ada"), impostor(server) as mallory:
            return await mallory.wait_closed(), mallory.close_reason

    assert asyncio.run(scenario()) == (1008, "the name 'ada' is already taken in this room")


def test_the_original_keeps_its_private_messages_after_a_duplicate_is_refused(server: LabServer) -> None:
    async def scenario() -> Any:
        async with members(server, "lobby/ada", "lobby/bo") as team:
            async with impostor(server) as mallory:
                await mallory.wait_closed()
            await team["bo"].send({"type": "private", "to": "ada", "content": "swordfish"})
            return await team["ada"].recv_json()  # no leave frame for the refused one comes first

    assert asyncio.run(scenario()) == {"type": "private", "from": "bo", "to": "ada", "content": "swordfish"}


@pytest.mark.parametrize("user", ["x" * 33, "ada!", "a%20b"])
def test_an_invalid_user_name_is_refused_with_1008(server: LabServer, rooms: ChatRooms, user: str) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        client = wslab.connect(server, f"/chat/lobby/{user}", transcript=Transcript(live=False))
        async with client as ws:
            return await ws.wait_closed(), ws.close_reason

    assert asyncio.run(scenario()) == (1008, "not a valid user name: use 1 to 32 letters, digits, _ . -")
    assert server.wait_idle(5.0)  # the handlers' finally blocks have run
    assert rooms.rooms == {}


def test_an_empty_room_is_dropped(server: LabServer, rooms: ChatRooms) -> None:
    async def scenario() -> list[str]:
        async with members(server, "lobby/ada", "kitchen/bo"):
            during = list(rooms.rooms)
        return during

    assert asyncio.run(scenario()) == ["lobby", "kitchen"]
    assert server.wait_idle(5.0)  # the handlers' finally blocks have run
    assert rooms.rooms == {}


@pytest.mark.parametrize(("bad", "error"), [
    pytest.param("not json", "not valid JSON (Expecting value)", id="invalid-json"),
    pytest.param([1, 2], 'expected a JSON object with a "type", got a JSON array', id="array"),
    pytest.param({"type": "shout", "content": "hi"},
                 'unknown type "shout": expected "message", "private" or "who"', id="unknown-type"),
    pytest.param({"type": "message"}, 'missing "content"', id="no-content"),
    pytest.param({"type": "message", "content": "x" * (MAX_CONTENT + 1)},
                 f'"content" is too long: at most {MAX_CONTENT} characters', id="long-content"),
    pytest.param(b"\x00", "binary frames are not part of this protocol: send JSON text", id="binary"),
])
def test_a_bad_frame_gets_an_error_frame_and_the_room_carries_on(server: LabServer, bad: Any,
                                                                 error: str) -> None:
    async def scenario() -> dict[str, list[Any]]:
        async with members(server, "lobby/ada", "lobby/bo") as team:
            await team["ada"].send(bad)
            await team["ada"].send({"type": "message", "content": "sorry"})
            return {"ada": [await team["ada"].recv_json() for _ in range(2)],
                    "bo": [await team["bo"].recv_json()]}

    assert asyncio.run(scenario()) == {
        "ada": [{"type": "error", "message": error}, message("ada", "sorry")],
        "bo": [message("ada", "sorry")],
    }


def test_a_frame_over_max_frame_bytes_closes_with_1009(server: LabServer) -> None:
    async def scenario() -> tuple[int | None, Any]:
        async with members(server, "lobby/ada", "lobby/bo") as team:
            await team["ada"].send(json.dumps({"type": "message", "content": "x" * MAX_FRAME}))
            return await team["ada"].wait_closed(), await team["bo"].recv_json()

    assert asyncio.run(scenario()) == (1009, {"type": "leave", "user": "ada", "count": 1, "version": 3})


def test_each_refusal_and_leave_is_logged_once_with_who_and_why_and_never_a_message() -> None:
    async def scenario(server: LabServer) -> None:
        async with members(server, "lobby/ada", "lobby/bo") as team:
            async with impostor(server) as mallory:
                await mallory.wait_closed()
            await team["bo"].send({"type": "message", "content": "the door code is swordfish"})
            await team["ada"].recv_json()
        client = wslab.connect(server, "/chat/lobby/ada!", transcript=Transcript(live=False))
        async with client as invalid:
            await invalid.wait_closed()

    with service_logs_debug(), wslab.serve(rooms_app(), name="t-rooms-log") as server:
        asyncio.run(scenario(server))
        assert server.wait_idle(5.0)
    assert service_lines(server) == [
        'INFO wslab.reference.rooms: 127.0.0.1:<port> - "/chat/lobby/ada" - closed 1008: the name \'ada\' is '
        "already taken in this room",
        'DEBUG wslab.reference.rooms: 127.0.0.1:<port> - "/chat/lobby/bo" - left (1000)',
        'DEBUG wslab.reference.rooms: 127.0.0.1:<port> - "/chat/lobby/ada" - left (1000)',
        'INFO wslab.reference.rooms: 127.0.0.1:<port> - "/chat/lobby/ada!" - closed 1008: not a valid user '
        "name: use 1 to 32 letters, digits, _ . -",
    ]
    assert not [record for record in server.log.records if "swordfish" in record.getMessage()]


def test_a_frame_over_max_frame_bytes_is_logged_as_closed_1009(server: LabServer) -> None:
    big = json.dumps({"type": "message", "content": "x" * MAX_FRAME})

    async def scenario() -> None:
        async with members(server, "lobby/ada") as team:
            await team["ada"].send(big)
            await team["ada"].wait_closed()

    asyncio.run(scenario())
    assert server.wait_idle(5.0)
    # wslab.serve's uvicorn refuses the frame from its header (ws_max_size), before the rooms see it
    # (its reason is websockets' wording, which may change: it names the limit)
    [line] = service_lines(server)
    assert line.startswith('INFO wslab.reference.wsprotocol: 127.0.0.1:<port> - "/chat/lobby/ada" - '
                           "closed 1009: ")
    assert str(MAX_FRAME) in line


def test_a_long_non_ascii_name_taken_twice_is_refused_cleanly(server: LabServer) -> None:
    name = "名" * 32  # a valid name whose refusal reason is longer than a close frame can carry

    async def scenario() -> tuple[int | None, str | None]:
        quiet = Transcript(live=False)
        async with members(server, f"lobby/{name}"):
            second = wslab.connect(server, f"/chat/lobby/{name}", name="second", transcript=quiet)
            async with second:
                await second.wait_closed(2.0)
                return second.close_code, second.close_reason

    code, reason = wslab.run_sync(scenario())
    assert code == 1008
    assert reason is not None and reason.endswith("...") and len(reason.encode()) <= 123


def test_hooks_written_as_coroutines_are_refused_with_a_clear_error() -> None:
    class AsyncHooks(ChatRooms):
        async def joined(self, room: Any, user: str, client: Any) -> None:  # type: ignore[override]
            pass

    with pytest.raises(TypeError, match=r"joined\(\) must be a plain `def`"):
        AsyncHooks()


class Recorder:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, text: str) -> bool:
        self.sent.append(text)
        return True


def test_broadcast_sends_a_model_or_a_dict_to_every_member_but_the_one_excluded() -> None:
    room, ada, bo = Room("lobby"), Recorder(), Recorder()
    room.members.update(ada=ada, bo=bo)  # type: ignore[dict-item]  # only send() is used
    room.broadcast(Message(user="ada", content="hi"))
    room.broadcast({"type": "typing", "user": "ada"}, exclude=ada)  # type: ignore[arg-type]
    assert ada.sent == ['{"type":"message","user":"ada","content":"hi"}']
    assert bo.sent == [ada.sent[0], '{"type": "typing", "user": "ada"}']
    with pytest.raises(TypeError, match="a frame is a protocol model or a dict, not list"):
        room.broadcast(["not", "a", "frame"])  # type: ignore[arg-type]
