"""What every exercise check shares: serve the learner's app, drive it, and give a verdict.

A check prints nothing itself: it returns a :class:`CheckResult`, which a notebook shows as its cell's
output. The verdict is one of three:

- passed: every step gave what was expected;
- failed: a step did not; the result shows what was sent, what was expected, what came back, the
  transcript, whatever the server logged, and a hint;
- not done: the answer still raises ``NotImplementedError`` (the stub of a student copy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..client import run_sync
from ..server import LabServer, serve
from ..serverlog import render
from ..transcript import Transcript

__all__ = ["CheckResult", "Mismatch", "expect", "run_check"]

Status = Literal["passed", "failed", "not done"]
Scenario = Callable[[LabServer, Transcript], Coroutine[Any, Any, None]]


class Mismatch(Exception):
    """A step of a check got something other than what it expected."""

    def __init__(self, step: str, expected: Any, got: Any) -> None:
        super().__init__(step)
        self.step, self.expected, self.got = step, expected, got


def expect(got: Any, expected: Any, step: str) -> None:
    """Raise :class:`Mismatch` unless ``got == expected``."""
    if got != expected:
        raise Mismatch(step, expected, got)


@dataclass
class CheckResult:
    """The verdict of one exercise check."""

    exercise: str
    status: Status
    summary: str
    hint: str = ""
    details: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def __str__(self) -> str:
        mark = {"passed": "✅", "failed": "❌", "not done": "⏳"}[self.status]
        lines = [f"{mark} {self.exercise}: {self.summary}"]
        lines += [f"   {line}" for line in self.details]
        if self.hint and self.status != "passed":
            lines.append(f"   Hint: {self.hint}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def run_check(exercise: str, app: Any, scenario: Scenario, *, passed: str, hint: str,
              timeout: float = 30.0) -> CheckResult:
    """Serve ``app``, run ``scenario`` against it and turn what happened into a :class:`CheckResult`."""
    if not callable(app):
        return CheckResult(exercise, "failed", f"expected your app (a FastAPI object), got {app!r}.",
                           hint)
    transcript = Transcript(live=False)
    with serve(app, name=f"check {exercise}") as server:
        try:
            run_sync(scenario(server, transcript), timeout=timeout)
            outcome: Exception | None = None
        except NotImplementedError as exc:
            outcome = exc
        except (Mismatch, ConnectionClosed, InvalidStatus, TimeoutError) as exc:
            outcome = exc
        server.wait_idle(2.0)
    errors = server.sessions.errors()
    if isinstance(outcome, NotImplementedError) or any(isinstance(e, NotImplementedError) for e in errors):
        return CheckResult(exercise, "not done", "not done yet: the answer still raises "
                           "NotImplementedError. Replace the stub with your code and run both cells again.",
                           hint)
    if outcome is None and not errors:
        return CheckResult(exercise, "passed", passed)
    details = ["What happened:"] + [f"  {line}" for line in transcript.lines]
    logged = [line for r in server.log.records if r.levelno >= logging.ERROR for line in render(r)]
    if logged:
        details += ["The server logged:"] + [f"  {line}" for line in logged]
    if isinstance(outcome, Mismatch):
        summary = f"not right yet: {outcome.step}."
        details = [f"expected: {outcome.expected!r}", f"got:      {outcome.got!r}", *details]
    elif outcome is None:
        summary = "not right yet: the replies were right, but your handler raised an exception."
    elif isinstance(outcome, ConnectionClosed):
        summary = "not right yet: the connection closed before the check was finished."
    elif isinstance(outcome, InvalidStatus):
        summary = (f"not right yet: the server refused the WebSocket handshake "
                   f"(HTTP {outcome.response.status_code}); is the endpoint at the right path?")
    else:
        summary = "not right yet: the server did not answer in time."
    return CheckResult(exercise, "failed", summary, hint, details)
