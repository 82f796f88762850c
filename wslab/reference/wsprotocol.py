"""uvicorn's WebSocket protocol, except that a close never waits on a client that does not read, and a client
that stopped reading does not keep its connection.

With uvicorn's ``websockets-sansio`` protocol, every ``websocket.close`` first waits until the connection
can be written to. A client that stopped reading never makes it writable again, so the close waits forever,
and when the handler gives up and returns, uvicorn's ``transport.close()`` still waits for the unsent
backlog: the socket, its file descriptor and megabytes of buffers stay until the client reads or dies.

:class:`WebSocketProtocol` sends the close at once, behind the backlog, through uvicorn's own close (with
its guards: nothing is sent on a connection that is already closing). From then on it watches the backlog,
what is still to be delivered in this process's buffer and in the kernel's: as long as the client takes some
of it every ``ABORT_AFTER`` seconds, it is reading, however slowly, and gets everything and then the close
frame with its code and reason. A client that took nothing for ``ABORT_AFTER`` seconds has stopped reading:
its connection is dropped (a TCP reset, discarding the backlog), so a client kicked for being too slow
(:meth:`wslab.reference.manager.Client.kick`) is really gone. The same watch starts when the handler
receives a disconnect (the client's own close, whose reply waits behind the backlog too). Each drop is
logged at INFO, and so is each frame the protocol layer refused (too big, not UTF-8, malformed), which the
handler never sees (uvicorn's own ERROR and traceback for text that is not UTF-8 is filtered out: a client
could fill the log with them).

The kernel's part of the backlog is read where the system says it (Linux, macOS); elsewhere only this
process's part counts, and once it is sent the rest is left to the kernel, as uvicorn does.

Once a connection is accepted, it offers the writers of :mod:`wslab.reference.manager` a way around the
ASGI send (the scope extension :data:`~wslab.reference.manager.FRAMES`): a writer hands everything it has
queued to one ``transport.write``, instead of one ASGI send per text and client, each passing through
Starlette and uvicorn. Each text is framed once however many clients a broadcast sends it to (a server's
frames are not masked, so every client gets the same bytes); with permessage-deflate, each client's frames
are compressed with its own context, by websockets as the ASGI send would.

It also stops uvicorn before 0.55 from logging an ERROR after a handler refuses a handshake with an HTTP
response (``websocket.send_denial_response``, :func:`wslab.reference.auth.refuse`).

What it needs of uvicorn, besides the ``asyncio.Protocol`` methods every protocol has, is listed in
:data:`UVICORN_RELIES_ON`; a test checks each against the installed uvicorn. :func:`wslab.serve` and
``wslab serve`` use it; elsewhere pass the class to uvicorn, with the frame limit
(:data:`wslab.reference.manager.MAX_FRAME`)::

    uvicorn.run(app, ws=WebSocketProtocol, ws_max_size=MAX_FRAME)
    uvicorn wslab.reference.app:app --ws wslab.reference.wsprotocol:WebSocketProtocol --ws-max-size 65536
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from .manager import FRAMES, LOGGED_PATH

__all__ = ["ABORT_AFTER", "UVICORN_RELIES_ON", "WebSocketProtocol"]

ABORT_AFTER = 2.0  # seconds a closing connection's peer may take none of its backlog before it is dropped

# What WebSocketProtocol uses of uvicorn's WebSocketsSansIOProtocol beyond asyncio.Protocol's own contract:
# name -> (what it must be, why). tests/test_wsprotocol.py checks each against the installed uvicorn.
UVICORN_RELIES_ON: dict[str, tuple[str, str]] = {
    "send": ("coroutine method", "the ASGI send the app gets: overridden to send a close without waiting"),
    "receive": ("coroutine method", "the ASGI receive the app gets: a disconnect starts the watch"),
    "resume_writing": ("method of uvicorn's", "releases a send that waits for a writable transport"),
    "connection_made": ("method of uvicorn's", "extended to keep the transport"),
    "connection_lost": ("method of uvicorn's", "extended to end the watch"),
    "handshake_complete": ("bool attribute", "set after a denial response, as uvicorn does from 0.55 on"),
    "writable": ("Event attribute", "set while the transport takes more: the FRAMES writers wait on it"),
    "conn": ("ServerProtocol attribute", "its state and extensions: may frames be written directly"),
}

# Close codes the protocol layer sends when it refuses a frame (websockets' parser: a protocol error,
# text that is not UTF-8, a frame over ws_max_size); a client that closes by itself sends 1000 or 1001.
REFUSALS = frozenset({1002, 1007, 1009})

_log = logging.getLogger(__name__)  # frames refused and connections dropped for not reading, at INFO


class _NoTracebackForBadText(logging.Filter):
    """uvicorn logs an ERROR with a traceback for every text frame that is not UTF-8, which any client can
    send as often as it likes; :class:`WebSocketProtocol` logs that refusal (1007) at INFO, with who."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Invalid UTF-8 sequence received from client."


logging.getLogger("uvicorn.error").addFilter(_NoTracebackForBadText())


