"""Make the student copy of every chapter: the answers become stubs, instructor cells go, outputs are cleared.

In an answer cell, everything between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes, at the
same indentation::

    # YOUR CODE HERE
    raise NotImplementedError

The check in the next cell then says "not done yet" instead of crashing, so a student copy runs top to
bottom. Cells tagged ``instructor`` (notes on timing and pitfalls) are left out. The copies are
committed (``notebooks/student/``); ``wslab student --check`` says whether they match their chapters,
and the tests run it, so a chapter cannot change without its student copy.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = ["BEGIN", "END", "INSTRUCTOR_TAG", "StudentCopies", "has_solution", "student_copies",
           "student_notebook", "stub_solutions"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
INSTRUCTOR_TAG = "instructor"
CHAPTERS = "[0-9][0-9]_*.ipynb"
_REGION = re.compile(rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[ \t]*\n.*?^[ \t]*{re.escape(END)}[ \t]*$",
                     re.M | re.S)
_BANNER = ("> **Student copy** of `notebooks/{name}`, made by `wslab student`: the exercise answers are left "
           "for you (`# YOUR CODE HERE`), and each check says \"not done yet\" until you write them.")


def has_solution(source: str) -> bool:
    """Whether ``source`` holds a solution region."""
    return BEGIN in source


def stub_solutions(source: str) -> str:
    """``source`` with every solution region replaced by a stub that raises ``NotImplementedError``.

    Raises ``ValueError`` if the markers do not pair up, so a broken answer cell is caught when the
    student copy is made rather than in class.
    """
    stubbed = _REGION.sub(lambda m: f"{m['indent']}# YOUR CODE HERE\n{m['indent']}raise NotImplementedError",
                          source)
    if BEGIN in stubbed or END in stubbed:
        raise ValueError(f"unpaired {BEGIN!r} / {END!r} markers in:\n{source}")
    return stubbed


def student_notebook(chapter: NotebookNode, name: str) -> NotebookNode:
    """The student copy of ``chapter`` (the notebook file ``name``); ``chapter`` itself is not changed."""
    notebook = copy.deepcopy(chapter)
    cells = [cell for cell in notebook.cells if INSTRUCTOR_TAG not in cell.metadata.get("tags", [])]
    for cell in cells:
        if cell.cell_type == "code":
            try:
                cell.source = stub_solutions(cell.source)
            except ValueError as exc:
                raise ValueError(f"{name}, cell {cell.get('id', '?')}: {exc}") from None
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    banner = nbformat.v4.new_markdown_cell(_BANNER.format(name=name))
    banner.id = "student-copy"
    notebook.cells = [banner, *cells]
    notebook.metadata.pop("widgets", None)
    return notebook


@dataclass
class StudentCopies:
    """What :func:`student_copies` found: the copies that differ from their chapter, and the stray ones."""

    changed: list[Path]
    stray: list[Path]

    @property
    def up_to_date(self) -> bool:
        return not self.changed and not self.stray


def student_copies(chapters: Path, out: Path, *, write: bool = True) -> StudentCopies:
    """Make (``write=True``) or compare (``write=False``) the student copy of every chapter in ``chapters``.

    The copies go to ``out`` under the chapters' names. Returns the copies that were (or would be)
    rewritten, and the files in ``out`` that match no chapter (removed when writing). Raises
    ``FileNotFoundError`` when ``chapters`` holds no chapter notebooks.
    """
    sources = sorted(chapters.glob(CHAPTERS))
    if not sources:
        raise FileNotFoundError(f"no chapter notebooks ({CHAPTERS}) in {chapters}")
    changed = []
    for source in sources:
        text = nbformat.writes(student_notebook(nbformat.read(source, as_version=4), source.name)) + "\n"
        target = out / source.name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            changed.append(target)
            if write:
                out.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
    names = {source.name for source in sources}
    stray = sorted(path for path in out.glob(CHAPTERS) if path.name not in names)
    if write:
        for path in stray:
            path.unlink()
    return StudentCopies(changed, stray)
