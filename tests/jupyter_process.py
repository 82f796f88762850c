"""A real Jupyter server (or JupyterLab) in a process of its own, on a free loopback port, for the tests that
need one: the hub proxy (test_proxy.py) and the notebooks in JupyterLab (test_jupyterlab.py)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

START_TIMEOUT = 60.0  # seconds for the server to answer its status page


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_jupyter(home: Path, *, token: str, base_url: str = "/", app: str = "server",
                    root_dir: Path | None = None, options: Sequence[str] = (),
                    env: Mapping[str, str] | None = None) -> Iterator[str]:
    """``jupyter server`` (or ``app="lab"``) with its own configuration under ``home``; yields its address
    (``http://127.0.0.1:<port>``, without the base URL). Its output goes to ``home/server.log``."""
    port = free_port()
    environment = {**os.environ, **(env or {}), "JUPYTER_CONFIG_DIR": str(home / "config"),
                   "JUPYTER_DATA_DIR": str(home / "data"), "JUPYTER_RUNTIME_DIR": str(home / "runtime")}
    command = [sys.executable, "-m", "jupyter", app, "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--ServerApp.base_url={base_url}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root_dir or home}", *options]
    if os.geteuid() == 0:
        command.append("--allow-root")
    log_path = home / "server.log"
    address = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the Jupyter server exited: {log_path.read_text()[-2000:]}")
                try:
                    with urllib.request.urlopen(f"{address}{base_url}api/status?token={token}", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"the Jupyter server did not answer within {START_TIMEOUT:g} s")
                    time.sleep(0.2)  # polling a subprocess we cannot get an event from
            yield address
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
