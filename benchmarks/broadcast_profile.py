"""Where a server's time goes per broadcast message: ``broadcast.py``'s fan-out under py-spy.

    python3 run.py bench broadcast_profile [--kind app] [--n 1000] [--raw PATH] [--deflate]

py-spy (the bench dependency group) samples the server process, from outside and on-CPU only, during the
timed part of one fan-out run (the messages one at a time, then saturation; not the setup). Each sample
is one Python stack; time spent in C (a syscall, ``str.encode``, the C task step of asyncio) counts for
the Python line that called it. The report gives each stage of the path a message takes as a share of
the samples and as CPU time per message and per delivery (share x the server's measured CPU per message).
``--raw`` keeps py-spy's collapsed stacks for a flame graph (``flamegraph.pl`` or speedscope).

``--compare-deflate`` instead measures the server CPU per message with and without permessage-deflate
negotiated (the clients offering it, as every browser does) for the complete app (``app-quiet``: with
deflate, the join flood of 1,000 takes minutes, every list compressed for every recipient) and bare
websockets.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from broadcast import fanout
from broadcast_servers import Server, pin_clients, raise_nofile

RATE = 500  # samples per second
# A stage of the message's path: (label, a frame that starts it), the first stage found from the leaf
# up wins, so a nested stage (a frame encode inside the ASGI send) is counted apart from the stage
# around it.
STAGES = [
    ("deflate: compressing per recipient", "permessage_deflate.py"),
    ("websockets: frame serialize", "frames.py"),
    ("websockets: send_text bookkeeping (protocol.py)", "websockets/protocol.py"),
    ("socket write (asyncio transport.write, send syscall)", "write (asyncio/selector_events.py"),
    ("uvicorn ASGI send (wsprotocol/websockets_sansio_impl)", "websockets_sansio_impl.py"),
    ("starlette WebSocket.send_text / send", "starlette/websockets.py"),
    ("frames: a client's queue in one write (WebSocketProtocol._write_texts)", "_write_texts (wslab/"),
    ("flush: each client a broadcast queued for (Client._flushed)", "_flushed (wslab/reference/manager.py"),
    ("flush: the callback (_Flush._run)", "_run (wslab/reference/manager.py"),
    ("writer task loop (Client._write)", "_write (wslab/reference/manager.py"),
    ("Client.send per recipient: checks, queue put", "send (wslab/reference/manager.py"),
    ("rate limit (RateLimit.take)", "ratelimit.py"),
    ("parse + validate the frame (protocol.parse, frame_type)", "wslab/reference/protocol.py"),
    ("Room.broadcast loop", "broadcast (wslab/reference/rooms.py"),
    ("handler: receive, one frame per turn (Client.messages)", "messages (wslab/reference/manager.py"),
    ("other app code (rooms, secure_rooms, app)", "wslab/reference/"),
    ("uvicorn reading frames (data_received)", "data_received"),
    ("websockets.broadcast()", "broadcast (websockets/asyncio/connection.py"),
    ("python-socketio / engineio", "socketio/"),
    ("event loop: select (epoll_wait)", "select (selectors.py"),
    ("event loop: running callbacks and task steps", "asyncio/"),
]


def stage_of(stack: list[str]) -> str:
    for frame in reversed(stack):  # leaf first
        for label, marker in STAGES:
            if marker in frame:
                return label
    return "other: " + (stack[-1].split(" (")[0] if stack else "?")


def summarise(raw: Path) -> tuple[collections.Counter[str], collections.Counter[str], int]:
    """Samples per stage and per leaf function, and the total, from py-spy's ``--format raw`` output."""
    stages: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    for line in raw.read_text().splitlines():
        stack_text, _, count = line.rpartition(" ")
        frames = stack_text.split(";")
        stack = [frame for frame in frames if " (" in frame and not frame.startswith(("process", "thread"))]
        stages[stage_of(stack)] += int(count)
        leaves[stack[-1] if stack else "?"] += int(count)
    return stages, leaves, sum(stages.values())


