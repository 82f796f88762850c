"""Brokers (wslab.reference.broker.base, wslab.reference.broker.redis_broker): the complete app's rooms shared
by several workers through a real Redis (wslab.lab.redis_server starts one per test). Here the workers are
in-process servers, each with its own event loop, app and broker, as separate processes would have;
tests/test_redis_workers.py runs them as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from brokered import SECRET, LogLines, capture_broker_log, chat_messages, login, presence, until
from fastapi import FastAPI
from redis.asyncio.client import PubSub

import wslab
from wslab import LabServer
from wslab.lab.redis_server import RedisServer, RedisServerError
from wslab.reference.app import AppRooms, create_app
from wslab.reference.broker import MemoryBroker, broker_from_url, redacted
from wslab.reference.broker.redis_broker import RedisBroker
from wslab.reference.broker.shared_room import SharedRoom
from wslab.reference.manager import Client
from wslab.reference.presence import Presence
from wslab.reference.protocol import Users, frame_type
from wslab.reference.rooms import Room
from wslab.tools.cli import main

TTL = 1.0  # presence_ttl in these tests: a stopped worker's users are gone within about 1.4 s


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def broker_log() -> Iterator[LogLines]:
    yield from capture_broker_log()


@contextlib.contextmanager
def workers(url: str, count: int = 2, rooms_type: type[AppRooms] = AppRooms) -> Iterator[list[LabServer]]:
    """``count`` servers of the complete app sharing rooms through the Redis at ``url``."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(wslab.serve(create_app(secret=SECRET, broker=url, rooms_type=rooms_type),
                                               name=f"t-broker-{n}"))
               for n in range(count)]


def rooms_of(server: LabServer) -> AppRooms:
    app = server.sessions.app
    assert isinstance(app, FastAPI)
    rooms: AppRooms = app.state.rooms
    return rooms


def test_broker_from_url_picks_the_backend_and_says_what_is_wrong() -> None:
    for memory in (None, "", "memory", " memory:// "):
        assert isinstance(broker_from_url(memory), MemoryBroker)
    broker = broker_from_url("redis://:hunter2@127.0.0.1:6390/3?presence_ttl=2.5")
    assert isinstance(broker, RedisBroker)
    assert (broker.url, broker.presence_ttl) == ("redis://:hunter2@127.0.0.1:6390/3", 2.5)
    assert "hunter2" not in repr(broker) and redacted(broker.url) == "redis://:***@127.0.0.1:6390/3"
    with pytest.raises(ValueError, match="unknown broker 'http://x': use 'memory', or a Redis URL"):
        broker_from_url("http://x")
    with pytest.raises(ValueError, match="presence_ttl in 'redis://h/0\\?presence_ttl=soon' is not a number"):
        broker_from_url("redis://h/0?presence_ttl=soon")
    with pytest.raises(ValueError, match="presence_ttl is 0 s: give at least 0.3 s"):
        RedisBroker("redis://h/0", presence_ttl=0)


def test_the_default_app_keeps_its_rooms_in_memory() -> None:
    rooms = create_app().state.rooms
    assert isinstance(rooms.broker, MemoryBroker) and type(rooms.room("lobby")) is Room


def test_wslab_serve_refuses_an_unknown_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--broker", "mqtt://x"]) == 1
    assert "wslab serve: --broker: unknown broker 'mqtt://x'" in capsys.readouterr().err


