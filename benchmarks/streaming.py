"""What clients that come and go leave behind (tasks, memory, idle CPU, unobserved errors), for the tutorial's
notifications endpoint and wslab's hardened streaming endpoints.

    python3 run.py python benchmarks/streaming.py [--cycles 200] [--idle 5] [--json PATH]

Each server runs in a subprocess on 127.0.0.1 under uvicorn with
``wslab.reference.wsprotocol.WebSocketProtocol`` (what ``wslab.serve`` runs):

- ``naive``: ``wslab.demos.naive.naive_notifications_app()``, the tutorial's ``/ws/notifications/{user_id}``,
whose
  listener task per connection polls twice a second and is never stopped;
- ``hardened``: ``wslab.reference.streaming.streaming_app()``, measured on ``/ws/notifications`` (each client
  logs in with a token in its first frame) and on ``/ws/prices``.

The benchmark adds two HTTP routes to the app it serves: ``GET /stats`` (after ``gc.collect()``: the tasks on
the server's loop besides uvicorn's own and the handlers of open connections, and the resident memory, VmRSS)
and ``POST /notify/{user}`` (one notification for a user, as the app's own code would publish it).

For each: stats; ``cycles`` clients connect and close one after the other (users opening and closing a tab);
stats again once every handler has ended; the server's CPU time over ``idle`` seconds with nobody connected;
then ten notifications for the user who came and went, and how many "Task exception was never retrieved"
errors the server logged.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from subprocess_server import serve_script
from websockets.asyncio.client import connect

SETTLE = 10.0  # seconds to wait for the handlers of closed connections to end
SECRET = "the benchmark's secret for the hardened server's tokens"
USER = "ada"  # who comes and goes, and gets the notifications afterwards
NOTIFICATIONS = 10
UNRETRIEVED = "Task exception was never retrieved"


# -- the server ----------------------------------------------------------------------------------------------
def _serve(kind: str, port: int) -> None:
    """Run one server in this process until it is terminated."""
    import gc
    import logging

    import uvicorn
    from fastapi import FastAPI

    from wslab.demos.naive import naive_notifications_app
    from wslab.reference.auth import Tokens
    from wslab.reference.manager import MAX_FRAME
    from wslab.reference.streaming import streaming_app
    from wslab.reference.wsprotocol import WebSocketProtocol

    logging.basicConfig(level=logging.ERROR)  # asyncio's "Task exception was never retrieved" goes to the log
    app: FastAPI = naive_notifications_app() if kind == "naive" else streaming_app(tokens=Tokens(SECRET))

    @app.get("/stats")
    async def stats() -> dict[str, Any]:
        gc.collect()
        current, names = asyncio.current_task(), []
        for task in asyncio.all_tasks():
            name = getattr(task.get_coro(), "__qualname__", "?")
            if task is not current and name not in ("Server.serve", "LifespanOn.main"):
                names.append("handler" if name.endswith(".run_asgi") else name.rsplit(".", 1)[-1])
        status = Path("/proc/self/status").read_text().splitlines()
        rss = int(next(line for line in status if line.startswith("VmRSS:")).split()[1]) / 1024
        return {"tasks": len(names) - names.count("handler"), "handlers": names.count("handler") - 1,
                "rss_mb": rss}

    @app.post("/notify/{user}")
    async def notify(user: str) -> None:
        if kind == "naive":
            app.state.inbox[user].append({"type": "notification", "text": "benchmark"})
        else:
            app.state.notifications.publish(user, {"text": "benchmark"})

    uvicorn.run(app, host="127.0.0.1", port=port, ws=WebSocketProtocol, ws_max_size=MAX_FRAME,
                log_level="warning")


@dataclass
class Server:
    port: int
    pid: int
    log: Path

    def get(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def cpu_s(self) -> float:  # user and system time so far
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def unretrieved(self) -> int:
        return self.log.read_text(errors="replace").count(UNRETRIEVED)


@contextlib.contextmanager
def server(kind: str) -> Iterator[Server]:
    """A server of this kind ("naive" or "hardened") in a subprocess, stopped when the block ends."""
    with serve_script(Path(__file__), kind) as (port, pid, log):
        yield Server(port, pid, log)


# -- one measurement -----------------------------------------------------------------------------------------
@dataclass
class Row:
    server: str
    endpoint: str
    cycles: int
    tasks_before: int
    tasks_after: int
    rss_before_mb: float
    rss_after_mb: float
    idle_cpu_percent: float
    unretrieved_errors: int
    seconds: float


async def _cycles(port: int, path: str, cycles: int) -> None:
    from wslab.reference.auth import Tokens

    auth = json.dumps({"type": "auth", "token": Tokens(SECRET).issue(USER)})
    for _ in range(cycles):
        async with connect(f"ws://127.0.0.1:{port}{path}", compression=None, ping_interval=None) as client:
            if path == "/ws/notifications":  # the hardened endpoint: who you are comes from a token
                await client.send(auth)


def _settled(srv: Server) -> dict[str, Any]:
    """Stats once no handler is running any more (or after SETTLE seconds)."""
    deadline = time.monotonic() + SETTLE
    while (stats := srv.get("/stats"))["handlers"] > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return dict(stats)


def measure(kind: str, path: str, cycles: int, idle: float) -> Row:
    with server(kind) as srv:
        before = _settled(srv)
        started = time.perf_counter()
        asyncio.run(_cycles(srv.port, path, cycles))
        took = time.perf_counter() - started
        after = _settled(srv)
        cpu = srv.cpu_s()
        time.sleep(idle)  # nobody is connected: what does the server do meanwhile?
        idle_cpu = (srv.cpu_s() - cpu) / idle * 100
        for _ in range(NOTIFICATIONS):
            srv.get(f"/notify/{USER}", method="POST")
        deadline = time.monotonic() + 5  # the naive listeners poll every 0.5 s
        while srv.unretrieved() < NOTIFICATIONS and time.monotonic() < deadline and kind == "naive":
            time.sleep(0.05)
        return Row(kind, path, cycles, before["tasks"], after["tasks"], before["rss_mb"], after["rss_mb"],
                   idle_cpu, srv.unretrieved(), took)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200, help="clients that connect and leave (200)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured (5)")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument("--serve", choices=("naive", "hardened"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return _serve(args.serve, args.port)
    runs = [("naive", f"/ws/notifications/{USER}"), ("hardened", "/ws/notifications"),
            ("hardened", "/ws/prices")]
    rows = [measure(kind, path, args.cycles, args.idle) for kind, path in runs]
    print(f"{args.cycles} clients connect and leave, one after the other; then {args.idle:g} s with nobody "
          f"connected; then {NOTIFICATIONS} notifications for the user who left.\n")
    print(f"{'server':<9} {'endpoint':<22} {'tasks left':>10} {'memory (MB)':>16} {'idle CPU':>9} "
          f"{'unretrieved':>12}")
    for row in rows:
        memory = f"{row.rss_before_mb:.1f} → {row.rss_after_mb:.1f}"
        print(f"{row.server:<9} {row.endpoint:<22} {row.tasks_after - row.tasks_before:>10} {memory:>16} "
              f"{row.idle_cpu_percent:>8.1f}% {row.unretrieved_errors:>12}")
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))


if __name__ == "__main__":
    main()
