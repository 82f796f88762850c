"""The load generator of ``benchmarks/broadcast.py``: a process holding many WebSocket clients that only read.

    python benchmarks/loadgen.py KIND [--deflate]        (started by room.py, several at once)

Each client is a bare non-blocking socket read through ``epoll``, with the frames parsed in a few lines,
not a ``websockets`` connection: a delivery then costs this process a few microseconds, much less than it
costs any server measured, so that the clients, on cores of their own, keep up with the server at
saturation. Every server gets the same clients; only the handshake path and the first frames differ
(:data:`DIALECTS`): the complete app's auth frame, Socket.IO's namespace connect ``40`` (and its pings).

Commands, one per line on stdin; answers, one per line on stdout:

- ``connect PORT NAME...``: open these clients to the server on PORT (``HANDSHAKES`` at a time);
  ``ready`` once each is in the room (the complete app: it read its own ``join``; Socket.IO: the server
  acknowledged ``40``; the others: the handshake is done);
- ``stats``: ``stats FRAMES BYTES CLOSED``, what the clients have received (payload bytes) and how many
  connections ended;
- ``quit``: reset every connection and exit.

Unasked, for each message carrying ``seq=K;`` once every client here has it: ``done K T``, T the
``time.monotonic()`` of the last arrival (on Linux ``CLOCK_MONOTONIC``, one clock for every process).
"""

from __future__ import annotations

import functools
import os
import select
import socket
import struct
import sys
import time
import zlib
from collections.abc import Callable
from typing import Any

from websockets.frames import Frame, Opcode

HANDSHAKES = 100  # connections opening at once (the servers' listen backlogs are larger)
READ_SIZE = 1 << 18  # bytes per recv
SECRET = "broadcast-benchmark-secret-of-at-least-32-bytes"  # signs the complete app's tokens (HS256: 32+)
HOST = "127.0.0.1"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # any Sec-WebSocket-Key will do: nobody checks the answer here
DEFLATE = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"  # what browsers offer


@functools.cache
def _tokens() -> Any:
    from wslab.reference.auth import Tokens  # a second or so to import: done before any timing

    return Tokens(SECRET)


def _app_hello(name: str) -> bytes:
    return f'{{"type":"auth","token":"{_tokens().issue(name)}"}}'.encode()


# kind -> (path for a client NAME, first frame to send, the frame's start that means "in the room")
Dialect = tuple[Callable[[str], str], Callable[[str], bytes] | None, Callable[[str], bytes] | None]
_CHAT: Dialect = (lambda name: "/ws/chat/lobby", _app_hello,
                  lambda name: f'{{"type":"join","user":"{name}",'.encode())
_PLAIN: Dialect = (lambda name: f"/ws/{name}", None, None)
DIALECTS: dict[str, Dialect] = {
    "app": _CHAT, "app-quiet": _CHAT, "manager": _PLAIN, "bare": _PLAIN, "naive": _PLAIN, "floor": _PLAIN,
    # Engine.IO opens with "0{...}"; the client then connects to the namespace, and "40{sid}" says it did
    "socketio": (lambda name: "/socket.io/?EIO=4&transport=websocket", None, lambda name: b"40"),
}
CONNECTING, UPGRADING, JOINING, READY, CLOSED = range(5)  # a client's state


