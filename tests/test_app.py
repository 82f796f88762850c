"""The complete app (wslab.reference.app): the chapters' pieces together, held to DESIGN.md's contract."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from apps import service_lines, service_logs_debug
from fastapi import FastAPI
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import wslab
import wslab.reference.app
from wslab import LabClient, LabServer, Transcript
from wslab.demos.auth_scenarios import attempt
from wslab.reference.app import AppRooms, create_app
from wslab.reference.auth import Tokens


@pytest.fixture
def app() -> FastAPI:
    return create_app(auth_timeout=1.0)


@pytest.fixture
def server(app: FastAPI) -> Iterator[LabServer]:
    with wslab.serve(app, name="t-app") as running:
        yield running
        assert running.wait_idle(5.0)
    assert running.log.lines("ERROR") == []


def rooms_of(app: FastAPI) -> AppRooms:
    rooms: AppRooms = app.state.rooms
    return rooms


@contextlib.asynccontextmanager
async def joined(server: LabServer, app: FastAPI, room: str, *users: str) -> AsyncIterator[list[LabClient]]:
    """``users`` logged in to ``room`` one after the other, each having seen everyone's join."""
    quiet = Transcript(live=False)
    async with contextlib.AsyncExitStack() as stack:
        clients: list[LabClient] = []
        for user in users:
            client = await stack.enter_async_context(
                wslab.connect(server, f"/ws/chat/{room}", name=user, transcript=quiet))
            await client.send({"type": "auth", "token": rooms_of(app).tokens.issue(user)})
            clients.append(client)
            for each in clients:
                assert (await each.recv_json())["user"] == user
        yield clients


def test_a_flood_is_closed_with_1008_and_the_others_keep_chatting(server: LabServer, app: FastAPI) -> None:
    async def scenario() -> tuple[int, float, int | None, str | None, object]:
        async with joined(server, app, "lobby", "ada", "bo") as (ada, bo):
            start = time.monotonic()
            for n in range(60):
                await ada.send({"type": "message", "content": f"spam {n}"})
            code = await ada.wait_closed(5.0)
            took = time.monotonic() - start
            received = 0
            while (await bo.recv_json())["type"] == "message":
                received += 1
            await bo.send({"type": "message", "content": "still here"})
            return received, took, code, ada.close_reason, await bo.recv_json()

    received, took, code, reason, last = wslab.run_sync(scenario())
    # the burst went through, and what the rate refilled while the 60 arrived (on a busy machine that takes
    # a while); then the connection closed
    assert 20 <= received <= 20 + math.ceil(5 * took), (received, took)
    assert (code, reason) == (1008, "too many messages: at most 20 at once, then 5 per second")
    assert last == {"type": "message", "user": "bo", "content": "still here"}


def test_a_flood_is_logged_with_who_and_why_and_no_token_or_message_is(app: FastAPI) -> None:
    tokens = rooms_of(app).tokens
    ada_token, bo_token = tokens.issue("ada"), tokens.issue("bo")

    async def scenario(server: LabServer) -> None:
        quiet = Transcript(live=False)
        async with wslab.connect(server, "/ws/chat/lobby", transcript=quiet) as ada, \
                wslab.connect(server, "/ws/chat/lobby", transcript=quiet) as bo:
            await ada.send({"type": "auth", "token": ada_token})
            await ada.recv_json()
            await bo.send({"type": "auth", "token": bo_token})
            for n in range(60):
                await ada.send({"type": "message", "content": f"the door code is swordfish ({n})"})
            await ada.wait_closed(5.0)

    with service_logs_debug(), wslab.serve(app, name="t-app-log") as server:
        wslab.run_sync(scenario(server))
        assert server.wait_idle(5.0)
    assert service_lines(server) == [
        'INFO wslab.reference.app: 127.0.0.1:<port> - "/ws/chat/lobby" ada - closed 1008: too many messages: '
        "at most 20 at once, then 5 per second",
        'DEBUG wslab.reference.app: 127.0.0.1:<port> - "/ws/chat/lobby" bo - left (1000)',
    ]
    logged = "\n".join(record.getMessage() for record in server.log.records)
    assert ada_token not in logged and bo_token not in logged and "swordfish" not in logged


def test_the_rate_limit_counts_per_connection_and_can_be_set(server: LabServer) -> None:
    app = create_app(rate=1000, burst=100)
    with wslab.serve(app, name="t-app-fast") as fast:
        async def scenario() -> int:
            async with joined(fast, app, "lobby", "ada") as (ada,):
                for n in range(100):
                    await ada.send({"type": "message", "content": f"m{n}"})
                return sum([(await ada.recv_json())["content"] == f"m{n}" for n in range(100)])

        assert wslab.run_sync(scenario()) == 100


def test_bad_input_gets_an_error_frame_and_the_connection_stays(server: LabServer, app: FastAPI) -> None:
    async def scenario() -> list[object]:
        async with joined(server, app, "lobby", "ada") as (ada,):
            replies = []
            for bad in ("not json", b"\x00binary", '{"type": "shout", "content": "hi"}'):
                await ada.connection.send(bad)
                replies.append((await ada.recv_json())["type"])
            await ada.send({"type": "message", "content": "fine"})
            replies.append(await ada.recv_json())
            return replies

    assert wslab.run_sync(scenario()) == ["error", "error", "error",
                                          {"type": "message", "user": "ada", "content": "fine"}]


