"""Broadcast at scale, measured at the server: wslab's hardened rooms against bare ``websockets``, the
tutorial's loop, an ASGI floor and python-socketio, in one run.

    python3 run.py bench broadcast [--quick] [--repeat 3] [--json PATH]

Every server (``broadcast_servers.py`` says what each does per message) runs alone in a process pinned to
one core; the clients run in other processes pinned to the other cores: ``--workers`` load generators
(``loadgen.py``, bare sockets read through epoll, a few microseconds per delivery) and this process's
speaker (``room.py``). For N = 100, 1,000 and 5,000 clients in one room (``--quick``: 100):

1. **Fan-out.** The speaker sends ``ROUNDS`` messages of ~128 characters, each once the previous one
   reached all N (after a warm-up). Time-to-all, send to the last arrival in any process: median. Server
   CPU time per message and per delivery, from the scheduler's count for the server's threads.
2. **Saturation.** For ``SATURATE`` seconds the speaker keeps ``WINDOW`` messages in flight (not yet at
   all N): deliveries per second, and the CPU time per message at that pace.
3. **Memory per idle connection**, from the same runs: the server's resident memory (VmRSS) once the
   speaker is in and the server is quiet, then once all N are in and it is quiet again, per connection.
4. **Presence** (``presence.py``): N clients join the complete app's room one after another, each reading
   everything: wall time, server CPU, bytes delivered, for N = 250, 500, 1,000, then as far as 5,000
   goes in ``presence.BUDGET`` seconds.

The complete app (``app``) is logged in and validated like any client. At N = 5,000 its room is
``app-quiet``: presence told to the newcomer alone, since the join flood of 5,000 would take most of an
hour (part 4 measures it); at N = 1,000 both run, to show that muting it changes nothing per message. Each
configuration runs ``--repeat`` times, interleaved; the tables show medians. A benchmark, not a test:
nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from broadcast_servers import KINDS, Server, pin_clients, raise_nofile, server, server_cpus
from presence import presence_runs, print_presence
from room import Arrivals, LoadGenerator, Speaker

SIZES, QUICK_SIZES = (100, 1000, 5000), (100,)
ROUNDS, QUICK_ROUNDS = 20, 10  # messages timed one at a time
SETTLE = 0.05  # seconds between them
WINDOW = 8  # messages in flight at saturation
SATURATE, QUICK_SATURATE = 3.0, 1.0  # seconds of saturation
QUIET_FROM = 5000  # rooms this large get app-quiet instead of app ...
BOTH_AT = 1000  # ... and at this size both run
WAIT = 20.0  # seconds a message may take to reach everyone before the run is abandoned
WARMUPS = 10  # warm-up messages at most: until one reaches everyone
Row = dict[str, Any]


def kinds_for(n: int, kinds: list[str]) -> list[str]:
    chosen = [k for k in kinds if not (k == "app" and n >= QUIET_FROM)
              and not (k == "app-quiet" and n < BOTH_AT)]
    return chosen


async def _quiet(srv: Server, limit: float = 120.0) -> None:
    """Until the server has been (almost) idle for a fifth of a second: its queues are drained."""
    deadline, last = time.monotonic() + limit, srv.cpu_s()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)  # sampling the CPU counter, bounded by the deadline
        now = srv.cpu_s()
        if now - last < 0.01:
            return
        last = now


async def _fanout(kind: str, n: int, rounds: int, saturate: float, workers: int, deflate: bool, pin: bool,
                  hook: Any) -> Row:
    gen = LoadGenerator(kind, workers, deflate=deflate)
    await gen.start()  # the load generators import while the server starts
    async with gen:
        with server(kind) as srv:
            if pin:
                srv.pin(server_cpus())
            async with Speaker(kind, srv.port, gen.arrivals, deflate=deflate) as speaker:
                return await _measure(srv, gen, speaker, n, rounds, saturate,
                                      hook and (lambda what: hook(what, srv)))


async def _measure(srv: Server, gen: LoadGenerator, speaker: Speaker, n: int, rounds: int, saturate: float,
                   hook: Any) -> Row:
    row: Row = {}
    await _quiet(srv)
    before, cpu, began = srv.memory_kb(), srv.cpu_s(), time.monotonic()
    await gen.connect(srv.port, [f"c{i}" for i in range(1, n)])
    await _quiet(srv)
    row.update(setup_s=time.monotonic() - began, setup_cpu_s=srv.cpu_s() - cpu,
               idle_kb_per_connection=(srv.memory_kb() - before) / max(1, n - 1))
    await _warm_up(speaker, gen.arrivals)
    if hook is not None:
        await hook("start")
    clients = gen.cpu_s()
    row.update(await _rounds(srv, speaker, gen.arrivals, rounds))
    row["clients_cpu_ms_per_message"] = (gen.cpu_s() - clients) / rounds * 1000  # pauses included
    row.update(await _saturate(srv, speaker, gen.arrivals, n, saturate))
    if hook is not None:
        await hook("stop")
    row.update(closed=(await gen.stats())[2], server_errors=srv.errors(), peak_kb=srv.memory_kb("VmHWM"))
    return row


async def _warm_up(speaker: Speaker, arrivals: Arrivals) -> None:
    """Until a message reaches everyone: then every client is surely in the room."""
    for attempt in range(1, WARMUPS + 1):
        await speaker.send(-attempt)
        try:
            await arrivals.wait(-attempt, 3.0)
            return
        except TimeoutError:
            continue
    raise RuntimeError(f"none of {WARMUPS} warm-up messages reached every client")


async def _rounds(srv: Server, speaker: Speaker, arrivals: Arrivals, rounds: int) -> Row:
    times, cpu = [], srv.cpu_s()
    for seq in range(rounds):
        sent = await speaker.send(seq)
        times.append(await _arrival(arrivals, seq) - sent)
        if seq < rounds - 1:
            cpu -= srv.cpu_s()  # the pause is not the message's
            await asyncio.sleep(SETTLE)
            cpu += srv.cpu_s()
    return {"time_to_all_ms": statistics.median(times) * 1000, "time_to_all_max_ms": max(times) * 1000,
            "cpu_ms_per_message": (srv.cpu_s() - cpu) / rounds * 1000, "rounds": rounds}


async def _saturate(srv: Server, speaker: Speaker, arrivals: Arrivals, n: int, seconds: float) -> Row:
    first, cpu = 100_000, srv.cpu_s()
    began = time.monotonic()
    sent = 0
    while time.monotonic() - began < seconds:
        if sent >= WINDOW:
            await _arrival(arrivals, first + sent - WINDOW)
        await speaker.send(first + sent)
        sent += 1
    last = await _arrival(arrivals, first + sent - 1)
    return {"saturated_messages": sent, "deliveries_per_s": sent * n / (last - began),
            "saturated_cpu_ms_per_message": (srv.cpu_s() - cpu) / sent * 1000}


async def _arrival(arrivals: Arrivals, seq: int) -> float:
    try:
        return await arrivals.wait(seq, WAIT)
    except TimeoutError:
        hit = arrivals.hits.get(seq, [0])
        raise RuntimeError(f"message {seq} reached {int(hit[0])} of {arrivals.reporters} processes' clients "
                           f"in {WAIT:g} s") from None


def fanout(kind: str, n: int, *, rounds: int = ROUNDS, saturate: float = SATURATE, workers: int = 2,
           deflate: bool = False, pin: bool = True, hook: Any = None) -> Row:
    """One fresh server of ``kind`` with ``n`` clients in its room: every figure of parts 1 to 3."""
    row: Row = {"kind": kind, "n": n, "deflate": deflate}
    try:
        row.update(asyncio.run(_fanout(kind, n, rounds, saturate, workers, deflate, pin, hook)))
    except RuntimeError as exc:  # a run that could not finish says why, and the others go on
        row["failed"] = str(exc).splitlines()[0]
        print(f"  {kind} N={n}: {row['failed']}", file=sys.stderr)
    if "cpu_ms_per_message" in row:
        row["cpu_us_per_delivery"] = row["cpu_ms_per_message"] * 1000 / n
    return row


# -- the tables -------------------------------------------------------------------------------------------
FIGURES = ("time_to_all_ms", "cpu_ms_per_message", "cpu_us_per_delivery", "clients_cpu_ms_per_message",
           "deliveries_per_s",
           "saturated_cpu_ms_per_message", "idle_kb_per_connection", "setup_s", "setup_cpu_s", "closed")


def medians(rows: list[Row]) -> list[Row]:
    """One row per (kind, n): the median of each figure over the repeats that finished."""
    out = []
    for key in dict.fromkeys((row["kind"], row["n"]) for row in rows):
        runs = [row for row in rows if (row["kind"], row["n"]) == key and "failed" not in row]
        row: Row = {"kind": key[0], "n": key[1], "runs": len(runs),
                    "failed": sum(1 for r in rows if (r["kind"], r["n"]) == key and "failed" in r)}
        for figure in FIGURES:
            values = [r[figure] for r in runs if r.get(figure) is not None]
            row[figure] = statistics.median(values) if values else None
        spread = [r["cpu_ms_per_message"] for r in runs]
        row["cpu_ms_per_message_range"] = (min(spread), max(spread)) if spread else None
        out.append(row)
    return out


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_fanout(summary: list[Row]) -> None:
    print("Fan-out: one message at a time (time-to-all, server CPU), then WINDOW in flight (saturation);\n"
          "medians of the repeats. x bare: server CPU per message against bare websockets'.")
    for n in dict.fromkeys(row["n"] for row in summary):
        rows = [row for row in summary if row["n"] == n]
        bare = next((r["cpu_ms_per_message"] for r in rows if r["kind"] == "bare"), None)
        print(f"\nN = {n:,}\n{'server':<10} {'time-to-all ms':>14} {'CPU ms/msg':>11} {'(min-max)':>13} "
              f"{'us/delivery':>11} {'x bare':>7} {'deliveries/s':>13} {'sat. ms/msg':>11} {'setup s':>8}")
        for row in rows:
            cpu, low_high = row["cpu_ms_per_message"], row["cpu_ms_per_message_range"]
            ratio = cpu / bare if cpu and bare else None
            span = f"{low_high[0]:.2f}-{low_high[1]:.2f}" if low_high else "-"
            print(f"{row['kind']:<10} {_f(row['time_to_all_ms'], '14.2f')} {_f(cpu, '11.2f')} {span:>13} "
                  f"{_f(row['cpu_us_per_delivery'], '11.2f')} {_f(ratio, '6.2f')}x "
                  f"{_f(row['deliveries_per_s'], '13,.0f')} "
                  f"{_f(row['saturated_cpu_ms_per_message'], '11.2f')} "
                  f"{_f(row['setup_s'], '8.1f')}" + (f"   ({row['failed']} failed)" if row["failed"] else "")
                  + (f"   {row['closed']:.0f} clients closed" if row["closed"] else ""))


def print_memory(summary: list[Row]) -> None:
    sizes = sorted({row["n"] for row in summary if row["n"] >= BOTH_AT} or {row["n"] for row in summary})
    print("\nMemory per idle connection: server RSS growth / connections, KB (in the room; the app's logged "
          "in)\n" + f"{'server':<10}" + "".join(f" {f'N={n:,}':>10}" for n in sizes))
    for kind in dict.fromkeys(row["kind"] for row in summary):
        by_n = {row["n"]: row["idle_kb_per_connection"] for row in summary if row["kind"] == kind}
        print(f"{kind:<10}" + "".join(f" {_f(by_n.get(n), '10.1f')}" for n in sizes))


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 100 only, once: well under a minute")
    parser.add_argument("--repeat", type=int, help="runs of each configuration (default 3; --quick: 1)")
    parser.add_argument("--kinds", help=f"comma-separated servers (default all: {','.join(KINDS)})")
    parser.add_argument("--sizes", help="comma-separated room sizes (default 100,1000,5000)")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument("--deflate", action="store_true",
                        help="the clients offer permessage-deflate, as browsers do")
    parser.add_argument("--no-presence", action="store_true", help="skip part 4")
    parser.add_argument("--no-pin", action="store_true", help="let the scheduler place server and clients")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to this JSON file")
    args = parser.parse_args(argv)
    raise_nofile()
    if not args.no_pin:
        pin_clients()
    kinds = args.kinds.split(",") if args.kinds else list(KINDS)
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        parser.error(f"unknown server {unknown[0]!r}: choose from {', '.join(KINDS)}")
    if "socketio" in kinds:
        try:
            import socketio  # noqa: F401
        except ImportError:
            parser.error("python-socketio is not installed: run `python3 run.py bench broadcast ...`, which "
                         "adds the bench group, or leave it out with --kinds")
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else QUICK_SIZES if args.quick else SIZES
    repeat = args.repeat or (1 if args.quick else 3)
    rounds, saturate = (QUICK_ROUNDS, QUICK_SATURATE) if args.quick else (ROUNDS, SATURATE)
    began, load_before = time.monotonic(), load()
    print(f"load average before: {load_before}; server on CPU {sorted(server_cpus())}, clients on "
          f"{sorted(os.sched_getaffinity(0))}" + (" (not pinned)" if args.no_pin else ""), flush=True)
    rows = []
    for rep in range(repeat):
        for n in sizes:
            for kind in kinds_for(n, kinds):
                row = fanout(kind, n, rounds=rounds, saturate=saturate, workers=args.workers,
                             deflate=args.deflate, pin=not args.no_pin)
                rows.append(row | {"repeat": rep, "load": load()})
                print(f"  run {rep + 1}/{repeat} {kind} N={n}: "
                      f"{_f(row.get('cpu_ms_per_message'), '.2f')} ms CPU/msg", file=sys.stderr, flush=True)
    summary = medians(rows)
    print_fanout(summary)
    print_memory(summary)
    presence = []
    if not args.no_presence:
        presence = presence_runs(quick=args.quick, repeat=repeat, workers=args.workers)
        print_presence(presence)
    load_after = load()
    print(f"\nload average before {load_before}, after {load_after}; {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, {time.monotonic() - began:.0f} s")
    if args.json:
        machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "load_before": load_before,
                   "load_after": load_after, "pinned": not args.no_pin, "workers": args.workers,
                   "deflate": args.deflate, "rounds": rounds, "window": WINDOW, "saturate_s": saturate}
        figures = {"machine": machine,
                   "kinds": {kind: KINDS[kind] for kind in kinds}, "fanout": summary, "runs": rows,
                   "presence": presence}
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
