from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from apps import echo_app, failing_startup_app
from fastapi import FastAPI, WebSocket
from rawclient import refusal_of_an_oversized_frame

import wslab
from wslab import AppStartupError, PortInUseError, ServerStopped, ServerTimeoutError, serve
from wslab.lab.transcript import Transcript
from wslab.reference.manager import MAX_FRAME


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_serve_listens_on_loopback_and_answers() -> None:
    with serve(echo_app(), name="t-basic") as server:
        assert server.running
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.ws_url("/ws") == f"ws://127.0.0.1:{server.port}/ws"
        assert server.ws_url("ws") == server.ws_url("/ws")
        assert wslab.exchange(server, "/ws", "hi", show=False) == ["hi"]
        assert repr(server) == "LabServer('t-basic', running)"
    assert repr(server) == "LabServer('t-basic', stopped)"


def test_a_server_answers_unless_its_loop_is_held_or_it_is_stopped() -> None:
    with serve(echo_app(), name="t-answers") as server:
        assert server.answers(1.0)
        with server.paused(timeout=5):  # as a handler spinning without an await would hold it
            assert not server.answers(0.2)
        assert server.answers(1.0)
    assert not server.answers(0.2)


def test_a_session_records_the_code_the_app_closed_with_and_only_a_close_by_the_app() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def closes(websocket: WebSocket) -> None:
        await websocket.accept()
        if await websocket.receive_text() == "close":
            await websocket.close(1013, "too slow")

    async def visit(text: str) -> int:
        async with wslab.connect(server, "/ws", transcript=Transcript(live=False)) as ws:
            port = ws.connection.local_address[1]
            await ws.send(text)
        return port

    with serve(app, name="t-closing") as server:
        closed, left = (wslab.run_sync(visit(text)) for text in ("close", "bye"))
        server.wait_idle(5)
        assert server.sessions.for_client_port(closed).closing.result(0) == 1013
        assert not server.sessions.for_client_port(left).closing.done()  # the client closed, not the app


def test_a_session_records_when_the_app_first_sent_and_when_it_closed_on_the_servers_clock() -> None:
    app = FastAPI()

    @app.websocket("/ws")
    async def pings_then_closes(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("ping")
        await asyncio.sleep(0.3)
        await websocket.send_text("no pong: closing")  # a last frame does not move the first one's time
        await websocket.close(1011)

    async def visit() -> tuple[int, float]:
        async with wslab.connect(server, "/ws", transcript=Transcript(live=False)) as ws:
            before = time.monotonic()
            await ws.recv()
            await asyncio.sleep(0.5)  # a client too busy to read: the close is waiting when it looks
            await ws.wait_closed(5)
            return ws.connection.local_address[1], time.monotonic() - before

    with serve(app, name="t-times") as server:
        port, seen = wslab.run_sync(visit())
        session = server.sessions.for_client_port(port)
        assert session is not None and session.first_sent is not None and session.closed_at is not None
        assert 0.29 <= session.closed_at - session.first_sent < seen  # (a timer may fire a hair early)


def test_stop_frees_the_port_and_is_idempotent() -> None:
    server = serve(echo_app(), name="t-stop")
    port = server.port
    assert not port_is_free(port)
    server.stop()
    server.stop()
    assert not server.running
    assert port_is_free(port)
    assert server not in wslab.running_servers()


def test_serving_again_under_the_same_name_replaces_the_old_server_on_its_port() -> None:
    first = serve(echo_app("first: "), name="t-replace")
    second = serve(echo_app("second: "), name="t-replace")
    try:
        assert not first.running
        assert second.running
        assert second.port == first.port  # a page opened on the first reconnects to the second
        assert [s for s in wslab.running_servers() if s.name == "t-replace"] == [second]
        assert wslab.exchange(second, "/ws", "x", show=False) == ["second: x"]
    finally:
        second.stop()


def test_a_page_loading_while_its_server_is_replaced_is_answered_not_refused() -> None:
    # Run All twice: a page (or jupyter-server-proxy) loading in the moment the old server stops must wait
    # for the new one, not get a refused connection (through the proxy, a 500 page that never recovers).
    server = serve(echo_app(), name="t-handover")
    port, done, failures, answered = server.port, threading.Event(), [], []

    def load_pages() -> None:
        for _ in range(5000):  # bounded; stops as soon as the replacements are over
            if done.is_set():
                return
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    sock.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
                    status = sock.makefile("rb").readline()
                (answered if status.startswith(b"HTTP/1.1 ") else failures).append(status)
            except OSError as exc:
                failures.append(repr(exc))

    loader = threading.Thread(target=load_pages)
    loader.start()
    try:
        for _ in range(5):
            server = serve(echo_app(), name="t-handover")
            assert server.port == port
    finally:
        done.set()
        loader.join(30)
        server.stop()
    assert failures == [] and len(answered) > 5


def test_serving_again_after_a_stop_keeps_the_port_too() -> None:
    first = serve(echo_app(), name="t-after-stop")
    first.stop()
    second = serve(echo_app(), name="t-after-stop")
    try:
        assert second.port == first.port
    finally:
        second.stop()


def test_serving_again_takes_a_free_port_when_another_program_took_the_old_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = serve(echo_app(), name="t-moved")
    first.stop()  # (a running server hands its socket over: nothing can take the port in between)
    bind = wslab.lab.server._bind

    def taken_meanwhile(port: int, name: str) -> socket.socket:
        if port == first.port:  # another program took it after the old server's stop
            raise PortInUseError(f"Port {port} is taken")
        return bind(port, name)

    monkeypatch.setattr(wslab.lab.server, "_bind", taken_meanwhile)
    second = serve(echo_app(), name="t-moved")
    try:
        assert not first.running and second.running and second.port != first.port
    finally:
        second.stop()


def test_a_fixed_port_held_by_our_own_server_is_reused() -> None:
    first = serve(echo_app(), name="t-port-a")
    second = serve(echo_app(), name="t-port-b", port=first.port)
    try:
        assert not first.running
        assert second.port == first.port
    finally:
        second.stop()


def test_a_port_taken_by_another_program_is_a_clear_error() -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"Port {port} on 127.0.0.1 is already in use.*port=0"):
            serve(echo_app(), name="t-taken", port=port)
    assert "t-taken" not in [s.name for s in wslab.running_servers()]


