"""Notebook conventions nbval does not check: each notebook runs twice in a row in one kernel (a learner
pressing "Run all" again) with no error but the ones it shows on purpose, stops every server it started, and
pairs every answer cell with a check."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from wslab.student import has_solution

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_twice_in_one_kernel(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    manager = KernelManager(kernel_name="python3")
    manager.kernel_spec.argv[0] = sys.executable  # this environment's Python, whatever PATH says
    client = NotebookClient(nb, km=manager, timeout=120, resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type == "code":
                    client.execute_cell(cell, index)  # raises on an error in a cell not tagged for it
        servers = nbformat.v4.new_code_cell("import wslab; print(wslab.running_servers())")
        nb.cells.append(servers)
        client.execute_cell(servers, len(nb.cells) - 1)
    assert servers.outputs[0]["text"] == "[]\n", "the notebook's last cell should stop every server"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_answer_cell_is_followed_by_a_check(path: Path) -> None:
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    for answer, following in zip(cells, cells[1:], strict=False):
        if has_solution(answer.source):
            assert "check_" in following.source, f"no check after:\n{answer.source}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebook_opens_with_what_you_build_learn_need_and_time(path: Path) -> None:
    opening = nbformat.read(path, as_version=4).cells[0].source
    assert opening.startswith("# ")
    for part in ("**What you'll build:**", "**What you'll learn:**", "**What you need:**", "**Time:**"):
        assert part in opening, f"{path.name} does not say {part}"
