"""The results file of a grading run: one line per finished submission, appended as it finishes.

``results.jsonl`` in ``--out`` starts with the run's identity (lesson, seed, parameters, the
solution's digest) and marking; every later line is one submission's grade and the digest of the
file that was graded. ``grades.csv`` and the feedback are rebuilt from it, so a run that is killed
loses nothing finished, and ``--resume`` grades only what is missing. ``merge`` joins the results
files of shards. The points an instructor set by hand (:mod:`.overrides`) are applied whenever the
outputs are written; the results file keeps the grader's own.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .class_report import REPORT
from .figures import read_shown, shown_line
from .gradebook import CANVAS_FEEDBACK, CANVAS_GRADEBOOK, MOODLE_FEEDBACK, MOODLE_WORKSHEET
from .grades import Grade, Marking
from .overrides import Override, by_submission, load, shard_overrides, write_from_shards
from .report import with_overrides, write_reports

__all__ = ["IDENTITY", "RESULTS", "Earlier", "OutputInUse", "ResultsFile", "checked_overrides", "digest", "earlier_run",
           "merge", "open_results", "read_results", "rebuild"]

RESULTS = "results.jsonl"
# Every file a run writes in --out: --force moves each of them aside, and without it any of them marks
# the folder as in use (an instructor's earlier gradebook is never overwritten).
_OUTPUTS = (RESULTS, "grades.csv", "feedback", MOODLE_WORKSHEET, MOODLE_FEEDBACK, CANVAS_GRADEBOOK, CANVAS_FEEDBACK,
            REPORT)
IDENTITY = ("lesson", "seed", "params", "solution")  # what runs must share to be resumed or merged (Plan.identity)


class OutputInUse(ValueError):
    """``--out`` holds another run's results; the message names ``--resume`` and ``--force``."""


