"""One client that stops reading, in a room of 20: wslab's hardened manager against the tutorial's loop and a
bare ``websockets`` server.

    python3 run.py bench stalled_client [--quick] [--json PATH]

(Fan-out at scale, server CPU per message, memory and presence are ``benchmarks/broadcast.py``'s.)

Servers, each in a subprocess on 127.0.0.1: ``hardened`` (``wslab.reference.manager.broadcast_app()``) and
``naive`` (``wslab.demos.naive.naive_broadcast_app()``) under uvicorn with
``wslab.reference.wsprotocol.WebSocketProtocol`` (the ``websockets-sansio`` protocol that ``wslab.serve``
runs, whose close never waits on a client that stopped reading), and ``bare``, a
``websockets`` server using ``websockets.broadcast()``. Each relays a text sent to ``/ws/{name}`` to all.

20 clients, one never reads. The sender sends 6,000 unique ~1 KB messages at 1,000/s (``--quick``:
1,500/s) and reads its copies. Without and with the stalled client: healthy clients' latency p50/p99 and
lost messages, server peak memory (VmHWM); with it, when the stalled client left the room (the others hear
"slow left the chat"; the hardened manager kicks a client the moment its queue is full), when the server
dropped its connection (polling /proc/net/tcp for up to 5 s after it left), and the close code it reads
once it reads again (1013 if it reads within ``wslab.reference.wsprotocol.ABORT_AFTER`` seconds of the
kick, 1006 after the reset). A room with no progress for 5 s is reported as frozen.

All clients (``websockets`` asyncio client, no compression, unique payloads) run in this one process, so
time stamps share a clock. Server output goes to a temporary file; tracebacks logged while measuring are
counted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from broadcast_servers import raise_nofile
from subprocess_server import serve_script
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

BATCH, IDLE = 50, 5.0  # clients connecting at once; seconds without progress before a wait gives up
STALL_CLIENTS, STALL_MESSAGES, STALL_PAYLOAD = 20, 6000, 1000
RATE, QUICK_RATE = 1000.0, 1500.0  # stalled-client runs: messages sent per second
MEMORY_SLACK_MB = 2.5  # "bounded": the stalled client's queue (512 x 1 KB) and some noise
T = TypeVar("T")
Record = list[tuple[int, float, float]]  # (sequence number, sent, received) at one client
Row = dict[str, Any]


# -- servers ----------------------------------------------------------------------------------------
def _serve(kind: str, port: int) -> None:
    """Run one server in this process until it is terminated."""
    raise_nofile()  # and hush asyncio's "socket.send() raised exception." when clients vanish at the end:
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    if kind == "bare":
        return asyncio.run(_serve_bare(port))
    import uvicorn

    from wslab.demos.naive import naive_broadcast_app
    from wslab.reference.manager import MAX_FRAME, broadcast_app
    from wslab.reference.wsprotocol import WebSocketProtocol

    app = broadcast_app() if kind == "hardened" else naive_broadcast_app()
    uvicorn.run(app, host="127.0.0.1", port=port, ws=WebSocketProtocol, ws_max_size=MAX_FRAME,
                log_level="warning")


async def _serve_bare(port: int) -> None:
    import websockets
    from websockets.asyncio.server import ServerConnection, serve

    connections: set[ServerConnection] = set()

    async def relay(connection: ServerConnection) -> None:
        name = connection.request.path.removeprefix("/ws/").partition("?")[0] if connection.request else ""
        connections.add(connection)
        try:
            async for message in connection:
                if isinstance(message, str):
                    websockets.broadcast(connections, f"{name}: {message}")
        except ConnectionClosed:
            pass
        finally:
            connections.discard(connection)
            websockets.broadcast(connections, f"{name} left the chat")

    async with serve(relay, "127.0.0.1", port, backlog=2048) as server:
        await server.serve_forever()


@dataclass
class Server:
    port: int
    pid: int
    log: Path

    def peak_mb(self) -> float:  # VmHWM: peak resident memory so far
        status = Path(f"/proc/{self.pid}/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) / 1024

    def cpu_s(self) -> float:  # user and system time so far
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def errors(self) -> int:  # tracebacks logged so far
        return self.log.read_text(errors="replace").count("Traceback")


@contextlib.contextmanager
def server(kind: str) -> Iterator[Server]:
    """A server of this kind ("hardened", "naive" or "bare") in a subprocess, stopped when the block ends."""
    with serve_script(Path(__file__), kind) as (port, pid, log):
        yield Server(port, pid, log)


# -- clients ----------------------------------------------------------------------------------------
def _message(seq: int, size: int) -> str:
    """A unique text: sequence number, send time, then random hex up to about ``size`` characters."""
    return f"{seq} {time.perf_counter()!r} {os.urandom(size // 2).hex()}"


def _parse(text: str) -> tuple[int, float] | None:
    """(sequence number, send time) from a relayed ``"name: seq sent pad"``; None for other texts."""
    parts = text.split(" ", 3)
    return (int(parts[1]), float(parts[2])) if len(parts) > 2 and parts[0].endswith(":") else None


async def _connect_all(port: int, names: list[str]) -> list[ClientConnection]:
    clients: list[ClientConnection] = []
    for i in range(0, len(names), BATCH):
        clients += await asyncio.gather(*(
            connect(f"ws://127.0.0.1:{port}/ws/{name}", compression=None, max_size=None, ping_interval=None,
                    open_timeout=20, close_timeout=1) for name in names[i:i + BATCH]))
    return clients


async def _read(client: ClientConnection, handle: Callable[[str, float], None]) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for text in client:
            handle(str(text), time.perf_counter())


async def _stop(tasks: list[asyncio.Task[None]], clients: Sequence[ClientConnection] = ()) -> None:
    for task in tasks:
        task.cancel()
    for client in clients:
        client.transport.abort()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _progress(count: Callable[[], int], target: int, idle: float = IDLE) -> bool:
    """Wait until ``count()`` reaches ``target``; False if it stays the same for ``idle`` seconds."""
    last, since = -1, time.perf_counter()
    while (now := count()) < target:
        if now != last:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since > idle:
            return False
        await asyncio.sleep(0.02)
    return True


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new event loop: here, or in a thread if a loop already runs (a notebook)."""
    def run() -> T:
        raise_nofile()
        with contextlib.closing(asyncio.new_event_loop()) as loop:
            return loop.run_until_complete(coro)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run()
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


