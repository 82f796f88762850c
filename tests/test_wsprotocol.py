"""A client kicked for not reading really loses its connection, even though it never reads again; a
refusal before accept is complete (no spurious ERROR)."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import pytest
from apps import chat, service_lines
from fastapi import FastAPI, WebSocket
from websockets.exceptions import ConnectionClosed

import wslab
from wslab.demos.auth_scenarios import attempt
from wslab.reference import wsprotocol
from wslab.reference.auth import refuse
from wslab.reference.manager import ConnectionManager, broadcast_app

ESTABLISHED_OR_CLOSING = {"01", "04", "05", "06", "08", "0B"}  # /proc/net/tcp states that hold a socket


def server_holds_connection(server_port: int, client_port: int) -> bool:
    """Whether the server's end of the TCP connection from ``client_port`` still exists."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (server_port, client_port):
            return state in ESTABLISHED_OR_CLOSING
    return False


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
    assert [line for line in service_lines(server) if '"/ws/bo"' in line] == [
        'INFO wslab.reference.manager: 127.0.0.1:<port> - "/ws/bo" - closed 1013: too slow: 8 messages were '
        "waiting",
        'INFO wslab.reference.wsprotocol: 127.0.0.1:<port> - "/ws/bo" - dropped: no answer to its close '
        "frame within 0.3 s",
    ]


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
