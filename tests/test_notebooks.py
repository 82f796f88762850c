"""Notebook conventions nbval does not check, and the student copies.

The student copies run in nbval's kernel right after their chapters (see student_copy.py). Here: they
are up to date and stub every answer, every answer cell is followed by a check, no cell records when it
ran, and each chapter opens with what it teaches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import nbval_kernel
import pytest
from student_copy import NOTEBOOKS, STUDENT, checks_after_stubs

from wslab.tools.student import has_solution, student_copies

CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_the_committed_student_copies_match_their_chapters() -> None:
    found = student_copies(NOTEBOOKS, STUDENT, write=False)
    assert found.up_to_date, (f"student copies out of date: {found.changed + found.stray}; "
                              "run `wslab student` and commit notebooks/student")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_student_copy_stubs_every_answer_and_keeps_its_check(path: Path) -> None:
    student = [c for c in nbformat.read(STUDENT / path.name, as_version=4).cells if c.cell_type == "code"]
    chapter = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert len(checks_after_stubs(student)) == sum(has_solution(cell.source) for cell in chapter)
    assert all("check_" in check.source for check in checks_after_stubs(student))


@pytest.mark.parametrize("path", [*CHAPTERS, *sorted(STUDENT.glob("*.ipynb"))], ids=lambda p: p.stem)
def test_no_cell_records_when_it_ran(path: Path) -> None:
    # timings change at every run: in a diff they hide what changed, and two branches that re-ran a chapter
    # conflict on every cell (the README's nbconvert command passes --ExecutePreprocessor.record_timing=False)
    timed = [cell.id for cell in nbformat.read(path, as_version=4).cells if "execution" in cell.metadata]
    assert timed == [], f"{path.name}: cells with timings in their metadata: {timed}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_answer_cell_is_followed_by_a_check(path: Path) -> None:
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    for answer, following in zip(cells, cells[1:], strict=False):
        if has_solution(answer.source):
            assert "check_" in following.source, f"no check after:\n{answer.source}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_the_notebook_opens_with_what_you_build_learn_need_and_time(path: Path) -> None:
    opening = nbformat.read(path, as_version=4).cells[0].source
    assert opening.startswith("# ")
    for part in ("**What you'll build:**", "**What you'll learn:**", "**What you need:**", "**Time:**"):
        assert part in opening, f"{path.name} does not say {part}"


# -- how nbval starts its kernels (nbval_kernel.py) ---------------------------------------------------------
def test_a_kernel_that_dies_at_start_is_started_again_and_the_last_failure_shows_its_stderr(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    starts: list[str] = []

    def dies_twice(startup_timeout: float, kernel_name: str, *, stderr: Any, **kwargs: Any) -> str:
        starts.append(kernel_name)
        stderr.write(f"zmq.error.ZMQError: Address already in use (start {len(starts)})\n")
        stderr.flush()
        if len(starts) < 3:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return "started"

    monkeypatch.setattr(nbval_kernel, "_nbval_start_new_kernel", dies_twice)
    nbval_devnull = (tmp_path / "devnull").open("w")
    assert nbval_kernel.start_new_kernel(60, "python3", stderr=nbval_devnull) == "started"
    assert starts == ["python3"] * 3 and nbval_devnull.closed  # no ResourceWarning later

    starts.clear()
    monkeypatch.setattr(nbval_kernel, "STARTS", 2)
    with pytest.raises(RuntimeError) as failed:
        nbval_kernel.start_new_kernel(60, "python3")
    assert len(starts) == 2
    assert "Kernel died before replying to kernel_info (tried 2 times)" in str(failed.value)
    assert "Address already in use (start 2)" in str(failed.value)