# -- one stalled client --------------------------------------------------------------
async def _send_paced(client: ClientConnection, messages: int, rate: float) -> None:
    start = time.perf_counter()
    for seq in range(messages):
        ahead = start + seq / rate - time.perf_counter()
        await asyncio.sleep(ahead if ahead > 0.001 else 0)
        await client.send(_message(seq, STALL_PAYLOAD))


def _server_socket(client: ClientConnection) -> tuple[str, int] | None:
    """("open" or "closing", unsent bytes) for the server's end of this client's TCP connection."""
    mine, theirs = (client.transport.get_extra_info(key)[1] for key in ("sockname", "peername"))
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        _, local, remote, state, queues, *_ = line.split()
        if (int(local.partition(":")[2], 16), int(remote.partition(":")[2], 16)) == (theirs, mine):
            return ("open" if state == "01" else "closing"), int(queues.partition(":")[0], 16)
    return None


async def _drain(client: ClientConnection, timeout: float = 2.0) -> tuple[int, int | None]:
    """Read the stalled client at last: (last sequence number it got, close code or None if open)."""
    last = -1
    with contextlib.suppress(ConnectionClosed):
        try:
            async with asyncio.timeout(timeout):
                async for text in client:
                    last = parsed[0] if (parsed := _parse(str(text))) else last
        except TimeoutError:
            return last, None
    return last, client.close_code