def test_a_second_login_as_the_same_user_is_refused_and_steals_nothing(server: LabServer,
                                                                      app: FastAPI) -> None:
    async def scenario() -> tuple[int | None, str | None, object]:
        async with joined(server, app, "lobby", "ada", "bo") as (ada, bo):
            async with wslab.connect(server, "/ws/chat/lobby", transcript=Transcript(live=False)) as twin:
                await twin.send({"type": "auth", "token": rooms_of(app).tokens.issue("ada")})
                code = await twin.wait_closed(5.0)
            await bo.send({"type": "private", "to": "ada", "content": "psst"})
            return code, twin.close_reason, await ada.recv_json()

    code, reason, private = wslab.run_sync(scenario())
    assert (code, reason) == (1008, "the name 'ada' is already taken in this room")
    assert private == {"type": "private", "from": "bo", "to": "ada", "content": "psst"}


@pytest.mark.parametrize("room", ["a" * 33, "lobby room", "<b>"])
def test_an_invalid_room_name_is_refused_with_1008(server: LabServer, app: FastAPI, room: str) -> None:
    async def scenario() -> tuple[int | None, str | None]:
        path = f"/ws/chat/{httpx.URL('http://x/').copy_with(path='/' + room).raw_path.decode()[1:]}"
        async with wslab.connect(server, path, transcript=Transcript(live=False)) as client:
            await client.send({"type": "auth", "token": rooms_of(app).tokens.issue("ada")})
            return await client.wait_closed(5.0), client.close_reason

    assert wslab.run_sync(scenario()) == (1008, "not a valid room name: use 1 to 32 letters, digits, _ . -")


def test_an_announcement_reaches_every_room(server: LabServer, app: FastAPI) -> None:
    async def scenario() -> tuple[int, list[object]]:
        async with joined(server, app, "lobby", "ada", "bo") as lobby, \
                joined(server, app, "kitchen", "cy") as kitchen:
            count = await server.acall(rooms_of(app).announce("Break: back at 10:30"))
            return count, [await client.recv_json() for client in (*lobby, *kitchen)]

    count, frames = wslab.run_sync(scenario())
    assert count == 3
    assert frames == [{"type": "announcement", "content": "Break: back at 10:30"}] * 3


def test_an_empty_announcement_is_a_clear_error(server: LabServer, app: FastAPI) -> None:
    with pytest.raises(ValueError, match="an announcement has 1 to 2000 characters, not 0"):
        server.call(rooms_of(app).announce(""))


def test_status_lists_the_rooms_busiest_first(server: LabServer, app: FastAPI) -> None:
    async def scenario() -> object:
        async with joined(server, app, "lobby", "ada"), joined(server, app, "kitchen", "bo", "cy"), \
                httpx.AsyncClient(base_url=server.url) as http:
            return (await http.get("/status")).json()

    assert wslab.run_sync(scenario()) == {
        "passcode_required": False,
        "rooms": [{"room": "kitchen", "users": 2}, {"room": "lobby", "users": 1}],
    }


def test_the_page_is_served_and_login_needs_the_passcode_when_there_is_one() -> None:
    with wslab.serve(create_app(passcode="owl"), name="t-app-pass") as server, \
            httpx.Client(base_url=server.url, timeout=5) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert http.get("/status").json()["passcode_required"] is True
        refused = http.post("/token", json={"username": "ada", "passcode": "cat"})
        assert refused.status_code == 401
        assert refused.json() == {"detail": "wrong or missing passcode: ask the instructor for it"}
        login = http.post("/token", json={"username": "ada", "passcode": "owl"}).json()
        assert login["token_type"] == "bearer"
        # The token never shows up in the server's log.
        assert login["access_token"] not in "\n".join(server.log.lines())


def test_a_cross_site_page_is_refused(server: LabServer) -> None:
    async def scenario() -> str:
        try:
            await wslab.connect(server, "/ws/chat/lobby", transcript=Transcript(live=False),
                                origin="http://evil.example")
        except Exception as exc:  # the handshake is refused: the client says how
            return str(exc)
        return "accepted"

    assert "403" in wslab.run_sync(scenario())


def test_options_and_passcode_are_checked_when_the_app_is_made() -> None:
    with pytest.raises(ValueError, match="the passcode is empty"):
        create_app(passcode="")
    with pytest.raises(ValueError, match="a rate limit needs rate > 0"):
        create_app(rate=0)


