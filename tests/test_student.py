from pathlib import Path

import nbformat
import pytest

from wslab.tools.cli import main
from wslab.tools.student import StudentCopies, has_solution, stub_solutions, student_copies, student_notebook

ANSWER = '''app = FastAPI()

@app.websocket("/shout")
async def shout(websocket):
    ### BEGIN SOLUTION
    await websocket.accept()
    await websocket.send_text("HI")
    ### END SOLUTION
'''


def test_a_solution_region_becomes_an_indented_stub() -> None:
    assert has_solution(ANSWER)
    assert stub_solutions(ANSWER) == '''app = FastAPI()

@app.websocket("/shout")
async def shout(websocket):
    # YOUR CODE HERE
    raise NotImplementedError
'''


def test_unpaired_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="unpaired"):
        stub_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_source_without_a_solution_is_unchanged() -> None:
    assert not has_solution("x = 1\n") and stub_solutions("x = 1\n") == "x = 1\n"


def chapter() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Chapter"),
                nbformat.v4.new_markdown_cell("Pause here.", metadata={"tags": ["instructor"]}),
                nbformat.v4.new_code_cell(ANSWER, execution_count=3,
                                          outputs=[nbformat.v4.new_output("stream", text="done\n")]),
                nbformat.v4.new_code_cell("check_shout(app)", metadata={"tags": ["nbval-ignore-output"]})]
    for number, cell in enumerate(nb.cells):
        cell.id = f"c{number}"
    return nb


def test_the_student_copy_stubs_answers_drops_instructor_cells_and_clears_outputs() -> None:
    original = chapter()
    copy = student_notebook(original, "01_echo.ipynb")
    assert [cell.id for cell in copy.cells] == ["student-copy", "c0", "c2", "c3"]
    assert "notebooks/01_echo.ipynb" in copy.cells[0].source and "not done yet" in copy.cells[0].source
    answer = copy.cells[2]
    assert "raise NotImplementedError" in answer.source and "send_text" not in answer.source
    assert answer.outputs == [] and answer.execution_count is None
    assert copy.cells[3].metadata["tags"] == ["nbval-ignore-output"]  # other tags stay
    assert original.cells[2].outputs and "send_text" in original.cells[2].source  # the chapter is untouched


def test_a_broken_answer_cell_is_named() -> None:
    original = chapter()
    original.cells[2].source = "### BEGIN SOLUTION\nx = 1\n"
    with pytest.raises(ValueError, match="01_echo.ipynb, cell c2: unpaired"):
        student_notebook(original, "01_echo.ipynb")


def test_copies_are_written_then_found_up_to_date_and_strays_removed(tmp_path: Path) -> None:
    chapters, out = tmp_path / "notebooks", tmp_path / "notebooks" / "student"
    chapters.mkdir()
    nbformat.write(chapter(), chapters / "01_echo.ipynb")
    out.mkdir()
    (out / "09_gone.ipynb").write_text("{}")
    assert student_copies(chapters, out, write=False) == StudentCopies([out / "01_echo.ipynb"],
                                                                       [out / "09_gone.ipynb"])
    assert student_copies(chapters, out) == StudentCopies([out / "01_echo.ipynb"], [out / "09_gone.ipynb"])
    assert sorted(path.name for path in out.iterdir()) == ["01_echo.ipynb"]
    assert student_copies(chapters, out, write=False).up_to_date
    nbformat.validate(nbformat.read(out / "01_echo.ipynb", as_version=4))


def test_the_command_checks_writes_and_explains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chapters = tmp_path / "notebooks"
    chapters.mkdir()
    nbformat.write(chapter(), chapters / "01_echo.ipynb")
    assert main(["student", "--chapters", str(chapters), "--check"]) == 1
    assert "run `wslab student` to make them again" in capsys.readouterr().out
    assert main(["student", "--chapters", str(chapters)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(["student", "--chapters", str(chapters), "--check"]) == 0
    assert "match their chapters" in capsys.readouterr().out
    assert main(["student", "--chapters", str(tmp_path / "nowhere")]) == 1
    assert "no chapter notebooks" in capsys.readouterr().err
