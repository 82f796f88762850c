"""uvicorn's WebSocket protocol, except that closing a client that stopped reading does not wait for it.

With uvicorn's ``websockets-sansio`` protocol, every ``websocket.close`` first waits until the
connection can be written to. A client that stopped reading never makes it writable again, so the close
waits forever, and when the handler gives up and returns, uvicorn's ``transport.close()`` still waits for
the unsent backlog: the socket, its file descriptor and megabytes of kernel buffers stay until the
client reads or dies. :class:`WebSocketProtocol` queues the close frame behind the backlog at once and
drops the connection (a TCP reset, discarding the backlog) if the closing handshake has not finished
within ``ABORT_AFTER`` seconds, so a client kicked for being too slow
(:meth:`wslab.reference.manager.Client.kick`) is really gone. A client that reads again in
time gets its backlog and then the close frame, with its code and reason.

It also stops uvicorn from logging an ERROR after a handler refuses a handshake with an HTTP response
(``websocket.send_denial_response``, :func:`wslab.reference.auth.refuse`).

:func:`wslab.serve` uses it; elsewhere pass the class to uvicorn::

    uvicorn.run(app, ws=WebSocketProtocol)
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .manager import LOGGED_PATH

__all__ = ["ABORT_AFTER", "WebSocketProtocol"]

ABORT_AFTER = 2.0  # seconds a closing client that does not read gets before its connection is dropped

_log = logging.getLogger(__name__)  # each connection dropped for not answering its close (INFO)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """``websockets-sansio`` with a close that never waits on a client that does not read."""

    async def send(self, message: Any) -> None:
        closing = (message["type"] == "websocket.close" and self.handshake_complete and not self.close_sent
                   and not self.disconnected and self.initial_response is None)
        if closing and not self.writable.is_set():
            self._close_without_waiting(message.get("code", 1000), message.get("reason") or "")
            return
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # A denial response (a refusal before accept) is complete: without this, uvicorn logs
            # "ASGI callable returned without completing handshake." as an ERROR once the handler returns.
            self.handshake_complete = True
        if closing and self.close_timer is not None:
            # uvicorn's timer ends with a graceful transport.close(), which waits for the backlog too.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(ABORT_AFTER, self._reset)

    def _reset(self) -> None:
        """Drop the connection now. A plain close would leave the kernel holding the socket (and its
        unsent backlog) for minutes, retrying a peer that does not read; linger 0 makes it a reset."""
        peer = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        path = json.dumps(str(getattr(self, "scope", {}).get("path", ""))[:LOGGED_PATH], ensure_ascii=False)
        _log.info("%s - %s - dropped: no answer to its close frame within %g s", peer, path, ABORT_AFTER)
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def _close_without_waiting(self, code: int, reason: str) -> None:
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))  # behind the backlog
        self.close_sent = True
        if self.read_paused:  # so that the client's close reply is read, as uvicorn's own close does
            self.read_paused = False
            self.transport.resume_reading()
        # Set, the timer also keeps uvicorn from a graceful transport.close() when the handler returns,
        # which would wait for the backlog to drain. The peer's close reply cancels it (handle_close).
        self.close_timer = self.loop.call_later(ABORT_AFTER, self._reset)
