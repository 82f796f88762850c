"""The complete app as real worker processes behind a real Redis: `wslab serve --broker` processes (so
that a test knows which worker each client is on), and `uvicorn wslab.reference.app:app --workers 2`
configured from the environment. Every wait is for a frame or a log line, with a timeout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from brokered import TOKENS, Process, Worker, chat_messages, login, presence, until

import wslab
from wslab.lab.redis_server import RedisServer

TTL = 1.5  # presence_ttl: a killed worker's users are gone within about 2 s
MESSAGES = 5  # sent by each client


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@contextlib.contextmanager
def workers(broker: str, count: int = 2) -> Iterator[list[Worker]]:
    """``count`` worker processes, started together, stopped with Ctrl+C at the end (unless killed)."""
    started = [Worker(broker) for _ in range(count)]
    try:
        yield [worker.ready() for worker in started]
    except BaseException as exc:  # what the workers logged, to tell why
        for number, log in enumerate(worker.stop() for worker in started):
            exc.add_note(f"--- worker {number}'s log:\n{log[-3000:]}")
        raise
    logs = [worker.stop() for worker in started]
    for log in logs:
        assert "Traceback" not in log and "ERROR" not in log, log


def test_workers_deliver_every_message_once_pass_private_messages_and_forget_a_killed_worker(
        redis: RedisServer) -> None:
    names = [f"u{n}" for n in range(6)]  # u0, u2, u4 on the first worker; u1, u3, u5 on the second

    async def scenario(a: Worker, b: Worker) -> None:
        clients = [await login((a, b)[n % 2].url, name) for n, name in enumerate(names)]
        try:
            for client in clients:
                await presence(client, *names)
            for k in range(MESSAGES):
                for client in clients:
                    await client.send({"type": "message", "content": f"{client.name} says {k}"})
            for client in clients:
                got = await chat_messages(client, len(names) * MESSAGES)
                assert sorted(got) == sorted((u, f"{u} says {k}") for u in names for k in range(MESSAGES))
                for name in names:  # in each sender's order
                    assert [c for u, c in got if u == name] == [f"{name} says {k}" for k in range(MESSAGES)]
            await clients[0].send({"type": "message", "content": "over"})
            for client in clients:  # nothing twice: the next message anyone gets is the last one sent
                assert await chat_messages(client, 1) == [("u0", "over")]

            await clients[0].send({"type": "private", "to": "u1", "content": "A to B"})
            await clients[3].send({"type": "private", "to": "u4", "content": "B to A"})
            for sender, target, content in ((0, 1, "A to B"), (3, 4, "B to A")):
                frame = {"type": "private", "from": names[sender], "to": names[target], "content": content}
                assert [await clients[n].recv_json() for n in (sender, target)] == [frame, frame]

            b.kill()  # no goodbye: its users stay listed until their entries expire
            for client in clients[::2]:
                assert (await presence(client, "u0", "u2", "u4", timeout=5 * TTL + 5))["type"] == "leave"
            await clients[2].send({"type": "private", "to": "u1", "content": "there?"})
            error = await clients[2].recv_json()
            assert error["message"] == "no user 'u1' in this room: the message was not sent"
        finally:
            for client in clients[::2]:
                await client.close()

    with workers(f"{redis.url}?presence_ttl={TTL}") as (a, b):
        wslab.run_sync(scenario(a, b), timeout=60)


def test_presence_on_two_workers_the_joiner_gets_the_list_the_others_the_change_and_who_the_list(
        redis: RedisServer) -> None:
    async def scenario(a: Worker, b: Worker) -> None:
        ada, bo, cy = await login(a.url, "ada"), await login(b.url, "bo"), await login(a.url, "cy")
        try:
            changes = []
            for client in (ada, bo, cy):  # each copy kept from the changes, every one in step (brokered)
                changes.append(await presence(client, "ada", "bo", "cy"))
            assert changes[2]["users"] == ["ada", "bo", "cy"]  # cy's own join: the whole list
            assert [{key: frame[key] for key in ("type", "user", "count")} for frame in changes[:2]] == \
                [{"type": "join", "user": "cy", "count": 3}] * 2  # on both workers: the change alone
            assert "users" not in changes[0] and "users" not in changes[1]
            await cy.close()
            for client in (ada, bo):
                left = await presence(client, "ada", "bo")
                assert (left["type"], left["user"], left["count"]) == ("leave", "cy", 2)
                assert "users" not in left
                await client.send({"type": "who"})
                answer = (await until(client, lambda frame: frame["type"] == "users"))[-1]
                assert answer == {"type": "users", "users": ["ada", "bo"], "version": left["version"]}
        finally:
            await ada.close()
            await bo.close()

    with workers(redis.url) as (a, b):
        wslab.run_sync(scenario(a, b), timeout=60)


def test_redis_restarted_mid_session_delivery_resumes(redis: RedisServer) -> None:
    async def scenario(a: Worker, b: Worker) -> None:
        ada, bo = await login(a.url, "ada"), await login(b.url, "bo")
        try:
            await presence(ada, "ada", "bo")
            redis.stop()
            for worker in (a, b):
                await worker.stderr.until("Lost Redis at redis://127.0.0.1:")
            await ada.send({"type": "message", "content": "while Redis is away"})
            assert await chat_messages(ada, 1) == [("ada", "while Redis is away")]  # local delivery goes on
            redis.start()  # on the same port, empty
            for worker in (a, b):
                await worker.stderr.until("cross-worker delivery resumed")
            await ada.send({"type": "message", "content": "back"})
            await bo.send({"type": "message", "content": "welcome back"})
            for client in (ada, bo):
                assert sorted(await chat_messages(client, 2)) == [("ada", "back"), ("bo", "welcome back")]
            await bo.send({"type": "private", "to": "ada", "content": "psst"})
            assert (await ada.recv_json())["content"] == "psst"
        finally:
            await ada.close()
            await bo.close()

    with workers(redis.url) as (a, b):
        wslab.run_sync(scenario(a, b), timeout=60)
    assert a.stderr.count("Lost Redis") == b.stderr.count("Lost Redis") == 1
    assert a.stderr.count("resumed (frames that reached only this worker's clients meanwhile: 1)") == 1


def test_uvicorn_with_two_workers_shares_rooms_configured_from_the_environment(redis: RedisServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Process("-m", "uvicorn", "wslab.reference.app:app", "--workers", "2", "--port", str(port),
                     env={"WSLAB_BROKER": redis.url})
    names = [f"u{n}" for n in range(8)]

    async def scenario() -> None:
        clients = await asyncio.gather(*(login(f"ws://127.0.0.1:{port}", name) for name in names))
        try:
            for client in clients:
                await presence(client, *names)
            for client in clients:
                await client.send({"type": "message", "content": f"hi from {client.name}"})
            for client in clients:
                assert sorted(await chat_messages(client, len(names))) == [(u, f"hi from {u}") for u in names]
        finally:
            for client in clients:
                await client.close()

    pids: list[int] = []
    try:
        server.stderr.wait_for("Rooms are shared through Redis", count=2)  # each worker, connected
        server.stderr.wait_for("Application startup complete.", count=2)
        pids = [int(line.split("[")[1].split("]")[0]) for line in server.stderr.lines
                if "Started server process" in line]
        wslab.run_sync(scenario(), timeout=60)
    finally:
        log = server.stop(signal.SIGTERM)  # uvicorn stops its workers, then itself
        for pid in pids:  # make sure: a worker of ours that is somehow still running is killed
            with contextlib.suppress(OSError):
                if b"multiprocessing" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
    assert "Traceback" not in log, log


def test_100_clients_on_two_workers_each_sending_10_all_receive_everything_once_in_order(
        redis: RedisServer) -> None:
    clients, messages = 100, 10

    async def load(urls: list[str]) -> dict[str, list[tuple[str, int]]]:
        sockets: list[websockets.ClientConnection] = []
        heard: dict[str, list[tuple[str, int]]] = {}
        everyone_in, sees_all = asyncio.Event(), set()

        def saw(user: str, frame: dict[str, Any]) -> None:
            count = frame.get("count", len(frame.get("users", ())))  # a change, or our own join's list
            if frame["type"] in ("join", "leave") and count == clients:
                sees_all.add(user)
                if len(sees_all) == clients:
                    everyone_in.set()

        async def reader(user: str, ws: websockets.ClientConnection) -> None:
            got = heard[user] = []
            while len(got) < clients * messages:
                frame = json.loads(await ws.recv())
                if frame["type"] == "message":
                    got.append((frame["user"], int(frame["content"].split()[-1])))
                else:
                    saw(user, frame)

        async def writer(user: str, ws: websockets.ClientConnection) -> None:
            await everyone_in.wait()
            for k in range(messages):
                await ws.send(json.dumps({"type": "message", "content": f"{user} says {k}"}))

        try:
            for n in range(clients):
                ws = await websockets.connect(f"{urls[n % 2]}ws/chat/lobby", max_queue=None,
                                              compression=None)
                sockets.append(ws)
                await ws.send(json.dumps({"type": "auth", "token": TOKENS.issue(f"u{n:03}")}))
                while (frame := json.loads(await ws.recv()))["type"] != "join":  # our own: we are in
                    pass
                saw(f"u{n:03}", frame)
            async with asyncio.timeout(60), asyncio.TaskGroup() as group:
                for n, ws in enumerate(sockets):
                    group.create_task(reader(f"u{n:03}", ws))
                    group.create_task(writer(f"u{n:03}", ws))
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))
        return heard

    with workers(redis.url) as (a, b):
        heard = asyncio.run(load([a.url, b.url]))
    assert len(heard) == clients
    for user, got in heard.items():
        per_sender: dict[str, list[int]] = {}
        for sender, k in got:
            per_sender.setdefault(sender, []).append(k)
        assert len(per_sender) == clients, f"{user} heard from {len(per_sender)} senders"
        bad = [s for s, ks in per_sender.items() if ks != list(range(messages))]
        assert not bad, f"{user} got {bad[0]}'s messages as {per_sender[bad[0]]}"
