"""A client kicked for not reading really loses its connection, even though it never reads again, while one
that reads slowly gets everything and then the close frame; a close never raises out of the handler; a
refusal before accept is complete (no spurious ERROR); the subclass's hold on uvicorn is what it expects."""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import uvicorn
from apps import chat, echo_app, service_lines
from fastapi import FastAPI, WebSocket
from rawclient import RawClient, refusal_of_an_oversized_frame, server_holds_connection
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.protocol import State

import wslab
import wslab.reference
from wslab.demos.auth_scenarios import attempt
from wslab.reference import wsprotocol
from wslab.reference.auth import refuse
from wslab.reference.manager import (
    CLOSE_TOO_SLOW,
    FRAMES,
    MAX_FRAME,
    Client,
    ConnectionManager,
    broadcast_app,
)
from wslab.reference.wsprotocol import WebSocketProtocol


def test_a_stalled_client_is_dropped_after_the_abort_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsprotocol, "ABORT_AFTER", 0.3)
    manager = ConnectionManager(max_queue=8)
    payload = base64.b64encode(os.urandom(12_000)).decode()

    async def scenario(server: wslab.LabServer) -> bool:
        async with chat(server, "ada", "bo", compression=None) as team:  # both known to the manager
            ada, bo = team["ada"], team["bo"]
            for _ in range(2000):  # bo never reads; ada reads her own messages
                if len(manager) < 2:
                    break
                await ada.send(payload)
                await ada.recv()
            assert len(manager) == 1, "bo was never found too slow"
            bo_port = bo.connection.local_address[1]
            deadline = time.monotonic() + 5.0  # bo still does not read, and has not closed
            while server_holds_connection(server.port, bo_port) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)  # polling the kernel's table, bounded by the deadline
            held = server_holds_connection(server.port, bo_port)
            bo.connection.transport.abort()  # bo is done; do not wait for its close handshake
            return held

    with wslab.serve(broadcast_app(manager), name="t-wsprotocol") as server:
        assert wslab.run_sync(scenario(server)) is False, "the server still holds bo's connection"
        assert server.log.lines("ERROR") == []
    kicked, dropped = [line for line in service_lines(server) if '"/ws/bo"' in line]
    assert kicked == ('INFO wslab.reference.manager: 127.0.0.1:<port> - "/ws/bo" - closed 1013: too slow: '
                      "8 messages were waiting")
    drop = r"dropped: it took none of the [1-9]\d* bytes still to send for 0\.3 s after the close"
    assert re.fullmatch(r'INFO wslab\.reference\.wsprotocol: 127\.0\.0\.1:<port> - "/ws/bo" - ' + drop,
                        dropped)


def test_a_slow_client_that_reads_again_in_time_gets_its_backlog_then_1013() -> None:
    manager = ConnectionManager(max_queue=8)
    payload = base64.b64encode(os.urandom(12_000)).decode()

    async def scenario(server: wslab.LabServer) -> tuple[int | None, int]:
        async with chat(server, "ada", "bo", compression=None) as team:  # both known to the manager
            ada, bo = team["ada"], team["bo"]
            for _ in range(2000):
                if len(manager) < 2:
                    break
                await ada.send(payload)
                await ada.recv()
            received = 0
            try:
                async with asyncio.timeout(5.0):
                    while True:
                        await bo.connection.recv()
                        received += 1
            except ConnectionClosed:
                pass
            return bo.close_code, received

    with wslab.serve(broadcast_app(manager), name="t-wsprotocol") as server:
        code, received = wslab.run_sync(scenario(server))
    assert code == 1013
    assert received > 8  # the backlog came first


def test_a_refusal_before_accept_sends_its_status_and_body_and_logs_no_error() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await refuse(websocket, 401, "log in first")

    with wslab.serve(app, name="t-wsprotocol") as server:
        assert wslab.run_sync(attempt(server, "/ws")) == "HTTP 401, body: log in first"
        assert server.wait_idle(5.0)
        assert server.log.lines("ERROR") == []