def test_the_broker_never_reads_its_channel_without_a_bound(redis: RedisServer,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # redis-py before 8.1 applies socket_timeout to a read without a bound: on a quiet channel the broker
    # counted Redis as gone every REDIS_TIMEOUT seconds, and lost what was published while it resubscribed.
    timeouts: list[float | None] = []
    real = PubSub.get_message
    reads = threading.Event()

    async def spy(self: PubSub, *args: Any, **kwargs: Any) -> Any:
        timeouts.append(kwargs.get("timeout", 0.0))
        if len(timeouts) >= 3:  # the subscription's confirmation, then reads of the channel
            reads.set()
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(PubSub, "get_message", spy)
    with workers(redis.url, count=1):
        assert reads.wait(10)
    assert None not in timeouts, timeouts


def test_two_workers_share_rooms_presence_names_and_private_messages(redis: RedisServer) -> None:
    async def scenario(a: LabServer, b: LabServer) -> None:
        ada, bo, cy = await login(a, "ada"), await login(b, "bo"), await login(a, "cy")
        for client in (ada, bo, cy):  # everyone's list, whichever worker they are on
            await presence(client, "ada", "bo", "cy")
        for n in range(3):
            for client in (ada, bo, cy):
                await client.send({"type": "message", "content": f"{client.name} {n}"})
        expected = sorted((user, f"{user} {n}") for user in ("ada", "bo", "cy") for n in range(3))
        for client in (ada, bo, cy):  # each message exactly once, in each sender's order
            got = await chat_messages(client, 9)
            assert sorted(got) == expected
            assert [c for u, c in got if u == "bo"] == ["bo 0", "bo 1", "bo 2"]
        await ada.send({"type": "message", "content": "last"})
        for client in (ada, bo, cy):  # and nothing twice: the next message is the last one sent
            assert await chat_messages(client, 1) == [("ada", "last")]

        await ada.send({"type": "private", "to": "bo", "content": "psst"})  # A to B
        private = {"type": "private", "from": "ada", "to": "bo", "content": "psst"}
        assert (await ada.recv_json(), await bo.recv_json()) == (private, private)
        await bo.send({"type": "private", "to": "zed", "content": "hello?"})
        assert (await bo.recv_json())["message"] == "no user 'zed' in this room: the message was not sent"

        twin = await wslab.connect(b, "/ws/chat/lobby", transcript=ada.transcript)  # ada, again, on B
        await twin.send({"type": "auth", "token": rooms_of(b).tokens.issue("ada")})
        assert (await twin.wait_closed(5.0), twin.close_reason) == (
            1008, "the name 'ada' is already taken in this room")
        async with httpx.AsyncClient(base_url=b.url) as http:
            status = (await http.get("/status")).json()
        assert status["broker"]["connected"] is True and status["rooms"] == [{"room": "lobby", "users": 1}]

        await bo.close()
        for client in (ada, cy):
            assert (await presence(client, "ada", "cy"))["type"] == "leave"
        await cy.send({"type": "private", "to": "bo", "content": "still there?"})
        assert (await cy.recv_json())["type"] == "error"
        await ada.close()
        await cy.close()

    with workers(redis.url) as (a, b):
        wslab.run_sync(scenario(a, b))
        assert a.wait_idle() and b.wait_idle()
        assert a.log.lines("ERROR") == b.log.lines("ERROR") == []


class TypingRooms(AppRooms):
    def relay(self, room: Room, user: str, client: Client, data: str | bytes) -> None:
        if frame_type(data) == "typing":
            room.broadcast({"type": "typing", "user": user}, exclude=client)
            return
        super().relay(room, user, client, data)


def test_a_frame_of_ones_own_and_an_announcement_reach_every_worker(redis: RedisServer) -> None:
    async def scenario(a: LabServer, b: LabServer) -> None:
        ada, cy, dee = await login(a, "ada"), await login(a, "cy"), await login(b, "dee")
        bo = await login(b, "bo", room="attic")  # a room with nobody on worker a
        for client in (ada, cy, dee):
            await presence(client, "ada", "cy", "dee")
        await ada.send({"type": "typing"})
        for client in (cy, dee):  # the others, on both workers; not the sender
            assert (await until(client, lambda frame: frame["type"] == "typing"))[-1] == {
                "type": "typing", "user": "ada"}
        await ada.send({"type": "message", "content": "done typing"})
        assert await chat_messages(ada, 1) == [("ada", "done typing")]

        assert await a.acall(rooms_of(a).announce("Break!")) == 2  # ada and cy, on this worker
        for client in (ada, cy, dee, bo):
            assert (await until(client, lambda frame: frame["type"] == "announcement"))[-1] == {
                "type": "announcement", "content": "Break!"}
        for client in (ada, cy, dee, bo):
            await client.close()

    with workers(redis.url, rooms_type=TypingRooms) as (a, b):
        wslab.run_sync(scenario(a, b))


def test_a_worker_that_stops_refreshing_its_users_loses_them_until_it_is_back(redis: RedisServer) -> None:
    async def scenario(a: LabServer, b: LabServer) -> None:
        ada, bo = await login(a, "ada"), await login(b, "bo")
        await presence(ada, "ada", "bo")
        with b.paused(timeout=10):  # b's loop stands still, as a dead worker's would
            left = await presence(ada, "ada", timeout=3 * TTL + 2)
            assert left == {"type": "leave", "user": "bo", "count": 1, "version": 3}
        back = await presence(ada, "ada", "bo", timeout=3 * TTL + 2)
        assert back == {"type": "join", "user": "bo", "count": 2, "version": 4}
        await bo.send({"type": "message", "content": "I was only asleep"})
        assert await chat_messages(ada, 1) == [("bo", "I was only asleep")]
        await ada.close()
        await bo.close()

    with workers(f"{redis.url}?presence_ttl={TTL}") as (a, b):
        wslab.run_sync(scenario(a, b))


def test_a_worker_that_stops_releases_its_users_at_once(redis: RedisServer) -> None:
    async def scenario(a: LabServer, b: LabServer) -> None:
        ada, _bo = await login(a, "ada"), await login(b, "bo")
        await presence(ada, "ada", "bo")
        b.stop()  # a clean shutdown: its clients are closed and their names given back, not left to expire
        assert (await presence(ada, "ada", timeout=5))["type"] == "leave"
        await ada.close()

    with workers(f"{redis.url}?presence_ttl=60") as (a, b):
        wslab.run_sync(scenario(a, b))


def test_without_redis_a_worker_serves_its_own_clients_says_so_and_resumes(redis: RedisServer,
                                                                            broker_log: LogLines) -> None:
    async def scenario(a: LabServer, b: LabServer) -> None:
        ada, bo, cy = await login(a, "ada"), await login(b, "bo"), await login(a, "cy")
        await presence(ada, "ada", "bo", "cy")
        await presence(bo, "ada", "bo", "cy")
        redis.stop()
        await broker_log.until("WARNING Lost Redis at redis://127.0.0.1:", count=2)
        await ada.send({"type": "message", "content": "only here"})
        assert await chat_messages(cy, 1) == [("ada", "only here")]  # local delivery goes on
        await bo.send({"type": "private", "to": "ada", "content": "psst"})
        assert (await bo.recv_json())["message"] == (  # not lost without a word
            "'ada' is on another server, which cannot be reached right now: the message was not sent")
        redis.start()  # the same port, empty
        await broker_log.until("cross-worker delivery resumed", count=2)
        await ada.send({"type": "message", "content": "back"})
        assert await chat_messages(bo, 1) == [("ada", "back")]  # and never "only here"
        await bo.send({"type": "private", "to": "ada", "content": "psst"})
        assert (await until(ada, lambda frame: frame["type"] == "private"))[-1]["from"] == "bo"
        for client in (ada, bo, cy):
            await client.close()

    with workers(redis.url) as (a, b):
        wslab.run_sync(scenario(a, b))
    assert broker_log.count("Lost Redis") == 2  # one line per worker per outage, not one per frame
    resumed = [line.partition("resumed")[2] for line in broker_log.lines if "resumed" in line]
    assert resumed == [" (frames that reached only this worker's clients meanwhile: 1)."] * 2


def test_a_worker_starts_without_redis_and_connects_when_it_comes(redis: RedisServer,
                                                                 broker_log: LogLines) -> None:
    redis.stop()

    async def scenario(a: LabServer) -> None:
        ada = await login(a, "ada")  # Redis away: this worker decides alone
        await ada.send({"type": "message", "content": "hello?"})
        assert await chat_messages(ada, 1) == [("ada", "hello?")]
        redis.start()
        await broker_log.until("cross-worker delivery resumed")
        bo = await login(a, "bo")
        assert (await presence(ada, "ada", "bo"))["user"] == "bo"
        await ada.close()
        await bo.close()

    with workers(redis.url, count=1) as (a,):
        assert broker_log.count("WARNING Cannot reach Redis at redis://127.0.0.1:") == 1
        wslab.run_sync(scenario(a))


def test_wait_connected_returns_once_the_worker_has_lost_redis_or_found_it_again(redis: RedisServer) -> None:
    broker = RedisBroker(redis.url, retry_min=0.05, retry_max=0.5)

    async def scenario() -> list[bool]:
        seen = []
        async with broker.running():
            await broker.wait_connected(timeout=10)
            seen.append(broker.connected)
            await asyncio.to_thread(redis.stop)
            await broker.wait_connected(False, timeout=10)
            seen.append(broker.connected)
            await asyncio.to_thread(redis.start)  # the same port, empty
            await broker.wait_connected(timeout=10)
            seen.append(broker.connected)
        return seen

    assert wslab.run_sync(scenario()) == [True, False, True]


def test_wait_connected_raises_timeout_error_when_the_state_does_not_come_in_time(redis: RedisServer) -> None:
    broker = RedisBroker(redis.url, retry_min=0.05, retry_max=0.5)

    async def scenario() -> None:
        async with broker.running():
            await broker.wait_connected(timeout=10)
            with pytest.raises(TimeoutError):
                await broker.wait_connected(False, timeout=0.2)  # Redis is up: it never comes
            assert broker.connected

    wslab.run_sync(scenario())


def test_wait_connected_refuses_a_broker_that_is_not_running(redis: RedisServer) -> None:
    broker = RedisBroker(redis.url)

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="the broker is not running: it starts with the app"):
            await broker.wait_connected()
        async with broker.running():
            await broker.wait_connected(timeout=10)
        with pytest.raises(RuntimeError, match="the broker is not running"):  # and once it has stopped
            await broker.wait_connected(False)

    wslab.run_sync(scenario())


