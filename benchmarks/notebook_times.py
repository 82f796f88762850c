"""How long each notebook takes to run top to bottom in a fresh kernel (the machine's part of a workshop).

    python3 run.py bench notebook_times                              # every chapter
    python3 run.py bench notebook_times notebooks/student/*.ipynb    # the student copies

Runs every notebook in notebooks/ (or those named) with nbclient, one after the other, each in a new kernel
started from this Python, in the notebook's own folder, as "Run all" would. The files are read, never
written. Prints a line as each notebook starts and ends, then seconds per notebook and the total. Cells
tagged raises-exception may raise; any other error is reported and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def run(path: Path, timeout: int) -> float:
    """Execute the notebook at ``path`` in memory; return the seconds it took, kernel start included."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    began = time.perf_counter()
    client.execute(stderr=subprocess.DEVNULL)  # the kernel's own warnings would drown the progress lines
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/NN_*.ipynb")
    parser.add_argument("--timeout", type=int, default=600, help="seconds one cell may take (default 600)")
    args = parser.parse_args()
    paths = args.notebooks or sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    print(f"Python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs", flush=True)
    times: dict[str, float] = {}
    failed = False
    for number, path in enumerate(paths, 1):
        name = f"{path.resolve().parent.name}/{path.name}"  # notebooks/NN_x or student/NN_x
        print(f"[{number}/{len(paths)}] running {name} ...", flush=True)
        try:
            times[name] = seconds = run(path, args.timeout)
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
            failed = True
            reason = (f"{exc.ename}: {exc.evalue}" if isinstance(exc, CellExecutionError)
                      else f"{type(exc).__name__}: {exc}")
            print(f"[{number}/{len(paths)}] {name} FAILED: {reason}", flush=True)
            continue
        print(f"[{number}/{len(paths)}] {name} done in {seconds:.1f} s", flush=True)
    width = max((len(name) for name in times), default=5)
    print()
    for name, seconds in times.items():
        print(f"{name:<{width}}  {seconds:6.1f} s")
    print(f"{'total':<{width}}  {sum(times.values()):6.1f} s  ({len(times)} of {len(paths)} notebooks)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
