"""Points set by hand that survive regrading: ``OUT/overrides.csv``.

An instructor writes ``overrides.csv`` in an output folder, one line per corrected task::

    submission,task,points,reason
    alice,2,3,regrade request: the loss is right and the check was too strict

The grader never writes, moves or deletes that file. Whenever it writes the outputs (a run,
``--resume``, ``--force``, ``merge``, ``rebuild``) the points named there replace its own for that
task in grades.csv, the feedback and the gradebooks; ``results.jsonl`` keeps the grader's own. The
whole file is checked before anything is written, and an error names the file and the line.
``merge`` also reads each shard's file and keeps their lines in ``shard-overrides.csv`` (the
grader's own copy, same format) so that a later ``rebuild`` of the merged folder applies them too;
a line of the merged folder's ``overrides.csv`` replaces a shard's for the same submission and task.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ._atomic import write_atomic

__all__ = ["COLUMNS", "FROM_SHARDS", "OVERRIDES", "Override", "OverrideError", "by_submission", "check", "combine",
           "describe", "load", "read", "shard_overrides", "write_from_shards"]

OVERRIDES = "overrides.csv"
FROM_SHARDS = "shard-overrides.csv"
COLUMNS = ("submission", "task", "points", "reason")
_HEADER = ",".join(COLUMNS)


class OverrideError(ValueError):
    """An overrides file that cannot be applied; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Override:
    """One task's points set by hand.

    :param submission: The row's name in grades.csv.
    :param task: The task number.
    :param points: The points that replace the grader's (an int where whole).
    :param reason: Why, shown beside the points.
    :param where: ``"FILE, line N"``, for messages.
    """

    submission: str
    task: int
    points: int | float
    reason: str
    where: str

    @property
    def key(self) -> tuple[str, int]:
        """What one override may name only once: the submission and the task."""
        return self.submission, self.task


def _points(text: str) -> int | float:
    """A number of points: a whole or decimal number (``3``, ``1.5``)."""
    value = float(text)  # ValueError for anything else
    if not math.isfinite(value):
        raise ValueError(text)
    return int(value) if value.is_integer() else value


def _row(cells: list[str], where: str) -> Override:
    """One line of the file as an override (its format only; :func:`check` checks its names and range)."""
    if len(cells) != len(COLUMNS):
        raise OverrideError(f"{where}: {len(cells)} fields where {len(COLUMNS)} belong ({_HEADER}); put a reason "
                            'that holds a comma in double quotes ("like, this")')
    submission, task, points, reason = (c.strip() for c in cells)
    if not submission:
        raise OverrideError(f"{where}: no submission; give the row's name as in grades.csv's submission column")
    try:
        number = int(task)
    except ValueError:
        raise OverrideError(f"{where}: task {task!r} is not a whole number; give the task's number, e.g. 2") from None
    try:
        value = _points(points)
    except ValueError:
        raise OverrideError(f"{where}: points {points!r} is not a number; give the task's new points, "
                            "e.g. 3 or 1.5") from None
    if not reason:
        raise OverrideError(f"{where}: no reason; say why the points change (the student reads it)")
    return Override(submission, number, value, reason, where)


