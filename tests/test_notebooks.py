"""Notebook conventions nbval does not check: each notebook runs twice in a row in one kernel (a learner
pressing "Run all" again) with no error but the ones it shows on purpose, stops every server it started,
pairs every answer cell with a check, and opens with what it teaches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from wslab.student import has_solution

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_run_all_twice_in_one_kernel(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    check = nbformat.v4.new_code_cell("import wslab; print(wslab.running_servers())")
    nb.cells = [nbformat.from_dict(dict(cell)) for cell in code + code] + [check]
    for number, cell in enumerate(nb.cells):
        cell.id = f"run-{number}"
    doubled = tmp_path / path.name
    nbformat.write(nb, doubled)
    # nbconvert stops at an error in any cell not tagged raises-exception, and owns its kernel.
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
         "--ExecutePreprocessor.timeout=120", str(doubled)],
        capture_output=True, text=True, timeout=600, cwd=path.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    last = nbformat.read(doubled, as_version=4).cells[-1]
    assert last.outputs[0]["text"] == "[]\n", "the notebook's last cell should stop every server"


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
