"""The broadcast benchmark still runs end to end: its smallest configuration (the complete app and bare
websockets, 20 clients, once). Its figures are not checked: a benchmark is not a test, and this machine's
load would decide them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmark reads /proc and uses epoll")
def test_the_broadcast_benchmark_measures_a_small_room(tmp_path: Path) -> None:
    figures = tmp_path / "broadcast.json"
    command = [sys.executable, "benchmarks/broadcast.py", "--kinds", "app,bare", "--sizes", "20",
               "--repeat", "1", "--no-presence", "--json", str(figures)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    runs = json.loads(figures.read_text())["runs"]
    assert [(run["kind"], run.get("failed")) for run in runs] == [("app", None), ("bare", None)]
    for run in runs:
        assert run["cpu_ms_per_message"] > 0 and run["deliveries_per_s"] > 0 and run["closed"] == 0