def read(path: Path) -> tuple[Override, ...]:
    """The overrides in one file, in its order; none when the file does not exist.

    :param path: An ``overrides.csv`` (UTF-8, a byte-order mark allowed; blank lines skipped).
    :raises OverrideError: The file cannot be read, has another header, a malformed line, or names
        one submission and task twice.
    """
    if not path.exists():
        return ()
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise OverrideError(f"{path}: cannot be read as UTF-8 text ({exc}); save it as CSV in UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    found: dict[tuple[str, int], Override] = {}
    try:
        for number, cells in enumerate(reader):
            where = f"{path}, line {reader.line_num}"
            if number == 0:
                if [c.strip().lower() for c in cells] != list(COLUMNS):
                    raise OverrideError(f"{where}: the header is {','.join(cells)!r}; the first line must be "
                                        f"{_HEADER}")
                continue
            if not any(c.strip() for c in cells):
                continue
            override = _row(cells, where)
            if override.key in found:
                raise OverrideError(f"{where}: {override.submission} task {override.task} is already set on "
                                    f"{found[override.key].where.rpartition(', ')[2]}; keep one line per submission "
                                    "and task")
            found[override.key] = override
    except csv.Error as exc:
        raise OverrideError(f"{path}, line {reader.line_num}: not CSV ({exc}); save it as CSV") from None
    if reader.line_num == 0:
        raise OverrideError(f"{path}, line 1: the file is empty; its first line must be {_HEADER}")
    return tuple(found.values())


def check(overrides: Iterable[Override], *, submissions: Collection[str], tasks: Collection[int],
          most: int | float) -> tuple[Override, ...]:
    """The overrides, when each names a known submission and task and points in range.

    :param submissions: The rows that the outputs hold.
    :param tasks: The lesson's task numbers.
    :param most: The most points of one task.
    :raises OverrideError: The first line that does not fit, named.
    """
    overrides = tuple(overrides)
    for o in overrides:
        if o.submission not in submissions:
            raise OverrideError(f"{o.where}: no submission {o.submission!r} in these results; use a name from "
                                "grades.csv's submission column")
        if o.task not in tasks:
            raise OverrideError(f"{o.where}: no task {o.task} in this lesson; its tasks are "
                                f"{', '.join(map(str, sorted(tasks)))}")
        if not 0 <= o.points <= most:
            raise OverrideError(f"{o.where}: {o.points} points for task {o.task}; give 0 to {most}")
    return overrides


def combine(*layers: Iterable[Override]) -> tuple[Override, ...]:
    """The overrides of several files: a later layer's line replaces an earlier one's for the same
    submission and task."""
    merged: dict[tuple[str, int], Override] = {}
    for layer in layers:
        merged.update({o.key: o for o in layer})
    return tuple(merged.values())


def load(out: Path, *, submissions: Collection[str], tasks: Collection[int], most: int | float,
         shards: Iterable[Override] | None = None) -> tuple[Override, ...]:
    """The overrides an output folder's outputs get, checked (nothing is written).

    :param out: The output folder: its ``overrides.csv`` over its ``shard-overrides.csv``.
    :param shards: The shards' overrides, in place of ``shard-overrides.csv`` (for ``merge``).
    :raises OverrideError: A file or a line that cannot be applied.
    """
    below = read(out / FROM_SHARDS) if shards is None else tuple(shards)
    return check(combine(below, read(out / OVERRIDES)), submissions=submissions, tasks=tasks, most=most)


def shard_overrides(parts: Iterable[Path]) -> tuple[Override, ...]:
    """The overrides of shards' folders (each one's ``overrides.csv`` over its ``shard-overrides.csv``).

    :raises OverrideError: A file that cannot be read, or two shards that set one submission's task.
    """
    found: dict[tuple[str, int], Override] = {}
    for part in parts:
        for o in combine(read(part / FROM_SHARDS), read(part / OVERRIDES)):
            if o.key in found:
                raise OverrideError(f"{o.where}: {o.submission} task {o.task} is also set in {found[o.key].where}; "
                                    "keep one of the two lines")
            found[o.key] = o
    return tuple(found.values())


def write_from_shards(out: Path, overrides: Iterable[Override]) -> None:
    """Keep the shards' overrides in ``out/shard-overrides.csv`` (atomically), so that later
    rebuilds of a merged folder apply them; nothing is written when there are none."""
    rows = [list(COLUMNS)] + [[o.submission, o.task, o.points, o.reason] for o in overrides]
    if len(rows) > 1:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        write_atomic(out / FROM_SHARDS, buffer.getvalue())


def by_submission(overrides: Iterable[Override]) -> dict[str, dict[int, Override]]:
    """``{submission: {task: override}}``."""
    found: dict[str, dict[int, Override]] = {}
    for o in overrides:
        found.setdefault(o.submission, {})[o.task] = o
    return found


def describe(fixes: Mapping[int, Override], graded: Mapping[int, int | float]) -> str:
    """One row's overrides in words, for grades.csv and the gradebooks' comments:
    ``task 2: 3 points by hand, the grader gave 1 (reason)``."""
    return "; ".join(f"task {t}: {fixes[t].points} points by hand, the grader gave {graded.get(t, 0)} "
                     f"({' '.join(fixes[t].reason.split())})" for t in sorted(fixes))
