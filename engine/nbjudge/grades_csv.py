"""``grades.csv``: one row per submission, the final points first, then the grader's own and the
overrides in words."""

from __future__ import annotations

from collections.abc import Mapping

from .grades import Grade, Marking
from .overrides import Override, describe
from .spreadsheet import csv_text

__all__ = ["grades_csv"]


def grades_csv(grades: list[Grade], marking: Marking, *, students: Mapping[str, Mapping[str, str]],
               left_out: Mapping[str, str], graded: Mapping[str, Grade],
               fixes: Mapping[str, Mapping[int, Override]]) -> str:
    """grades.csv's text: the final points (``taskN``, ``total``), then the grader's own (``grader_taskN``,
    ``grader_total``) and the overrides in words (``override``).

    :param grades: The grades as reported (points set by hand in place), in row order.
    :param marking: The lesson's marking.
    :param students: ``{submission: intake.student_record(...)}``: who each row is.
    :param left_out: ``{submission: why}`` of the rows left out of a platform's gradebook.
    :param graded: ``{submission: grade}`` as the grader gave it (before the overrides).
    :param fixes: The overrides, by submission and task.
    """
    rows: list[list[object]] = [["submission", "student", "source", *[f"task{t}" for t in marking.tasks], "total",
                                 "max", "status", "note", *[f"grader_task{t}" for t in marking.tasks],
                                 "grader_total", "override"]]
    for g in grades:
        who, own = students.get(g.submission, {}), graded[g.submission]
        note = "; ".join(filter(None, [g.note, who.get("note"), left_out.get(g.submission)]))
        rows.append([g.submission, who.get("student", g.submission), who.get("source", ""),
                     *[g.points.get(t, 0) for t in marking.tasks], g.total, marking.max, g.status, note,
                     *[own.points.get(t, 0) for t in marking.tasks], own.total,
                     describe(fixes.get(g.submission, {}), own.points)])
    return csv_text(rows)