# -- a slow reader gets everything; one that stops is dropped ----------------------------------------------
SLOW_FRAMES, SLOW_TEXT = 300, 10_000  # what the handler sends, then closes: 3 MB, most of it after the close
SLOW_READ, SLOW_PACE = 8192, 0.01  # the slow reader takes 8 KB every 10 ms, about 800 KB/s
READ_WITHIN = 30.0  # seconds any reading loop below may take
REASON = "token expired: log in again"


def slow_sender_app() -> FastAPI:
    """``/ws`` sends SLOW_FRAMES numbered texts as fast as the connection takes them, then closes (REASON)."""
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        for number in range(SLOW_FRAMES):
            await websocket.send_text(f"{number:05} " + "x" * SLOW_TEXT)
        await websocket.close(1000, REASON)

    return app


def read_slowly(client: RawClient, *, stop_after: float = READ_WITHIN) -> str:
    """Read SLOW_READ bytes every SLOW_PACE seconds until the server's close frame arrives ("closed"), the
    connection is reset ("reset"), the stream ends ("ended") or ``stop_after`` seconds pass ("stopped")."""
    began = time.monotonic()
    while time.monotonic() - began < stop_after:
        try:
            client.read(SLOW_READ)
        except ConnectionResetError:
            return "reset"
        if client.close_frame is not None:
            return "closed"
        if client.protocol.state is State.CLOSED:
            return "ended"
        time.sleep(SLOW_PACE)  # the pace of a slow reader, not a wait for something to happen
    return "stopped"


def numbers(client: RawClient) -> list[int]:
    return [int(frame.data[:5]) for frame in client.frames if frame.opcode is Opcode.TEXT]


def dropped(server: wslab.LabServer, client: RawClient, within: float = 5.0) -> bool:
    """Whether the server's end of ``client``'s connection is gone, or goes within ``within`` seconds."""
    deadline = time.monotonic() + within
    while server_holds_connection(server.port, client.port) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the kernel's table, bounded by the deadline
    return not server_holds_connection(server.port, client.port)


def test_a_client_that_reads_slowly_gets_every_frame_then_the_close_frame_with_its_reason() -> None:
    with wslab.serve(slow_sender_app(), name="t-wsprotocol") as server:
        with RawClient(server.port, "/ws") as client:
            ending = read_slowly(client)
        assert (ending, numbers(client), client.close_frame) == ("closed", list(range(SLOW_FRAMES)),
                                                                (1000, REASON))
        assert server.wait_idle(5.0)
    assert server.log.lines("ERROR") == []


def test_a_client_that_stops_reading_after_a_while_is_dropped_once_it_took_nothing_for_abort_after(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsprotocol, "ABORT_AFTER", 1.0)
    with wslab.serve(slow_sender_app(), name="t-wsprotocol") as server:
        with RawClient(server.port, "/ws") as client:
            assert read_slowly(client, stop_after=2.5) == "stopped"  # kept while it reads, beyond ABORT_AFTER
            assert 0 < len(numbers(client)) < SLOW_FRAMES
            assert dropped(server, client), "the server still holds the connection"  # it reads no more
        assert server.wait_idle(5.0)
        assert any("dropped: it took none of the" in line for line in server.log.lines("INFO"))
    assert server.log.lines("ERROR") == []


# -- a close never raises out of the handler ---------------------------------------------------------------
def more_than_the_kernel_buffers() -> int:
    """Bytes in one frame that the kernel cannot take at once, so that the rest waits in uvicorn's transport
    and its writes pause: twice the largest send buffer TCP grows to here, and a MB."""
    largest = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    return 2 * largest + 2**20


