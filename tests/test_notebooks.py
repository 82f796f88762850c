"""Notebook conventions nbval does not check, and the student copies.

Each chapter runs in one kernel right after its student copy: the student copy must run top to bottom
with every check saying "not done yet", then the chapter must run again in the same kernel (a learner
pressing "Run all" a second time) with no error but the ones it shows on purpose, and stop every server
it started but those a page of the chapter talks to (a page a learner scrolls back to must still work).
Every answer cell is followed by a check, and each chapter opens with what it teaches."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from wslab.tools.student import has_solution, student_copies

ROOT = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(ROOT.glob("[0-9][0-9]_*.ipynb"))
STUDENT = ROOT / "student"
# The servers a chapter leaves running after its clean-up: those its pages talk to (they end with the kernel).
PAGE_SERVERS = {"01_echo": ["echo"], "06_complete_app": ["chat"]}


def test_the_committed_student_copies_match_their_chapters() -> None:
    found = student_copies(ROOT, STUDENT, write=False)
    assert found.up_to_date, (f"student copies out of date: {found.changed + found.stray}; "
                              "run `wslab student` and commit notebooks/student")


def checks_after_stubs(cells: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    return [following for answer, following in zip(cells, cells[1:], strict=False)
            if "# YOUR CODE HERE" in answer.source]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_student_copy_then_the_chapter_run_in_one_kernel(path: Path) -> None:
    student = [c for c in nbformat.read(STUDENT / path.name, as_version=4).cells if c.cell_type == "code"]
    chapter = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    check = nbformat.v4.new_code_cell("import wslab; print(wslab.running_servers())")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.from_dict(dict(cell)) for cell in student + chapter] + [check]
    for number, cell in enumerate(nb.cells):
        cell.id = f"run-{number}"
    # nbclient stops at an error in any cell not tagged raises-exception; the kernel is its own process.
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(STUDENT)}})
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(str(error)[-3000:])
    ran = nb.cells
    checks = checks_after_stubs(ran[:len(student)])
    assert len(checks) == sum(has_solution(cell.source) for cell in chapter)
    for cell in checks:
        shown = "".join(output.get("text", "") or output.get("data", {}).get("text/plain", "")
                        for output in cell.outputs)
        assert "not done yet" in shown and "Hint:" in shown, f"{cell.source}\nshowed:\n{shown}"
    left = [f"LabServer('{name}', running)" for name in PAGE_SERVERS.get(path.stem, [])]
    assert ran[-1].outputs[0]["text"] == f"[{', '.join(left)}]\n", \
        "the notebook's clean-up should stop every server but those its pages talk to"


@pytest.mark.parametrize("path", [*NOTEBOOKS, *sorted(STUDENT.glob("*.ipynb"))], ids=lambda p: p.stem)
def test_no_cell_records_when_it_ran(path: Path) -> None:
    # timings change at every run: in a diff they hide what changed, and two branches that re-ran a chapter
    # conflict on every cell (the README's nbconvert command passes --ExecutePreprocessor.record_timing=False)
    timed = [cell.id for cell in nbformat.read(path, as_version=4).cells if "execution" in cell.metadata]
    assert timed == [], f"{path.name}: cells with timings in their metadata: {timed}"


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
