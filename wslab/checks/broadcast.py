"""Checks for chapter 02, broadcast: a ``/count`` command and a broadcast that skips the sender.

Both exercises keep the hardened manager (:mod:`wslab.reference.manager`), and both send to other clients,
so both checks put **a stalled reader** in the room, the fault chapter 02 is about: zed connects with a
small receive buffer and never reads, while someone sends more than his socket and his queue can hold.
The room must keep going (everyone else receives every message, in order) and zed must be disconnected
with 1013 once his queue is full, which only :meth:`Client.send <wslab.reference.manager.Client.send>`
(or ``manager.broadcast``) does. Every check also fails if the server logged an error, so a handler that
crashes when a client leaves does not pass.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed

from wslab.lab.client import LabClient, bots, connect
from wslab.lab.server import LabServer
from wslab.lab.transcript import RECEIVED, SENT, Transcript

from .result import CheckResult, Mismatch, expect, run_check

__all__ = ["check_count", "check_no_echo"]

STALL_MESSAGES = 1000  # sent while zed is stalled: more than his socket (~180) and his queue (512) hold
STALL_SIZE = 16 * 1024  # characters in each of those messages
STALL_PATIENCE = 2.0  # seconds a reader waits for the next one before the room counts as frozen
WINDOW = 64  # messages the speaker may be ahead of the slowest reader but zed (a busy machine is no fault)
STALL_RCVBUF = 4096  # bytes of zed's socket receive buffer, so that his buffers fill quickly
BACKLOG = 500  # dee sends without reading before /count: her socket (~180) fills, her queue (512) does not
QUIET = 0.5  # seconds a check waits to be sure a message does not come


async def _nothing_for(bot: LabClient, what: str, hint: str = "") -> None:
    try:
        got = await bot.recv(QUIET)
    except TimeoutError:
        return
    expect(got, "(nothing)", f"{bot.name} should not receive {what}", hint)


async def _next(bot: LabClient, expected: str, step: str, hint: str = "") -> None:
    """The next message ``bot`` receives should be ``expected``."""
    try:
        got: Any = await bot.recv(STALL_PATIENCE)
    except TimeoutError:
        got = f"nothing within {STALL_PATIENCE:g} s"
    expect(got, expected, step, hint)


@contextlib.asynccontextmanager
async def _slow_reader(server: LabServer, name: str, transcript: Transcript) -> AsyncIterator[LabClient]:
    """A client at ``/ws/{name}`` whose socket holds little, so that it fills as soon as it stops reading;
    closed at the end of the block whatever happened (a client left open would linger under its name)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALL_RCVBUF)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (urlsplit(server.url).hostname, server.port))
        client = connect(server, f"/ws/{name}", name=name, transcript=transcript, sock=sock, max_size=None,
                         compression=None, max_queue=1, close_timeout=1)
        await client.open()
    except BaseException:
        sock.close()
        raise
    try:
        yield client
    finally:
        if client.connection.close_code is None:
            await _read_all(client)  # what it has not read yet, so that the close is not stuck behind it
        await client.close()


async def _server_tasks() -> int:
    return len(asyncio.all_tasks())


async def _read_all(bot: LabClient, patience: float = 1.0,
                    until: Callable[[str | bytes], bool] | None = None) -> list[str | bytes]:
    """What ``bot`` receives until nothing comes for ``patience`` seconds, the connection ends, or a message
    satisfies ``until``."""
    received: list[str | bytes] = []
    with contextlib.suppress(TimeoutError, ConnectionClosed):
        while not (received and until is not None and until(received[-1])):
            async with asyncio.timeout(patience):
                received.append(await bot.connection.recv())
    return received


def _caught_up(counts: dict[str, int], wanted: int) -> bool:
    return min(counts.values()) >= wanted


