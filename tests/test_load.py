"""Load: 200 clients in one room each send 20 messages through the complete app, served by `wslab serve`
in its own process. Every client receives every message exactly once, in each sender's order.

Bounded: the whole exchange must finish within LIMIT seconds, or the test fails saying how far it got.
How fast it goes is for benchmarks/, not for this test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
import websockets

CLIENTS = 200
MESSAGES = 20  # each; the rate limit lets 20 through at once
LIMIT = 120.0  # seconds for joining, sending and receiving everything


@pytest.fixture
def url() -> Iterator[str]:
    """The complete app in its own process (so the clients here do not share its CPU's GIL)."""
    process = subprocess.Popen([sys.executable, "-m", "wslab", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("wslab: the chat app is at "), first
        yield first.split(" at ")[1].strip()
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert "Traceback" not in err and "ERROR" not in err, err


async def _login(url: str) -> list[str]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        for _ in range(100):  # bounded wait for the server process to answer
            try:
                await http.get("status")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)  # polling a process we started
        return [(await http.post("token", json={"username": f"u{n:03}"})).json()["access_token"]
                for n in range(CLIENTS)]


async def _load(url: str) -> dict[str, list[tuple[str, int]]]:
    tokens = await _login(url)
    ws_url = url.replace("http", "ws", 1) + "ws/chat/lobby"
    sockets = []
    received: dict[str, list[tuple[str, int]]] = {}
    everyone_in = asyncio.Event()
    progress = {"joined": 0}
    try:
        for n, token in enumerate(tokens):
            # no keepalive pings: 200 clients share one loop, which a loaded machine can stall for 20 s, and
            # this test is about delivery (the server's own liveness checks have tests of their own)
            ws = await websockets.connect(ws_url, max_queue=None, compression=None, ping_interval=None)
            sockets.append(ws)
            await ws.send(json.dumps({"type": "auth", "token": token}))
            while json.loads(await ws.recv())["type"] != "join":  # our own join: we are in the room
                pass
            progress["joined"] = n + 1

        async def reader(user: str, ws: websockets.ClientConnection) -> None:
            got = received[user] = []
            await everyone_in.wait()
            while len(got) < CLIENTS * MESSAGES:
                frame = json.loads(await ws.recv())
                if frame["type"] == "message":
                    got.append((frame["user"], int(frame["content"].split()[-1])))
                elif frame["type"] not in ("join", "leave"):
                    raise AssertionError(f"{user} got {frame}")

        async def writer(user: str, ws: websockets.ClientConnection) -> None:
            await everyone_in.wait()
            for k in range(MESSAGES):
                await ws.send(json.dumps({"type": "message", "content": f"{user} says {k}"}))

        async with asyncio.TaskGroup() as group:
            for n, ws in enumerate(sockets):
                group.create_task(reader(f"u{n:03}", ws))
                group.create_task(writer(f"u{n:03}", ws))
            everyone_in.set()
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    return received


def test_200_clients_each_sending_20_messages_all_receive_everything_once_in_order(url: str) -> None:
    received: dict[str, list[tuple[str, int]]] = {}

    async def bounded() -> None:
        received.update(await asyncio.wait_for(_load(url), LIMIT))

    try:
        asyncio.run(bounded())
    except TimeoutError:
        pytest.fail(f"the load did not finish within {LIMIT:g} s: {len(received)} of {CLIENTS} "
                    "clients received everything")
    expected = list(range(MESSAGES))
    assert len(received) == CLIENTS
    for user, got in received.items():
        assert len(got) == CLIENTS * MESSAGES, f"{user} received {len(got)} messages"
        per_sender: dict[str, list[int]] = {}
        for sender, k in got:
            per_sender.setdefault(sender, []).append(k)
        assert len(per_sender) == CLIENTS, f"{user} heard from {len(per_sender)} senders"
        bad = [s for s, ks in per_sender.items() if ks != expected]
        assert not bad, f"{user} got {bad[0]}'s messages as {per_sender[bad[0]]}"