class _State(enum.Enum):
    """Where a connection is, as this class needs to know it."""

    CONNECTING = "connecting"  # no accept yet (a denial response stays here)
    OPEN = "open"
    CLOSING = "closing"  # a close was sent or received; the backlog may still be on its way
    CLOSED = "closed"  # the transport is gone


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` with a close that never waits on a client that does not read, and a closing
    connection that is dropped once its client takes none of its backlog for ``ABORT_AFTER`` seconds."""

    _state = _State.CONNECTING
    _transport: asyncio.Transport | None = None
    _watch: asyncio.TimerHandle | None = None  # the next look at the backlog, while watching it
    _backlog = 0  # bytes still to deliver at the last look
    _offer_frames = True  # offer FRAMES to the app (False: every text is an ASGI send, as elsewhere)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._state = _State.CLOSED
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        super().connection_lost(exc)

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "websocket.close" and self._state is _State.OPEN:
            self._state = _State.CLOSING
            # uvicorn's close waits for a writable transport, which a client that stopped reading never
            # gives. Writing never blocks (the frame joins the backlog), so let it go ahead now.
            self.resume_writing()
            try:
                await super().send(message)
            finally:
                self._start_watch()
            return
        await super().send(message)
        if kind == "websocket.accept" and self._state is _State.CONNECTING:
            self._state = _State.OPEN
            if self._offer_frames:
                extensions = self.scope.setdefault("extensions", {})
                extensions[FRAMES] = {"write": self._write_texts, "writable": self.writable}
        elif kind == "websocket.http.response.body" and not message.get("more_body", False):
            # A denial response (a refusal before accept) is complete: without this, uvicorn before 0.55 logs
            # "ASGI callable returned without completing handshake." as an ERROR once the handler returns.
            self.handshake_complete = True

    async def receive(self) -> Any:
        message = await super().receive()
        if message["type"] == "websocket.disconnect" and self._state is _State.OPEN:
            self._state = _State.CLOSING  # the client closed, or a frame it sent was refused
            if message.get("code") in REFUSALS:  # the handler never saw the frame: say here who and why
                _log.info("%s - %s - closed %d: %s", self._who(), self._path(), message["code"],
                          message.get("reason") or "a frame it sent was refused")
            self._start_watch()
        return message

    def _write_texts(self, texts: Sequence[str]) -> bool:
        """Write ``texts`` as text frames, all in one write, without waiting (the FRAMES extension of
        :mod:`wslab.reference.manager`). False, with nothing written, once the connection is no longer
        open or a text cannot be encoded; the caller then sends them the ASGI way, which says why."""
        if self._state is not _State.OPEN or self.conn.state is not State.OPEN or self._transport is None:
            return False
        try:
            if self.conn.extensions:  # permessage-deflate: compressed with this connection's own context
                for text in texts:
                    self.conn.send_text(text.encode())
                data = b"".join(self.conn.data_to_send())
            else:
                data = b"".join(map(_frame, texts)) if len(texts) != 1 else _frame(texts[0])
        except UnicodeEncodeError:  # a lone surrogate: not UTF-8
            return False
        self._transport.write(data)
        return True

    def _who(self) -> str:
        peer = self._transport.get_extra_info("peername") if self._transport is not None else None
        return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

    def _path(self) -> str:
        return json.dumps(str(getattr(self, "scope", {}).get("path", ""))[:LOGGED_PATH], ensure_ascii=False)

    # -- the watch -------------------------------------------------------------------------------------
    def _start_watch(self) -> None:
        if self._watch is None and self._state is _State.CLOSING and self._transport is not None:
            self._backlog = self._undelivered()
            if self._backlog:
                self._watch = asyncio.get_running_loop().call_later(ABORT_AFTER, self._look)

    def _look(self) -> None:
        """Every ``ABORT_AFTER`` seconds until the backlog is delivered: drop the connection if the client
        took none of it since the last look."""
        self._watch = None
        if self._state is not _State.CLOSING or self._transport is None:
            return
        left = self._undelivered()
        if left == 0:
            return  # delivered: the closing handshake ends as uvicorn ends it
        if left < self._backlog:
            self._backlog = left
            self._watch = asyncio.get_running_loop().call_later(ABORT_AFTER, self._look)
            return
        _log.info("%s - %s - dropped: it took none of the %d bytes still to send for %g s after the close",
                  self._who(), self._path(), left, ABORT_AFTER)
        self._drop()

    def _undelivered(self) -> int:
        """Bytes not yet delivered: in the transport's buffer, plus those the kernel still holds."""
        assert self._transport is not None
        return self._transport.get_write_buffer_size() + _kernel_backlog(self._transport)

    def _drop(self) -> None:
        """Drop the connection now. A plain close would leave the kernel holding the socket (and its unsent
        backlog) for minutes, retrying a peer that does not read; linger 0 makes it a reset."""
        assert self._transport is not None
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self._transport.abort()


_FRAMED = 32  # texts whose frames are kept: a broadcast frames each text once, for every client it reaches


class _Framed(threading.local):
    """The frames made last in this thread (one server's event loop): id(text) -> (text, frame)."""

    def __init__(self) -> None:
        self.frames: dict[int, tuple[str, bytes]] = {}


_framed = _Framed()


def _frame(text: str) -> bytes:
    """The text frame that carries ``text`` from a server (unmasked, so every client gets the same bytes):
    made once for the same ``str`` object, which a broadcast hands to each of its clients."""
    frames = _framed.frames
    kept = frames.get(id(text))
    if kept is not None and kept[0] is text:
        return kept[1]
    frame = Frame(Opcode.TEXT, text.encode()).serialize(mask=False)
    if len(frames) >= _FRAMED:
        del frames[next(iter(frames))]  # the oldest
    frames[id(text)] = (text, frame)  # the text is kept too, so that its id is not reused meanwhile
    return frame


_SO_NWRITE = 0x1024  # macOS getsockopt: bytes written but not yet acknowledged by the peer


def _kernel_backlog(transport: asyncio.Transport) -> int:
    """Bytes the kernel still holds for the peer (not sent, or not acknowledged); 0 where it cannot tell."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    with contextlib.suppress(OSError, ValueError):
        if sys.platform == "linux":
            import fcntl
            import termios

            queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))  # SIOCOUTQ
            return int(struct.unpack("i", queued)[0])
        if sys.platform == "darwin":
            return int(sock.getsockopt(socket.SOL_SOCKET, _SO_NWRITE))
    return 0
