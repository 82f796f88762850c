"""One room of N clients on a server of ``broadcast_servers.py``, from the benchmark's side: the load
generator's processes (``loadgen.py``) and the client that speaks.

- :class:`LoadGenerator` starts ``WORKERS`` processes of ``loadgen.py`` and shares the clients between them;
- :class:`Speaker` is the room's first client, in this process, through the library that suits the server
  (the ``websockets`` asyncio client; for Socket.IO, python-socketio's ``AsyncClient``): it sends every
  message and times its own copy too;
- :class:`Arrivals` collects, for each message, when the last client of each process received it:
  time-to-all is the latest of those minus the send time, all read from ``time.monotonic()``, which on
  Linux is ``CLOCK_MONOTONIC``, one clock for every process of the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from broadcast_servers import cpu_s
from loadgen import SECRET

LOADGEN = Path(__file__).with_name("loadgen.py")
ANSWER_WITHIN = 120.0  # seconds a load generator may take to answer a command (5,000 handshakes included)


class Arrivals:
    """When each message reached the last client of each reporter (every load generator and the speaker)."""

    def __init__(self) -> None:
        self.reporters = 0
        self.hits: dict[int, list[float]] = {}  # seq -> [reporters done, last arrival]
        self.events: dict[int, asyncio.Event] = {}

    def report(self, seq: int, when: float) -> None:
        hit = self.hits.setdefault(seq, [0, 0.0])
        hit[0] += 1
        hit[1] = max(hit[1], when)
        if hit[0] == self.reporters:
            self.events.setdefault(seq, asyncio.Event()).set()

    async def wait(self, seq: int, timeout: float) -> float:
        """The last arrival of ``seq``; TimeoutError if it has not reached everyone within ``timeout``."""
        async with asyncio.timeout(timeout):
            await self.events.setdefault(seq, asyncio.Event()).wait()
        return self.hits[seq][1]


class Worker:
    """One ``loadgen.py`` process."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, arrivals: Arrivals) -> None:
        self.process, self.log, self.arrivals = process, log, arrivals
        self.answers: asyncio.Queue[list[str]] = asyncio.Queue()
        self.clients = 0
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            word, *rest = line.decode().split()
            if word == "done":
                self.arrivals.report(int(rest[0]), float(rest[1]))
            else:
                self.answers.put_nowait([word, *rest])

    async def ask(self, command: str) -> list[str]:
        """Send ``command`` and wait for its answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        try:
            async with asyncio.timeout(ANSWER_WITHIN):
                return await self.answers.get()
        except TimeoutError:
            raise RuntimeError(f"a load generator did not answer {command.split()[0]!r} within "
                               f"{ANSWER_WITHIN:g} s:\n{self.log.read_text()[-2000:]}") from None

    async def connect(self, port: int, names: list[str]) -> None:
        if names:
            self.clients += len(names)
            answer = await self.ask(f"connect {port} " + " ".join(names))
            if answer != ["ready"]:
                raise RuntimeError(f"a load generator failed to connect: {answer}\n{self.log.read_text()}")


class LoadGenerator:
    """``count`` processes of ``loadgen.py`` holding the room's silent clients of a ``kind`` of server.

    ``await start()`` starts them (they import while the server starts), ``async with`` waits until they
    are up; :meth:`connect` then says which server."""

    def __init__(self, kind: str, count: int, *, deflate: bool = False) -> None:
        self.kind, self.count, self.deflate = kind, count, deflate
        self.arrivals = Arrivals()
        self.workers: list[Worker] = []

    async def start(self) -> None:
        while len(self.workers) < self.count:
            log = Path(tempfile.mkstemp(prefix="loadgen-", suffix=".log")[1])
            with log.open("wb") as errors:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, str(LOADGEN), self.kind, *(["--deflate"] * self.deflate),
                    stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=errors)
            self.workers.append(Worker(process, log, self.arrivals))

    async def __aenter__(self) -> LoadGenerator:
        await self.start()
        await asyncio.gather(*(worker.ask("stats") for worker in self.workers))  # each one is up
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for worker in self.workers:
            with contextlib.suppress(OSError, RuntimeError):
                assert worker.process.stdin is not None
                worker.process.stdin.write(b"quit\n")
                await worker.process.stdin.drain()
        for worker in self.workers:
            try:
                async with asyncio.timeout(10):
                    await worker.process.wait()
            except TimeoutError:
                worker.process.kill()
                await worker.process.wait()
            worker.reader.cancel()
            worker.log.unlink(missing_ok=True)

    async def connect(self, port: int, names: list[str]) -> None:
        """Put these clients in the room of the server on ``port``, shared between the processes; return
        once all are in."""
        await asyncio.gather(*(worker.connect(port, names[i::self.count])
                               for i, worker in enumerate(self.workers)))
        self.arrivals.reporters = sum(worker.clients > 0 for worker in self.workers) + 1  # and the speaker

    def cpu_s(self) -> float:
        """CPU time of the clients' processes so far: the load generators and this one (the speaker)."""
        return sum(cpu_s(worker.process.pid) for worker in self.workers) + cpu_s(os.getpid())

    async def connect_one(self, port: int, index: int, name: str) -> None:
        await self.workers[index % self.count].connect(port, [name])

    async def stats(self) -> tuple[int, int, int]:
        """Frames and payload bytes the clients received, and how many of their connections ended."""
        answers = await asyncio.gather(*(worker.ask("stats") for worker in self.workers))
        frames, data, closed = (sum(int(answer[i]) for answer in answers) for i in (1, 2, 3))
        return frames, data, closed


