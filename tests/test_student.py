import pytest

from wslab.student import has_solution, stub_solutions

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
