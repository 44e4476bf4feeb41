"""Scoring a run and writing grades.csv, per-student feedback and the summary table.

Everything here runs in the grader process: the verdict on each hidden check
(:func:`.lessons.judge`), the comparison of each expected-result cell's text with the reference
run's, and the points; the status comes from :func:`.status.decide`.

An expected-result cell's text is its own printed lines (and any output from outside its code),
line for line; what the student's functions print while the cell runs is recorded apart by the
worker, never compared, and named in the feedback as ignored.
"""

from __future__ import annotations

import configparser
import csv
import difflib
import functools
import io
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ._atomic import write_atomic
from .class_report import write_class_report
from .feedback_html import feedback_html, follows_text, mark_follows
from .figures import Shown, figures_of
from .gradebook import GradebookRow, unplaced, write_gradebooks
from .lessons import Lesson, LessonError, judge
from .overrides import Override, by_submission, describe
from .plan import Plan
from .run import RunResult
from .status import decide
from .values import MalformedValues, decode_values, load_values

__all__ = ["Grade", "Marking", "Reference", "reference_from_run", "score", "summary_table", "with_overrides",
           "write_reports"]

_TRUNCATE = 1500
_SANITIZE_CHARS = 20_000  # characters of a cell's text compared (the worker keeps as many)
_DIFF_LINES, _DIFF_CHARS = 200, 300  # a diff compares at most these many lines, each cut to so many characters
_FIGURE = re.compile(r"^\(?<(Figure|Axes|matplotlib\.)[^>]*>.*$")


