"""Helpers for the broker tests: clients of the complete app, log lines to wait for, worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import wslab
from wslab import LabClient, LabServer, Transcript
from wslab.reference.auth import Tokens
from wslab.reference.presence import PRESENCE_TYPES, Presence

SECRET = "wslab-broker-tests-share-one-secret"  # every worker must verify every other worker's tokens
TOKENS = Tokens(SECRET)
Frame = dict[str, Any]


async def login(target: LabServer | str, user: str, room: str = "lobby") -> LabClient:
    """``user`` in ``room`` of the complete app at ``target`` (a server, or its ``ws://`` address): connected,
    authenticated, and its own ``join`` received."""
    client = await wslab.connect(target, f"/ws/chat/{room}", name=user, transcript=Transcript(live=False))
    await client.send({"type": "auth", "token": TOKENS.issue(user)})
    await until(client, lambda frame: frame["type"] == "join" and frame["user"] == user)
    return client


async def until(client: LabClient, accept: Callable[[Frame], bool], timeout: float = 10.0) -> list[Frame]:
    """The frames ``client`` receives up to the first that ``accept`` accepts, within ``timeout`` seconds."""
    frames: list[Frame] = []
    async with asyncio.timeout(timeout):
        while True:
            frames.append(await client.recv_json(timeout))
            _follow(client, frames[-1])
            if accept(frames[-1]):
                return frames


async def presence(client: LabClient, *users: str, timeout: float = 10.0) -> Frame:
    """The presence frame (``join``, ``leave`` or ``users``) after which ``client``'s copy of the list (kept
    from the changes, as the page keeps it) holds exactly ``users``: the last one it received if so, else
    the next one that does. Every change must come in step (the next version, the right count)."""
    def accept(frame: Frame) -> bool:
        return frame["type"] in PRESENCE_TYPES and sorted(_presence[client][0].users) == sorted(users)

    last = _presence.get(client)
    return last[1] if last is not None and accept(last[1]) else (await until(client, accept, timeout))[-1]


def _follow(client: LabClient, frame: Frame) -> None:
    if frame["type"] in PRESENCE_TYPES:
        known = _presence[client][0] if client in _presence else Presence()
        assert known.apply(frame), f"{client.name} missed a presence change: {frame} after {known}"
        _presence[client] = (known, frame)


_presence: weakref.WeakKeyDictionary[LabClient, tuple[Presence, Frame]] = weakref.WeakKeyDictionary()


async def chat_messages(client: LabClient, count: int, timeout: float = 10.0) -> list[tuple[str, str]]:
    """The next ``count`` chat messages ``client`` receives, as (user, content); presence frames skipped."""
    got: list[tuple[str, str]] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            frame = await client.recv_json(timeout)
            if frame["type"] == "message":
                got.append((frame["user"], frame["content"]))
            elif frame["type"] in PRESENCE_TYPES:
                _follow(client, frame)
            else:
                raise AssertionError(f"{client.name} got {frame}")
    return got


class LogLines:
    """Lines written by one source (a logger, a process's stderr), and a way to wait for one."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()

    def add(self, line: str) -> None:
        with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    def count(self, text: str) -> int:
        with self._changed:
            return sum(text in line for line in self.lines)

    def wait_for(self, text: str, count: int = 1, timeout: float = 15.0) -> None:
        """Block until ``count`` lines contain ``text``; AssertionError after ``timeout`` seconds."""
        with self._changed:
            if not self._changed.wait_for(lambda: sum(text in line for line in self.lines) >= count, timeout):
                shown = "\n".join(self.lines[-20:])
                raise AssertionError(f"not {count} lines with {text!r} in {timeout:g} s; the last:\n{shown}")

    async def until(self, text: str, count: int = 1, timeout: float = 15.0) -> None:
        """:meth:`wait_for`, without holding up the event loop."""
        await asyncio.to_thread(self.wait_for, text, count, timeout)


class _Recorder(logging.Filter):
    def __init__(self, lines: LogLines) -> None:
        super().__init__()
        self.into = lines

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            self.into.add(f"{record.levelname} {record.getMessage()}")
        return True


def capture_broker_log() -> Iterator[LogLines]:
    """What ``wslab.reference.broker`` logs while the generator is suspended (a pytest fixture's body). A
    filter placed first, not a handler: a server thread's records go to its ``print_log()``
    (wslab.lab.serverlog's filter) and never reach a handler."""
    lines, logger = LogLines(), logging.getLogger("wslab.reference.broker")
    recorder, level = _Recorder(lines), logger.level
    logger.filters.insert(0, recorder)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeFilter(recorder)
        logger.setLevel(level)


class Process:
    """A command in a process of its own (``wslab serve``, ``uvicorn``), its stderr read line by line."""

    def __init__(self, *command: str, env: dict[str, str] | None = None) -> None:
        self.stderr = LogLines()
        self.process = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "WSLAB_SECRET": SECRET, **(env or {})})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.add(line.rstrip())

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: the process dies at once, leaving whatever it held in Redis."""
        self.process.kill()
        self.process.wait(10)

    def stop(self, sig: int = signal.SIGINT) -> str:
        """Stop the process (Ctrl+C) and return its stderr."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(10)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        return "\n".join(self.stderr.lines)


class Worker(Process):
    """``python -m wslab serve --port 0 --broker URL``: one worker process of the complete app."""

    def __init__(self, broker: str) -> None:
        super().__init__("-m", "wslab", "serve", "--port", "0", "--broker", broker)
        self.url = ""

    def ready(self) -> Worker:
        """Wait until it listens and its broker is connected; return it."""
        assert self.process.stdout is not None
        first = self.process.stdout.readline()  # printed before the server starts
        assert first.startswith("wslab: the chat app is at "), first or self.stop()
        self.url = first.split(" at ")[1].strip().replace("http://", "ws://")
        self.stderr.wait_for("Rooms are shared through Redis")
        self.stderr.wait_for("Application startup complete.")
        # uvicorn starts listening right after that line (on the socket `wslab serve` bound): a
        # connection in between is refused at once, so try again, a bounded number of times.
        for _ in range(100):
            with contextlib.suppress(ConnectionRefusedError), socket.create_connection(self._address, 5):
                return self
            time.sleep(0.01)  # polling a process we started, for a moment
        raise AssertionError(f"the worker at {self.url} logged that it started but refuses connections")

    @property
    def _address(self) -> tuple[str, int]:
        host, port = self.url.removeprefix("ws://").rstrip("/").rsplit(":", 1)
        return host, int(port)
