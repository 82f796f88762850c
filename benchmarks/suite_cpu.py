"""How long the README's test command takes, and how busy it keeps the CPUs (Linux: reads /proc/stat).

    python3 benchmarks/suite_cpu.py                  # python3 run.py test
    python3 benchmarks/suite_cpu.py -- -n 6          # the same, with arguments for pytest

Standard library only, like run.py. Prints the wall time, the CPU time the whole machine spent busy
meanwhile (every process: test workers, kernels, Chromium, servers), the time it sat idle, and the floor
that the busy time sets: with every CPU busy all along, the suite could not take less. Run it on an
otherwise idle machine, since other jobs' CPU counts too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds since boot, all CPUs together."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq + steal) / tick, (idle + iowait) / tick


def main() -> None:
    if not Path("/proc/stat").exists():
        sys.exit("suite_cpu.py reads /proc/stat, which only Linux has: on another system, "
                 "time `python3 run.py test` instead.")
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    cpus = os.cpu_count() or 1
    busy0, idle0 = cpu_seconds()
    start = time.monotonic()
    status = subprocess.run([sys.executable, "run.py", "test", *args], cwd=ROOT).returncode
    wall = time.monotonic() - start
    busy1, idle1 = cpu_seconds()
    busy, idle = busy1 - busy0, idle1 - idle0
    share = 100 * busy / (busy + idle)
    print(f"\nwall {wall:.0f} s ({wall // 60:.0f} min {wall % 60:.0f} s); CPU busy {busy:.0f} s, "
          f"idle {idle:.0f} s on {cpus} CPUs ({share:.0f} % busy); with every CPU busy it could not "
          f"take less than {busy / cpus:.0f} s. The tests {'passed' if status == 0 else 'FAILED'}.")
    sys.exit(status)


if __name__ == "__main__":
    main()