class Client:
    def __init__(self, name: str, kind: str, port: int, deflate: bool) -> None:
        self.name, self.kind = name, kind
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # quit: a reset
        self.sock.connect_ex((HOST, port))
        path, hello, ready = DIALECTS[kind]
        self.request = (f"GET {path(name)} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
                        f"{DEFLATE if deflate else ''}\r\n").encode()
        self.hello = hello(name) if hello else None
        self.ready = ready(name) if ready else None
        self.state = CONNECTING
        self.buf = bytearray()
        self.inflate: zlib._Decompress | None = None

    def send(self, payload: bytes, opcode: Opcode = Opcode.TEXT) -> None:
        self.sock.send(Frame(opcode, payload).serialize(mask=True))  # small: the buffer takes it at once

    def upgraded(self) -> bool:
        """Read the handshake response; True once it is complete."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        if not head.startswith("HTTP/1.1 101"):
            raise RuntimeError(f"{self.name}: the server refused the handshake: {head.splitlines()[0]}")
        if "permessage-deflate" in head.lower():  # the server compresses; its window carries over
            self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        del self.buf[:end + 4]
        if self.hello is not None:
            self.send(self.hello)
        self.state = JOINING
        return True


class Generator:
    def __init__(self, kind: str, deflate: bool) -> None:
        self.kind, self.deflate, self.port = kind, deflate, 0
        if DIALECTS[kind][1] is _app_hello:
            _tokens()
        self.poll = select.epoll()
        self.clients: dict[int, Client] = {}
        self.waiting: list[str] = []  # names to connect
        self.opening = 0  # clients connecting or not yet in the room
        self.ready = 0
        self.frames = self.bytes = self.closed = 0
        self.seen: dict[int, list[float]] = {}  # seq -> [clients that have it, last arrival]
        self.out: list[str] = []
        self.scratch = bytearray(READ_SIZE)  # every recv lands here first: no allocation per delivery
        self.view = memoryview(self.scratch)

    # -- connecting ---------------------------------------------------------------------------------
    def open_more(self) -> None:
        while self.waiting and self.opening < HANDSHAKES:
            client = Client(self.waiting.pop(0), self.kind, self.port, self.deflate)
            self.clients[client.sock.fileno()] = client
            self.poll.register(client.sock.fileno(), select.EPOLLOUT)
            self.opening += 1

    def entered(self, client: Client) -> None:
        client.state = READY
        self.ready += 1
        self.opening -= 1
        if not self.opening and not self.waiting:
            self.out.append("ready")

    # -- reading ------------------------------------------------------------------------------------
    def readable(self, client: Client, now: float) -> None:
        """Read what ``client`` has; ``now``: when epoll said so, which every byte read here preceded."""
        try:
            size = client.sock.recv_into(self.scratch)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            size = 0
        if not size:
            return self.lost(client)
        if client.state == READY and client.inflate is None and not client.buf:  # nearly every delivery
            done = self.frames_in(client, self.scratch, size, now)
            if done < size:
                client.buf += self.view[done:size]
            return
        buf = client.buf
        buf += self.view[:size]
        if client.state == UPGRADING:
            if not client.upgraded():
                return
            if client.ready is None:  # in the room once upgraded
                self.entered(client)
        if client.state == READY and client.inflate is None:
            del buf[:self.frames_in(client, buf, len(buf), now)]
        else:
            self.slow_frames(client, now)

    def frames_in(self, client: Client, buf: bytearray, size: int, now: float) -> int:
        """Count the uncompressed frames in ``buf[:size]``, note each message's arrival; return how many
        bytes of whole frames there were. Kept short: it runs for every delivery."""
        pos = frames = data = 0
        seen, ready = self.seen, self.ready
        while size - pos >= 2:
            length, head = buf[pos + 1] & 0x7F, 2
            if length >= 126:
                head = 4 if length == 126 else 10
                if size - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2:pos + head], "big")
            end = pos + head + length
            if end > size:
                break
            opcode = buf[pos] & 0x0F
            if opcode > 2:  # control frames: rare
                self.control(client, opcode, bytes(buf[pos + head:end]))
            else:
                frames += 1
                data += length
                mark = buf.find(b"seq=", pos + head, end)
                if mark >= 0:
                    seq = int(buf[mark + 4:buf.find(b";", mark, end)])
                    hit = seen.get(seq)
                    if hit is None:
                        hit = seen[seq] = [0, now]
                    hit[0] += 1
                    hit[1] = now
                    if hit[0] == ready:
                        self.out.append(f"done {seq} {now!r}")
                elif length == 1 and buf[end - 1] == 50:  # Engine.IO's ping "2": answer "3"
                    client.send(b"3")
            pos = end
        self.frames += frames
        self.bytes += data
        return pos

    def slow_frames(self, client: Client, now: float) -> None:
        """The frames of a client that is joining or receives compressed frames."""
        buf = client.buf
        while len(buf) >= 2:
            length, head = buf[1] & 0x7F, 2
            if length >= 126:
                head = 4 if length == 126 else 10
                if len(buf) < head:
                    return
                length = int.from_bytes(buf[2:head], "big")
            if len(buf) < head + length:
                return
            first, payload = buf[0], bytes(buf[head:head + length])
            del buf[:head + length]
            if first & 0x0F > 2:
                self.control(client, first & 0x0F, payload)
                continue
            if first & 0x40 and client.inflate is not None:  # RSV1: a compressed message
                payload = client.inflate.decompress(payload + b"\x00\x00\xff\xff")
            self.frames += 1
            self.bytes += len(payload)
            if client.state == JOINING:
                if self.kind == "socketio" and payload.startswith(b"0{"):
                    client.send(b"40")
                elif client.ready is not None and payload.startswith(client.ready):
                    self.entered(client)
                continue
            mark = payload.find(b"seq=")
            if mark >= 0:
                self.arrived(int(payload[mark + 4:payload.find(b";", mark)]), now)
            elif payload == b"2":
                client.send(b"3")

    def control(self, client: Client, opcode: int, payload: bytes) -> None:
        if opcode == 9:  # ping
            client.send(payload, Opcode.PONG)
        elif opcode == 8:  # close
            self.lost(client)

    def arrived(self, seq: int, now: float) -> None:
        hit = self.seen.get(seq)
        if hit is None:
            hit = self.seen[seq] = [0, now]
        hit[0] += 1
        hit[1] = now
        if hit[0] == self.ready:
            self.out.append(f"done {seq} {now!r}")

    def lost(self, client: Client) -> None:
        if client.state != CLOSED:
            if client.state != READY:
                raise RuntimeError(f"{client.name}: the connection ended before it was in the room")
            client.state = CLOSED
            self.closed += 1
            self.poll.unregister(client.sock.fileno())

    # -- the loop -----------------------------------------------------------------------------------
    def command(self, line: str) -> bool:
        word, *args = line.split()
        if word == "connect":
            self.port = int(args[0])
            self.waiting += args[1:]
            self.open_more()
        elif word == "stats":
            self.out.append(f"stats {self.frames} {self.bytes} {self.closed}")
        elif word == "quit":
            return False
        return True

    def run(self) -> None:
        stdin = sys.stdin.fileno()
        self.poll.register(stdin, select.EPOLLIN)
        pending = b""
        running = True
        while running:
            ready = self.poll.poll(0.1)
            now = time.monotonic()
            for fd, events in ready:
                if fd == stdin:
                    chunk = os.read(stdin, 65536)
                    if not chunk:
                        running = False
                        break
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        running = running and self.command(line.decode())
                    continue
                client = self.clients[fd]
                if client.state == CONNECTING:
                    if events & (select.EPOLLERR | select.EPOLLHUP):
                        raise RuntimeError(f"{client.name}: could not connect to port {self.port}")
                    client.sock.send(client.request)
                    client.state = UPGRADING
                    self.poll.modify(fd, select.EPOLLIN)
                    continue
                was = client.state
                self.readable(client, now)
                if was != READY and client.state == READY:
                    self.open_more()
            if self.out:
                os.write(sys.stdout.fileno(), ("\n".join(self.out) + "\n").encode())
                self.out.clear()
        for client in self.clients.values():
            client.sock.close()


def main() -> None:
    Generator(sys.argv[1], "--deflate" in sys.argv[2:]).run()


if __name__ == "__main__":
    main()
