"""The records of grading: a submission's :class:`Grade` and what it holds, a lesson's
:class:`Marking`, and the reference run's :class:`Reference`.

Failures, errors and ignored output are :class:`typing.TypedDict` records: they are written to
``results.jsonl`` as they are (:func:`dataclasses.asdict`) and read back the same way, so their
keys, and the order of their keys, are part of the file's format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from .lessons import Lesson

__all__ = ["Failure", "Grade", "Ignored", "Marking", "OwnError", "Reference"]


class _Failed(TypedDict):
    task: int
    kind: Literal["hidden", "expected"]
    cell: str
    message: str


class Failure(_Failed, total=False):
    """One check a submission failed (keys in this order: ``results.jsonl`` keeps it).

    :param task: The task.
    :param kind: ``"hidden"`` (a hidden check) or ``"expected"`` (an expected-result cell).
    :param cell: The cell's name (``task-N`` for a hidden check; ``""``: the task's expected
        point as a whole).
    :param message: What went wrong, for the student.
    :param diff: An expected-result cell's diff (``-`` expected, ``+`` the student's).
    :param follows: The other tasks whose failed hidden checks this failure follows from.
    """

    diff: str
    follows: list[int]


class OwnError(TypedDict):
    """A student's own cell that raised: its number in the grading copy (from 1) and its error line."""

    cell: int
    error: str


class Ignored(TypedDict):
    """An expected-result cell in which the student's own code printed lines that were not compared."""

    task: int | None
    cell: str
    lines: int


@dataclass
class Grade:
    """One submission's result.

    :param submission: Its name.
    :param status: From :func:`.status.decide` (``ok``, ``partial``, ...).
    :param points: Task -> points.
    :param failures: The checks it failed.
    :param note: Why the status is what it is, in words.
    :param seconds: The job's wall-clock time.
    :param errors: The student's own cells that raised.
    :param ignored: Expected-result cells with lines of the student's, not compared.
    :param figures: Expected-result cell -> PNGs (base64).
    """

    submission: str
    status: str
    points: dict[int, int | float] = field(default_factory=dict)  # floats only where set by hand
    failures: list[Failure] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0
    errors: list[OwnError] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)
    figures: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int | float:
        """Sum of the task points."""
        return sum(self.points.values())

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Grade:
        """What :func:`dataclasses.asdict` wrote (task numbers come back as ints)."""
        return cls(**{**raw, "points": {int(k): v for k, v in raw["points"].items()}})


@dataclass(frozen=True)
class Marking:
    """How a lesson's points are laid out: its tasks, and the points of each part."""

    tasks: tuple[int, ...]
    hidden: int
    expected: int

    @property
    def per_task(self) -> int:
        """The most points of one task."""
        return self.hidden + self.expected

    @property
    def max(self) -> int:
        """The most points a submission can get."""
        return len(self.tasks) * self.per_task

    @classmethod
    def of(cls, lesson: Lesson) -> Marking:
        """A lesson's marking."""
        return cls(tuple(sorted(lesson.tasks)), lesson.hidden_points, lesson.expected_points)

    def zeros(self) -> dict[int, int | float]:
        """No point for any task."""
        return {t: 0 for t in self.tasks}


@dataclass(frozen=True)
class Reference:
    """What the solution's own run produced: the expected texts and the hidden-check values."""

    texts: dict[str, str]  # expected-result cell name -> sanitized text
    tasks: dict[str, int]  # expected-result cell name -> task
    values: dict[int, object]  # task -> decoded hidden-check values
    ignored: dict[str, str] = field(default_factory=dict)  # expected-result cell name -> what its helpers printed
    figures: dict[str, tuple[str, ...]] = field(default_factory=dict)  # expected-result cell -> PNGs (base64)
