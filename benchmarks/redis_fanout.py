"""Fan-out across worker processes through Redis: the complete app's time-to-all for N clients in one room,
served by one process, and by two processes sharing the room through Redis pub/sub.

    python3 run.py python benchmarks/redis_fanout.py [--n 500] [--rounds 20] [--json PATH]

Servers, each in a subprocess on 127.0.0.1: ``wslab.reference.app.create_app()`` (rate limit lifted) under
uvicorn with ``wslab.reference.wsprotocol.WebSocketProtocol``.

- ``1 process``: the default ``MemoryBroker``, with all N clients;
- ``2 processes via Redis``: ``RedisBroker`` on a ``redis-server`` this benchmark starts
  (``wslab.lab.redis_server``), N/2 clients on each process;
- ``2 processes, no broker``: the problem the broker solves, counted rather than timed: how many of the N
  clients a message reaches.

The clients (``websockets`` asyncio client, no compression) all run in this process, so time stamps share a
clock. Each logs in (first-message auth) and waits for its own ``join``; then one client on the first
process sends ``rounds`` messages, each once the previous one reached all N (after a warm-up message).
Time-to-all is from the send to the last arrival. Server CPU per message sums the app processes and, via
Redis, ``redis-server`` (from /proc). All clients also receive every ``join``: N joins of lists up to N
names, which is most of the setup time at large N.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcast_servers import raise_nofile
from stalled_client import _run
from subprocess_server import serve_script
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SECRET = "redis-fanout-benchmark-shared-secret"  # both processes must accept the same tokens
BATCH, IDLE, SETTLE = 50, 10.0, 0.05  # clients connecting at once; seconds without progress; pause per round
Row = dict[str, Any]


# -- servers ----------------------------------------------------------------------------------------
def _serve(broker: str, port: int) -> None:
    """Run the complete app in this process until it is terminated; ``broker``: "memory", or "redis-PORT"
    for the Redis on that port (no URL: it names the server's log file)."""
    raise_nofile()
    logging.getLogger("asyncio").setLevel(logging.ERROR)  # clients vanishing at the end
    import uvicorn

    from wslab.reference.app import create_app
    from wslab.reference.manager import MAX_FRAME
    from wslab.reference.wsprotocol import WebSocketProtocol

    url = None if broker == "memory" else f"redis://127.0.0.1:{broker.removeprefix('redis-')}/0"
    app = create_app(secret=SECRET, broker=url, rate=1e6, burst=10**6)
    uvicorn.run(app, host="127.0.0.1", port=port, ws=WebSocketProtocol, ws_max_size=MAX_FRAME,
                log_level="warning")


@dataclass
class Proc:
    port: int
    pid: int
    log: Path | None = None

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def errors(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback") if self.log else 0


@contextlib.contextmanager
def servers(count: int, broker: str) -> Iterator[list[Proc]]:
    """``count`` app processes with ``broker``; with a Redis broker, the redis-server comes last."""
    with contextlib.ExitStack() as stack:
        procs: list[Proc] = []
        if broker == "redis":
            from wslab.lab.redis_server import RedisServer

            redis = stack.enter_context(RedisServer())
            broker = f"redis-{redis.port}"
        for _ in range(count):
            port, pid, log = stack.enter_context(serve_script(Path(__file__), broker))
            procs.append(Proc(port, pid, log))
        if broker != "memory" and redis.pid is not None:
            procs.append(Proc(redis.port, redis.pid))
        yield procs


# -- clients ----------------------------------------------------------------------------------------
async def _login(port: int, name: str, joined: asyncio.Event,
                 handle: Callable[[str, float], None]) -> tuple[ClientConnection, asyncio.Task[None]]:
    from wslab.reference.auth import Tokens

    client = await connect(f"ws://127.0.0.1:{port}/ws/chat/lobby", compression=None, max_size=None,
                           ping_interval=None, open_timeout=30, close_timeout=1)
    await client.send(json.dumps({"type": "auth", "token": Tokens(SECRET).issue(name)}))
    own_join = f'{{"type":"join","user":"{name}",'

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in client:
                now = time.perf_counter()
                if isinstance(text, str) and text.startswith('{"type":"message"'):
                    handle(json.loads(text)["content"], now)
                elif isinstance(text, str) and text.startswith(own_join):
                    joined.set()

    return client, asyncio.create_task(read())


async def _room(ports: list[int], n: int, handle: Callable[[str, float], None]) -> tuple[
        list[ClientConnection], list[asyncio.Task[None]]]:
    """N clients logged in, spread over ``ports`` in turn, each having seen its own join."""
    clients, readers, joins = [], [], []
    for start in range(0, n, BATCH):
        batch = range(start, min(n, start + BATCH))
        events = [asyncio.Event() for _ in batch]
        made = await asyncio.gather(*(_login(ports[i % len(ports)], f"c{i}", event, handle)
                                      for i, event in zip(batch, events, strict=True)))
        clients += [client for client, _ in made]
        readers += [reader for _, reader in made]
        joins += events
    await asyncio.wait_for(asyncio.gather(*(event.wait() for event in joins)), 60)
    return clients, readers


async def _close(clients: list[ClientConnection], readers: list[asyncio.Task[None]]) -> None:
    for reader in readers:
        reader.cancel()
    for client in clients:
        client.transport.abort()
    await asyncio.gather(*readers, return_exceptions=True)


async def _fanout(procs: list[Proc], apps: int, n: int, rounds: int) -> tuple[list[float], float, int]:
    arrivals: dict[int, list[float]] = {}  # seq -> [clients reached, last arrival]
    done = asyncio.Event()

    def handle(content: str, now: float) -> None:
        seq = int(content.split(" ", 1)[0])
        hit = arrivals.get(seq)
        if hit is not None:
            hit[0], hit[1] = hit[0] + 1, now
            if hit[0] == n:
                done.set()

    clients, readers = await _room([p.port for p in procs[:apps]], n, handle)
    times, cpu = [], 0.0
    try:
        for seq in range(-1, rounds):  # -1 is a warm-up: it waits behind everyone's backlog of joins
            if seq == 0:
                cpu = sum(p.cpu_s() for p in procs)
            hit = arrivals.setdefault(seq, [0, 0.0])
            done.clear()
            sent = time.perf_counter()
            await clients[0].send(json.dumps({"type": "message", "content": f"{seq} x"}))
            try:
                await asyncio.wait_for(done.wait(), IDLE * (3 if seq < 0 else 1))
            except TimeoutError:
                raise RuntimeError(f"message {seq} reached {hit[0]} of {n} clients") from None
            times += [hit[1] - sent] if seq >= 0 else []
            await asyncio.sleep(SETTLE)
        return times, (sum(p.cpu_s() for p in procs) - cpu) / rounds, sum(p.errors() for p in procs)
    finally:
        await _close(clients, readers)


def fanout(label: str, apps: int, broker: str, n: int, rounds: int) -> Row:
    with servers(apps, broker) as procs:
        times, cpu, errors = _run(_fanout(procs, apps, n, rounds))
    median = statistics.median(times)
    return {"setup": label, "processes": apps, "n": n, "median_ms": median * 1000,
            "p10_ms": statistics.quantiles(times, n=10)[0] * 1000, "max_ms": max(times) * 1000,
            "deliveries_per_s": n / median, "server_cpu_ms": cpu * 1000, "server_errors": errors}


async def _reach(procs: list[Proc], n: int) -> int:
    """How many clients one message reaches when two processes share nothing."""
    reached = [0]
    clients, readers = await _room([p.port for p in procs], n, lambda content, now: reached.__setitem__(
        0, reached[0] + 1))
    try:
        await clients[0].send(json.dumps({"type": "message", "content": "0 x"}))
        last, since = -1, time.perf_counter()
        while time.perf_counter() - since < 1.0:  # until nobody new has received it for a second
            if reached[0] != last:
                last, since = reached[0], time.perf_counter()
            await asyncio.sleep(0.02)
        return reached[0]
    finally:
        await _close(clients, readers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="clients in the room (default 500)")
    parser.add_argument("--rounds", type=int, default=20, help="messages timed (default 20)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve, args.port)
    began, n = time.perf_counter(), args.n
    rows = [fanout("1 process", 1, "memory", n, args.rounds),
            fanout("2 processes via Redis", 2, "redis", n, args.rounds)]
    with servers(2, "memory") as procs:
        reached = _run(_reach(procs, n))
    print(f"Fan-out through the complete app: time-to-all for N = {n} clients in one room, median of "
          f"{args.rounds} messages\n{'setup':<24} {'clients':>9} {'median ms':>10} {'p10 ms':>7} "
          f"{'max ms':>7} {'deliveries/s':>13} {'server CPU ms/msg':>18}")
    for row in rows:
        spread = f"{n // row['processes']}" + f" x{row['processes']}" * (row["processes"] > 1)
        print(f"{row['setup']:<24} {spread:>9} {row['median_ms']:>10.2f} {row['p10_ms']:>7.2f} "
              f"{row['max_ms']:>7.2f} {row['deliveries_per_s']:>13,.0f} {row['server_cpu_ms']:>18.1f}")
        if row["server_errors"]:
            print(f"    {row['server_errors']} server tracebacks")
    one, two = rows
    print(f"Via Redis / 1 process: {two['median_ms'] / one['median_ms']:.2f}x time-to-all "
          "(server CPU via Redis includes redis-server)")
    print(f"2 processes, no broker: a message reached {reached} of {n} clients (those of its own process)")
    print(f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {time.perf_counter() - began:.0f} s")
    if args.json:
        figures = {"fanout": rows, "no_broker_reached": reached}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