@pytest.fixture
def module_app(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``wslab.reference.app.app`` made afresh from the environment the test sets, and forgotten after,
    with the service's loggers as they were (the module-level app sets them up to print on stderr)."""
    for name in ("WSLAB_PASSCODE", "WSLAB_SECRET", "WSLAB_BROKER", "WSLAB_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    service = logging.getLogger("wslab.reference")
    before = (list(service.handlers), service.level, service.propagate)
    vars(wslab.reference.app).pop("app", None)
    try:
        yield
    finally:
        vars(wslab.reference.app).pop("app", None)
        service.handlers[:], service.level, service.propagate = before


@pytest.mark.usefixtures("module_app")
def test_uvicorn_wslab_app_app_is_made_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSLAB_PASSCODE", "owl")
    made = wslab.reference.app.app
    assert wslab.reference.app.app is made  # made once
    with wslab.serve(made, name="t-app-env") as server, httpx.Client(base_url=server.url) as http:
        assert http.get("/status").json()["passcode_required"] is True
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = wslab.reference.app.nope  # type: ignore[attr-defined]


@pytest.mark.usefixtures("module_app")
def test_wslab_origins_names_the_pages_that_may_connect_to_the_module_level_app(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSLAB_ORIGINS", "https://chat.example.org, https://www.example.org")
    made = wslab.reference.app.app
    token = rooms_of(made).tokens.issue("ada")
    with wslab.serve(made, name="t-app-origins") as server:
        outcomes = {origin: wslab.run_sync(attempt(server, "/ws/chat/lobby", token, carry="auth frame",
                                                   origin=origin))
                    for origin in ("https://www.example.org", server.url, "https://evil.example")}
        assert server.wait_idle(5.0)
    assert outcomes == {
        "https://www.example.org":
            'accepted; first frame: {"type":"join","user":"ada","users":["ada"],"version":1}',
        server.url: f"HTTP 403, body: connections from pages at {server.url} are refused",  # not listed
        "https://evil.example": "HTTP 403, body: connections from pages at https://evil.example are refused",
    }


@pytest.mark.usefixtures("module_app")
def test_an_invalid_wslab_origins_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSLAB_ORIGINS", "https://chat.example.org,chat.example.org")
    with pytest.raises(ValueError, match=r"^WSLAB_ORIGINS: 'chat.example.org' is not an origin: write "
                                         r"scheme://host\[:port\], such as https://chat.example.org"):
        _ = wslab.reference.app.app


SECRET = "one secret that every worker of this service is given"
PRODUCTION = [sys.executable, "-m", "uvicorn", "wslab.reference.app:app", "--host", "127.0.0.1",
              "--port", "0", "--ws", "wslab.reference.wsprotocol:WebSocketProtocol", "--ws-max-size", "65536"]
STARTUP = 30.0  # seconds uvicorn may take to import the app and listen, on a busy machine
WAIT = 5.0  # seconds for any one step of a client


async def production_visits(url: str, token: str) -> list[str]:
    """ada from the page WSLAB_ORIGINS names; meanwhile ada again from a script (no Origin), then from a
    page of another site. What each saw."""
    auth = json.dumps({"type": "auth", "token": token})
    seen = []
    async with ws_connect(url, origin="https://chat.example.org", open_timeout=WAIT) as ada:
        await ada.send(auth)
        async with asyncio.timeout(WAIT):
            seen.append(str(await ada.recv()))
        async with ws_connect(url, open_timeout=WAIT) as again:
            await again.send(auth)
            try:
                async with asyncio.timeout(WAIT):
                    await again.recv()
            except ConnectionClosed as exc:
                seen.append(f"closed {exc.rcvd.code if exc.rcvd else None}")
    try:
        async with ws_connect(url, origin="https://evil.example", open_timeout=WAIT):
            seen.append("accepted")
    except InvalidStatus as exc:
        seen.append(f"HTTP {exc.response.status_code}")
    return seen


def test_uvicorn_serves_the_module_level_app_as_the_production_guide_says() -> None:
    # The command in wslab/reference/__init__.py: the page WSLAB_ORIGINS names may connect, a token from
    # another worker with the same WSLAB_SECRET is accepted, and stderr says who was refused or closed and
    # why, and never holds a token.
    env = {key: value for key, value in os.environ.items() if not key.startswith("WSLAB_")}
    env |= {"WSLAB_SECRET": SECRET, "WSLAB_ORIGINS": "https://chat.example.org"}
    token = Tokens(SECRET).issue("ada")
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(PRODUCTION, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=env) as process:
        reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr or ()],
                                  daemon=True)
        reader.start()
        try:
            started = ""
            for _ in range(50):  # bounded: uvicorn writes a few lines before it listens
                started = lines.get(timeout=STARTUP)
                if "Uvicorn running on" in started:
                    break
            url = re.sub(r"^.*http(://\S+).*$", r"ws\1", started.strip()) + "/ws/chat/lobby"
            seen = wslab.run_sync(production_visits(url, token))
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
            reader.join(timeout=5)
    logged = "".join(lines.queue)
    assert seen == ['{"type":"join","user":"ada","users":["ada"],"version":1}', "closed 1008", "HTTP 403"]
    assert "ada - closed 1008: the name 'ada' is already taken in this room\n" in logged
    assert "- refused before accept: HTTP 403 connections from pages at https://evil.example are " in logged
    assert " - left (" not in logged  # a client that leaves is DEBUG: not shown
    assert token not in logged and process.returncode == 0
