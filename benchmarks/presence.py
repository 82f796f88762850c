"""What presence costs the complete app: N clients join one room one after another, each reading everything.

The joiner gets the room's whole list and every other member only the change (who, the count, a version), so
the k-th join sends one list of k names and k-1 small frames: N joins deliver O(N²) bytes. The column
"(list to all)" is what the same joins delivered before that change, when every ``join`` carried the whole
list to every member (the k-th join, k lists of k names: about N³/6 names), computed from that frame format.
Part 4 of ``broadcast.py``; alone:

    python3 run.py bench presence [--sizes 250,500,1000] [--json PATH]

Each client connects, logs in and waits for its own ``join`` before the next one starts (the load
generator's processes take turns). The run ends once every client has read every ``join`` meant for it:
wall time from the first connection, the server's CPU time, its peak memory, the frames and payload bytes
delivered (frames checked against the count, N(N+1)/2). A size that has not finished
joining within ``BUDGET`` seconds stops there; its figures say how far it got, and the full size is
extrapolated with the growth measured between the two largest sizes that finished.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from broadcast_servers import Server, pin_clients, raise_nofile, server, server_cpus
from room import LoadGenerator

SIZES, QUICK_SIZES = (250, 500, 1000), (100,)
TRY = 5000  # then this size, once, for at most BUDGET seconds
BUDGET = 180.0  # seconds of joining
DRAIN_WITHIN = 60.0  # seconds for the last joins to reach everyone once joining stopped
Row = dict[str, Any]


def join_bytes(n: int) -> tuple[int, int]:
    """Frames and payload bytes that ``n`` sequential joins delivered when every join carried the whole list
    (before presence sent changes): the k-th join's list of k names went to the k members."""
    from wslab.reference.protocol import Join, encode

    empty = len(encode(Join(user="", users=[])))  # '{"type":"join","user":"","users":[]}'
    frames = data = listed = 0
    for k in range(1, n + 1):
        name = f"c{k - 1}"
        listed += len(name) + 2 + (k > 1)  # '"name"' and a comma before it
        frames, data = frames + k, data + k * (empty + len(name) + listed)
    return frames, data


async def _joins(srv: Server, n: int, workers: int, budget: float) -> Row:
    async with LoadGenerator("app", workers) as gen:
        began, cpu, clients = time.monotonic(), srv.cpu_s(), gen.cpu_s()
        joined = 0
        while joined < n and time.monotonic() - began < budget:
            await gen.connect_one(srv.port, joined, f"c{joined}")
            joined += 1
        joining = time.monotonic() - began
        expected = joined * (joined + 1) // 2
        deadline = time.monotonic() + DRAIN_WITHIN
        while (stats := await gen.stats())[0] < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polling the load generators, bounded by the deadline
        frames, data, closed = stats
        return {"n": n, "joined": joined, "joining_s": joining, "wall_s": time.monotonic() - began,
                "server_cpu_s": srv.cpu_s() - cpu, "clients_cpu_s": gen.cpu_s() - clients,
                "frames": frames, "expected_frames": expected,
                "mb_delivered": data / 1e6, "expected_mb": join_bytes(joined)[1] / 1e6, "closed": closed,
                "peak_mb": srv.memory_kb("VmHWM") / 1024, "complete": joined == n and frames >= expected}


def presence(n: int, *, workers: int = 2, budget: float = BUDGET) -> Row:
    with server("app") as srv:
        srv.pin(server_cpus())
        return asyncio.run(_joins(srv, n, workers, budget))


def presence_runs(*, quick: bool = False, repeat: int = 1, workers: int = 2, sizes: list[int] | None = None,
                  attempt: int | None = TRY) -> list[Row]:
    """Each size ``repeat`` times (medians), then one attempt at ``attempt`` within the budget."""
    rows = []
    for n in sizes or (QUICK_SIZES if quick else SIZES):
        runs = [presence(n, workers=workers) for _ in range(repeat)]
        row = {key: statistics.median(r[key] for r in runs) if isinstance(value, float) else value
               for key, value in runs[0].items()}
        rows.append(row | {"runs": len(runs), "complete": all(r["complete"] for r in runs)})
    if attempt and not quick:
        rows.append(presence(attempt, workers=workers) | {"runs": 1})
    done = [row for row in rows if row["complete"]]
    for row in rows:
        if not row["complete"] and len(done) >= 2:
            row["extrapolated"] = extrapolate(done[-2], done[-1], row["n"])
    return rows


def extrapolate(a: Row, b: Row, n: int) -> Row:
    """Wall and CPU time at ``n`` on the growth measured from ``a`` to ``b`` (t ~ N^p); frames N(N+1)/2, and
    bytes in proportion (a change frame's size hardly grows with N)."""
    out: Row = {}
    for key in ("wall_s", "server_cpu_s"):
        power = math.log(b[key] / a[key]) / math.log(b["n"] / a["n"])
        out[key], out[key.replace("_s", "_power")] = b[key] * (n / b["n"]) ** power, power
    frames = n * (n + 1) // 2
    return out | {"frames": frames, "mb_delivered": b["mb_delivered"] * frames / b["frames"]}


def print_presence(rows: list[Row]) -> None:
    print("\nPresence: N clients join the complete app's room one after another, each reading everything\n"
          f"{'N':>6} {'joined':>7} {'wall s':>8} {'server CPU s':>13} {'clients CPU s':>14} "
          f"{'MB delivered':>13} {'(list to all)':>14} {'frames':>12} {'peak MB':>8}")
    for row in rows:
        print(f"{row['n']:>6,} {row['joined']:>7,} {row['wall_s']:>8.1f} {row['server_cpu_s']:>13.1f} "
              f"{row['clients_cpu_s']:>14.1f} {row['mb_delivered']:>13,.1f} {row['expected_mb']:>14,.1f} "
              f"{row['frames']:>12,} {row['peak_mb']:>8.0f}"
              + ("" if row["complete"] else "   (stopped: budget)")
              + (f"   {row['closed']} clients closed" if row["closed"] else ""))
        guess = row.get("extrapolated")
        if guess:
            print(f"{'':>6} all {row['n']:,} would take ~{guess['wall_s']:,.0f} s wall "
                  f"(N^{guess['wall_power']:.2f}), "
                  f"~{guess['server_cpu_s']:,.0f} s server CPU (N^{guess['server_cpu_power']:.2f}), "
                  f"{guess['mb_delivered']:,.0f} MB in {guess['frames']:,} frames")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250,500,1000", help="comma-separated room sizes")
    parser.add_argument("--try", dest="attempt", type=int, default=TRY,
                        help="then this size, once, within the budget (0: none)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    raise_nofile()
    pin_clients()
    sizes = [int(n) for n in args.sizes.split(",")]
    rows = presence_runs(repeat=args.repeat, sizes=sizes, attempt=args.attempt)
    print_presence(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
