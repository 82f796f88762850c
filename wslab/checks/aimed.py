"""Hints aimed at the step that failed.

A check has one hint for its stub ("where to start", never the answer). When a step fails, the learner needs
a hint about *that* failure instead: the step raises :class:`Missed` (a :class:`~wslab.checks.result.Mismatch`
that carries its hint), and :class:`Aim` puts that hint on the verdict::

    aim = Aim()
    result = run_check("Exercise 5.3 (heartbeat)", app, aim.watch(scenario), passed=..., hint=START)
    return aim.apply(result)

Anything else that fails (the learner's code raising, the server logging an error) keeps the check's own hint.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .result import CheckResult, Mismatch

__all__ = ["Aim", "Missed", "expect_or"]

S = TypeVar("S")


class Missed(Mismatch):
    """A step of a check got something other than what it expected; ``hint`` is aimed at that failure."""

    def __init__(self, step: str, expected: Any, got: Any, hint: str) -> None:
        super().__init__(step, expected, got)
        self.hint = hint


def expect_or(got: Any, expected: Any, step: str, hint: str) -> None:
    """Raise :class:`Missed` with ``hint`` unless ``got == expected``."""
    if got != expected:
        raise Missed(step, expected, got, hint)


class Aim:
    """Remembers the hint of the :class:`Missed` a scenario raised, to put it on the verdict."""

    def __init__(self) -> None:
        self.hint: str | None = None

    def watch(self, scenario: Callable[[S, Any], Coroutine[Any, Any, None]]
              ) -> Callable[[S, Any], Coroutine[Any, Any, None]]:
        """``scenario``, noting the hint of a :class:`Missed` on its way out."""

        async def watched(servers: S, transcript: Any) -> None:
            try:
                await scenario(servers, transcript)
            except Missed as missed:
                self.hint = missed.hint
                raise

        return watched

    def apply(self, result: CheckResult) -> CheckResult:
        """``result``, with the aimed hint if the check failed on a :class:`Missed`, unless the learner's
        code raised first (the step then failed because of the exception, which the verdict names)."""
        if result.status == "failed" and self.hint and "your code raised" not in result.summary:
            result.hint = self.hint
        return result
