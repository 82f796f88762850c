"""What every exercise check shares: serve the learner's app (or several), drive it, and give a verdict.

A check prints nothing itself: it returns a :class:`CheckResult`, which a notebook shows as its cell's
output. The verdict is one of three:

- passed: every step gave what was expected;
- failed: a step did not; the result shows what was sent, what was expected, what came back, the
  transcript, whatever the server logged, and a hint (the summary names first the exception the learner's
  handler raised, if it raised one: the mismatch usually follows from it);
- not done: the answer still raises ``NotImplementedError`` (the stub of a student copy).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wslab.lab import classroom
from wslab.lab.client import run_sync
from wslab.lab.server import LabServer, serve
from wslab.lab.serverlog import render
from wslab.lab.transcript import Transcript

__all__ = ["CheckResult", "Mismatch", "expect", "run_check", "run_check_on_servers"]

Status = Literal["passed", "failed", "not done"]
Scenario = Callable[[LabServer, Transcript], Coroutine[Any, Any, None]]
ServersScenario = Callable[[list[LabServer], Transcript], Coroutine[Any, Any, None]]


class Mismatch(Exception):
    """A step of a check got something other than what it expected. ``hint``, if given, is aimed at
    this failure and replaces the check's general hint in the verdict."""

    def __init__(self, step: str, expected: Any, got: Any, hint: str = "") -> None:
        super().__init__(step)
        self.step, self.expected, self.got, self.hint = step, expected, got, hint


def expect(got: Any, expected: Any, step: str, hint: str = "") -> None:
    """Raise :class:`Mismatch` unless ``got == expected``."""
    if got != expected:
        raise Mismatch(step, expected, got, hint)


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
        printer.text(str(self) + classroom.shown(self))  # "" unless the notebook joined a live class


def run_check(exercise: str, app: Any, scenario: Scenario, *, passed: str, hint: str,
              timeout: float = 30.0) -> CheckResult:
    """Serve ``app``, run ``scenario`` against it and turn what happened into a :class:`CheckResult`.

    Fails if a step mismatches, a handler raises, or the server logs an error; reports "not done" if
    the answer raises ``NotImplementedError``.
    """
    if inspect.isfunction(app):
        return CheckResult(exercise, "failed", f"you passed the function {app.__name__}(); pass the "
                           "FastAPI app it is registered on (the variable that holds FastAPI()).", hint)
    if not callable(app):
        return CheckResult(exercise, "failed", f"expected your app (a FastAPI object), got {app!r}.", hint)

    async def on_one(servers: list[LabServer], transcript: Transcript) -> None:
        await scenario(servers[0], transcript)

    return run_check_on_servers(exercise, [app], on_one, passed=passed, hint=hint, timeout=timeout)


def run_check_on_servers(exercise: str, apps: Sequence[Any], scenario: ServersScenario, *, passed: str,
                         hint: str, timeout: float = 30.0) -> CheckResult:
    """:func:`run_check` for several apps at once (workers of one chat sharing a Redis, for example),
    each served by a server of its own, or for none: ``scenario(servers, transcript)`` gets the servers
    in the order of ``apps``. The verdict is :func:`run_check`'s, over every server."""
    transcript = Transcript(live=False)
    servers: list[LabServer] = []
    outcome: BaseException | None = None
    try:
        for n, app in enumerate(apps):
            name = f"check {exercise}" if len(apps) == 1 else f"check {exercise} #{n + 1}"
            servers.append(serve(app, name=name))
        run_sync(scenario(servers, transcript), timeout=timeout)
    except (Exception, asyncio.CancelledError) as exc:
        if len(servers) < len(apps):
            raise  # a server did not start: not a verdict on the answer (run_check did the same)
        outcome = exc
    finally:
        _stop(servers)
    errors = [error for server in servers for error in server.sessions.errors()]
    if isinstance(outcome, NotImplementedError) or any(isinstance(e, NotImplementedError) for e in errors):
        return CheckResult(exercise, "not done", "not done yet: the answer still raises "
                           "NotImplementedError. Replace the stub with your code and run both cells again.",
                           hint)
    logged = [line for server in servers for r in server.log.records if r.levelno >= logging.ERROR
              for line in render(r)]
    stuck = any(server.running for server in servers)
    if outcome is None and not errors and not logged and not stuck:
        return CheckResult(exercise, "passed", passed)
    details = ["What happened:"] + [f"  {line}" for line in transcript.lines]
    if logged:
        details += ["The server logged:"] + [f"  {line}" for line in logged]
    if isinstance(outcome, Mismatch) and outcome.hint and not any(_cause(e) is not None for e in errors):
        hint = outcome.hint  # aimed at what failed, rather than where to start (unless the learner's code
        # raised: the step failed because of the exception, which the summary names first)
    return CheckResult(exercise, "failed", _summary(outcome, errors, logged, stuck), hint,
                       _expected_and_got(outcome) + details)


