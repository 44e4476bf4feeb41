"""Writing a run's reports: ``grades.csv``, per-student feedback (``.md`` and ``.html``), the
platforms' gradebook files and the class report, with the points set by hand in place.

The records are in :mod:`.grades`, the scoring in :mod:`.scoring` and each file's rendering in
its own module (:mod:`.grades_csv`, :mod:`.feedback_md`, :mod:`.feedback_html`,
:mod:`.summary`); this module only puts them together and writes them. The names below are
re-exported for the command line (:mod:`.cli`) and the results store (:mod:`.store`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ._atomic import write_atomic
from .class_report import write_class_report
from .feedback_html import feedback_html
from .feedback_md import feedback_markdown
from .figures import Shown
from .gradebook import GradebookRow, unplaced, write_gradebooks
from .grades import Grade, Marking, Reference
from .grades_csv import grades_csv
from .overrides import Override, by_submission, describe
from .sanitize import sanitize, sanitizers
from .scoring import reference_from_run, score
from .summary import summary_table

__all__ = ["Grade", "Marking", "Reference", "reference_from_run", "sanitize", "sanitizers", "score", "summary_table",
           "with_overrides", "write_reports"]


def with_overrides(grade: Grade, fixes: Mapping[int, Override]) -> Grade:
    """The grade with the points set by hand in place of the grader's."""
    return replace(grade, points={**grade.points, **{t: o.points for t, o in fixes.items()}}) if fixes else grade


def write_reports(grades: list[Grade], out: Path, *, marking: Marking, students: Mapping[str, Mapping[str, Any]],
                  assignment: str, shown: Shown | None = None, overrides: Iterable[Override] = ()) -> list[str]:
    """Write ``grades.csv``, one feedback file per submission (``.md`` and ``.html``), the platforms'
    gradebook files and the class report ``report.html``, replacing earlier ones, with the points of
    ``overrides`` (checked: :func:`.overrides.load`) in place of the grader's.

    The feedback folder is built beside the old one and swapped in, so that it never holds a file
    of a submission that is not in ``grades.csv``.

    :param grades: The grades.
    :param out: Output folder.
    :param marking: The lesson's marking.
    :param students: ``{submission: intake.student_record(...)}``: who each row is.
    :param assignment: The assignment's name in the platforms' gradebooks.
    :param shown: The reference run's expected-result cells and figures, for the HTML feedback.
    :param overrides: Points set by hand (``OUT/overrides.csv``), already checked.
    :returns: Warnings about rows left out of a gradebook: each such row is named in one, and its
        note in grades.csv says why (:func:`.gradebook.unplaced`).
    """
    out.mkdir(parents=True, exist_ok=True)
    fixes, graded = by_submission(overrides), {g.submission: g for g in grades}
    ordered = sorted((with_overrides(g, fixes.get(g.submission, {})) for g in grades), key=lambda g: g.submission)
    feedback = {g.submission: feedback_markdown(g, marking, fixes.get(g.submission)) for g in ordered}
    rows = [GradebookRow(g.submission, total=g.total, max_points=marking.max, status=g.status,
                         feedback=feedback[g.submission],
                         override=describe(fixes.get(g.submission, {}), graded[g.submission].points),
                         **{"student": g.submission, **students.get(g.submission, {})}) for g in ordered]
    left_out = unplaced(rows)
    fresh, stale = out / ".feedback.new", out / ".feedback.old"
    for folder in (fresh, stale):
        _remove_generated(folder)
    fresh.mkdir()
    for g in ordered:
        write_atomic(fresh / f"{g.submission}.md", feedback[g.submission])
        write_atomic(fresh / f"{g.submission}.html", feedback_html(g, marking, shown or Shown(),
                                                                   fixes=fixes.get(g.submission)))
    if (out / "feedback").exists():
        (out / "feedback").rename(stale)
    fresh.rename(out / "feedback")
    _remove_generated(stale)
    write_atomic(out / "grades.csv", grades_csv(ordered, marking, students=students, left_out=left_out, graded=graded,
                                                fixes=fixes))
    write_class_report(ordered, out, marking=marking, assignment=assignment)
    warnings = write_gradebooks(rows, out, assignment=assignment)[1]
    stray = sorted(r.name for r in rows if not r.platform and r.name in left_out)
    if stray:
        warnings.append(f"warning: {len(stray)} row(s) matched no platform's layout and are in no platform file "
                        f"({', '.join(stray)}): enter their grades by hand (grades.csv's note says why)")
    return warnings


def _remove_generated(folder: Path) -> None:
    """Remove a feedback folder the grader wrote (only its ``.md`` and ``.html`` files, then the folder)."""
    if not folder.is_dir():
        return
    for path in [*folder.glob("*.md"), *folder.glob("*.html")]:
        path.unlink()
    folder.rmdir()