def _percentile(values: list[float], q: int) -> float | None:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else None


async def _stall(srv: Server, messages: int, rate: float, stall: bool) -> Row:
    clients = await _connect_all(srv.port, [f"c{i}" if i != 1 else "slow" for i in range(STALL_CLIENTS)])
    slow = clients[1]  # joins second, so the naive server freezes at once for everyone but the sender
    healthy = [client for client in clients if client is not slow or not stall]
    records: list[Record] = [[] for _ in healthy]
    left: list[float] = []

    def handler(record: Record) -> Callable[[str, float], None]:
        def handle(text: str, now: float) -> None:
            if parsed := _parse(text):
                record.append((*parsed, now))
            elif text == "slow left the chat":
                left.append(now)
        return handle

    readers = [asyncio.create_task(_read(c, handler(r))) for c, r in zip(healthy, records, strict=True)]
    try:
        await clients[0].send(_message(-1, 16))  # warm-up: afterwards everyone is surely in the room
        await _progress(lambda: sum(map(bool, records)), len(records))
        start = time.perf_counter()
        sender = asyncio.create_task(_send_paced(clients[0], messages, rate))
        finished = await _progress(lambda: sum(map(len, records)), len(records) * (messages + 1))
        if stall and finished:
            await _progress(lambda: len(left), 1)
        await _stop([sender, *readers])
        result = _summary(records, messages, finished)
        result.update(healthy_closed=sum(client.close_code is not None for client in healthy))
        gone = await _socket_gone(slow, (min(left) if left else time.perf_counter()) + 5.0) if stall else None
        held = _server_socket(slow) if stall else None
        last, code = await _drain(slow) if stall else (-1, None)
        result.update(server_errors=srv.errors(), peak_mb=srv.peak_mb())
    finally:
        await _stop(readers, clients)
    return result | {"slow_left_s": min(left) - start if left else None, "slow_close_code": code,
                     "slow_last_seq": last,
                     "slow_socket": held and held[0], "slow_unsent_kb": held and held[1] / 1024,
                     "slow_gone_s": gone - start if gone is not None else None}


async def _socket_gone(client: ClientConnection, deadline: float) -> float | None:
    """When the server's end of ``client``'s connection disappeared, waiting until ``deadline`` at most."""
    while _server_socket(client) is not None:
        if time.perf_counter() >= deadline:
            return None
        await asyncio.sleep(0.05)  # polling the kernel's table, bounded by the deadline
    return time.perf_counter()


def _summary(records: list[Record], messages: int, finished: bool) -> Row:
    """Latency and loss at the healthy clients."""
    seqs = [[seq for seq, _, _ in record if seq >= 0] for record in records]
    latencies = [r - s for record in records for seq, s, r in record if seq >= 0]
    return {"p50_ms": _percentile(latencies, 50), "p99_ms": _percentile(latencies, 99),
            "lost": sum(messages - len(set(s)) for s in seqs),
            "out_of_order": sum(s != sorted(set(s)) for s in seqs),  # or repeated
            "frozen_after": None if finished else min(map(len, seqs))}


def stall_run(kind: str, messages: int = STALL_MESSAGES, rate: float = RATE, stall: bool = True) -> Row:
    """Measurement 2 on a fresh server."""
    with server(kind) as srv:
        result = _run(_stall(srv, messages, rate, stall))
    return result | {"kind": kind, "stall": stall, "messages": messages, "rate": rate}


def _slow_text(row: Row) -> str:
    left, code = row["slow_left_s"], row["slow_close_code"]
    text = "stayed in the room" if left is None else f"left the room at {left:.2f} s (its queue was full)"
    gone = row["slow_gone_s"]
    text += (f"; connection dropped by the server at {gone:.2f} s" if gone is not None else
             "; server socket " + (f"{row['slow_socket']}, {row['slow_unsent_kb']:,.0f} KB unsent (kernel)"
                                   if row["slow_socket"] else "gone"))
    return text + "; then reads " + (f"close code {code}" if code else "no close (still open)")