def test_an_app_whose_startup_fails_is_a_clear_error() -> None:
    with pytest.raises(AppStartupError, match="failed to start.*the database is not reachable") as info:
        serve(failing_startup_app(), name="t-startup")
    assert "Fix the app's startup code" in str(info.value)


def test_a_server_that_does_not_come_up_in_time_is_a_clear_error() -> None:
    release = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(release.wait, 5)
        yield

    try:
        with pytest.raises(ServerTimeoutError, match="did not start listening within 0.2 s"):
            serve(FastAPI(lifespan=lifespan), name="t-slow", timeout=0.2)
    finally:
        release.set()


def test_a_frame_announced_over_the_frame_limit_is_refused_with_1009_from_its_header() -> None:
    with serve(echo_app(), name="t-frame-limit") as server:
        refusal = refusal_of_an_oversized_frame(server.port, "/ws")
        assert server.wait_idle(5.0)
    assert refusal is not None, "no close frame: the server is still buffering the frame"
    assert refusal[0] == 1009 and f"limit of {MAX_FRAME} bytes" in refusal[1], refusal
    assert server.log.lines("ERROR") == []


def test_call_runs_a_coroutine_on_the_server_loop() -> None:
    with serve(echo_app(), name="t-call") as server:
        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert server.call(where()) == "wslab-server-t-call"

        async def via_acall() -> str:
            return await server.acall(where())

        assert asyncio.run(via_acall()) == "wslab-server-t-call"
    with pytest.raises(ServerStopped, match="is stopped"):
        server.call(where())


def test_call_that_takes_too_long_is_cancelled_with_a_clear_error() -> None:
    with serve(echo_app(), name="t-call-slow") as server, \
            pytest.raises(ServerTimeoutError, match="did not finish .* within 0.1 s"):
        server.call(asyncio.sleep(5), timeout=0.1)


def test_stop_closes_open_connections() -> None:
    async def scenario() -> int | None:
        server = serve(echo_app(), name="t-stop-open")
        async with wslab.connect(server, "/ws", transcript=wslab.Transcript(live=False)) as ws:
            await ws.send("hello")
            await ws.recv()
            await asyncio.to_thread(server.stop)
            return await ws.wait_closed()

    assert asyncio.run(scenario()) == 1012  # service restart


def test_the_log_is_quiet_and_a_clean_disconnect_logs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with serve(echo_app(), name="t-quiet") as server:
        wslab.exchange(server, "/ws", "hi", show=False)
        assert server.log.lines("WARNING") == []
        assert any("WebSocket /ws" in line for line in server.log.lines("INFO"))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_an_unhandled_disconnect_is_captured_not_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with serve(echo_app(), name="t-naive") as server:
        wslab.exchange(server, "/naive", "hi", show=False)
        server.print_log()
        server.print_log()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ERROR    Exception in ASGI application"
    assert "in naive(): await websocket.send_text(await websocket.receive_text())" in out[1]
    assert out[2].strip() == "WebSocketDisconnect: (1000, '')"
    assert out[3] == "(server 't-naive' logged nothing)"  # the second print shows only what is new


NEST_ASYNCIO_SCRIPT = textwrap.dedent("""
    import nest_asyncio2
    nest_asyncio2.apply()         # before uvicorn is imported, as a learner pasting a script would
    import asyncio, wslab
    from apps import echo_app

    async def main():
        server = wslab.serve(echo_app(), name="nested")
        async with wslab.connect(server, "/ws", transcript=wslab.Transcript(live=False)) as ws:
            await ws.send("inside asyncio.run")
            print(await ws.recv())
        print(wslab.exchange(server, "/ws", "sync", show=False)[0])
        server.stop()
        print(server.running)

    asyncio.run(main())
""")


def test_serve_works_after_nest_asyncio2_apply() -> None:
    # nest_asyncio2 patches asyncio for the whole process, so this runs in a process of its own.
    result = subprocess.run([sys.executable, "-W", "error", "-c", NEST_ASYNCIO_SCRIPT],
                            capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["inside asyncio.run", "sync", "False"]
