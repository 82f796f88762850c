"""Each chapter's student copy runs right after the chapter, in the kernel nbval started for it.

nbval runs every chapter in a fresh kernel and compares its outputs with the committed ones. Then, in the
same kernel, the student copy runs top to bottom: a learner pressing "Run all" a second time, with the
answers stubbed. Each of its cells must run with no error but those the chapter shows on purpose (its
tags and markers are the chapter's), the check after each stub must say "not done yet" with a hint, and
the clean-up must stop every server but those a page of the chapter talks to (a page a learner scrolls
back to must still work).

The student copy's cells are pytest items of the chapter's notebook, added by :func:`add_student_runs`
after the chapter's own cells, so that they share its kernel: each chapter runs twice, not three times."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
STUDENT = NOTEBOOKS / "student"
# The servers a chapter leaves running after its clean-up: those its pages talk to (they end with the kernel).
PAGE_SERVERS = {"01_echo": ["echo"], "06_complete_app": ["chat"]}
STUB = "# YOUR CODE HERE"


def checks_after_stubs(cells: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """The cells that follow a stubbed answer in a student copy: its checks."""
    return [following for answer, following in zip(cells, cells[1:], strict=False) if STUB in answer.source]


class StudentCell(IPyNbCell):
    """A cell of a student copy. Its outputs are not compared (a student copy has none committed), but a
    check after a stub must say that the exercise is not done yet, and give a hint."""

    after_stub = False

    def runtest(self) -> None:
        super().runtest()
        if self.after_stub:
            shown = "".join(output.get("text", "") or output.get("data", {}).get("text/plain", "")
                            for output in self.test_outputs or [])
            if not ("not done yet" in shown and "Hint:" in shown):
                self.raise_cell_error('the check after a stub should say "not done yet" and give a hint; '
                                      f"it showed:\n{shown}")

    def reportinfo(self) -> tuple[Path, int, str]:
        copy = (STUDENT / self.path.name).relative_to(NOTEBOOKS.parent)
        return self.path, 0, f"{copy}::{self.name.removeprefix('student copy: ')}"


def _cell(source: str, output: str | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    if output is not None:  # nbval compares what the cell prints with this
        cell.execution_count = 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    return cell


def _student_items(chapter: IPyNbFile) -> list[IPyNbCell]:
    name = chapter.path.stem
    copy = nbformat.read(STUDENT / chapter.path.name, as_version=4)
    cells = [c for c in copy.cells if c.cell_type == "code"]
    checks = {id(cell) for cell in checks_after_stubs(cells)}
    items: list[IPyNbCell] = [StudentCell.from_parent(
        chapter, name="student copy: cd notebooks/student", cell_num=-1, options=defaultdict(bool),
        cell=_cell(f"import os\nos.chdir({str(STUDENT)!r})  # where JupyterLab runs the student copy"))]
    for number, cell in enumerate(cells):
        options = defaultdict(bool, find_metadata_tags(cell.metadata))
        options.update(find_comment_markers(cell.source))
        options["check"] = False
        item = StudentCell.from_parent(chapter, name=f"student copy: Cell {number}", cell_num=number,
                                       cell=cell, options=options)
        item.after_stub = id(cell) in checks
        items.append(item)
    left = ", ".join(f"LabServer('{server}', running)" for server in PAGE_SERVERS.get(name, []))
    items.append(StudentCell.from_parent(
        chapter, name="student copy: servers left running", cell_num=len(cells),
        options=defaultdict(bool, check=True),
        cell=_cell("import wslab\n# the clean-up stops every server but those the chapter's pages talk to\n"
                   "print(wslab.running_servers())", f"[{left}]\n")))
    return items


def add_student_runs(items: list[pytest.Item]) -> None:
    """After the last cell of each chapter collected whole, add its student copy's cells (in place)."""
    chapters: dict[IPyNbFile, list[pytest.Item]] = defaultdict(list)
    for item in items:
        if isinstance(item.parent, IPyNbFile) and item.path.parent == NOTEBOOKS:
            chapters[item.parent].append(item)
    for chapter, cells in chapters.items():
        code = [c for c in nbformat.read(chapter.path, as_version=4).cells if c.cell_type == "code"]
        if len(cells) != len(code):
            continue  # a few cells picked by node id: no student copy after them
        at = items.index(cells[-1]) + 1
        items[at:at] = _student_items(chapter)
