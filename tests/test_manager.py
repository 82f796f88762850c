from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Iterator

import pytest
from apps import chat, service_lines, service_logs_debug
from fastapi import FastAPI, WebSocket

import wslab
from wslab import LabServer, Transcript
from wslab.reference.manager import MAX_FRAME, SURGE, Client, ConnectionManager, broadcast_app
from wslab.reference.wsprotocol import WebSocketProtocol


@contextlib.contextmanager
def serving(app: FastAPI) -> Iterator[LabServer]:
    """``app`` served; on a clean exit, every handler has ended and nothing was logged as an ERROR."""
    with wslab.serve(app, name="t-manager") as server:
        yield server
        assert server.wait_idle(5.0)
    assert server.log.lines("ERROR") == []


@pytest.fixture
def app() -> FastAPI:
    return broadcast_app()


@pytest.fixture
def manager(app: FastAPI) -> ConnectionManager:
    manager: ConnectionManager = app.state.manager
    return manager


@pytest.fixture
def server(app: FastAPI) -> Iterator[LabServer]:
    with serving(app) as running:
        yield running


def test_broadcast_app_uses_the_manager_it_is_given() -> None:
    manager = ConnectionManager(max_queue=8)
    assert broadcast_app(manager).state.manager is manager


def payload(number: int, size: int = 16 * 1024) -> str:
    """Numbered, and random so that nothing on the way can compress it."""
    return f"#{number} " + base64.b64encode(os.urandom(size * 3 // 4)).decode()


@pytest.fixture(params=[("frames", None), ("frames", "deflate"), ("asgi", "deflate")],
                ids=["frames", "frames-deflate", "asgi"])
def compression(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The compression the test's clients ask for, in each way a writer sends: its whole queue in one write
    (WebSocketProtocol's FRAMES: framed once per broadcast, or compressed per client), or one ASGI send per
    text (any other server, here WebSocketProtocol with FRAMES turned off)."""
    way, compression = request.param
    if way == "asgi":
        monkeypatch.setattr(WebSocketProtocol, "_offer_frames", False)
    return str(compression) if compression else None


def test_a_broadcast_reaches_everyone_in_order(server: LabServer, compression: str | None) -> None:
    async def scenario() -> dict[str, list[str | bytes]]:
        async with chat(server, "ada", "bo", "cy", compression=compression) as team:
            for number in range(50):
                await team["ada"].send(f"#{number}")
            return {name: [await bot.recv() for _ in range(50)] for name, bot in team.items()}

    expected = [f"ada: #{number}" for number in range(50)]
    assert asyncio.run(scenario()) == {"ada": expected, "bo": expected, "cy": expected}


def test_a_binary_frame_gets_a_refusal_and_the_connection_stays(server: LabServer) -> None:
    async def scenario() -> list[str | bytes]:
        async with chat(server, "ada") as team:
            await team["ada"].send(b"\x00\x01")
            refusal = await team["ada"].recv()
            await team["ada"].send("still here")
            return [refusal, await team["ada"].recv()]

    assert asyncio.run(scenario()) == ["binary frames are not relayed: send text", "ada: still here"]


def test_a_binary_frame_is_not_relayed(server: LabServer) -> None:
    async def scenario() -> str | bytes:
        async with chat(server, "ada", "bo") as team:
            await team["ada"].send(b"\x00\x01")
            await team["ada"].send("text")
            return await team["bo"].recv()  # the text, with nothing before it

    assert asyncio.run(scenario()) == "ada: text"


def test_a_frame_over_max_frame_bytes_closes_with_1009() -> None:
    # A max_frame below MAX_FRAME, the limit at which wslab.serve's uvicorn refuses a frame by itself.
    max_frame = 1000
    too_big = "é" * (max_frame // 2 + 1)  # fewer characters than max_frame, but more bytes

    async def scenario(server: LabServer) -> tuple[int | None, str | None]:
        async with chat(server, "ada") as team:
            await team["ada"].send(too_big)
            return await team["ada"].wait_closed(), team["ada"].close_reason

    with serving(broadcast_app(ConnectionManager(max_frame=max_frame))) as server:
        refusal = asyncio.run(scenario(server))
    assert refusal == (1009, f"frame too big: {max_frame + 2} bytes, at most {max_frame}")


def test_a_frame_of_max_frame_bytes_is_relayed(server: LabServer) -> None:
    largest = "x" * MAX_FRAME

    async def scenario() -> str | bytes:
        async with chat(server, "ada") as team:
            await team["ada"].send(largest)
            return await team["ada"].recv()

    assert asyncio.run(scenario()) == f"ada: {largest}"


def test_a_client_that_never_reads_is_closed_with_1013_and_the_others_get_every_message_in_order(
        compression: str | None) -> None:
    # close_timeout leaves bo time to read its backlog and then the close frame after it is kicked.
    manager = ConnectionManager(max_queue=8, close_timeout=10.0)

    async def scenario(server: LabServer) -> tuple[int, int | None, str | None, list[str | bytes]]:
        async with chat(server, "ada", "bo", "cy", compression=compression, max_size=None) as team:
            ada, bo, cy = team["ada"], team["bo"], team["cy"]
            goodbyes: list[str | bytes] = []  # what cy got that was not ada's

            async def from_ada(name: str) -> str | bytes:
                # bo's goodbye comes when its handler has ended, on its own time: ada's message that got
                # bo kicked may reach the others before the manager has let bo go, and ada sends one more.
                message = await team[name].recv()
                if message == "bo left the chat":
                    goodbyes.extend([message] if name == "cy" else [])
                    message = await team[name].recv()
                return message

            sent = 0
            for number in range(2000):  # bo stops reading; its buffers fill well before this
                if len(manager) < 3:  # bo has been kicked
                    break
                text = payload(number)
                await ada.send(text)
                assert await from_ada("cy") == f"ada: {text}"
                assert await from_ada("ada") == f"ada: {text}"
                sent += 1
            assert 0 < sent < 2000 and len(manager) == 2
            code = await bo.wait_closed(10.0)  # reads the backlog, then the close frame
            if not goodbyes:
                goodbyes.append(await cy.recv())
            return sent, code, bo.close_reason, goodbyes

    with serving(broadcast_app(manager)) as server:
        _, code, reason, goodbyes = asyncio.run(scenario(server))
    assert (code, reason) == (1013, "too slow: 8 messages were waiting")
    assert goodbyes == ["bo left the chat"]
    # Logged once, at INFO: the client's network, not the server, is what fell behind.
    kicked = ('INFO wslab.reference.manager: 127.0.0.1:<port> - "/ws/bo" - closed 1013: too slow: 8 messages '
              "were waiting")
    assert [line for line in service_lines(server) if "closed" in line] == [kicked]


def test_a_burst_larger_than_the_queue_from_clients_that_read_kicks_nobody(compression: str | None) -> None:
    # Every client sends 40 frames at once: far more than max_queue=8 messages reach each queue, but
    # everyone reads, so nobody's socket is full and nobody is too slow.
    manager = ConnectionManager(max_queue=8)

    async def scenario(server: LabServer) -> tuple[dict[str, list[str | bytes]], int]:
        async with chat(server, "ada", "bo", "cy", compression=compression) as team:
            await asyncio.gather(*(bot.connection.send(f"{name} {number}")
                                   for name, bot in team.items() for number in range(40)))
            received = {name: [await bot.recv() for _ in range(120)] for name, bot in team.items()}
            return received, len(manager)

    with serving(broadcast_app(manager)) as server:
        received, connected = asyncio.run(scenario(server))
    assert connected == 3
    for messages in received.values():
        for name in ("ada", "bo", "cy"):
            assert [m for m in messages if m.startswith(f"{name}: ")] == [
                f"{name}: {name} {number}" for number in range(40)]


def test_the_manager_is_empty_after_everyone_leaves(server: LabServer, manager: ConnectionManager) -> None:
    async def scenario() -> int:
        async with chat(server, "ada", "bo", "cy"):
            during = len(manager)
        return during

    assert asyncio.run(scenario()) == 3
    assert server.wait_idle(5.0)  # the handlers' finally blocks have run
    assert len(manager) == 0


def test_a_client_that_drops_without_a_close_frame_is_removed(server: LabServer, manager: ConnectionManager,
                                                              compression: str | None) -> None:
    async def scenario() -> tuple[int, str | bytes]:
        async with chat(server, "ada", "bo", compression=compression) as team:
            session = server.sessions.for_client_port(team["bo"].connection.local_address[1])
            assert session is not None
            team["bo"].connection.transport.abort()  # no close frame
            await asyncio.wait_for(asyncio.wrap_future(session.done), 5.0)
            return len(manager), await team["ada"].recv()

    assert asyncio.run(scenario()) == (1, "bo left the chat")


def closing_app(count: int) -> FastAPI:
    """/ws queues ``count`` messages, then closes with 4000 "that is all"."""
    app = FastAPI()

    @app.websocket("/ws")
    async def handler(websocket: WebSocket) -> None:
        async with Client(websocket) as client:
            for number in range(count):
                client.send(f"#{number}")
            client.close(4000, "that is all")
            async for _ in client.messages():  # ends at once: the client is closing
                pass

    return app


def test_client_close_delivers_what_is_queued_then_closes_with_the_code(compression: str | None) -> None:
    async def scenario(server: LabServer) -> tuple[list[str | bytes], int | None, str | None]:
        transcript = Transcript(live=False)
        async with wslab.connect(server, "/ws", transcript=transcript, compression=compression) as ws:
            received = [await ws.recv() for _ in range(100)]
            return received, await ws.wait_closed(), ws.close_reason

    with wslab.serve(closing_app(100), name="t-manager-close") as server:
        received, code, reason = asyncio.run(scenario(server))
        assert server.wait_idle(5.0)
    assert received == [f"#{number}" for number in range(100)]
    assert (code, reason) == (4000, "that is all")
    assert server.log.lines("ERROR") == []


def test_a_queue_that_grows_to_surge_times_max_queue_is_too_slow_even_if_the_socket_takes_more(
        compression: str | None) -> None:
    app = FastAPI()
    accepted: list[bool] = []

    @app.websocket("/ws")
    async def handler(websocket: WebSocket) -> None:
        async with Client(websocket, max_queue=8) as client:
            # Nothing is written until the handler yields: neither the writer nor the flush runs.
            accepted.extend(client.send(f"#{number}") for number in range(100))
            async for _ in client.messages():
                pass

    async def scenario(server: LabServer) -> tuple[int | None, str | None]:
        transcript = Transcript(live=False)
        async with wslab.connect(server, "/ws", transcript=transcript, compression=compression) as ws:
            return await ws.wait_closed(), ws.close_reason

    with wslab.serve(app, name="t-manager-surge") as server:
        closed = asyncio.run(scenario(server))
        assert server.wait_idle(5.0)
    assert closed == (1013, f"too slow: {SURGE * 8} messages were waiting")
    assert accepted == [True] * SURGE * 8 + [False] * (100 - SURGE * 8)
    # The server, not the client, fell behind: that is for an operator to see (print_log shows WARNING).
    assert service_lines(server) == [
        f'WARNING wslab.reference.manager: 127.0.0.1:<port> - "/ws" - closed 1013: {SURGE * 8} messages were '
        "waiting though its socket took more: the server is queueing faster than it sends"]


def test_a_client_that_leaves_is_logged_at_debug_with_its_close_code_and_never_its_messages() -> None:
    async def scenario(server: LabServer) -> None:
        async with chat(server, "ada", "bo") as team:
            await team["ada"].send("the door code is swordfish")  # (digits could be in a port number)
            await team["bo"].recv()
            await team["bo"].close(1001)

    with service_logs_debug(), serving(broadcast_app()) as server:
        asyncio.run(scenario(server))
        assert server.wait_idle(5.0)
    assert service_lines(server) == [
        'DEBUG wslab.reference.manager: 127.0.0.1:<port> - "/ws/bo" - left (1001)',
        'DEBUG wslab.reference.manager: 127.0.0.1:<port> - "/ws/ada" - left (1000)',
    ]
    assert not [r for r in server.log.records if "swordfish" in r.getMessage()]


def test_client_send_takes_text_or_a_dict_and_refuses_anything_else() -> None:
    from wslab.reference.manager import _text

    assert _text("hi") == "hi"
    assert _text({"type": "users", "users": []}) == '{"type": "users", "users": []}'
    with pytest.raises(TypeError, match="not bytes"):
        _text(b"hi")  # type: ignore[arg-type]
