"""A learner's first minutes, timed: from a fresh clone to JupyterLab answering, through the README's command.

    python3 benchmarks/setup_time.py            # with this machine's package caches (warm): the usual case
    python3 benchmarks/setup_time.py --cold     # empty uv and pip caches: everything comes from the network
    python3 benchmarks/setup_time.py --python 3.13

Clones this repository (its committed HEAD) into a temporary folder, runs `python3 run.py lab --no-browser`
there with a free port, and stops the clock when JupyterLab's page answers. Prints each step's seconds as
it ends; the clone, its environment and the caches of a --cold run are deleted afterwards. Runs with the
Python that runs it unless --python says otherwise. Standard library only, like run.py.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WITHIN = 600.0  # seconds before the benchmark gives up on JupyterLab answering


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="start from empty uv and pip caches")
    parser.add_argument("--python", help="the Python to pass to run.py (a version such as 3.13)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wslab-setup-") as scratch:
        clone = Path(scratch, "wslab")
        env = dict(os.environ)
        if options.cold:
            env.update(UV_CACHE_DIR=str(Path(scratch, "uv-cache")), PIP_NO_CACHE_DIR="1")
        began = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        cloned = time.perf_counter()
        print(f"git clone: {cloned - began:.1f} s", flush=True)
        port = free_port()
        command = [sys.executable, "run.py", "lab", *(["--python", options.python] if options.python else []),
                   "--no-browser", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                   "--IdentityProvider.token=setup-time"]
        log = Path(scratch, "lab.log")
        with log.open("w") as output:
            lab = subprocess.Popen(command, cwd=clone, env=env, stdout=output, stderr=subprocess.STDOUT)
            try:
                while time.perf_counter() - cloned < WITHIN:
                    if lab.poll() is not None:
                        print(log.read_text()[-3000:], file=sys.stderr)
                        return 1
                    try:
                        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                                f"http://127.0.0.1:{port}/lab?token=setup-time", timeout=2) as page:
                            if page.status == 200:
                                break
                    except OSError:
                        time.sleep(0.2)  # polling JupyterLab's port, bounded by WITHIN
                else:
                    print(f"JupyterLab did not answer within {WITHIN:g} s", file=sys.stderr)
                    return 1
                ready = time.perf_counter()
            finally:
                lab.terminate()
                lab.wait(30)
        text = log.read_text()
        installed = re.search(r"Installed (\d+) packages", text)
        print(f"python3 run.py lab until JupyterLab answers: {ready - cloned:.1f} s"
              + (f" ({installed.group(1)} packages installed)" if installed else ""))
        caches = "cold" if options.cold else "warm"
        print(f"fresh clone to JupyterLab: {ready - began:.1f} s ({caches} caches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
