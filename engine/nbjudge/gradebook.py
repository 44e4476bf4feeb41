"""Grades and feedback back to the platform the submissions came from.

:func:`write_gradebooks` takes plain rows (:class:`GradebookRow`: who, the platform's
identifiers, the points, the feedback file) and writes, beside ``grades.csv``, for each platform
that has rows:

* **Moodle**: ``moodle-grading-worksheet.csv``, the assignment's *offline grading worksheet*
  (*Upload grading worksheet*; columns as Moodle's *Download grading worksheet* writes them, the
  import matching rows on ``Identifier`` = ``Participant N``), and ``moodle-feedback-files.zip``
  for *Upload multiple feedback files in a zip*: each file in its submission's folder, named as
  the download names it (``Full Name_N_assignsubmission_file_/feedback.md``).
* **Canvas**: ``canvas-gradebook.csv`` for the gradebook's *Import*: ``Student``, ``ID`` (the
  Canvas user id, which the import matches on), ``SIS User ID``, ``SIS Login ID``, ``Section``,
  then one assignment column ``NAME (ASSIGNMENT_ID)`` (without an id Canvas creates the
  assignment), and the ``Points Possible`` row; and ``canvas-feedback-files.zip`` for the
  assignment's *Re-upload Submissions*, each file named with its submission's download prefix
  (``login_USERID_ATTACHMENTID_``) so that Canvas matches it to the student.

A student with more than one graded row is left out of the platform files (never one picked
silently) and named in the returned warnings; so is a row without the identifier the import
matches on (an anonymous Canvas download has no user id). grades.csv still has every row, and
:func:`unplaced` gives, for its note column, why each row that no platform file holds is left out:
those rows, and rows that matched no platform's layout in a run that writes a platform file (a
file of the export whose name did not parse), are never dropped silently.
"""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ._atomic import write_atomic
from .spreadsheet import csv_text

__all__ = [
    "CANVAS_COLUMNS", "CANVAS_FEEDBACK", "CANVAS_GRADEBOOK", "MOODLE_COLUMNS", "MOODLE_FEEDBACK", "MOODLE_WORKSHEET",
    "GradebookRow", "unplaced", "write_gradebooks",
]

MOODLE_WORKSHEET = "moodle-grading-worksheet.csv"
MOODLE_FEEDBACK = "moodle-feedback-files.zip"
CANVAS_GRADEBOOK = "canvas-gradebook.csv"
CANVAS_FEEDBACK = "canvas-feedback-files.zip"
MOODLE_COLUMNS = ("Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments")
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
_KEYS = {"moodle": "participant", "canvas": "user_id"}


@dataclass(frozen=True)
class GradebookRow:
    """One graded submission, as the platform files need it.

    :param name: The row's name in grades.csv.
    :param student: Who submitted it (:attr:`.intake.Submission.student`).
    :param platform: :attr:`.intake.Submission.platform`.
    :param ids: :attr:`.intake.Submission.ids`.
    :param total: Points.
    :param max_points: Most points.
    :param status: The grading status (``ok``, ``partial``, ...).
    :param feedback: The text of this row's feedback file (``feedback/NAME.md``), or ``None``.
    :param source: The file's path inside the export (:attr:`.intake.Submission.source`).
    :param note: :attr:`.intake.Submission.note`.
    :param override: The points set by hand, in words (:func:`.overrides.describe`); ``""``: none.
    """

    name: str
    student: str
    platform: str
    ids: dict[str, str] = field(default_factory=dict)
    total: float = 0
    max_points: float = 0
    status: str = ""
    feedback: str | None = None
    source: str = ""
    note: str | None = None
    override: str = ""


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _comment(row: GradebookRow) -> str:
    return (f"{_number(row.total)} of {_number(row.max_points)} points ({row.status}); the feedback file "
            "says what each check found" + (f"; {row.override}" if row.override else ""))


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return buffer.getvalue()


def _feedback(row: GradebookRow) -> bytes | None:
    return row.feedback.encode("utf-8") if row.feedback is not None else None


def _write_both(sheet: Path, table: list[list[str]], archive: Path, files: dict[str, bytes]) -> list[Path]:
    """Write a platform's grade sheet and, where there is feedback, its feedback archive."""
    write_atomic(sheet, csv_text(table))
    if not files:
        return [sheet]
    write_atomic(archive, _zip(files))
    return [sheet, archive]


def _moodle(rows: list[GradebookRow], out: Path) -> list[Path]:
    table = [list(MOODLE_COLUMNS)]
    files = {}
    for row in sorted(rows, key=lambda r: int(r.ids["participant"])):
        number = row.ids["participant"]
        table.append([f"Participant {number}", row.ids.get("full_name", row.student), "", "Submitted for grading",
                      _number(row.total), _number(row.max_points), "Yes", "-", "-", _comment(row)])
        data = _feedback(row)
        if data is not None:
            folder = f"{row.ids.get('full_name', row.student)}_{number}_assignsubmission_file_"
            files[f"{folder}/feedback.md"] = data
    return _write_both(out / MOODLE_WORKSHEET, table, out / MOODLE_FEEDBACK, files)


