"""A WebSocket client on a plain blocking socket, for tests that decide when, and how much, a client reads.

The websockets library's clients read everything as it arrives; a test of a slow or stalled reader, or of
bytes no well-behaved client would send, needs its own hands on the socket. Framing is still the websockets
library's (its Sans-I/O ``ClientProtocol``), so what this client sends and parses is valid unless a test
writes raw bytes on purpose.

    with RawClient(server.port, "/ws") as client:
        frames = client.read(4096)          # whatever arrived, up to 4 KB, parsed into frames
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from pathlib import Path
from types import TracebackType

from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.uri import parse_uri

HANDSHAKE_WITHIN = 5.0  # seconds the opening handshake may take
ANNOUNCED, SENT = 10_000_000, 100_000  # an oversized frame: its header says 10 MB, of which 100 KB are sent
REFUSED_WITHIN = 3.0  # seconds in which a server refuses it "at once", with room for a loaded machine
ESTABLISHED_OR_CLOSING = {"01", "04", "05", "06", "08", "0B"}  # /proc/net/tcp states that hold a socket


def server_holds_connection(server_port: int, client_port: int) -> bool:
    """Whether the server's end of the TCP connection from ``client_port`` still exists (Linux)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if (int(local.split(":")[1], 16), int(remote.split(":")[1], 16)) == (server_port, client_port):
            return state in ESTABLISHED_OR_CLOSING
    return False


def refusal_of_an_oversized_frame(port: int, path: str) -> tuple[int, str] | None:
    """Connect to ``path``, send the start of a frame announced at ANNOUNCED bytes, and return the code and
    reason of the close frame the server sends within REFUSED_WITHIN seconds (None if it sends none)."""
    with RawClient(port, path) as client:
        client.send_announcing(ANNOUNCED, bytes(SENT))
        return client.read_until_closed(REFUSED_WITHIN)


class RawClient:
    """A connected WebSocket client that reads only when told to. ``receive_buffer`` sets the socket's
    SO_RCVBUF before connecting (a small one makes the server's writes back up sooner)."""

    def __init__(self, port: int, path: str = "/", *, receive_buffer: int | None = None,
                 timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(("127.0.0.1", port))
        except OSError:
            self.sock.close()
            raise
        self.port = int(self.sock.getsockname()[1])
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        self.protocol.send_request(self.protocol.connect())
        self.flush()
        self.frames: list[Frame] = []  # every frame received so far, in order
        self.after_handshake = 0  # bytes received after the handshake response (frames, whole or partial)
        received = b""
        deadline = time.monotonic() + HANDSHAKE_WITHIN
        while self.protocol.state is State.CONNECTING and time.monotonic() < deadline:
            data = self.sock.recv(4096)
            if not data:
                break
            received += data
            self._feed(data)
        if self.protocol.state is not State.OPEN:
            self.sock.close()
            raise ConnectionError(f"the handshake failed: {received[:200]!r}")
        self.after_handshake = len(received) - (received.index(b"\r\n\r\n") + 4)

    def _feed(self, data: bytes) -> list[Frame]:
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        frames = [event for event in self.protocol.events_received() if isinstance(event, Frame)]
        self.frames += frames
        with contextlib.suppress(OSError):  # the server may be gone already
            self.flush()  # replies the protocol owes: a pong, the close frame's echo
        return frames

    def flush(self) -> None:
        """Send what the protocol has queued (a request, a reply, a frame a test queued on it)."""
        data = b"".join(self.protocol.data_to_send())
        if data:
            self.sock.sendall(data)

    def read(self, size: int) -> list[Frame]:
        """Receive up to ``size`` bytes (waiting up to the socket's timeout for the first) and return the
        frames they completed. At the end of the stream, the frames a clean end completes, if any."""
        data = self.sock.recv(size)
        self.after_handshake += len(data)
        return self._feed(data)

    def send_announcing(self, length: int, payload: bytes) -> None:
        """Send the start of a text frame whose header announces ``length`` bytes: its header and ``payload``
        (a client that sends a huge frame slowly, or never finishes it)."""
        mask = b"\0\0\0\0"  # a zero masking key leaves the payload as it is
        self.sock.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", length) + mask + payload)

    def read_until_closed(self, within: float) -> tuple[int, str] | None:
        """Read until the server's close frame arrives or the connection ends, for at most ``within``
        seconds; return the close frame's code and reason, or None if none came."""
        deadline = time.monotonic() + within
        while self.close_frame is None and (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            self._feed(data)
            if not data:
                break
        return self.close_frame

    @property
    def close_frame(self) -> tuple[int, str] | None:
        """The code and reason of the server's close frame, once it arrived."""
        received = self.protocol.close_rcvd
        return None if received is None else (received.code, received.reason)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
