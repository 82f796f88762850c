"""One learner's connection to a live class (:mod:`wslab.reference.classroom`), kept up by its own thread.

:class:`ClassMember` logs in with the chat's ``POST /token`` and the passcode, connects to ``/ws/class``
with the token as its first frame, sends every verdict it is given, and hears what the instructor says.
Reporting a verdict only puts it in a bounded queue: the thread sends it when it can. After a laptop's
sleep, a network drop or a server restart the thread reconnects with exponential backoff, logs in again, and
sends the whole history again; each verdict has an id, so the server counts it once.
:mod:`wslab.lab.classroom` is what a notebook calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from .exceptions import WslabError

__all__ = ["ClassJoinError", "ClassMember", "exercise_of", "mistake_of", "notice_line"]

KEEP = 1000  # verdicts a notebook keeps (and resends after a reconnect); the oldest go first
MAX_BATCH = 100  # verdicts in one frame (the server's limit)
MAX_NOTICES = 20  # instructor messages waiting to be shown under the next check
RETRY_MIN, RETRY_MAX = 0.5, 10.0  # seconds between reconnection attempts: doubling, capped
TIMEOUT = 5.0  # seconds for the login, the handshake and the welcome

State = Literal["connecting", "connected", "offline", "refused", "left"]


class ClassJoinError(WslabError):
    """Joining the class failed: the message says why and what to do."""


class _Refused(Exception):
    """The server refused the login; trying again will not help until something changes."""


def exercise_of(name: str) -> tuple[str, str]:
    """``"Exercise 2.2 (no echo)"`` → ``("2.2", "no echo")``."""
    match = re.match(r"^\s*Exercise\s+([\w.-]{1,16})\s*(?:\((.{0,40})\))?", name)
    if match:
        return match.group(1), (match.group(2) or "").strip()
    return re.sub(r"[^\w.-]", "-", name.strip())[:16] or "?", ""


def mistake_of(summary: str) -> str:
    """The kind of mistake a failed check found, fit to leave the learner's machine: the summary's first
    sentence without "not right yet: ", with quoted values and reprs replaced by "…" and an exception's
    message left out (only its type), at most 160 characters."""
    text = re.sub(r"^not right yet:\s*", "", summary.strip())
    raised = re.match(r"your code raised ([A-Za-z_][\w.]*)", text)
    if raised:
        return f"your code raised {raised.group(1)}"
    text = re.sub(r"'[^']*'|\"[^\"]*\"|`[^`]*`|<[^>]*>|\{[^}]*\}|\[[^\]]*\]", "…", text)
    sentence = re.split(r"(?<=[.?!])\s", text, maxsplit=1)[0]
    return sentence[:159] + "…" if len(sentence) > 160 else sentence


class ClassMember:
    """One learner's connection to a classroom server, kept up by a thread of its own.

    ``address``: the server's address as ``wslab serve --class`` printed it (``http://host:port/``).
    :meth:`start` logs in once (raising :class:`ClassJoinError` at once for a wrong passcode or an address
    nobody answers at), then connects in the background; :meth:`report` queues a verdict; :meth:`stop`
    leaves. ``on_change`` is called (from the thread) when the state changes or a notice arrives.
    """

    def __init__(self, name: str, address: str, passcode: str | None = None, *,
                 retry_min: float = RETRY_MIN, retry_max: float = RETRY_MAX) -> None:
        parts = urlsplit(address.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ClassJoinError(f"{address!r} is not the class's address: copy the one your instructor "
                                 "shares, such as http://192.168.1.20:8000/")
        self.name = name
        self.address = f"{parts.scheme}://{parts.netloc}/"
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        self.ws_url = f"{ws_scheme}://{parts.netloc}/ws/class"
        self.passcode = passcode
        self.retry = (retry_min, retry_max)
        self.state: State = "connecting"
        self.problem = ""  # why the last connection ended or was refused
        self.connects = 0  # successful connections so far
        self.delivered: set[str] = set()  # verdict ids the server acknowledged (since this process began)
        self.on_change: Any = None
        self._history: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._outbox: deque[dict[str, Any]] = deque(maxlen=KEEP)
        self._notices: deque[dict[str, Any]] = deque(maxlen=MAX_NOTICES)
        self._heard: deque[str] = deque(maxlen=4 * MAX_NOTICES)  # ids of the notices received
        self._lock = threading.Lock()
        self._acked = threading.Condition(self._lock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._http: httpx.Client | None = None
        self._kept: Path | None = None  # where verdicts are also kept, for this machine's other kernels

    def __repr__(self) -> str:
        return f"<ClassMember {self.name} at {self.address}: {self.state}>"

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, *, login_first: bool = True) -> ClassMember:
        """Log in once (errors are raised here, clearly), then connect and stay connected in the
        background. ``login_first=False``: go to the background at once (a kernel that joins a class another
        one joined, while showing a check)."""
        try:
            if login_first:
                self._login()
        except (_Refused, httpx.HTTPError) as exc:
            if self._http is not None:
                self._http.close()
                self._http = None
            if isinstance(exc, _Refused):
                raise ClassJoinError(str(exc)) from None
            raise ClassJoinError(f"nobody answers at {self.address} ({type(exc).__name__}): check the "
                                 "address, and that you are on the same network as the instructor") from None
        ready = threading.Event()
        self._thread = threading.Thread(target=self._main, args=(ready,), name=f"wslab-class-{self.name}",
                                        daemon=True)
        self._thread.start()
        ready.wait(TIMEOUT)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Leave the class: close the connection and end the thread. Safe to call twice."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
        if self._http is not None and (self._thread is None or not self._thread.is_alive()):
            self._http.close()
        self._set_state("left")

    # -- what the notebook calls --------------------------------------------------------------------
    def report(self, exercise: str, status: str, summary: str = "", *,
               at: float | None = None) -> dict[str, Any]:
        """Queue one verdict (``exercise`` as a check names it, ``status`` "passed", "failed" or "not done")
        and return it. Never waits: the thread sends it when it can."""
        ident, title = exercise_of(exercise)
        verdict: dict[str, Any] = {"id": uuid.uuid4().hex, "exercise": ident, "status": status,
                                   "at": time.time() if at is None else at}
        if title:
            verdict["title"] = title
        if status == "failed" and summary:
            verdict["mistake"] = mistake_of(summary)
        with self._lock:
            self._history.append(verdict)
            self._outbox.append(verdict)
        self._poke()
        if self._kept is not None:
            # a full disk loses the copy, never the verdict
            with contextlib.suppress(OSError), self._kept.open("a", encoding="utf-8") as file:
                file.write(json.dumps(verdict) + "\n")
        return verdict

    def keep_in(self, path: Path) -> None:
        """Keep every verdict in ``path`` too (one JSON object a line), and send the ones already there: what
        other kernels of this machine reported, so that a server that restarted gets them all back."""
        with contextlib.suppress(OSError, ValueError):
            lines = path.read_text(encoding="utf-8").splitlines()[-KEEP:]
            with self._lock:
                for line in lines:
                    verdict = json.loads(line)
                    if isinstance(verdict, dict):
                        self._history.append(verdict)
        self._kept = path

    def take_notices(self) -> list[str]:
        """What the instructor said since the last call, as lines to show under a check."""
        with self._lock:
            notices = list(self._notices)
            self._notices.clear()
        return [notice_line(notice) for notice in notices]

    def wait_delivered(self, count: int, timeout: float) -> bool:
        """Wait until the server acknowledged ``count`` distinct verdicts; False on timeout (tests)."""
        with self._acked:
            return self._acked.wait_for(lambda: len(self.delivered) >= count, timeout)

    @property
    def history(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._history)

    # -- the thread ---------------------------------------------------------------------------------
    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the member left
                loop.call_soon_threadsafe(wake.set)

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._run(ready))
        finally:
            loop.close()

    async def _run(self, ready: threading.Event) -> None:
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        self._loop = asyncio.get_running_loop()
        ready.set()
        delay = self.retry[0]
        while not self._stop.is_set():
            try:
                token = await asyncio.to_thread(self._login)
                async with ws_connect(self.ws_url, open_timeout=TIMEOUT, close_timeout=1) as ws:
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                    async with asyncio.timeout(TIMEOUT):
                        welcome = json.loads(await ws.recv())
                    if welcome.get("type") != "welcome":
                        raise ValueError(f"the server answered {str(welcome)[:80]}")
                    self.connects += 1
                    self._set_state("connected")
                    delay = self.retry[0]
                    await self._session(ws)
                    self.problem = "the server closed the connection"
            except _Refused as exc:
                self.problem = str(exc)
                self._set_state("refused")
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError, ValueError,
                    httpx.HTTPError) as exc:
                self.problem = _why(exc)
            if self._stop.is_set():
                break
            if self.state != "refused":
                self._set_state("offline")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stop.wait()
            delay = min(delay * 2, self.retry[1])

    async def _session(self, ws: ClientConnection) -> None:
        """Send the whole history, then each new verdict, until the connection ends or the member leaves."""
        assert self._wake is not None and self._stop is not None
        with self._lock:
            pending = list(self._history)
            self._outbox.clear()
        reader = asyncio.create_task(self._read(ws))
        stopping = asyncio.create_task(self._stop.wait())
        try:
            while True:
                for start in range(0, len(pending), MAX_BATCH):
                    batch = pending[start:start + MAX_BATCH]
                    await ws.send(json.dumps({"type": "verdicts", "verdicts": batch}))
                self._wake.clear()
                with self._lock:
                    pending = list(self._outbox)
                    self._outbox.clear()
                if pending:
                    continue
                woken = asyncio.create_task(self._wake.wait())
                done, _ = await asyncio.wait({reader, stopping, woken}, return_when=asyncio.FIRST_COMPLETED)
                woken.cancel()
                if reader in done:
                    reader.result()  # raises ConnectionClosed
                    return
                if stopping in done:
                    return
                with self._lock:
                    pending = list(self._outbox)
                    self._outbox.clear()
        finally:
            for task in (reader, stopping):
                task.cancel()

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            try:
                frame = json.loads(message)
            except ValueError:
                continue
            kind = frame.get("type") if isinstance(frame, dict) else None
            if kind == "ack":
                with self._acked:
                    self.delivered.update(str(ident) for ident in frame.get("ids", []))
                    self._acked.notify_all()
            elif kind == "announcement":
                ident = str(frame.get("id", ""))
                if ident in self._heard:  # sent again after a reconnect
                    continue
                self._heard.append(ident)
                with self._lock:
                    self._notices.append(frame)
                self._changed()
            elif kind == "error":
                self.problem = str(frame.get("message", ""))[:200]

    def _login(self) -> str:
        if self._http is None:
            # One client, kept. For a plain http:// class no TLS is involved, so none is set up: loading the
            # certificate store takes up to 200 ms, holding the GIL, so a check running meanwhile would wait.
            self._http = httpx.Client(timeout=TIMEOUT, verify=self.address.startswith("https:"))
        response = self._http.post(self.address + "token",
                                   json={"username": self.name, "passcode": self.passcode})
        if response.status_code in (401, 403, 422):
            try:
                detail = str(response.json().get("detail"))
            except ValueError:
                detail = response.text[:200]
            if response.status_code == 422:
                detail = "the name must be 1 to 32 letters, digits, _ . -"
            raise _Refused(f"the class refused to let {self.name!r} in: {detail}")
        response.raise_for_status()
        return str(response.json()["access_token"])

    def _set_state(self, state: State) -> None:
        if state != self.state:
            self.state = state
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            with contextlib.suppress(Exception):  # a status line that cannot be drawn is no reason to stop
                self.on_change(self)


def notice_line(notice: dict[str, Any]) -> str:
    """One line for what the instructor said."""
    content = str(notice.get("content", ""))
    kind = notice.get("kind")
    if kind == "hint":
        return f"💡 Hint from your instructor for {notice.get('exercise') or 'everyone'}: {content}"
    if kind == "chapter":
        return f"➡️  Your instructor: we're moving on: {content}"
    return f"📣 Your instructor: {content}"


def _why(exc: BaseException) -> str:
    if isinstance(exc, ConnectionClosed):
        frame = exc.rcvd
        return f"closed {frame.code}: {frame.reason}" if frame is not None else "the connection dropped"
    return f"{type(exc).__name__}: {exc}"[:200]
