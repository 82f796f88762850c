"""Make the broadcast and chat-room failures happen on demand, the same way on every run.

Each function connects a few named bots to a server, plays one scenario and prints what every bot saw
(a transcript). They work on the naive code and on the hardened code alike, so a chapter runs the same
scenario twice and the difference is the lesson:

- :func:`dead_peer`: a member's connection drops (no close frame) just as someone speaks;
- :func:`stalled_reader`: a member stops reading while another sends a lot;
- :func:`bad_input`: a member sends a frame the server does not expect, then others speak;
- :func:`impostor`: a second client takes a name already in the room;
- :func:`unknown_recipient`: a private message to a user who is not there;
- :func:`everyone_leaves`: the whole room closes at the same moment.

Races are made repeatable with :meth:`~wslab.lab.server.LabServer.paused`: the server's loop is held
still while the bots act, so everything they did reaches it together, in order, as it would on a
busy server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from wslab.lab.client import LabClient, bots, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import RECEIVED, WAITED, Transcript, describe_close, describe_message

__all__ = [
    "StallReport",
    "as_chat",
    "as_text",
    "bad_input",
    "dead_peer",
    "everyone_leaves",
    "impostor",
    "stalled_reader",
    "unknown_recipient",
]

Frame = str | bytes | dict[str, Any] | list[Any]
QUIET = 0.3  # seconds of silence after which a bot is taken to have received everything


def as_text(text: str) -> Frame:
    """Chapter 02's frames: the text as it is."""
    return text


def as_chat(text: str) -> Frame:
    """Chapter 03's frames: ``{"type": "message", "content": text}``."""
    return {"type": "message", "content": text}


async def _hear(bot: LabClient, quiet: float) -> tuple[list[str | bytes], bool]:
    """What ``bot`` receives until it has been quiet for ``quiet`` seconds, and whether it was closed."""
    received: list[str | bytes] = []
    try:
        while True:
            async with asyncio.timeout(quiet):  # not wait_for, which on 3.11 can swallow a cancellation
                message = await bot.connection.recv()
            received.append(message)
    except TimeoutError:
        return received, False
    except ConnectionClosed:
        return received, True


async def _note(bot: LabClient, received: list[str | bytes], closed: bool) -> None:
    """Put what ``bot`` heard in the transcript: each message, then its close or a wait that brought
    nothing."""
    for message in received:
        bot.transcript.add(bot.name, RECEIVED, describe_message(message))
    if closed:
        await bot._note_closed()
    elif not received:
        bot.transcript.add(bot.name, WAITED, "nothing")


async def _drain(bot: LabClient, quiet: float = QUIET) -> list[str | bytes]:
    """Everything ``bot`` receives until it has been quiet for ``quiet`` seconds or is closed; the
    transcript notes each message, and a wait that brought nothing."""
    received, closed = await _hear(bot, quiet)
    await _note(bot, received, closed)
    return received


async def _settle(*clients: LabClient, quiet: float = 0.2) -> None:
    """Read and discard what each client has been sent so far (joins), without printing it."""
    await asyncio.gather(*(_hear(client, quiet) for client in clients))


async def _listen(clients: Any, quiet: float = QUIET) -> None:
    """Let each client that is still open receive what comes, all at once (so the waits for silence
    overlap), then print what each heard, in the order the clients are given. A client the server
    already closed has its close noted here, in this order, however fast the close came."""
    clients = list(clients)
    listening = [client for client in clients if client.connection.close_code is None]
    heard = dict(zip(map(id, listening), await asyncio.gather(*(_hear(c, quiet) for c in listening)),
                     strict=True))
    for client in clients:
        if id(client) in heard:
            await _note(client, *heard[id(client)])
        else:
            await client._note_closed()


def _drop(bot: LabClient) -> socket.socket:
    """Drop the bot's TCP connection at once, without a close frame (a reset, as a crash would)."""
    transport = bot.connection.transport
    sock: socket.socket = transport.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return sock


async def dead_peer(server: LabServer, path: str = "/ws/{name}", *, say: Callable[[str], Frame] = as_text,
                    transcript: Transcript | None = None) -> Transcript:
    """ada, bo and cy are connected; bo's connection drops without a close frame just as ada says
    hello. Who receives ada's message, and who is still connected afterwards?"""
    async with bots(server, path, ["ada", "bo", "cy"], transcript=transcript) as team:
        await _settle(*team)
        print("bo's connection drops (no close frame) while ada says hello:")
        with server.paused():
            sock = _drop(team["bo"])
            while sock.fileno() != -1:  # the socket closes on the client loop's next turn
                await asyncio.sleep(0)
            await team["ada"].send(say("hello"))
        await _listen([team["ada"], team["cy"]])
        team.clients.pop("bo")  # its connection is gone; nothing to close
    server.wait_idle(2.0)
    return team.transcript


