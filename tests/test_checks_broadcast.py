"""Chapter 02's checks: the answers that defeat the chapter's lesson are refused, with a verdict naming what
is wrong, and plausible correct variants pass (the notebook's own answers and stubs: test_checks.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest
from fastapi import FastAPI, WebSocket

from wslab.checks import check_count, check_no_echo
from wslab.reference import wsprotocol
from wslab.reference.manager import Client, ConnectionManager

# What a chat does with one text message: (manager, client, name, message).
Relay = Callable[[ConnectionManager, Client, str, str], Awaitable[None]]


def chat(relay: Relay) -> FastAPI:
    """Chapter 02's chat at ``/ws/{name}``, each message handled by ``relay``."""
    manager = ConnectionManager()
    app = FastAPI()

    @app.websocket("/ws/{name}")
    async def endpoint(websocket: WebSocket, name: str) -> None:
        try:
            async with manager.connect(websocket) as client:
                async for message in client.messages():
                    await relay(manager, client, name, str(message))
        finally:
            manager.broadcast(f"{name} left the chat")

    return app


# -- 2.1 /count ---------------------------------------------------------------------------------------
async def count_continue(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    if message == "/count":
        client.send(f"{len(manager)} online")
        return
    manager.broadcast(f"{name}: {message}")


async def count_match_helper(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    def online() -> str:
        return f"{len(manager.clients)} online"

    match message.strip():
        case "/count":
            client.send(online())
        case _:
            manager.broadcast(f"{name}: {message}")


async def count_broadcast(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    manager.broadcast(f"{len(manager)} online" if message == "/count" else f"{name}: {message}")


async def count_no_continue(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    if message == "/count":
        client.send(f"{len(manager)} online")
    manager.broadcast(f"{name}: {message}")


async def count_substring(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    if "/count" in message:
        client.send(f"{len(manager)} online")
        return
    manager.broadcast(f"{name}: {message}")


async def count_startswith(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    if message.startswith("/count"):
        client.send(f"{len(manager)} online")
        return
    manager.broadcast(f"{name}: {message}")


async def count_off_by_one(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    if message == "/count":
        client.send(f"{len(manager) - 1} online")
        return
    manager.broadcast(f"{name}: {message}")


async def count_direct_send(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    if message == "/count":
        await client.websocket.send_text(f"{len(manager)} online")  # jumps the queue
        return
    manager.broadcast(f"{name}: {message}")


async def count_awaited_loop(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    if message == "/count":
        client.send(f"{len(manager)} online")
        return
    for other in manager.clients:
        await other.websocket.send_text(f"{name}: {message}")


def count_own_tally() -> Relay:
    seen: set[str] = set()  # everyone who ever spoke or asked, never forgotten

    async def relay(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
        seen.add(name)
        if message == "/count":
            client.send(f"{max(len(seen), len(manager))} online")
            return
        manager.broadcast(f"{name}: {message}")

    return relay


@pytest.mark.parametrize("relay", [count_continue, count_match_helper])
def test_count_accepts_correct_variants(relay: Relay) -> None:
    result = check_count(chat(relay))
    assert result.passed, str(result)


@pytest.mark.parametrize(("relay", "reported", "hinted"), [
    (count_broadcast, "bo should not receive ada's /count or its answer", "only the sender"),
    (count_no_continue, "bo should not receive ada's /count or its answer", "only the sender"),
    (count_substring, "'/count me in' is a message, not the command", "the whole text"),
    (count_startswith, "'/count me in' is a message, not the command", "the whole text"),
    (count_off_by_one, "with ada and bo connected, /count should answer '2 online'", "where each message"),
    (count_own_tally(), "after cy left, /count should say '2 online' again", "forgets whoever left"),
    (count_direct_send, "answering dee's /count should not wait until dee reads", "queues it instead"),
    (count_awaited_loop, "the room froze behind zed, who stopped reading", "which call in your loop"),
])
def test_count_refuses_lesson_defeating_answers(relay: Relay, reported: str, hinted: str) -> None:
    result = check_count(chat(relay))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert hinted.lower() in result.hint.lower(), str(result)


# -- 2.2 no echo --------------------------------------------------------------------------------------
async def quiet_loop(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    for other in manager.clients:
        if other is not client:
            other.send(f"{name}: {message}")


async def quiet_helper(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    def broadcast_except(text: str, sender: Client) -> int:
        return sum(other.send(text) for other in manager.clients if other is not sender)

    broadcast_except(f"{name}: {message}", client)


async def echo_to_all(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    manager.broadcast(f"{name}: {message}")


async def quiet_by_name(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    for other in manager.clients:
        if other.websocket.path_params.get("name") != name:
            other.send(f"{name}: {message}")


async def quiet_awaited(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    for other in manager.clients:
        if other is not client:
            await other.websocket.send_text(f"{name}: {message}")


async def quiet_awaited_guarded(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    for other in manager.clients:
        if other is not client:
            with contextlib.suppress(Exception):
                await other.websocket.send_text(f"{name}: {message}")


async def quiet_gather(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    await asyncio.gather(*(other.websocket.send_text(f"{name}: {message}")
                           for other in manager.clients if other is not client), return_exceptions=True)


async def quiet_task_per_send(manager: ConnectionManager, client: Client, name: str, message: str) -> None:
    for other in manager.clients:
        if other is not client:
            asyncio.create_task(other.websocket.send_text(f"{name}: {message}"))  # noqa: RUF006


@pytest.mark.parametrize("relay", [quiet_loop, quiet_helper])
def test_no_echo_accepts_correct_variants(relay: Relay) -> None:
    result = check_no_echo(chat(relay))
    assert result.passed, str(result)


@pytest.mark.parametrize(("relay", "reported", "hinted"), [
    (echo_to_all, "ada should not receive her own message back", "skip the sender"),
    (quiet_by_name, "the sender is a connection, not a name", "by identity"),
    (quiet_awaited, "the room froze behind zed, who stopped reading", "which call in your loop can wait"),
    (quiet_awaited_guarded, "the room froze behind zed", "which call in your loop can wait"),
    (quiet_gather, "the room froze behind zed", "which call in your loop can wait"),
    (quiet_task_per_send, "nothing ever disconnected him", "a task per send"),
])
def test_no_echo_refuses_lesson_defeating_answers(relay: Relay, reported: str, hinted: str) -> None:
    result = check_no_echo(chat(relay))
    assert result.status == "failed" and reported in result.summary, str(result)
    assert hinted.lower() in result.hint.lower(), str(result)


def test_a_correct_answer_passes_when_the_others_take_longer_than_zed_is_given_to_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A closing server drops a client that takes none of its backlog for ABORT_AFTER seconds (2 s); on a
    # busy machine bo and cy take longer than that to get all 1000 messages, so zed must not wait for them
    # before he reads again. A short ABORT_AFTER makes that certain here.
    monkeypatch.setattr(wsprotocol, "ABORT_AFTER", 0.1)
    result = check_no_echo(chat(quiet_loop))
    assert result.passed, str(result)


def test_the_frozen_room_verdict_shows_how_far_the_messages_got() -> None:
    result = check_no_echo(chat(quiet_awaited))
    report = str(result)
    assert "ada → 1000 messages of 16 KB" in report and "zed … stops reading" in report, report
    assert result.details[0] == "expected: 'all 1000, whatever zed does'", report


def test_a_check_with_a_stalled_reader_stays_fast() -> None:
    loop = asyncio.new_event_loop()
    try:
        start = loop.time()
        assert check_no_echo(chat(quiet_loop)).passed
        assert loop.time() - start < 10
    finally:
        loop.close()