@dataclass
class Grade:
    """One submission's result."""

    submission: str
    status: str
    points: dict[int, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0
    errors: list[dict] = field(default_factory=list)  # the student's own cells that raised
    ignored: list[dict] = field(default_factory=list)  # expected-result cells with lines of the student's, not compared
    figures: dict[str, list[str]] = field(default_factory=dict)  # expected-result cell -> PNGs (base64)

    @property
    def total(self) -> int:
        """Sum of the task points."""
        return sum(self.points.values())

    @classmethod
    def from_json(cls, raw: dict) -> Grade:
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

    def zeros(self) -> dict[int, int]:
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


@functools.cache
def sanitizers(path: Path | None) -> tuple[tuple[re.Pattern, str], ...]:
    """The patterns of an nbval sanitize file (``[section]`` with ``regex:`` and ``replace:``).

    :param path: The lesson's file (:attr:`Lesson.sanitize`); ``None``: no patterns.
    :raises LessonError: The file cannot be read or a pattern does not compile.
    """
    if path is None:
        return ()
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if not parser.read(path, encoding="utf-8"):
            raise OSError("missing")
        return tuple((re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections())
    except (OSError, KeyError, re.error, configparser.Error) as exc:
        raise LessonError(f"the lesson's sanitize file {path} is not usable ({exc}); give an nbval sanitize file "
                          "with a regex and a replace line in each section") from None


def sanitize(text: str, rules: tuple[tuple[re.Pattern, str], ...] = ()) -> str:
    """The text as compared: volatile parts replaced (the lesson's sanitize patterns), figure reprs dropped.

    Student output goes through this in the grader process, so its time is bounded: the text is
    cut to :data:`_SANITIZE_CHARS` first (the worker keeps no more of a cell), and the patterns are
    linear (a match starts only where a run of digits starts).

    :param text: A cell's text output.
    :param rules: The patterns, from :func:`sanitizers`.
    """
    text = text[:_SANITIZE_CHARS]
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip() and not _FIGURE.match(line.strip()))


def _cells(result: RunResult) -> tuple[list[dict], dict[int, dict]]:
    """The grading copy's cells and the record of each cell that ran, by index."""
    copy = next((e["cells"] for e in result.events if e.get("event") == "copy"), [])
    records = {e["index"]: e for e in result.events if e.get("event") == "cell" and isinstance(e.get("index"), int)}
    return copy, records


def _values(record: dict | None):
    if not record or not record.get("values_count"):
        return None
    if record["values_count"] != 1 or record.get("values") is None:
        return "malformed"  # more than one set of values: something else in the kernel sent some
    try:
        return decode_values(load_values(record["values"]))
    except (MalformedValues, RecursionError):
        return "malformed"


def reference_from_run(result: RunResult, plan: Plan) -> Reference:
    """Collect the reference run's expected texts and hidden values; refuse a broken reference.

    :param result: The run of the solution's own grading copy.
    :param plan: The run's plan.
    :raises ValueError: The solution does not pass its own grading copy.
    """
    copy, records = _cells(result)
    broken = [f"{c['name'] or c['role']} ({records.get(i, {}).get('status', 'not run')})" for i, c in enumerate(copy)
              if records.get(i, {}).get("status") != "ok"]
    if not copy or broken or result.timed_out:
        raise ValueError("the solution itself does not run cleanly in its grading copy: "
                         + (", ".join(broken[:5]) or "no cells ran") + f"; check --param values.\n{result.log[-2000:]}")
    rules = sanitizers(plan.lesson.sanitize)
    texts = {c["name"]: sanitize(records[i].get("text", ""), rules) for i, c in enumerate(copy) if c["expected"]}
    tasks = {c["name"]: c["task"] for c in copy if c["expected"]}
    ignored = {c["name"]: sanitize(records[i].get("ignored", ""), rules) for i, c in enumerate(copy) if c["expected"]}
    values = {c["task"]: _values(records[i]) for i, c in enumerate(copy) if c["role"] == "probe"}
    checks = {check.task: check for check in plan.lesson.checks}
    for task, value in values.items():
        verdict = judge(checks[task], plan.inputs[task], value, value)
        if verdict is not None:
            raise ValueError(f"the solution fails its own hidden check of task {task}: {verdict}")
    return Reference(texts=texts, tasks=tasks, values=values, ignored=ignored, figures=figures_of(result.events))


def _marked_diff(expected: str, got: str) -> str:
    """An ndiff of the two texts, on bounded input (ndiff takes quadratic time and more)."""
    def cut(text: str) -> list[str]:
        return [line[:_DIFF_CHARS] for line in text.splitlines()[:_DIFF_LINES]]

    lines = difflib.ndiff(cut(expected), cut(got))
    return _cut("\n".join(line for line in lines if not line.startswith("?")))


def _cut(text: str) -> str:
    return text if len(text) <= _TRUNCATE else text[:_TRUNCATE] + f"\n... ({len(text) - _TRUNCATE} more characters)"


def _error_line(record: dict) -> str:
    error = record.get("error") or {}
    evalue = str(error.get("evalue", "")).strip().splitlines()
    return f"{error.get('ename', 'Error')}: {evalue[-1] if evalue else ''}".strip()


def _blame(record: dict, task: int | None, plan: Plan, hidden_ok: dict[int, bool]) -> str:
    """Say when a cell failed because of another task: a stub of another task raised, or a name
    is missing that an earlier cell makes from tasks whose checks failed."""
    error = record.get("error") or {}
    text = f"{error.get('ename', '')}: {error.get('evalue', '')}"[:4000]
    todo = _stub_of(text, plan.lesson)
    if todo is not None and todo != task:
        return f"This cell needs task {todo}, which is not done yet."
    missing = re.search(r"name '(\w+)' is not defined", text)
    if missing:
        name = missing.group(1)
        owner = plan.lesson.function_tasks().get(name)
        if owner is not None and owner != task:
            return f"This cell needs `{name}` from task {owner}, which is missing."
        failed = sorted(t for t in plan.name_tasks.get(name, ()) if t != task and not hidden_ok.get(t, False))
        if owner is None and failed:
            return f"This cell needs task {', '.join(map(str, failed))}, which is not done yet."
    return ""


def score(name: str, result: RunResult, reference: Reference, plan: Plan, *, timeout_s: int,
          cell_timeout_s: int) -> Grade:
    """Points and status of one run.

    :param name: Submission name.
    :param result: What the worker recorded.
    :param reference: The reference run's texts and values.
    :param plan: The run's plan (the lesson, its checks' inputs, what each expected result needs).
    :param timeout_s: The notebook limit; ``cell_timeout_s``: the per-cell limit (for the notes).
    :returns: The grade.
    """
    lesson, marking = plan.lesson, Marking.of(plan.lesson)
    checks = {check.task: check for check in lesson.checks}
    copy, records = _cells(result)
    stubbed = set(next((e.get("stubbed") or [] for e in result.events if e.get("event") == "copy"), []))
    failures, errors, ignored, hidden_ok = [], [], [], {}
    for index, cell in enumerate(copy):  # the hidden checks first: the other cells' notes refer to them
        record = records.get(index)
        if cell["role"] == "probe":
            task = cell["task"]
            got = _values(record)
            verdict = ("the check's values were malformed or sent more than once (does code in your notebook "
                       "display output after every cell?)") if got == "malformed" else None
            if record is not None and record["status"] == "timeout":
                verdict = f"the check ran past the {cell_timeout_s} s limit and was interrupted"
            if task in stubbed:  # whatever the kernel sent: a hook can forge values, not an answer
                verdict = (f"task {task} is not answered: a function of it is still the exercise's stub (it only "
                           "raises NotImplementedError)")
            verdict = verdict or judge(checks[task], plan.inputs[task], got, reference.values[task])
            hidden_ok[task] = verdict is None
            if verdict:
                failures.append({"task": task, "kind": "hidden", "cell": cell["name"], "message": verdict})
    for index, cell in enumerate(copy):
        record = records.get(index)
        if cell["role"] == "given" and cell["expected"]:
            failure = _expected_failure(cell, record, reference, plan, hidden_ok)
            if failure:
                failures.append(failure)
            lines = _own_lines(record, reference.ignored.get(cell["name"], ""), sanitizers(plan.lesson.sanitize))
            if lines:
                ignored.append({"task": cell["task"], "cell": cell["name"], "lines": lines})
        elif cell["role"] == "student" and record is not None and record["status"] == "error":
            errors.append({"cell": index + 1, "error": _cut(_error_line(record))})
    points = {}
    for task in marking.tasks:
        hidden = hidden_ok.get(task, False)
        visible = not any(f["task"] == task and f["kind"] == "expected" for f in failures)
        needed = set().union(*(n for cell, n in plan.needs.items() if reference.tasks.get(cell) == task))
        unverified = sorted(t for t in needed - {task} if not hidden_ok.get(t, False))
        if hidden and visible and unverified:  # printed output alone can be imitated
            visible = False
            failures.append({"task": task, "kind": "expected", "cell": "", "message": (
                f"the expected-result point of task {task} needs the hidden checks of task(s) "
                f"{', '.join(map(str, unverified))} to pass too, since its cells run on their functions")})
        points[task] = marking.hidden * hidden + marking.expected * (hidden and visible)
    raised = {f["task"] for f in failures if f["kind"] == "hidden" and _stub_of(f["message"], lesson) == f["task"]}
    untouched = stubbed | raised >= set(marking.tasks)  # each task still its stub, as read or as it ran
    status, note = decide(result.events, timed_out=result.timed_out, exitcode=result.exitcode, passed=not failures,
                          attempted=not untouched, own_errors=len(errors), timeout_s=timeout_s,
                          cell_timeout_s=cell_timeout_s)
    figures = {cell: list(kept) for cell, kept in figures_of(result.events).items()}
    if status in ("invalid-notebook", "sandbox-error"):
        points, failures, errors, ignored, figures = marking.zeros(), [], [], [], {}
    return Grade(name, status, points, mark_follows(failures, plan.needs, reference.tasks), note,
                 round(result.seconds, 1), errors, ignored=ignored, figures=figures)


def _own_lines(record: dict | None, helpers: str, rules: tuple[tuple[re.Pattern, str], ...]) -> int:
    """How many lines the student's code printed while an expected-result cell ran: the cell's
    ignored output, sanitized, less the lines the reference run printed there too (its helpers')."""
    if not record:
        return 0
    printed = Counter(sanitize(str(record.get("ignored", "")), rules).splitlines())
    return sum((printed - Counter(helpers.splitlines())).values())


def _stub_of(message: str, lesson: Lesson) -> int | None:
    """The task whose stub raised, where a message says one did."""
    found = lesson.stub.search(message)
    return int(found.group(1)) if found else None


def _expected_failure(cell: dict, record: dict | None, reference: Reference, plan: Plan,
                      hidden_ok: dict[int, bool]) -> dict | None:
    """What went wrong in one expected-result cell, or ``None`` when its text equals the reference's."""
    expected = reference.texts.get(cell["name"], "")
    if record is None:
        return {"task": cell["task"], "kind": "expected", "cell": cell["name"], "message": "not run"}
    got = sanitize(record.get("text", ""), sanitizers(plan.lesson.sanitize))
    if record["status"] == "ok" and got == expected:
        return None
    message = ""
    if record["status"] == "error":
        message = f"raised {_error_line(record)}. {_blame(record, cell['task'], plan, hidden_ok)}".strip()
    elif record["status"] != "ok":
        message = {"timeout": "ran past its time limit", "dead": "the kernel died here"}.get(
            record["status"], "the job was stopped here")
    return {"task": cell["task"], "kind": "expected", "cell": cell["name"],
            "message": message or "the output differs", "diff": _marked_diff(expected, got)}


def summary_table(grades: list[Grade], marking: Marking) -> str:
    """A plain-text table: one row per submission."""
    head = ["submission", *[f"t{t}" for t in marking.tasks], "total", "status"]
    rows = [[g.submission, *[str(g.points.get(t, 0)) for t in marking.tasks], f"{g.total}/{marking.max}", g.status]
            for g in grades]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _csv_cell(value) -> str:
    """Defuse spreadsheet formulas: a cell that starts like one is quoted with a leading apostrophe."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(grades: list[Grade], marking: Marking, students: dict[str, dict], left_out: dict[str, str],
         graded: dict[str, Grade], fixes: dict[str, dict[int, Override]]) -> str:
    """grades.csv: the final points (``taskN``, ``total``), then the grader's own (``grader_taskN``,
    ``grader_total``) and the overrides in words (``override``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "student", "source", *[f"task{t}" for t in marking.tasks], "total", "max",
                     "status", "note", *[f"grader_task{t}" for t in marking.tasks], "grader_total", "override"])
    for g in grades:
        who, own = students.get(g.submission, {}), graded[g.submission]
        note = "; ".join(filter(None, [g.note, who.get("note"), left_out.get(g.submission)]))
        writer.writerow([_csv_cell(v) for v in (g.submission, who.get("student", g.submission), who.get("source", ""),
                                                 *[g.points.get(t, 0) for t in marking.tasks], g.total, marking.max,
                                                 g.status, note, *[own.points.get(t, 0) for t in marking.tasks],
                                                 own.total, describe(fixes.get(g.submission, {}), own.points))])
    return out.getvalue()