def digest(data: bytes | None) -> str:
    """The SHA-256 of a submitted file (``""`` for one that could not be read)."""
    return hashlib.sha256(data).hexdigest() if data is not None else ""


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """The complete lines of a results file (a line cut short by a kill is left out)."""
    with open(path, "rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                return
            try:
                yield json.loads(line)
            except ValueError:
                return


Earlier = tuple[dict[str, Any], dict[str, tuple[str, Grade]], dict[str, dict[str, Any]]]  # header, grades, students


def read_results(out: Path) -> Earlier:
    """A results file's header, its grades and its students by submission (a later line replaces an
    earlier one).

    :param out: An output folder.
    :returns: ``(meta, {submission: (digest, grade)}, {submission: student record})``.
    :raises ValueError: No results file, or not one the grader wrote.
    """
    path = out / RESULTS
    if not path.is_file():
        raise ValueError(f"{out} holds no {RESULTS}: not the output folder of a grading run")
    lines = _lines(path)
    head = next(lines, None)
    if not isinstance(head, dict) or "meta" not in head:
        raise ValueError(f"{path} is not a results file of the grader")
    grades, students = {}, {}
    for line in lines:
        if "grade" not in line:
            continue  # the reference run's cells and figures (figures.read_shown)
        grade = Grade.from_json(line["grade"])
        grades[grade.submission] = (line.get("digest", ""), grade)
        students[grade.submission] = line.get("student") or {}
    return head["meta"], grades, students


class ResultsFile:
    """An open results file: what is done, and appending what finishes."""

    def __init__(self, out: Path, meta: dict[str, Any], done: dict[str, tuple[str, Grade]],
                 students: dict[str, dict[str, Any]]) -> None:
        self.out, self.meta, self.done, self.students = out, meta, done, students

    def append(self, grade: Grade, file_digest: str, student: dict[str, Any]) -> None:
        """Add one finished submission, durably (written, flushed and synced before returning).

        :param grade: Its grade.
        :param file_digest: :func:`digest` of the file that was graded.
        :param student: Who it is (:func:`.intake.student_record`).
        """
        line = json.dumps({"digest": file_digest, "student": student, "grade": asdict(grade)}, ensure_ascii=True)
        line += "\n"
        with open(self.out / RESULTS, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.done[grade.submission] = (file_digest, grade)
        self.students[grade.submission] = student

    def append_shown(self, line: dict[str, Any]) -> None:
        """Add the reference run's cells and figures (:func:`.figures.shown_line`), durably; a later
        such line replaces an earlier one."""
        with open(self.out / RESULTS, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line, ensure_ascii=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rebuild(self, names: list[str] | None = None, *, overrides: Iterable[Override] = (),
                log: Callable[[str], None] = print) -> list[Grade]:
        """Write ``grades.csv``, the feedback and the gradebooks from the results file.

        :param names: The submissions of this run (others in the file are left out); ``None``: all.
        :param overrides: Points set by hand, checked (:func:`.overrides.load`).
        :returns: The grades written, with the points set by hand.
        """
        overrides = tuple(overrides)
        grades = [g for name, (_, g) in self.done.items() if names is None or name in names]
        for warning in write_reports(grades, self.out, marking=Marking(**self.meta["marking"]),
                                     students=self.students, assignment=str(self.meta.get("lesson", "assignment")),
                                     shown=read_shown(self.out / RESULTS), overrides=overrides):
            log(warning)
        fixes = by_submission(overrides)
        return sorted((with_overrides(g, fixes.get(g.submission, {})) for g in grades), key=lambda g: g.submission)


def checked_overrides(out: Path, names: Iterable[str], marking: Marking,
                      shards: Iterable[Override] | None = None) -> tuple[Override, ...]:
    """The overrides of ``out`` (:func:`.overrides.load`) for these submissions and this marking."""
    return load(out, submissions=set(names), tasks=marking.tasks, most=marking.per_task, shards=shards)


def rebuild(out: Path, *, log: Callable[[str], None] = print) -> tuple[list[Grade], Marking]:
    """Write every output of ``out`` again from its results file and its overrides, without grading.

    :returns: The grades written (with the points set by hand) and the marking.
    :raises ValueError: No results file, or overrides that cannot be applied (nothing is written then).
    """
    meta, done, students = read_results(out)
    marking = Marking(**meta["marking"])
    overrides = checked_overrides(out, done, marking)
    return ResultsFile(out, meta, done, students).rebuild(overrides=overrides, log=log), marking


def _truncate_partial_line(path: Path) -> None:
    """Cut a last line that a kill left unfinished, so that the next append starts a line of its own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(data.rfind(b"\n") + 1)


def _set_aside(out: Path) -> Path:
    """Move an earlier run's outputs (results, grades, feedback, the platforms' gradebooks and zips) into
    ``out/previous-N/``, each by a rename: nothing of the user's is deleted or rewritten."""
    number = 1
    while (out / f"previous-{number}").exists():
        number += 1
    folder = out / f"previous-{number}"
    folder.mkdir()
    for name in _OUTPUTS:
        if (out / name).exists():
            (out / name).rename(folder / name)
    return folder


def earlier_run(out: Path) -> Earlier | None:
    """The earlier run in ``out`` that ``--resume`` goes on with (header, grades, students), read once;
    a last line cut short by a kill is dropped first. ``None`` where ``out`` has no results file."""
    if not (out / RESULTS).is_file():
        return None
    _truncate_partial_line(out / RESULTS)
    return read_results(out)


def open_results(out: Path, meta: dict[str, Any], *, resume: bool, force: bool, earlier: Earlier | None = None,
                 log: Callable[[str], None] = print) -> ResultsFile:
    """Open ``out`` for a run: new, resumed, or with an earlier run's outputs set aside.

    :param out: The output folder (created when missing).
    :param meta: This run's identity (:meth:`.plan.Plan.identity`), marking and protections.
    :param resume: Keep the finished grades of an earlier run with the same identity.
    :param force: Move an earlier run's outputs into ``previous-N/`` and start anew.
    :param earlier: With ``resume``: the earlier run, where the caller has read it (:func:`earlier_run`).
    :raises OutputInUse: ``out`` holds another run's outputs and neither flag allows using it, or
        ``resume`` finds a run with another identity.
    """
    out.mkdir(parents=True, exist_ok=True)
    used = [name for name in _OUTPUTS if (out / name).exists()]
    done: dict[str, tuple[str, Grade]] = {}
    if used and resume:
        earlier = earlier or earlier_run(out)
        if earlier is None:
            raise OutputInUse(f"--resume: {out} holds {', '.join(used)} but no {RESULTS} to resume from; "
                              "use another --out, or --force to set the old files aside")
        old, done, students = earlier
        differs = [k for k in IDENTITY if old.get(k) != meta.get(k)]
        if differs:
            raise OutputInUse(f"--resume: {out} was graded with another {', '.join(differs)} "
                              f"({', '.join(f'{k}={old.get(k)!r}' for k in differs)}); resume with the same values, "
                              "or use --force to set that run aside and start anew")
        log(f"resuming: {len(done)} submission(s) already graded in {out}")
        return ResultsFile(out, old, done, students)
    if used and not force:
        raise OutputInUse(f"{out} already holds the results of a grading run ({', '.join(used)}); "
                          "--resume grades only what is missing there, --force moves the old files into "
                          f"{out}/previous-N/ and starts anew, or choose another --out")
    if used:
        log(f"earlier results set aside in {_set_aside(out)}")
    path = out / RESULTS
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(json.dumps({"meta": meta}) + "\n")
    return ResultsFile(out, meta, done, {})


def merge(parts: list[Path], out: Path) -> tuple[list[Grade], Marking]:
    """Combine the output folders of several shards into one report.

    :param parts: Output folders of ``--shard K/N`` runs.
    :param out: Where to write the merged report (a new folder, or an empty one).
    :returns: All grades, and the marking they share.
    :raises ValueError: The shards used different seeds or settings, or overlap, or their overrides or the
        merged folder's cannot be applied (:mod:`.overrides`).
    """
    metas, grades = [], []
    for part in parts:
        meta, part_grades, students = read_results(part)
        metas.append(meta)
        grades += [(d, g, students.get(name, {})) for name, (d, g) in part_grades.items()]
    if any(tuple(m.get(k) for k in IDENTITY) != tuple(metas[0].get(k) for k in IDENTITY) for m in metas):
        raise ValueError("the shards were graded with different seeds, parameters, lessons or solutions; "
                         "rerun with one --seed")
    names = [g.submission for _, g, _ in grades]
    if len(names) != len(set(names)):
        raise ValueError("a submission appears in more than one shard")
    meta = {k: metas[0].get(k) for k in (*IDENTITY, "marking", "protections")}
    marking = Marking(**meta["marking"])
    from_shards = shard_overrides(parts)
    overrides = checked_overrides(out, names, marking, shards=from_shards)  # before any write
    results = open_results(out, meta, resume=False, force=False)
    shown = read_shown(parts[0] / RESULTS)
    results.append_shown(shown_line(shown.tasks, shown.figures))
    write_from_shards(out, from_shards)
    for file_digest, grade, student in sorted(grades, key=lambda row: row[1].submission):
        results.append(grade, file_digest, student)
    return results.rebuild(overrides=overrides), marking
