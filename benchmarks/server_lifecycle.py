"""How long the in-kernel server takes to start (until it is listening) and to stop (until the port is free).

    python3 run.py python benchmarks/server_lifecycle.py [--runs 20]

Prints the median and the slowest of each, in milliseconds. Each run starts the server, answers one WebSocket
message (so the server really works), and stops it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import wslab
from wslab.demos.echo import echo_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    app = echo_app()
    starts, stops = [], []
    for _ in range(runs):
        began = time.perf_counter()
        server = wslab.serve(app, name="benchmark")
        starts.append(time.perf_counter() - began)
        assert wslab.exchange(server, "/ws", "ping", show=False) == ["ping"]
        began = time.perf_counter()
        server.stop()
        stops.append(time.perf_counter() - began)
    for what, times in (("start", starts), ("stop", stops)):
        print(f"{what:>5}: median {statistics.median(times) * 1000:6.1f} ms, "
              f"slowest {max(times) * 1000:6.1f} ms ({runs} runs)")


if __name__ == "__main__":
    main()
