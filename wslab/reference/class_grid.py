"""The live classroom's grid: learners by exercises, each learner's newest verdict, and the mistakes they met.

:class:`Grid` holds what :class:`~wslab.reference.classroom.Classroom` shows the instructor: it records
verdicts (each with an id, so one sent again counts once), counts who passed each exercise, finds the kind of
mistake the most learners met, and writes the grid as CSV. It knows nothing of connections.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MAX_EXERCISES", "MAX_VERDICTS", "Grid", "Learner", "Verdict", "exercise_order"]

MAX_VERDICTS = 2000  # distinct verdict ids one learner may post in a server's life (a flood is refused)
MAX_EXERCISES = 100  # distinct exercise ids one classroom tracks; verdicts for more get an error frame

Status = Literal["passed", "failed", "not done"]


class Verdict(BaseModel):
    """One check's verdict, as a learner's notebook sends it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    exercise: str = Field(pattern=r"^[\w.-]{1,16}$")  # "2.2"
    status: Status
    at: float = Field(ge=0, le=10_000_000_000)  # seconds since the epoch, on the learner's clock
    title: str | None = Field(default=None, max_length=40)  # "no echo"
    mistake: str | None = Field(default=None, max_length=160)  # a failed check's kind of mistake


@dataclass
class Learner:
    """What the classroom knows of one learner: their newest verdict per exercise, and every kind of
    mistake they met on each."""

    name: str
    connections: int = 0
    latest: dict[str, Verdict] = field(default_factory=dict)
    mistakes: dict[str, set[str]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # verdict ids: a resent verdict counts once
    verdicts: list[Verdict] = field(default_factory=list)  # every one, for a worker that starts later
    remote: dict[str, int] = field(default_factory=dict)  # connections on other workers, by worker

    @property
    def connected(self) -> bool:
        return self.connections > 0 or any(self.remote.values())


def exercise_order(exercise: str) -> tuple[Any, ...]:
    """Sort "2.10" after "2.9": numbers as numbers."""
    parts = [part for part in re.split(r"(\d+)", exercise) if part]
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


class Grid:
    """Every learner's verdicts, by exercise."""

    def __init__(self) -> None:
        self.learners: dict[str, Learner] = {}
        self.titles: dict[str, str] = {}

    @property
    def exercises(self) -> list[str]:
        return sorted(self.titles, key=exercise_order)

    def record(self, user: str, verdicts: list[Verdict]) -> list[str]:
        """Record ``user``'s ``verdicts``; return the ids taken (new or already known). A verdict for an
        exercise beyond :data:`MAX_EXERCISES`, or beyond the learner's :data:`MAX_VERDICTS`, is not taken."""
        learner = self.learners[user]
        taken = []
        for verdict in verdicts:
            if verdict.id not in learner.seen:
                if len(learner.seen) >= MAX_VERDICTS:
                    continue
                if verdict.exercise not in self.titles:
                    if len(self.titles) >= MAX_EXERCISES:
                        continue
                    self.titles[verdict.exercise] = verdict.title or ""
                learner.seen.add(verdict.id)
                learner.verdicts.append(verdict)
                newest = learner.latest.get(verdict.exercise)
                if newest is None or (verdict.at, verdict.id) > (newest.at, newest.id):
                    learner.latest[verdict.exercise] = verdict
                if verdict.status == "failed" and verdict.mistake:
                    learner.mistakes.setdefault(verdict.exercise, set()).add(verdict.mistake)
                if verdict.title and not self.titles[verdict.exercise]:
                    self.titles[verdict.exercise] = verdict.title
            taken.append(verdict.id)
        return taken

    def snapshot(self) -> dict[str, Any]:
        """The whole grid, as the instructor's page draws it."""
        exercises = self.exercises
        learners = sorted(self.learners.values(), key=lambda learner: learner.name.casefold())
        passed = {ex: sum(1 for one in learners if (v := one.latest.get(ex)) and v.status == "passed")
                  for ex in exercises}
        return {
            "type": "grid",
            "exercises": [{"id": ex, "title": self.titles[ex], "passed": passed[ex],
                           "mistake": self.common_mistake(ex)} for ex in exercises],
            "learners": [{"name": one.name, "connected": one.connected,
                          "cells": {ex: {"status": v.status, "at": v.at, "mistake": v.mistake}
                                    for ex, v in one.latest.items()}} for one in learners],
            "connected": sum(1 for one in learners if one.connected),
        }

    def common_mistake(self, exercise: str) -> dict[str, Any] | None:
        """The kind of mistake the most learners met on ``exercise`` (each learner counts once per kind),
        and how many met it; None if nobody failed it."""
        counts: dict[str, int] = {}
        for learner in self.learners.values():
            for kind in learner.mistakes.get(exercise, ()):
                counts[kind] = counts.get(kind, 0) + 1
        if not counts:
            return None
        kind = min(counts, key=lambda k: (-counts[k], k))
        return {"kind": kind, "learners": counts[kind]}

    def csv(self) -> str:
        """The grid as CSV: one row per learner, one column per exercise (passed, failed, not done)."""
        out = io.StringIO()
        writer = csv.writer(out)
        exercises = self.exercises
        writer.writerow(["learner", *exercises])
        for learner in sorted(self.learners.values(), key=lambda learner: learner.name.casefold()):
            writer.writerow([learner.name, *((v.status if (v := learner.latest.get(ex)) else "")
                                             for ex in exercises)])
        return out.getvalue()