async def _room_keeps_going(server: LabServer, speaker: LabClient, listeners: Sequence[LabClient],
                            zed: LabClient, transcript: Transcript) -> None:
    """zed has stopped reading; ``speaker`` sends STALL_MESSAGES messages. Every listener must receive all of
    them in order, and zed must then find himself disconnected with 1013."""
    payload = "x" * STALL_SIZE
    prefix = f"{speaker.name}: #"
    counts = {bot.name: 0 for bot in listeners}
    disorder: list[str] = []
    progress = asyncio.Condition()

    async def listen(bot: LabClient) -> None:
        while counts[bot.name] < STALL_MESSAGES:
            try:
                async with asyncio.timeout(STALL_PATIENCE):
                    message = await bot.connection.recv()
            except (TimeoutError, ConnectionClosed):
                return
            if isinstance(message, str) and message.startswith(prefix):
                number = message[len(prefix):].split(" ", 1)[0]
                if number != str(counts[bot.name]):
                    disorder.append(f"{bot.name} received #{number} when #{counts[bot.name]} was next")
                    return
                counts[bot.name] += 1
                async with progress:
                    progress.notify_all()

    async def speak() -> None:
        for number in range(STALL_MESSAGES):
            # At most WINDOW ahead of the slowest reader, so that a reader slowed down by a busy machine
            # never counts as too slow itself; zed, who reads nothing, is not waited for.
            async with progress:
                await progress.wait_for(functools.partial(_caught_up, counts, number - WINDOW))
            await speaker.connection.send(f"#{number} {payload}")

    async def zed_reads_once_closed(closing: concurrent.futures.Future[int]) -> list[str | bytes]:
        # As a client would: the server closes him, he finds out when he reads. He reads at once rather than
        # after the others got everything: a server gives a closing client only so long to take its backlog
        # (wslab.reference.wsprotocol.ABORT_AFTER), and on a busy machine the others take longer than that.
        await asyncio.wrap_future(closing)
        transcript.add(zed.name, "…", "reads again (the server is closing his connection)")
        return await _read_all(zed, STALL_PATIENCE)

    transcript.add(zed.name, "…", "stops reading (his socket holds 4 KB)")
    session = server.sessions.for_client_port(zed.connection.local_address[1])
    closing = session.closing if session is not None else concurrent.futures.Future()
    zed_reading = asyncio.create_task(zed_reads_once_closed(closing))
    readers = [asyncio.create_task(listen(bot)) for bot in listeners]
    speaking = asyncio.create_task(speak())
    transcript.add(speaker.name, SENT, f"{STALL_MESSAGES} messages of {STALL_SIZE // 1024} KB, "
                                       f"#0 to #{STALL_MESSAGES - 1}")
    await asyncio.gather(*readers)
    tasks = await server.acall(_server_tasks())
    short = [bot for bot in listeners if counts[bot.name] < STALL_MESSAGES]
    if short or disorder:
        speaking.cancel()
        zed_reading.cancel()
        # Let the room drain (zed reads again), so that every handler can end before the verdict.
        await asyncio.gather(*(_read_all(bot) for bot in {*listeners, zed, speaker}))
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await speaking
        if disorder:
            raise Mismatch(f"while zed was not reading, {disorder[0]}", "every message, in order",
                           disorder[0], "each client's messages must leave in the order they were sent: "
                           "queue them (client.send) rather than start a task for each.")
        bot = short[0]
        for each in listeners:
            transcript.add(each.name, RECEIVED,
                           f"{counts[each.name]} of {speaker.name}'s {STALL_MESSAGES} messages")
        raise Mismatch(
            f"{bot.name} received {counts[bot.name]} of {speaker.name}'s {STALL_MESSAGES} messages, then "
            f"nothing for {STALL_PATIENCE:g} s: the room froze behind zed, who stopped reading",
            f"all {STALL_MESSAGES}, whatever zed does", f"{counts[bot.name]}, then nothing",
            "this is the bug of sections 2 and 3: the speaker's handler waits until a send to zed is "
            "done, and zed never makes room. Which call in your loop can wait, and which never does?")
    await speaking
    for each in listeners:
        transcript.add(each.name, RECEIVED, f"all {STALL_MESSAGES} of {speaker.name}'s messages, in order")
    if closing.done():
        received = await zed_reading
    else:  # nothing closed him (yet): he reads anyway
        zed_reading.cancel()
        transcript.add(zed.name, "…", "reads again")
        received = await _read_all(zed, STALL_PATIENCE)
    if zed.connection.close_code is None:
        # The room kept going, but only because something unbounded held zed's messages for him.
        got = f"{len(received)} messages, still connected ({tasks} tasks were running on the server)"
        raise Mismatch(
            "zed stopped reading, but nothing ever disconnected him: every message waited for him on the "
            "server, however many", "zed closed with 1013 (too slow) once his queue was full", got,
            "send through the Client, not its websocket: client.send() queues, never waits, and "
            "disconnects a client whose queue is full. A task per send waits just the same, only out of "
            "sight, and holds every message in memory.")
    await zed.close()  # notes how it ended in the transcript (it has, by now)
    expect(zed.close_code, 1013, "zed, who stopped reading, should be disconnected with 1013 (too slow)")


