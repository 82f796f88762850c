"""A real Redis for the lessons and the tests: Debian's ``redis-server`` on a free loopback port.

Chapter 08 and the tests need a Redis of their own, not a mock: one that listens on 127.0.0.1 at a port
nobody else uses, writes nothing to disk (``--save "" --appendonly no``, a temporary directory), and
can be stopped and started again on the same port to show what the chat does while Redis is away.

    with RedisServer() as redis:              # returns once it answers
        app = create_app(broker=redis.url)    # 'redis://127.0.0.1:<port>/0'
        redis.stop()                          # Redis goes away...
        redis.start()                         # ...and comes back on the same port, empty

Every server still running is stopped when the Python process exits.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from .exceptions import ServerStartError

__all__ = ["RedisServer", "RedisServerError", "find_redis_server"]

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds for redis-server to start answering
_INSTALL = ("Install it with `sudo apt-get install redis-server` (Debian, Ubuntu) or `brew install redis` "
            "(macOS), or pass executable='/path/to/redis-server'.")

_running: set[RedisServer] = set()
_running_lock = threading.Lock()


class RedisServerError(ServerStartError):
    """``redis-server`` is missing, or did not start; the message says why and what to do."""


def find_redis_server() -> str:
    """The path of ``redis-server``: ``$WSLAB_REDIS_SERVER`` if set, else the one on ``PATH``; raises
    :class:`RedisServerError` saying how to install it."""
    chosen = os.environ.get("WSLAB_REDIS_SERVER")
    if chosen:
        if not os.access(chosen, os.X_OK) or not Path(chosen).is_file():
            raise RedisServerError(f"$WSLAB_REDIS_SERVER is {chosen}, which is not a program: point it at "
                                   f"redis-server, or unset it. {_INSTALL}")
        return chosen
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).is_file()), None)
    if found is None:
        raise RedisServerError(f"redis-server was not found on this machine. {_INSTALL}")
    return found


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, started by :meth:`start` and stopped by :meth:`stop`.

    ``port=0`` picks a free port at the first start; later starts reuse it, so clients that reconnect
    find the server again. ``executable`` defaults to :func:`find_redis_server`'s.
    """

    def __init__(self, port: int = 0, *, executable: str | None = None) -> None:
        self.executable = executable or find_redis_server()
        self.port = port
        self._fixed_port = port != 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        """The address clients use, for example ``redis://127.0.0.1:41234/0``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def __repr__(self) -> str:
        return f"RedisServer({'running' if self.running else 'stopped'})"

    def start(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Start ``redis-server`` and return once it answers (``INFO`` gives its process id). Does
        nothing if it is running."""
        if self.running:
            return self
        attempts = 1 if self._fixed_port else 3  # a port picked here may be taken before Redis binds it
        for attempt in range(attempts):
            if not self._fixed_port:
                self.port = _free_port()
            try:
                self._launch(timeout)
            except RedisServerError as exc:
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                continue
            self._fixed_port = True
            with _running_lock:
                _running.add(self)
            return self
        raise AssertionError("unreachable")

    def _launch(self, timeout: float) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wslab-redis-")
        log = Path(self._dir.name) / "redis.log"
        command = [self.executable, "--bind", HOST, "--port", str(self.port), "--save", "",
                   "--appendonly", "no", "--dir", self._dir.name, "--logfile", str(log),
                   "--daemonize", "no", "--protected-mode", "yes", "--databases", "16"]
        try:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.STDOUT)
        except OSError as exc:
            self._cleanup()
            raise RedisServerError(f"cannot run {self.executable}: {exc}. {_INSTALL}") from exc
        deadline = time.monotonic() + timeout
        while _server_pid(self.port) != self._process.pid:  # ours, not another program on that port
            if self._process.poll() is not None or time.monotonic() > deadline:
                exited = self._process.poll() is not None
                why = _last_lines(log) or f"exit status {self._process.poll()}"
                self._kill()
                self._cleanup()
                if "Address already in use" in why:
                    raise RedisServerError(f"Port {self.port} on {HOST} is already in use, so redis-server "
                                           f"cannot listen there. Use port=0 for a free port. ({why})")
                what = "stopped at once" if exited else f"did not answer within {timeout:g} s"
                raise RedisServerError(f"redis-server on {HOST} port {self.port} {what}: {why}")
            time.sleep(0.02)  # polling a process we started, bounded by the deadline

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (its data is gone: nothing is saved). Safe to call more than once."""
        with _running_lock:
            _running.discard(self)
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill()
        self._process = None
        self._cleanup()

    def restart(self, timeout: float = START_TIMEOUT) -> RedisServer:
        """Stop the server and start an empty one on the same port."""
        self.stop()
        return self.start(timeout)

    def _kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def _cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _server_pid(port: int) -> int | None:
    """The process id of the Redis answering on ``port`` (``INFO server``), or None if none answers."""
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5) as sock:
        sock.sendall(b"INFO server\r\n")
        reply = b""
        while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                return None
            reply += chunk
        found = re.search(rb"process_id:(\d+)", reply)
        return int(found[1]) if found else None
    return None


def _last_lines(log: Path, count: int = 3) -> str:
    with contextlib.suppress(OSError):
        lines = [line.split(" * ")[-1].split(" # ")[-1] for line in log.read_text().splitlines() if line]
        return " / ".join(lines[-count:])
    return ""


@atexit.register
def _stop_all() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop(timeout=2.0)