def _print_stall(rows: list[Row]) -> None:
    print(f"\nOne stalled client: {STALL_CLIENTS} clients, {rows[0]['messages']:,} messages of "
          f"~{STALL_PAYLOAD} characters at {rows[0]['rate']:,.0f}/s; latency and loss at healthy clients\n"
          f"{'server':<9} {'run':<8} {'p50 ms':>7} {'p99 ms':>8} {'lost':>6} {'delivery':<18} {'peak MB':>7}")
    for row in rows:
        run, frozen = "stall" if row["stall"] else "no stall", row["frozen_after"]
        print(f"{row['kind']:<9} {run:<8} {row['p50_ms'] or 0:>7.1f} {row['p99_ms'] or 0:>8.1f} "
              f"{row['lost']:>6,} {'complete' if frozen is None else f'froze after {frozen:,}':<18} "
              f"{row['peak_mb']:>7.1f}")
        if row["server_errors"] or row["healthy_closed"] or row["out_of_order"]:
            print(f"    {row['server_errors']} server tracebacks, {row['healthy_closed']} healthy clients "
                  f"closed, {row['out_of_order']} out of order or repeated")
    print("The stalled client:")
    for row in (row for row in rows if row["stall"]):
        print(f"  {row['kind']:<9} {_slow_text(row)}")


def goals(stall: list[Row]) -> list[tuple[bool, str]]:
    """Each goal for the hardened server: (met, what was measured)."""
    calm, bad = (next(r for r in stall if r["kind"] == "hardened" and r["stall"] is s) for s in (False, True))
    p99 = bad["p99_ms"] / calm["p99_ms"]
    growth, left = bad["peak_mb"] - calm["peak_mb"], bad["slow_left_s"]
    # The manager kicks a client the moment its queue is full, and the others hear "left" right after.
    dropped = None if left is None or bad["slow_gone_s"] is None else bad["slow_gone_s"] - left
    return [
        (p99 <= 2, f"healthy p99 with a stalled client within 2x of no stall: {bad['p99_ms']:.1f} ms "
                   f"vs {calm['p99_ms']:.1f} ms ({p99:.2f}x)"),
        (bad["lost"] == calm["lost"] == 0 and bad["frozen_after"] is None,
         f"zero loss at healthy clients: {calm['lost']} lost without a stalled client, {bad['lost']} with"),
        (dropped is not None and dropped <= 5,
         "stalled client disconnected within 5 s of its queue filling: "
         + ("it never left the room" if left is None else "it left the room at once")
         + (", its connection still held 5 s later" if dropped is None
            else f", its connection dropped {dropped:.2f} s after")),
        (growth <= MEMORY_SLACK_MB, f"memory bounded: peak {bad['peak_mb']:.1f} MB with a stalled client, "
         f"{calm['peak_mb']:.1f} MB without (+{growth:.1f}, at most +{MEMORY_SLACK_MB}; not counting kernel "
         "buffers)"),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="faster sending (under a minute)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--serve", choices=("hardened", "naive", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve, args.port)
    began = time.perf_counter()
    rate = QUICK_RATE if args.quick else RATE
    kinds = ("hardened", "naive", "bare")
    stall = [stall_run(kind, rate=rate, stall=stalled) for kind in kinds for stalled in (False, True)]
    _print_stall(stall)
    checks = goals(stall)
    print("\nGoals for hardened:")
    for met, text in checks:
        print(f"  [{'PASS' if met else 'FAIL'}] {text}")
    print(f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {time.perf_counter() - began:.0f} s")
    if args.json:
        figures = {"stall": stall,
                   "goals": [{"met": met, "goal": goal} for met, goal in checks]}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