def _payload(number: int, size: int) -> str:
    # Random, so that compression cannot shrink the backlog away; numbered, so we can follow it.
    return f"#{number} " + base64.b64encode(os.urandom(size * 3 // 4)).decode()


@dataclass
class StallReport:
    """What :func:`stalled_reader` saw."""

    sent: int  # messages ada sent
    delivered: int  # of those, how many reached cy
    size: int  # characters per message
    bo_close: str  # how bo's connection ended, as the transcript puts it
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (sent at, took), seconds

    @property
    def froze(self) -> bool:
        return self.delivered < self.sent

    @property
    def megabytes(self) -> float:
        return self.delivered * self.size / 1e6


async def stalled_reader(server: LabServer, path: str = "/ws/{name}", *,
                         say: Callable[[str], Frame] = as_text, messages: int = 1000,
                         size: int = 16 * 1024, patience: float = 2.0) -> StallReport:
    """bo stops reading; ada sends ``messages`` messages of ``size`` characters, each one only after
    cy has received the one before. Does the room keep going? Then cy speaks, then bo reads again.
    """
    options: dict[str, Any] = {"compression": None, "max_size": None}
    lines = Transcript()
    ada = connect(server, path.replace("{name}", "ada"), name="ada", transcript=Transcript(live=False),
                  **options)
    rest = bots(server, path, ["bo", "cy"], transcript=Transcript(live=False), **options)
    async with ada, rest:
        bo, cy = rest["bo"], rest["cy"]
        await _settle(ada, bo, cy)
        echoes = asyncio.create_task(_settle(ada, quiet=3600))  # ada reads her own messages as they come
        print(f"bo stops reading. ada sends up to {messages} messages of {size // 1024} KB; cy reads.")
        report = StallReport(messages, 0, size, "")
        start = time.perf_counter()
        for number in range(messages):
            if ada.connection.close_code is not None:
                break
            sent_at = time.perf_counter()
            await ada.send(say(_payload(number, size)))
            if not await _arrives(cy, f"#{number} ", patience):
                break
            report.delivered += 1
            report.latencies.append((sent_at - start, time.perf_counter() - sent_at))
        if report.froze:
            lines.add("cy", "⌛", f"stopped receiving after {report.delivered} messages "
                                  f"({report.megabytes:.1f} MB): the room is frozen")
            await cy.send(say("anyone there?"))
            lines.add("cy", "→", "anyone there?")
            if await _arrives(cy, "anyone there?", patience):
                lines.add("cy", "←", "its own message comes back: cy can still talk")
            else:
                lines.add("cy", "⌛", "its own message never comes back: cy is stuck too")
        else:
            lines.add("cy", "←", f"all {messages} of ada's messages ({report.megabytes:.1f} MB), in order")
        lines.add("bo", "…", "reads again")
        await _drain(bo, patience)  # a backlog of megabytes, or the close frame queued behind it
        report.bo_close = _ending(bo) if bo.connection.close_code else "still connected"
        lines.add("bo", "✕" if bo.connection.close_code else "✓", report.bo_close)
        echoes.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await echoes
    server.wait_idle(2.0)
    return report


def _ending(bot: LabClient) -> str:
    closed = bot.connection.protocol.close_exc
    return describe_close(closed) if isinstance(closed, ConnectionClosed) else "closed"


async def _arrives(bot: LabClient, marker: str, patience: float) -> bool:
    """Whether a message containing ``marker`` reaches ``bot`` within ``patience`` seconds."""
    try:
        async with asyncio.timeout(patience):
            while True:
                message = await bot.connection.recv()
                if isinstance(message, str) and marker in message:
                    return True
    except (TimeoutError, ConnectionClosed):
        return False


async def bad_input(server: LabServer, path: str, bad: Frame, *, say: Callable[[str], Frame] = as_chat,
                    transcript: Transcript | None = None) -> Transcript:
    """ada sends ``bad``; then bo and cy each say hi. Is anyone still in the room?"""
    async with bots(server, path, ["ada", "bo", "cy"], transcript=transcript) as team:
        await _settle(*team)
        await team["ada"].send(bad)
        await _listen(team)
        for name in ("bo", "cy"):
            if team[name].connection.close_code is None:
                await team[name].send(say(f"hi, I am {name}"))
                await _listen(team)
    server.wait_idle(2.0)
    return team.transcript


async def impostor(server: LabServer, path: str = "/chat/lobby/{name}", *,
                   transcript: Transcript | None = None) -> Transcript:
    """ada and bo are in the room; a second client connects as "ada". bo sends ada a private message.
    Then the real ada leaves, and bo sends her another."""
    shared = transcript if transcript is not None else Transcript()
    async with bots(server, path, ["ada", "bo"], transcript=shared) as team:
        await _settle(*team)
        fake = connect(server, path.replace("{name}", "ada"), name="mallory", transcript=shared)
        async with fake:
            await _listen([fake])
            await _settle(*team)
            await team["bo"].send({"type": "private", "to": "ada", "content": "the password is swordfish"})
            await _listen([team["ada"], fake, team["bo"]])
            if fake.connection.close_code is None:
                await team["ada"].close()
                await _settle(team["bo"], fake)
                await team["bo"].send({"type": "private", "to": "ada", "content": "are you there?"})
                await _listen([fake, team["bo"]])
    server.wait_idle(2.0)
    return shared


async def unknown_recipient(server: LabServer, path: str = "/chat/lobby/{name}", *,
                            transcript: Transcript | None = None) -> Transcript:
    """ada sends a private message to "zed", who is not in the room. Does she hear about it?"""
    async with connect(server, path.replace("{name}", "ada"), name="ada", transcript=transcript) as ada:
        await _settle(ada)
        await ada.send({"type": "private", "to": "zed", "content": "hello?"})
        await _drain(ada)
    server.wait_idle(2.0)
    return ada.transcript


async def everyone_leaves(server: LabServer, path: str, names: tuple[str, ...] = ("ada", "bo", "cy", "dee"),
                          *, transcript: Transcript | None = None) -> Transcript:
    """Everybody in the room closes their connection at the same moment (the meeting ends)."""
    async with bots(server, path, list(names), transcript=transcript) as team:
        await _settle(*team)
        with server.paused():
            closing = [asyncio.create_task(bot.connection.close()) for bot in team]
            await asyncio.sleep(0)  # each close frame is written before the server looks again
        await asyncio.gather(*closing)
        for bot in team:  # noted in a fixed order, whichever close finished first
            await bot._note_closed(by_us=True)
    server.wait_idle(2.0)
    return team.transcript
