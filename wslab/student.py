"""Turn an answer cell into the stub a student starts from.

Everything between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes, at the same indentation::

    # YOUR CODE HERE
    raise NotImplementedError
"""

from __future__ import annotations

import re

__all__ = ["BEGIN", "END", "has_solution", "stub_solutions"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_REGION = re.compile(rf"^(?P<indent>[ \t]*){re.escape(BEGIN)}[ \t]*\n.*?^[ \t]*{re.escape(END)}[ \t]*$",
                     re.M | re.S)


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