def test_a_name_let_in_on_two_workers_while_redis_was_away_is_kept_by_one(redis: RedisServer,
                                                                           broker_log: LogLines) -> None:
    async def scenario(a: LabServer, b: LabServer) -> tuple[int | None, str | None, list[tuple[str, str]]]:
        redis.stop()
        await broker_log.until("Lost Redis", count=2)
        twins = [await login(a, "ada"), await login(b, "ada")]  # each worker, alone, says yes
        redis.start()
        closing = {asyncio.create_task(twin.wait_closed(10)): twin for twin in twins}
        done, waiting = await asyncio.wait(closing, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        (kicked,), (kept,) = [closing[task] for task in done], [closing[task] for task in waiting]
        for task in waiting:
            task.cancel()
        await asyncio.wait(waiting)
        await kept.send({"type": "message", "content": "still me"})
        heard = await chat_messages(kept, 1)
        await kept.close()
        return kicked.close_code, kicked.close_reason, heard

    with workers(f"{redis.url}?presence_ttl={TTL}") as (a, b):
        code, reason, heard = wslab.run_sync(scenario(a, b))
    assert code == 1008
    assert reason == "the name 'ada' was taken on another server while Redis was away: log in again"
    assert heard == [("ada", "still me")]


def test_a_shared_room_refuses_a_join_without_a_claim() -> None:
    room = RedisBroker("redis://127.0.0.1:1/0").room("lobby")
    assert isinstance(room, SharedRoom)
    with pytest.raises(RuntimeError, match="joins the shared room 'lobby' without a claim"):
        room.join("ada", object())  # type: ignore[arg-type]


def test_a_shared_room_applies_what_redis_says_in_order_and_never_goes_back() -> None:
    room = RedisBroker("redis://127.0.0.1:1/0").room("lobby")
    room.changed("join", "bo", 7)  # before the first list: held back...
    room.snapshot(["ada"], 5)  # ...and applied on top of it
    assert room.users == ["ada", "bo"] and room.number == 7
    room.snapshot(["ada"], 6)  # read before bo joined: out of date
    room.changed("join", "cy", 7)  # already applied
    assert room.users == ["ada", "bo"]
    room.changed("leave", "ada", 8)
    room.snapshot(["bo", "dee"], 9)
    assert room.users == ["bo", "dee"]
    room.out_of_step()  # Redis restarted, empty: the next list may add users, and removes nobody
    room.snapshot(["eve"], 1, removals=False)
    assert room.users == ["bo", "dee", "eve"]


def test_a_leave_is_applied_when_the_list_that_came_first_could_not_remove_anyone() -> None:
    """Just after connecting, a worker's lists from Redis remove nobody. Its sweep and its refresh run in the
    same tick: Redis numbers the sweep's leave 4 and reads the list at 4, and the list's reply, on another
    connection, can arrive before the announcement. The leave must still be applied (bo was listed for
    ever, and the test of a stopped worker failed one run in five)."""
    room = RedisBroker("redis://127.0.0.1:1/0").room("lobby")
    ada = Inbox()
    room.snapshot(["ada", "bo"], 3)
    room.members["ada"] = ada  # type: ignore[assignment]
    room.snapshot(["ada"], 4, removals=False)  # bo's entry expired, and the sweep's leave is number 4
    assert room.users == ["ada", "bo"]
    room.changed("leave", "bo", 4)
    assert room.users == ["ada"] and ada.frames == [{"type": "leave", "user": "bo", "count": 1, "version": 3}]
    room.snapshot(["ada", "cy"], 5, removals=False)
    room.changed("leave", "cy", 5)  # cy was in that list: this leave is older news
    room.changed("leave", "ada", 5)
    assert room.users == ["ada", "cy"]


class Inbox:
    """Stands in for a member's Client: keeps the frames it is sent."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    def send(self, text: str) -> None:
        self.frames.append(json.loads(text))


def test_a_shared_room_tells_its_members_each_change_with_count_and_version_never_the_list() -> None:
    room = RedisBroker("redis://127.0.0.1:1/0").room("lobby")
    room.snapshot(["ada"], 4)  # ada's claim: Redis's list, with her in it
    ada = Inbox()
    room.members["ada"] = ada  # type: ignore[assignment]
    room.snapshot(["ada", "bo"], 5)
    room.changed("join", "cy", 6)
    room.changed("leave", "bo", 7)
    room.snapshot(["ada", "cy", "dee"], 9)  # dee's join (8) came only in a list
    assert ada.frames == [{"type": "join", "user": "bo", "count": 2, "version": 2},
                          {"type": "join", "user": "cy", "count": 3, "version": 3},
                          {"type": "leave", "user": "bo", "count": 2, "version": 4},
                          {"type": "join", "user": "dee", "count": 3, "version": 5}]
    assert room.presence() == Users(users=["ada", "cy", "dee"], version=5)
    copy = Presence()
    copy.apply({"type": "join", "user": "ada", "users": ["ada"], "version": 1})
    assert all(copy.apply(frame) for frame in ada.frames) and copy.users == room.users


def test_redis_server_restarts_on_its_port_and_stops_twice() -> None:
    server = RedisServer().start()
    try:
        port, pid = server.port, server.pid
        assert server.url == f"redis://127.0.0.1:{port}/0" and repr(server) == "RedisServer(running)"
        server.restart()
        assert server.port == port and server.pid != pid
        with pytest.raises(RedisServerError, match=f"Port {port} on 127.0.0.1 is already in use"):
            RedisServer(port).start()
    finally:
        server.stop()
        server.stop()
    assert not server.running and server.pid is None


def test_a_missing_redis_server_says_how_to_install_it() -> None:
    with pytest.raises(RedisServerError, match="apt-get install redis-server"):
        RedisServer(executable="/nowhere/redis-server").start()