def test_a_kick_after_the_peers_close_arrived_while_writes_were_paused_ends_quietly_and_drops_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsprotocol, "ABORT_AFTER", 0.3)
    big = bytes(more_than_the_kernel_buffers())
    app = FastAPI()

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        async with Client(websocket) as client:
            await websocket.send_bytes(big)  # returns at once: the transport keeps the rest; its writes pause
            # The peer's close, read behind the Client's back: the moment between its arrival and the handler
            # noticing it, in which another client's broadcast may find this one too slow and kick it.
            assert (await websocket.receive())["type"] == "websocket.disconnect"
            asyncio.get_running_loop().call_soon(client.kick, CLOSE_TOO_SLOW, "too slow")
            async with asyncio.timeout(5.0):
                await asyncio.Event().wait()  # until the kick cancels this handler

    with wslab.serve(app, name="t-wsprotocol") as server, \
            RawClient(server.port, "/ws", receive_buffer=4096) as client:
        for _ in range(100):  # bounded: each read waits up to the socket's timeout
            if client.after_handshake:
                break  # the frame has begun to arrive: the server wrote it, and its writes are paused
            client.read(1)
        client.protocol.send_close(1000)
        client.flush()  # and then reads nothing more
        assert server.wait_idle(5.0)
        assert server.log.lines("ERROR") == []
        assert dropped(server, client), "the server still holds the connection"


# -- frames written directly, made once per broadcast -----------------------------------------------------
def frames_app(offered: list[bool]) -> FastAPI:
    """/ws says whether the FRAMES extension was offered, then sends three texts and "done" through it."""
    app = FastAPI()

    @app.websocket("/ws")
    async def handler(websocket: WebSocket) -> None:
        async with Client(websocket) as client:
            offered.append(FRAMES in (websocket.scope.get("extensions") or {}))
            for text in ("é", "x" * 200, "y" * 70_000, "done"):  # the three lengths a frame header has
                client.send(text)
            async for _ in client.messages():
                pass

    return app


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_frames_are_written_directly_with_or_without_permessage_deflate(compression: str | None) -> None:
    offered: list[bool] = []

    async def scenario(server: wslab.LabServer) -> list[str | bytes]:
        async with wslab.connect(server, "/ws", compression=compression, max_size=None) as ws:
            return [await ws.recv() for _ in range(4)]

    with wslab.serve(frames_app(offered), name="t-wsprotocol-frames") as server:
        received = asyncio.run(scenario(server))
        assert server.wait_idle(5.0)
    assert offered == [True]
    assert received == ["é", "x" * 200, "y" * 70_000, "done"]


def test_a_text_is_framed_once_however_many_clients_it_goes_to() -> None:
    text = "ada: " + "hello" * 10
    frame = wsprotocol._frame(text)
    assert frame == b"\x81" + bytes([len(text)]) + text.encode()
    assert wsprotocol._frame(text) is frame  # the same str object: the same bytes, not framed again
    assert wsprotocol._frame("".join(["ada: ", "hello" * 10])) == frame  # an equal text: framed again


# -- what the subclass relies on in uvicorn ----------------------------------------------------------------
def uvicorns_protocol() -> WebSocketsSansIOProtocol:
    """An instance of uvicorn's own protocol, as uvicorn makes one for a connection (not connected)."""
    config = uvicorn.Config(FastAPI(), ws="websockets-sansio")
    config.load()

    async def make() -> WebSocketsSansIOProtocol:
        return WebSocketsSansIOProtocol(config, ServerState(), {})

    return asyncio.run(make())


def kind_of(name: str) -> str:
    """What ``name`` is on uvicorn's WebSocketsSansIOProtocol, in the words of UVICORN_RELIES_ON."""
    found = inspect.getattr_static(WebSocketsSansIOProtocol, name, None)
    if found is None:
        instance = uvicorns_protocol()
        return f"{type(getattr(instance, name)).__name__} attribute" if hasattr(instance, name) else "missing"
    if not inspect.isfunction(found):
        return f"class attribute ({type(found).__name__})"
    owner = next(cls for cls in WebSocketsSansIOProtocol.__mro__ if name in vars(cls))
    if inspect.iscoroutinefunction(found):
        return "coroutine method"
    return "method of uvicorn's" if owner.__module__.startswith("uvicorn.") else f"method of {owner.__name__}"