def _canvas(rows: list[GradebookRow], out: Path, *, assignment: str, assignment_id: str | None) -> list[Path]:
    column = f"{assignment} ({assignment_id})" if assignment_id else assignment
    table = [[*CANVAS_COLUMNS, column], ["    Points Possible", "", "", "", "", _number(rows[0].max_points)]]
    files = {}
    for row in sorted(rows, key=lambda r: int(r.ids["user_id"])):
        table.append([row.ids.get("login", row.student), row.ids["user_id"], "", "", "", _number(row.total)])
        data = _feedback(row)
        if data is not None:
            late = "_LATE" if row.ids.get("late") == "1" else ""
            prefix = f"{row.ids.get('login', 'student')}{late}_{row.ids['user_id']}_{row.ids.get('attachment_id', '0')}"
            files[f"{prefix}_feedback.md"] = data
    return _write_both(out / CANVAS_GRADEBOOK, table, out / CANVAS_FEEDBACK, files)


def _key(row: GradebookRow) -> str | None:
    """The identifier the row's platform import matches on (ASCII digits), or ``None``."""
    value = row.ids.get(_KEYS[row.platform], "")
    return value if value.isascii() and value.isdigit() else None


@dataclass(frozen=True)
class _Split:
    """A platform's rows: those its files hold, and why each other one is left out."""

    placed: list[GradebookRow]
    left_out: dict[str, str]  # row name: why
    warnings: list[str]


def _split(rows: list[GradebookRow], platform: str) -> _Split:
    key = _KEYS[platform]
    mine = [r for r in rows if r.platform == platform]
    keyed = [r for r in mine if _key(r) is not None]
    counts: Counter[str | None] = Counter(_key(r) for r in keyed)
    left_out, warnings = {}, []
    for number in sorted(n for n, c in counts.items() if c > 1 and n is not None):
        names = sorted(r.name for r in keyed if _key(r) == number)
        warnings.append(f"warning: {platform} {key} {number} has {counts[number]} graded rows ({', '.join(names)}); "
                        f"left out of the {platform} files: enter that student's grade by hand")
        left_out.update(dict.fromkeys(names, f"{platform} {key} {number} has {counts[number]} graded rows; none is in "
                                      f"the {platform} files: enter this student's grade by hand"))
    for row in (r for r in mine if _key(r) is None):
        why = (f"no {platform} {key} in its file's name (an anonymous download)" if platform == "canvas"
               else f"no {platform} {key} in its path")
        warnings.append(f"warning: {row.name}: {why}; left out of the {platform} files: enter its grade by hand")
        left_out[row.name] = f"{why}; not in the {platform} files: enter this grade by hand"
    return _Split([r for r in keyed if counts[_key(r)] == 1], left_out, warnings)


def unplaced(rows: list[GradebookRow]) -> dict[str, str]:
    """Why each row is in no platform file that :func:`write_gradebooks` writes, for grades.csv's note.

    Listed: a row of Moodle or Canvas that its platform's files leave out (a student with two graded
    rows, no identifier), and, where any platform file is written, a row that matched no platform's
    layout (most likely a file of the export whose name did not parse). Rows of Gradescope and
    nbgrader, for which no file is written, are not listed.

    :param rows: Every graded row.
    :returns: ``{row name: why}``.
    """
    splits = [_split(rows, platform) for platform in _KEYS]
    found = {name: why for split in splits for name, why in split.left_out.items()}
    files = sorted(f"{platform} files" for platform, split in zip(_KEYS, splits, strict=True) if split.placed)
    if files:
        found.update({r.name: f"matched no platform's layout, so it is not in the {' or '.join(files)}: enter this "
                      "grade by hand" for r in rows if not r.platform})
    return found


def write_gradebooks(
    rows: list[GradebookRow], out: Path, *, assignment: str = "assignment", canvas_assignment_id: str | None = None
) -> tuple[list[Path], list[str]]:
    """Write the platforms' grade-import and feedback files for the rows that came from them.

    :param rows: Every graded row; rows of other platforms, or of none, are left out.
    :param out: The report folder (beside grades.csv).
    :param assignment: The assignment's name in Canvas's gradebook column.
    :param canvas_assignment_id: The Canvas assignment id, so that the import fills that assignment.
    :returns: The files written, and one warning per student (or row) of Moodle or Canvas left out.
    """
    written: list[Path] = []
    warnings: list[str] = []
    for platform in _KEYS:
        split = _split(rows, platform)
        warnings += split.warnings
        mine = split.placed
        if not mine:
            continue
        if platform == "moodle":
            written += _moodle(mine, out)
        else:
            written += _canvas(mine, out, assignment=assignment, assignment_id=canvas_assignment_id)
    return written, warnings