def _stop(servers: list[LabServer]) -> None:
    """Let every handler end (briefly), then stop the servers."""
    for server in servers:
        if server.answers(0.5):  # else a handler holds the loop: it will not end, so no use waiting
            server.wait_idle(2.0)
    for server in servers:
        server.stop(timeout=2.0)


def _summary(outcome: BaseException | None, errors: list[BaseException], logged: list[str],
             stuck: bool) -> str:
    if stuck:
        return ("not right yet: your handler kept running after the client left, so the server could not "
                "stop. Does a loop go on without an await, or catch every exception and continue?")
    if isinstance(outcome, Mismatch):
        step = outcome.step if outcome.step.endswith((".", "?", "!")) else f"{outcome.step}."
        raised = next((cause for cause in map(_cause, errors) if cause is not None), None)
        if raised is None:
            return f"not right yet: {step}"
        # The exception comes first: what the check saw next (a leave frame, a missing reply) follows from it.
        where = " (see what the server logged below)" if logged else ""
        return f"not right yet: your code raised {_exception(raised)}{where}; then: {step}"
    if isinstance(outcome, InvalidStatus):
        status = outcome.response.status_code
        if status == 403:
            return ("not right yet: the server refused the WebSocket handshake (HTTP 403). Is the endpoint "
                    "at the right path, and does it call websocket.accept()?")
        return (f"not right yet: the server refused the WebSocket handshake (HTTP {status}): your handler "
                "raised an exception before accepting; see what the server logged.")
    if isinstance(outcome, (ConnectionClosed, TimeoutError, asyncio.CancelledError)):
        closed = isinstance(outcome, ConnectionClosed)
        what = ("the connection closed before the check was finished." if closed
                else "the server did not answer in time.")
        raised = next((cause for cause in map(_cause, errors) if cause is not None), None)
        if raised is not None:  # the exception explains the close or the silence: it comes first
            where = " (see what the server logged below)" if logged else ""
            return f"not right yet: your code raised {_exception(raised)}{where}; then {what}"
        return f"not right yet: {what}"
    if outcome is not None:
        return f"the check could not finish: {type(outcome).__name__}: {outcome}"
    if errors:
        return "not right yet: the replies were right, but your handler raised an exception."
    return "not right yet: the replies were right, but the server logged an error."


# What a handler raises when its client has gone: after a mismatch the check closes its clients, so these
# follow from the mismatch rather than explain it.
_LEFT = (WebSocketDisconnect, ConnectionClosed, asyncio.CancelledError)


def _cause(error: BaseException) -> BaseException | None:
    """The exception to name for a handler that raised ``error`` (in a group, the first that counts), or
    None if it only says the client had gone."""
    if isinstance(error, BaseExceptionGroup):
        return next((cause for cause in map(_cause, error.exceptions) if cause is not None), None)
    return None if isinstance(error, _LEFT) else error


def _exception(error: BaseException) -> str:
    """``error`` as a learner would see it at the end of a traceback, on one line."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > 160:
        text = text[:159] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _expected_and_got(outcome: BaseException | None) -> list[str]:
    if not isinstance(outcome, Mismatch):
        return []
    return [f"expected: {outcome.expected!r}", f"got:      {outcome.got!r}"]
