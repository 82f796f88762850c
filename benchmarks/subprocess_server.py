"""A benchmark's server in a subprocess of its own, so that its CPU time and memory are its own.

    with serve_script(Path(__file__), "naive") as (port, pid, log):
        ...   # the script was started as: python SCRIPT --serve naive --port PORT
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_WITHIN = 20.0  # seconds


@contextlib.contextmanager
def serve_script(script: Path, kind: str) -> Iterator[tuple[int, int, Path]]:
    """Run ``script --serve KIND --port PORT`` on a free loopback port until the block ends; yield the port,
    the process id and the file its output goes to."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    command = [sys.executable, str(script.resolve()), "--serve", kind, "--port", str(port)]
    with tempfile.NamedTemporaryFile(prefix=f"{script.stem}-{kind}-", suffix=".log") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + START_WITHIN
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start:\n{Path(log.name).read_text()[-2000:]}")
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                    break
                time.sleep(0.05)  # polling for the port to open, bounded by the deadline
            yield port, process.pid, Path(log.name)
        finally:
            process.terminate()
            try:
                process.wait(3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