_MD_ALWAYS = re.compile(r"([\\`*|~])")  # markup wherever it stands
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # emphasis; not inside a word (loss_fn)
_MD_LINK = re.compile(r"\]([(\[:])")  # a link or reference needs ']' right before '(', '[' or ':'
_MD_HTML = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")  # a tag, a comment or an entity; '< 5' or 'a & b' stay


def _md(text: str) -> str:
    """Student-controlled text for the middle of a Markdown line: one line, no markup, no HTML,
    escaped only where a character would act, so that the raw file reads well too."""
    text = _MD_ALWAYS.sub(r"\\\1", " ".join(str(text).split()))
    text = _MD_UNDERSCORE.sub(r"\\_", _MD_LINK.sub(r"]\\\1", text))
    return _MD_HTML.sub(lambda m: {"<": "&lt;", "&": "&amp;"}[m.group(0)], text)


def _fenced(text: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks in the text."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [fence + "text", text.rstrip(), fence]


def _feedback(grade: Grade, marking: Marking, fixes: dict[int, Override] | None = None) -> str:
    fixes = fixes or {}
    by_hand = dict.fromkeys(fixes, " (set by your instructor)")
    lines = [f"# Feedback: {_md(grade.submission)}", "",
             f"Status: **{grade.status}**" + (f" ({_md(grade.note)})" if grade.note else ""), "",
             f"Points: {grade.total} of {marking.max}", "", "| task | points |", "|---|---|"]
    lines += [f"| {t} | {grade.points.get(t, 0)} of {marking.per_task}{by_hand.get(t, '')} |" for t in marking.tasks]
    if fixes:
        lines += ["", "## Points set by your instructor", ""]
        lines += [f"- Task {t}: {o.points} of {marking.per_task}: {_md(o.reason)}" for t, o in sorted(fixes.items())]
    hidden = [f for f in grade.failures if f["kind"] == "hidden"]
    if hidden:
        lines += ["", "## Hidden checks that failed", "",
                  "Each check calls your functions on new inputs and tests what a correct function does.", ""]
        lines += [f"- Task {f['task']}: {_md(f['message'])}" for f in hidden]
    visible = [f for f in grade.failures if f["kind"] == "expected"]
    if visible:
        lines += ["", "## Expected results that differ", "",
                  "Lines marked `-` are in the expected result, lines marked `+` in yours.", ""]
        for f in visible:
            lines += [f"### Task {f['task']}" + (f": `{f['cell']}`" if f["cell"] else ""), "", _md(f["message"]), ""]
            if f.get("follows"):
                lines += [f"This {follows_text(f['follows'])}.", ""]
            if f.get("diff"):
                lines += [*_fenced(f["diff"]), ""]
    if grade.ignored:
        lines += ["", "## Output of your own that was not compared", "",
                  "Only each expected-result cell's own lines are compared. What your functions printed while "
                  "it ran was ignored and costs nothing:", ""]
        lines += [f"- Task {i['task']}, `{i['cell']}`: {i['lines']} line(s)" for i in grade.ignored]
    if grade.errors:
        lines += ["", "## Your cells that raised an error", ""]
        for e in grade.errors:
            lines += [f"Cell {e['cell']} of the grading copy:", "", *_fenced(e["error"]), ""]
    return "\n".join(lines).rstrip() + "\n"


def with_overrides(grade: Grade, fixes: dict[int, Override]) -> Grade:
    """The grade with the points set by hand in place of the grader's."""
    return replace(grade, points={**grade.points, **{t: o.points for t, o in fixes.items()}}) if fixes else grade


def write_reports(grades: list[Grade], out: Path, *, marking: Marking, students: dict[str, dict],
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
    rows = [GradebookRow(g.submission, total=g.total, max_points=marking.max, status=g.status,
                         feedback=out / "feedback" / f"{g.submission}.md",
                         override=describe(fixes.get(g.submission, {}), graded[g.submission].points),
                         **{"student": g.submission, **students.get(g.submission, {})}) for g in ordered]
    left_out = unplaced(rows)
    fresh, stale = out / ".feedback.new", out / ".feedback.old"
    for folder in (fresh, stale):
        _remove_generated(folder)
    fresh.mkdir()
    for g in ordered:
        write_atomic(fresh / f"{g.submission}.md", _feedback(g, marking, fixes.get(g.submission)))
        write_atomic(fresh / f"{g.submission}.html", feedback_html(g, marking, shown or Shown(),
                                                                   fixes=fixes.get(g.submission)))
    if (out / "feedback").exists():
        (out / "feedback").rename(stale)
    fresh.rename(out / "feedback")
    _remove_generated(stale)
    write_atomic(out / "grades.csv", _csv(ordered, marking, students, left_out, graded, fixes))
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
