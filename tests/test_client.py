from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from apps import echo_app
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

import wslab
from wslab import LabServer, Transcript


@pytest.fixture(scope="module")
def server() -> Iterator[LabServer]:
    with wslab.serve(echo_app("echo: "), name="t-client") as running:
        yield running


def test_connect_prints_a_deterministic_transcript(server: LabServer,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    async def talk_json() -> None:
        async with wslab.connect(server, "/ws", name="ada") as ws:
            await ws.send({"n": 1})
            await ws.recv()

    asyncio.run(talk_json())
    assert capsys.readouterr().out.splitlines() == [
        'ada → {"n": 1}',
        'ada ← echo: {"n": 1}',
        "ada ✕ closed: 1000 (normal closure)",
    ]


def test_a_close_by_the_server_is_reported_with_code_and_reason(server: LabServer) -> None:
    transcript = Transcript(live=False)

    async def talk() -> None:
        async with wslab.connect(server, "/ws", transcript=transcript) as ws:
            await ws.send("quit")
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1000 and ws.close_reason == "bye"

    asyncio.run(talk())
    assert transcript.lines == ["you → quit", 'you ✕ closed by the server: 1000 (normal closure) "bye"']


def test_a_dropped_connection_is_reported_as_1006(server: LabServer) -> None:
    transcript = Transcript(live=False)

    async def talk() -> int | None:
        async with wslab.connect(server, "/naive", transcript=transcript) as ws:
            await ws.send(b"\x00\x01")  # receive_text() on a binary frame raises KeyError
            return await ws.wait_closed()

    assert asyncio.run(talk()) == 1006
    assert transcript.lines == [
        "you → b'\\x00\\x01' (binary, 2 bytes)",
        "you ✕ connection lost without a close frame: 1006 (abnormal closure)",
    ]
    assert server.log.take_new()[-1].strip() == "KeyError: 'text'"


def test_a_refused_handshake_is_noted_and_the_library_error_surfaces(server: LabServer) -> None:
    transcript = Transcript(live=False)

    async def talk() -> None:
        async with wslab.connect(server, "/no-such-path", transcript=transcript):
            pass

    with pytest.raises(InvalidStatus):
        asyncio.run(talk())
    assert transcript.lines == ["you ✕ handshake refused: HTTP 403 (no WebSocket route at this path, "
                                "or the endpoint closed before accepting)"]


def test_recv_times_out_with_a_clear_error(server: LabServer) -> None:
    transcript = Transcript(live=False)

    async def talk() -> None:
        async with wslab.connect(server, "/ws", transcript=transcript) as ws:
            await ws.recv(timeout=0.05)

    with pytest.raises(TimeoutError, match="you received nothing within 0.05 s"):
        asyncio.run(talk())
    assert transcript.lines[0] == "you ⌛ nothing received within 0.05 s"


def test_bots_connect_in_order_and_share_one_transcript(server: LabServer) -> None:
    async def talk() -> wslab.Bots:
        async with wslab.bots(server, "/named/{name}", ["ada", "bo", "cy"],
                              transcript=Transcript(live=False)) as team:
            assert [bot.name for bot in team] == ["ada", "bo", "cy"] and len(team) == 3
            for bot in team:
                await bot.send("hi")
            for bot in reversed(list(team)):
                await bot.recv()
            assert team["bo"].path == "/named/bo"
        return team

    team = asyncio.run(talk())
    assert team.transcript.lines == [
        "ada → hi", "bo → hi", "cy → hi",
        "cy ← cy: hi", "bo ← bo: hi", "ada ← ada: hi",
        "ada ✕ closed: 1000 (normal closure)",
        "bo ✕ closed: 1000 (normal closure)",
        "cy ✕ closed: 1000 (normal closure)",
    ]


def test_exchange_is_synchronous_and_returns_the_replies(server: LabServer,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert wslab.exchange(server, "/ws", "one", "two") == ["echo: one", "echo: two"]
    assert capsys.readouterr().out.splitlines() == [
        "you → one", "you ← echo: one", "you → two", "you ← echo: two",
        "you ✕ closed: 1000 (normal closure)",
    ]


def test_recv_json_parses_the_reply(server: LabServer) -> None:
    async def talk() -> object:
        async with wslab.connect(server, "/named/{}", transcript=Transcript(live=False)) as ws:
            await ws.send("[1, 2]")
            return await ws.recv_json()

    with pytest.raises(ValueError):  # "{}: [1, 2]" is not JSON
        asyncio.run(talk())


def test_exchange_stops_at_a_close_and_returns_what_came_before(server: LabServer,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert wslab.exchange(server, "/ws", "one", "quit", "never sent") == ["echo: one"]
    assert capsys.readouterr().out.splitlines() == [
        "you → one",
        "you ← echo: one",
        "you → quit",
        'you ✕ closed by the server: 1000 (normal closure) "bye"',
    ]


def test_exchange_works_inside_a_running_event_loop(server: LabServer) -> None:
    async def in_a_cell() -> list[str | bytes]:
        return wslab.exchange(server, "/ws", "from a loop", show=False)

    assert asyncio.run(in_a_cell()) == ["echo: from a loop"]


def test_a_url_works_as_a_target(server: LabServer) -> None:
    assert wslab.exchange(server.ws_url("/ws"), "", "by url", show=False) == ["echo: by url"]


def test_a_new_client_of_the_same_name_replaces_the_open_one(server: LabServer) -> None:
    transcript = Transcript(live=False)

    async def twice() -> tuple[int | None, list[str]]:
        first = await wslab.connect(server, "/ws", name="ada", transcript=transcript)  # a cell run once...
        second = await wslab.connect(server, "/ws", name="ada", transcript=transcript)  # ...and again
        await second.send("still here")
        replies = [str(await second.recv())]
        await second.close()
        return first.close_code, replies

    closed, replies = wslab.run_sync(twice())
    assert closed == 1000 and replies == ["echo: still here"]
    replaced = "ada ✕ closed: 1000 (normal closure) \"replaced by a new connection named 'ada'\""
    assert transcript.lines[0] == replaced


def test_a_client_of_the_same_name_open_on_another_event_loop_is_replaced_from_there(
        server: LabServer) -> None:
    # a check runs its clients on an event loop of its own, in another thread: awaiting its close here
    # raised "attached to a different loop"
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever)
    thread.start()
    try:
        opening = wslab.connect(server, "/ws", name="zed", transcript=Transcript(live=False)).open()
        first = asyncio.run_coroutine_threadsafe(opening, other).result(5)

        async def again() -> list[str]:
            async with wslab.connect(server, "/ws", name="zed", transcript=Transcript(live=False)) as zed:
                await zed.send("hi")
                return [str(await zed.recv())]

        assert asyncio.run(again()) == ["echo: hi"]
        assert first.close_code == 1000
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()


def test_clients_without_a_name_or_on_another_server_do_not_replace_each_other(server: LabServer) -> None:
    async def together() -> list[int | None]:
        quiet = Transcript(live=False)
        with wslab.serve(echo_app(), name="t-client-other") as other:
            async with wslab.connect(server, "/ws", transcript=quiet) as one, \
                    wslab.connect(server, "/ws", transcript=quiet) as two, \
                    wslab.connect(server, "/ws", name="bo", transcript=quiet) as bo, \
                    wslab.connect(other, "/ws", name="bo", transcript=quiet) as bo_elsewhere:
                return [client.close_code for client in (one, two, bo, bo_elsewhere)]

    assert wslab.run_sync(together()) == [None, None, None, None]


def test_sending_on_a_closed_connection_says_it_is_closed(server: LabServer) -> None:
    transcript = Transcript(live=False)

    async def late() -> None:
        ws = await wslab.connect(server, "/ws", name="ada", transcript=transcript)
        await ws.close()
        await ws.send("anyone?")

    with pytest.raises(wslab.ClientClosed) as refused:
        wslab.run_sync(late())
    assert isinstance(refused.value, ConnectionClosed)  # what code catching websockets' errors expects
    assert str(refused.value) == ("ada's connection is already closed (closed: 1000 (normal closure)), so "
                                  "nothing was sent. Connect again (wslab.connect) to send more.")
    assert transcript.lines[-1] == "ada ✕ cannot send anyone?: already closed: 1000 (normal closure)"