def profile(kind: str, n: int, raw: Path, deflate: bool) -> tuple[dict[str, Any], Path]:
    beside = Path(sys.executable).with_name("py-spy")  # the environment's own, not on PATH under run.py
    py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed: run `python3 run.py bench broadcast_profile`, which adds "
                         "the bench group")
    state: dict[str, Any] = {}
    gc_log = Path(tempfile.mkstemp(prefix="gc-", suffix=".json")[1])
    os.environ["BENCH_GC_LOG"] = str(gc_log)  # where the server writes its garbage collections

    async def collected(srv: Server) -> dict[str, list[float]]:
        gc_log.write_text("")
        os.kill(srv.pid, signal.SIGUSR1)
        async with asyncio.timeout(10):
            while not gc_log.read_text():
                await asyncio.sleep(0.05)  # until the server has written it, bounded by the timeout
        result: dict[str, list[float]] = json.loads(gc_log.read_text())
        return result

    async def hook(what: str, srv: Server) -> None:
        if what == "start":
            state["gc"] = await collected(srv)
            state["spy"] = await asyncio.create_subprocess_exec(
                py_spy, "record", "--pid", str(srv.pid), "--rate", str(RATE), "--format", "raw",
                "--nonblocking", "--output", str(raw), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.0)  # py-spy attaching (once, before the timed part)
        else:
            state["gc_after"] = await collected(srv)
            spy = state["spy"]
            spy.send_signal(signal.SIGINT)
            async with asyncio.timeout(30):
                await spy.wait()

    try:
        row = fanout(kind, n, deflate=deflate, hook=hook)
    finally:
        del os.environ["BENCH_GC_LOG"]
        gc_log.unlink()
    if "gc" in state:
        before, after = state["gc"], state["gc_after"]
        row["gc_passes"] = [a - b for a, b in zip(after["passes"], before["passes"], strict=True)]
        row["gc_seconds"] = [a - b for a, b in zip(after["seconds"], before["seconds"], strict=True)]
    return row, raw


def report(row: dict[str, Any], raw: Path) -> None:
    stages, leaves, total = summarise(raw)
    cpu, n = row["cpu_ms_per_message"], row["n"]
    sat = row["saturated_cpu_ms_per_message"]
    print(f"{row['kind']} N={n}{' deflate' if row['deflate'] else ''}: server CPU {cpu:.2f} ms per message "
          f"one at a time, {sat:.2f} ms at saturation; {total:,} samples (both parts)\n"
          f"{'stage':<58} {'share':>6} {'ms/msg':>7} {'us/delivery':>12}   (at saturation's cost)")
    for label, count in stages.most_common():
        share = count / total
        print(f"{label:<58} {share:>6.1%} {share * sat:>7.2f} {share * sat * 1000 / n:>12.2f}")
    if "gc_seconds" in row:
        messages = row["rounds"] + row["saturated_messages"]
        print(f"\nGarbage collection in the timed part: passes per generation {row['gc_passes']}, "
              f"{sum(row['gc_seconds']) * 1000 / messages:.2f} ms per message "
              f"(generation 2: {row['gc_seconds'][2] * 1000:.0f} ms in {row['gc_passes'][2]} passes); "
              "py-spy counts it for the line that allocated")
    print("\nTop leaf functions (self time):")
    for frame, count in leaves.most_common(15):
        print(f"  {count / total:>6.1%}  {frame[:100]}")


def compare_deflate(n: int) -> None:
    print(f"permessage-deflate at N={n}: server CPU per message (one at a time / at saturation)")
    for kind in ("app-quiet", "bare"):  # app-quiet: the join flood, compressed per recipient, takes minutes
        for deflate in (False, True):
            row = fanout(kind, n, deflate=deflate)
            print(f"  {kind:<5} {'offered' if deflate else 'not offered':<12} "
                  f"{row.get('cpu_ms_per_message', float('nan')):>7.2f} ms "
                  f"{row.get('saturated_cpu_ms_per_message', float('nan')):>7.2f} ms", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="app", help="a server of broadcast_servers.py (default app)")
    parser.add_argument("--n", type=int, default=1000, help="clients in the room (default 1000)")
    parser.add_argument("--deflate", action="store_true", help="the clients offer permessage-deflate")
    parser.add_argument("--raw", metavar="PATH", help="keep py-spy's collapsed stacks here")
    parser.add_argument("--compare-deflate", action="store_true", help="CPU with and without deflate instead")
    args = parser.parse_args(argv)
    raise_nofile()
    pin_clients()
    if args.compare_deflate:
        return compare_deflate(args.n)
    raw = Path(args.raw) if args.raw else Path(tempfile.mkstemp(prefix="py-spy-", suffix=".txt")[1])
    row, raw = profile(args.kind, args.n, raw, args.deflate)
    if "failed" in row:
        raise SystemExit(f"the run failed: {row['failed']}")
    report(row, raw)


if __name__ == "__main__":
    main()