async def _backlog_then_count(dee: LabClient, ada: LabClient, bo: LabClient, transcript: Transcript) -> None:
    """dee sends BACKLOG messages without reading, so that her socket is full and their copies queue up for
    her, then /count, then one more message. That message must reach ada at once (answering dee must not
    wait for dee to read), and the answer must come after the copies queued before it. ada and bo read all
    along."""
    after = "dee: anyone there?"
    ada_reads = asyncio.create_task(_read_all(ada, STALL_PATIENCE, until=lambda m: m == after))
    bo_reads = asyncio.create_task(_read_all(bo))
    for number in range(BACKLOG):
        await dee.connection.send(f"#{number} {'x' * STALL_SIZE}")
    transcript.add("dee", SENT, f"{BACKLOG} messages of {STALL_SIZE // 1024} KB, #0 to #{BACKLOG - 1}, "
                                "reading nothing")
    await dee.send("/count")
    await dee.send("anyone there?")
    heard = await ada_reads
    if not heard or heard[-1] != after:
        transcript.add("ada", "⌛", f"no 'dee: anyone there?' within {STALL_PATIENCE:g} s")
        await asyncio.gather(_read_all(dee), bo_reads)  # let the room drain before the verdict
        raise Mismatch("answering dee's /count should not wait until dee reads: meanwhile her next message "
                       "never reached ada", after, f"nothing within {STALL_PATIENCE:g} s",
                       "the answer waited for dee's full socket, and her handler with it: client.send() "
                       "queues it instead, behind what dee has not read yet.")
    transcript.add("ada", RECEIVED, after)
    transcript.add("dee", "…", "reads again")
    received = await _read_all(dee, STALL_PATIENCE, until=lambda m: not str(m).startswith("dee: #"))
    await bo_reads
    answers = [n for n, message in enumerate(received) if not str(message).startswith("dee: #")]
    before = f"after {answers[0]} of them" if answers else "never"
    transcript.add("dee", RECEIVED, f"her {BACKLOG} messages back, and the answer to /count {before}")
    expect(received[answers[0]] if answers else None, "3 online",
           "with ada, bo and dee connected, /count should answer '3 online'")
    expect(before, f"after {BACKLOG} of them",
           f"dee's /count should be answered after the {BACKLOG} messages already queued for her",
           "the answer jumped the queue: client.send() puts it behind what dee has not read yet, "
           "as every other message to her.")