@pytest.mark.parametrize("name", sorted(wsprotocol.UVICORN_RELIES_ON))
def test_uvicorn_still_has_what_the_subclass_relies_on(name: str) -> None:
    expected, why = wsprotocol.UVICORN_RELIES_ON[name]
    found = kind_of(name)
    assert found == expected, (
        f"uvicorn {uvicorn.__version__} changed WebSocketsSansIOProtocol.{name}: wslab.reference.wsprotocol "
        f"needs a {expected} ({why}), and it is now: {found}. Read uvicorn's websockets_sansio_impl.py and "
        "adapt WebSocketProtocol, or uvicorn's bounds in pyproject.toml.")


def test_the_subclass_adds_no_name_that_uvicorns_protocol_has() -> None:
    theirs = set(dir(uvicorns_protocol()))
    ours = {name for name in vars(WebSocketProtocol) if not name.startswith("__")}
    clashes = sorted((ours & theirs) - set(wsprotocol.UVICORN_RELIES_ON))
    assert clashes == [], (f"uvicorn {uvicorn.__version__}'s WebSocketsSansIOProtocol now has its own "
                           f"{', '.join(clashes)}, which WebSocketProtocol defines for itself: rename ours")


# -- the production command in wslab.reference's docs --------------------------------------------------------
def documented_flags() -> dict[str, str]:
    """The ``--ws`` and ``--ws-max-size`` of the uvicorn command in :mod:`wslab.reference`'s docstring."""
    lines = iter((wslab.reference.__doc__ or "").splitlines())
    command = next((line for line in lines if line.strip().startswith("uvicorn wslab.reference.app:app")), "")
    while command.endswith("\\"):
        command = command[:-1] + next(lines)
    words = shlex.split(command)
    return {flag: words[words.index(flag) + 1] for flag in ("--ws", "--ws-max-size") if flag in words}


def test_the_production_command_in_the_docs_serves_with_this_protocol_and_the_frame_limit() -> None:
    flags = documented_flags()
    assert flags == {"--ws": "wslab.reference.wsprotocol:WebSocketProtocol", "--ws-max-size": str(MAX_FRAME)}
    command = [sys.executable, "-m", "uvicorn", "wslab.reference.app:app", "--host", "127.0.0.1",
               "--port", "0", *(word for flag in flags.items() for word in flag)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        started = ""
        for _ in range(50):  # bounded: uvicorn says where it listens within a few lines, or ends
            started = process.stderr.readline()
            if not started or "Uvicorn running on" in started:
                break
        assert "Uvicorn running on http://127.0.0.1:" in started, f"uvicorn did not start: {started}"
        port = int(started.split("http://127.0.0.1:")[1].split()[0])
        refusal = refusal_of_an_oversized_frame(port, "/ws/chat/lobby")
        assert refusal is not None, "no close frame: the server is still buffering the frame"
        assert refusal[0] == 1009 and f"limit of {MAX_FRAME} bytes" in refusal[1], refusal
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=10)


def test_text_that_is_not_utf8_is_refused_with_1007_logged_at_info_without_a_traceback() -> None:
    # Autobahn's 6.x cases: uvicorn logged an ERROR and a traceback per such frame, a log any client can fill
    with wslab.serve(echo_app(), name="t-bad-text") as server:
        with RawClient(server.port, "/ws") as client:
            client.send_announcing(2, b"\xff\xfe")  # a whole text frame of 2 bytes, not UTF-8
            assert client.read_until_closed(3.0) == (1007, "")
        assert server.wait_idle(5.0)
    assert server.log.lines("ERROR") == []
    assert [line for line in service_lines(server) if "1007" in line] == [
        'INFO wslab.reference.wsprotocol: 127.0.0.1:<port> - "/ws" - closed 1007: a frame it sent was '
        "refused"]