def seq_of(text: str) -> int | None:
    """The sequence number in a relayed message: ``...seq=12;...``."""
    mark = text.find("seq=")
    return int(text[mark + 4:text.index(";", mark)]) if mark >= 0 else None


class Speaker:
    """The room's first client, ``c0``, which sends every message and reports its own copy's arrival."""

    def __init__(self, kind: str, port: int, arrivals: Arrivals, *, deflate: bool = False) -> None:
        self.kind, self.port, self.arrivals, self.deflate = kind, port, arrivals, deflate
        self.client: Any = None
        self.reader: asyncio.Task[None] | None = None

    def _heard(self, text: str) -> None:
        seq = seq_of(text)
        if seq is not None:
            self.arrivals.report(seq, time.monotonic())

    async def __aenter__(self) -> Speaker:
        if self.kind == "socketio":
            import socketio  # the bench dependency group: python3 run.py bench broadcast

            self.client = socketio.AsyncClient(reconnection=False)
            self.client.on("message", self._heard)
            await self.client.connect(f"http://127.0.0.1:{self.port}", transports=["websocket"],
                                      wait_timeout=20)
            return self
        from websockets.asyncio.client import connect

        chat = self.kind.startswith("app")
        path = "/ws/chat/lobby" if chat else "/ws/c0"
        self.client = await connect(f"ws://127.0.0.1:{self.port}{path}", max_size=None, ping_interval=None,
                                    compression="deflate" if self.deflate else None, open_timeout=20)
        if chat:
            from wslab.reference.auth import Tokens

            await self.client.send(json.dumps({"type": "auth", "token": Tokens(SECRET).issue("c0")}))
            async with asyncio.timeout(20):
                while not str(await self.client.recv()).startswith('{"type":"join","user":"c0",'):
                    pass
        self.reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):
            async for text in self.client:
                if isinstance(text, str) and "seq=" in text:
                    self._heard(text)

    async def send(self, seq: int) -> float:
        """Send message ``seq`` (~128 characters, unique); return the time it was sent."""
        content = f"seq={seq};{os.urandom(60).hex()}"
        sent = time.monotonic()
        if self.kind == "socketio":
            await self.client.emit("message", content)
        elif self.kind.startswith("app"):
            await self.client.send(json.dumps({"type": "message", "content": content}))
        else:
            await self.client.send(content)
        return sent

    async def __aexit__(self, *exc_info: object) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.kind == "socketio":
            with contextlib.suppress(Exception):
                await self.client.disconnect()
        elif self.client is not None:
            self.client.transport.abort()