def check_count(app: Any) -> CheckResult:
    """Exercise 2.1: the text ``/count`` is answered, to the sender only, with ``"N online"`` (N counted
    each time); any other text, even one holding "/count", is still broadcast as ``"name: text"``, through
    the clients' queues. Refuses:

    - broadcasting the answer, or the command as well as the answer (``continue`` forgotten);
    - a count of its own that never forgets who left (only ``len(manager)`` is right after a leave);
    - ``"/count" in message`` or ``startswith``: "/count me in" is a message, not the command;
    - the answer sent with ``await websocket.send_text``: it overtakes the messages already queued for the
      sender (and waits if the sender is slow);
    - the broadcast replaced by ``await other.websocket.send_text(...)`` for each client: a stalled reader
      freezes the room.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with bots(server, "/ws/{name}", ["ada", "bo"], transcript=transcript) as team:
            ada, bo = team["ada"], team["bo"]
            await ada.send("/count")
            await _next(ada, "2 online", "with ada and bo connected, /count should answer '2 online'")
            await _nothing_for(bo, "ada's /count or its answer",
                               "only the sender should get the answer, and the command itself should not be "
                               "broadcast: after answering, skip the rest of the loop's body.")
            await bo.send("hi")
            for bot in team:
                await _next(bot, "bo: hi", "other messages should still reach everyone")
            await bo.send("/count me in")
            for bot in team:
                await _next(bot, "bo: /count me in",
                       "'/count me in' is a message, not the command: everyone should receive it",
                       "the command is the whole text '/count', nothing more: compare the message with it.")
            async with bots(server, "/ws/{name}", ["cy"], transcript=transcript) as late:
                await late["cy"].send("/count")
                await _next(late["cy"], "3 online", "with three connected, /count says '3 online'")
            await ada.recv()  # "cy left the chat"
            await ada.send("/count")
            await _next(ada, "2 online", "after cy left, /count should say '2 online' again",
                   "count who is connected now, each time: len(manager) forgets whoever left.")
            async with _slow_reader(server, "zed", transcript) as zed:
                await _room_keeps_going(server, bo, [ada, bo], zed, transcript)
            async with _slow_reader(server, "dee", transcript) as dee:
                await _backlog_then_count(dee, ada, bo, transcript)

    return run_check(
        "Exercise 2.1 (count)", app, scenario,
        passed="/count answers the sender alone with the number of connected clients.",
        hint="start where each message arrives, in the `async for` loop: what should happen when it is "
             "'/count', and what should not? The manager can tell how many clients it holds, and each "
             "client has its own send().",
    )


def check_no_echo(app: Any) -> CheckResult:
    """Exercise 2.2: a message reaches everyone except its sender (the connection, not the name), and a
    client that stops reading never holds up the others. Refuses:

    - sending to everyone, the sender included;
    - skipping by name: another tab of the same user is another client and should hear the first;
    - ``await other.websocket.send_text(...)`` for each client, guarded or not: zed stops reading and the
      room freezes (the bug chapter 02 exists to fix);
    - ``asyncio.create_task(other.websocket.send_text(...))``: the room keeps going, but nothing bounds
      what waits for zed and nobody disconnects him.
    """

    async def scenario(server: LabServer, transcript: Transcript) -> None:
        async with bots(server, "/ws/{name}", ["ada", "bo", "cy"], transcript=transcript) as team:
            ada, bo, cy = team["ada"], team["bo"], team["cy"]
            await ada.send("hello")
            for bot in (bo, cy):
                await _next(bot, "ada: hello", f"{bot.name} should receive ada's message")
            await _nothing_for(ada, "her own message back",
                               "skip the sender: of manager.clients, every one but `client`, the one this "
                               "handler serves.")
            await cy.send("hi ada")
            for bot in (ada, bo):
                await _next(bot, "cy: hi ada", f"{bot.name} should receive cy's message")
            await _nothing_for(cy, "his own message back")
            async with connect(server, "/ws/ada", name="ada's phone", transcript=transcript) as phone:
                await ada.send("on two devices")
                for bot in (bo, cy, phone):
                    await _next(bot, "ada: on two devices",
                           f"{bot.name} should receive ada's message: the sender is a connection, not a name",
                           "two clients may share a name (two tabs, a phone): skip the sender by "
                           "identity (`is not`), not by name.")
                await _nothing_for(ada, "her own message back")
            for bot in team:
                await bot.recv()  # "ada left the chat", from her phone
            async with _slow_reader(server, "zed", transcript) as zed:
                await _room_keeps_going(server, ada, [bo, cy], zed, transcript)

    return run_check(
        "Exercise 2.2 (no echo)", app, scenario,
        passed="messages reach everyone but their sender, and nobody waits on anybody.",
        hint="start from manager.clients, every connected client in join order, and from `client`, the one "
             "this handler serves. Section 4 says which way of sending never waits on anybody.",
    )
