"""A transcript of who sent what over which connection, printed the same way on every run.

Lines name the client, an arrow and the message, never a port, an address or a time, so a notebook's
output can be compared from run to run::

    you → hello
    you ← Message received: hello
    you ✕ closed by the server: 1011 (internal error)

(``⌛`` marks a wait that timed out; an access token shows as ``<token>``.)

Lines are recorded when the code *consumes* an event (a ``send`` or a ``recv`` in the cell), not when
bytes arrive on the socket, so several clients in one cell still print in the cell's own order.
"""

from __future__ import annotations

import json
import re
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, CloseCode

__all__ = ["Transcript", "describe_close", "describe_message"]

SENT, RECEIVED, EVENT, WAITED = "→", "←", "✕", "⌛"
MAX_SHOWN = 200  # characters of one message shown in a line
_TOKEN = re.compile(r"eyJ[\w-]*\.[\w-]*\.[\w-]*")  # a JWT: never printed, and never the same twice


class Transcript:
    """The lines several clients write; printed as they come when ``live`` is true."""

    def __init__(self, *, live: bool = True) -> None:
        self.live = live
        self.lines: list[str] = []

    def add(self, who: str, arrow: str, text: str) -> None:
        line = f"{who} {arrow} {text}"
        self.lines.append(line)
        if self.live:
            print(line)

    def clear(self) -> None:
        self.lines.clear()

    def __str__(self) -> str:
        return "\n".join(self.lines)

    def __repr__(self) -> str:
        return f"Transcript({len(self.lines)} lines)"

    def _ipython_display_(self) -> None:
        # A live transcript has printed itself line by line already: showing it again as a cell's
        # value would print everything twice.
        if not self.live:
            print(self)


def describe_message(message: Any) -> str:
    """A frame's content as one line: text as it is, bytes as a ``b'…'`` literal, other data as JSON."""
    if isinstance(message, (bytes, bytearray, memoryview)):
        data = bytes(message)
        shown = repr(data[:MAX_SHOWN]) + ("…" if len(data) > MAX_SHOWN else "")
        return f"{shown} (binary, {len(data)} bytes)"
    text = message if isinstance(message, str) else json.dumps(message, ensure_ascii=False)
    text = _TOKEN.sub("<token>", text.replace("\n", "\\n"))
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + f"… ({len(text)} characters)"


def close_code_text(code: int) -> str:
    """``1008 (policy violation)``: a close code with its meaning."""
    try:
        meaning = CloseCode(code).name.lower().replace("_", " ")
    except ValueError:
        meaning = "application-defined" if 3000 <= code < 5000 else "unknown code"
    return f"{code} ({meaning})"


def describe_close(exc: ConnectionClosed, *, by_us: bool = False) -> str:
    """How a connection ended, from the close frames each side sent."""
    first: Close | None
    if exc.rcvd is None and exc.sent is None:
        return "connection lost without a close frame: 1006 (abnormal closure)"
    if exc.rcvd is not None and (exc.sent is None or exc.rcvd_then_sent):
        first, who = exc.rcvd, "closed by the server"
    else:
        first, who = exc.sent, "closed" if by_us else "closed by this client"
    assert first is not None
    reason = f' "{first.reason}"' if first.reason else ""
    return f"{who}: {close_code_text(first.code)}{reason}"
