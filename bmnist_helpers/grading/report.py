"""Scoring a run and writing grades.csv, per-student feedback and the summary table.

Everything here runs in the grader process: the verdict on each hidden check
(:func:`.checks.judge`), the comparison of each expected-result cell's text with the reference
run's, and the job's status, which comes from the runner's own records.
"""

from __future__ import annotations

import configparser
import csv
import difflib
import io
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._atomic import write_atomic
from .checks import TASK_FUNCTIONS, MalformedValues, decode_values, judge
from .gradebook import GradebookRow, write_gradebooks
from .run import RunResult

__all__ = [
    "EXPECTED_POINTS", "HIDDEN_POINTS", "TASKS", "STATUSES", "Grade", "Reference",
    "merge", "reference_from_run", "score", "summary_table", "write_reports",
]

TASKS = (1, 2, 3, 4, 5)
HIDDEN_POINTS = 2  # per task: the hidden check
EXPECTED_POINTS = 1  # per task: its expected-result cells, counted only with the hidden check passed
STATUSES = ("ok", "partial", "timeout", "crashed", "invalid-notebook", "grader-error", "sandbox-error")
SANITIZE_FILE = Path(__file__).resolve().parent.parent / "nbval_sanitize.cfg"
_TRUNCATE = 1500
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

    @property
    def total(self) -> int:
        """Sum of the task points."""
        return sum(self.points.values())


@dataclass(frozen=True)
class Reference:
    """What the solution's own run produced: the expected texts and the hidden-check values."""

    texts: dict[str, str]  # expected-result cell name -> sanitized text
    tasks: dict[str, int]  # expected-result cell name -> task
    values: dict[int, object]  # task -> decoded hidden-check values
    inputs: dict[int, dict]  # task -> the probe's inputs
    needs: dict[str, set[int]] = field(default_factory=dict)  # expected-result cell -> tasks it runs on


def max_points() -> int:
    """The most points a submission can get."""
    return len(TASKS) * (HIDDEN_POINTS + EXPECTED_POINTS)


def _sanitizers() -> list[tuple[re.Pattern, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(SANITIZE_FILE, encoding="utf-8")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()]


def sanitize(text: str) -> str:
    """The text as compared: volatile parts replaced (the kit's nbval sanitize file), figure reprs dropped.

    :param text: A cell's text output.
    """
    for pattern, replacement in _sanitizers():
        text = pattern.sub(replacement, text)
    return "\n".join(line.rstrip() for line in text.splitlines() if line.strip() and not _FIGURE.match(line.strip()))


def _cells(result: RunResult) -> tuple[list[dict], dict[int, dict]]:
    copy = next((e["cells"] for e in result.events if e.get("event") == "copy"), [])
    records = {e["index"]: e for e in result.events if e.get("event") == "cell" and isinstance(e.get("index"), int)}
    return copy, records


def _values(record: dict | None):
    if not record or not record.get("values_count"):
        return None
    if record["values_count"] != 1 or record.get("values") is None:
        return "malformed"  # more than one set of values: something else in the kernel sent some
    try:
        return decode_values(record["values"])
    except (MalformedValues, RecursionError):
        return "malformed"


def reference_from_run(result: RunResult, inputs: dict[int, dict], *, needs: dict[str, set[int]]) -> Reference:
    """Collect the reference run's expected texts and hidden values; refuse a broken reference.

    :param result: The run of the solution's own grading copy.
    :param inputs: The probes' inputs by task.
    :param needs: For each expected-result cell, the tasks it runs on (``visible_dependencies``).
    :raises ValueError: The solution does not pass its own grading copy.
    """
    copy, records = _cells(result)
    broken = [f"{c['name'] or c['role']} ({records.get(i, {}).get('status', 'not run')})" for i, c in enumerate(copy)
              if records.get(i, {}).get("status") != "ok"]
    if not copy or broken or result.timed_out:
        raise ValueError("the solution itself does not run cleanly in its grading copy: "
                         + (", ".join(broken[:5]) or "no cells ran") + f"; check --param values.\n{result.log[-2000:]}")
    texts = {c["name"]: sanitize(records[i].get("text", "")) for i, c in enumerate(copy) if c["expected"]}
    tasks = {c["name"]: c["task"] for c in copy if c["expected"]}
    values = {c["task"]: _values(records[i]) for i, c in enumerate(copy) if c["role"] == "probe"}
    for task, value in values.items():
        verdict = judge(task, inputs[task], value, value)
        if verdict is not None:
            raise ValueError(f"the solution fails its own hidden check of task {task}: {verdict}")
    return Reference(texts=texts, tasks=tasks, values=values, inputs=inputs, needs=needs)


def _marked_diff(expected: str, got: str) -> str:
    lines = difflib.ndiff(expected.splitlines(), got.splitlines())
    return _cut("\n".join(line for line in lines if not line.startswith("?")))


def _cut(text: str) -> str:
    return text if len(text) <= _TRUNCATE else text[:_TRUNCATE] + f"\n... ({len(text) - _TRUNCATE} more characters)"


def _error_line(record: dict) -> str:
    error = record.get("error") or {}
    evalue = str(error.get("evalue", "")).strip().splitlines()
    return f"{error.get('ename', 'Error')}: {evalue[-1] if evalue else ''}".strip()


def _blame(record: dict, task: int | None) -> str:
    """Say when a cell failed because of another task (a NameError or a TODO of another task)."""
    error = record.get("error") or {}
    text = f"{error.get('ename', '')}: {error.get('evalue', '')}"
    todo = re.search(r"TODO: task (\d+)", text)
    if todo and int(todo.group(1)) != task:
        return f"This cell needs task {todo.group(1)}, which is not done yet."
    missing = re.search(r"name '(\w+)' is not defined", text)
    if missing:
        owner = next((t for t, names in TASK_FUNCTIONS.items() if missing.group(1) in names), None)
        if owner is not None and owner != task:
            return f"This cell needs `{missing.group(1)}` from task {owner}, which is missing."
    return ""


def score(name: str, result: RunResult, reference: Reference, *, timeout_s: int, cell_timeout_s: int) -> Grade:
    """Points and status of one run.

    :param name: Submission name.
    :param result: What the worker recorded.
    :param reference: The reference run's texts and values.
    :param timeout_s: The notebook limit; ``cell_timeout_s``: the per-cell limit (for the notes).
    :returns: The grade.
    """
    seconds = round(result.seconds, 1)
    events = {e.get("event") for e in result.events}
    if "invalid" in events:
        note = next(e["note"] for e in result.events if e.get("event") == "invalid")
        return Grade(name, "invalid-notebook", {t: 0 for t in TASKS}, note=note, seconds=seconds)
    if "kernel-failed" in events:
        note = next(e["note"] for e in result.events if e.get("event") == "kernel-failed")
        return Grade(name, "sandbox-error", {t: 0 for t in TASKS}, note=f"the kernel did not start: {note}",
                     seconds=seconds)
    copy, records = _cells(result)
    failures, errors, hidden_ok = [], [], {}
    for index, cell in enumerate(copy):
        record = records.get(index)
        if cell["role"] == "probe":
            task = cell["task"]
            got = _values(record)
            verdict = ("the check's values were malformed or sent more than once (does code in your notebook "
                       "display output after every cell?)") if got == "malformed" else None
            if record is not None and record["status"] == "timeout":
                verdict = f"the check ran past the {cell_timeout_s} s limit and was interrupted"
            verdict = verdict or judge(task, reference.inputs[task], got, reference.values[task])
            hidden_ok[task] = verdict is None
            if verdict:
                failures.append({"task": task, "kind": "hidden", "cell": cell["name"], "message": verdict})
        elif cell["role"] == "given" and cell["expected"]:
            expected = reference.texts.get(cell["name"], "")
            if record is None:
                failures.append({"task": cell["task"], "kind": "expected", "cell": cell["name"], "message": "not run"})
                continue
            got = sanitize(record.get("text", ""))
            if record["status"] == "ok" and got == expected:
                continue
            message = _blame(record, cell["task"]) if record["status"] == "error" else ""
            if record["status"] == "error":
                message = f"raised {_error_line(record)}. {message}".strip()
            elif record["status"] != "ok":
                message = {"timeout": "ran past its time limit", "dead": "the kernel died here"}[record["status"]]
            failures.append({"task": cell["task"], "kind": "expected", "cell": cell["name"],
                             "message": message or "the output differs", "diff": _marked_diff(expected, got)})
        elif cell["role"] == "student" and record is not None and record["status"] == "error":
            errors.append({"cell": index + 1, "error": _cut(_error_line(record))})
    points = {}
    for task in TASKS:
        hidden = hidden_ok.get(task, False)
        visible = not any(f["task"] == task and f["kind"] == "expected" for f in failures)
        needed = set().union(*(n for cell, n in reference.needs.items() if reference.tasks.get(cell) == task))
        unverified = sorted(t for t in needed - {task} if not hidden_ok.get(t, False))
        if hidden and visible and unverified:  # printed output alone can be imitated
            visible = False
            failures.append({"task": task, "kind": "expected", "cell": "", "message": (
                f"the expected-result point of task {task} needs the hidden checks of task(s) "
                f"{', '.join(map(str, unverified))} to pass too, since its cells run on their functions")})
        points[task] = HIDDEN_POINTS * hidden + EXPECTED_POINTS * (hidden and visible)
    statuses = [r["status"] for r in records.values()]
    if result.timed_out:
        status, note = "timeout", f"the notebook ran past its {timeout_s} s limit and was stopped"
    elif "dead" in statuses:
        where = next(i for i, r in records.items() if r["status"] == "dead")
        status = "crashed"
        note = f"the kernel died in {_where(copy[where], where)}: it exited, or hit a resource limit"
    elif "timeout" in statuses:
        where = next(i for i, r in records.items() if r["status"] == "timeout")
        status = "timeout"
        note = f"{_where(copy[where], where)} ran past the {cell_timeout_s} s limit and was interrupted"
    elif "done" not in events:
        last = [line for line in result.log.splitlines() if line.strip()]
        status = "grader-error"
        note = f"the grader could not finish this notebook ({(last or ['no message'])[-1][:200]})"
    elif failures or errors:
        status, note = "partial", ""
    else:
        status, note = "ok", ""
    return Grade(name, status, points, failures, note, seconds, errors)


def _where(cell: dict, index: int) -> str:
    if cell["role"] == "probe":
        return f"the hidden check of task {cell['task']}"
    if cell["role"] == "given":
        return f"the given cell `{cell['name']}`"
    return f"your cell number {index + 1} of the grading copy"


def summary_table(grades: list[Grade]) -> str:
    """A plain-text table: one row per submission."""
    head = ["submission", *[f"t{t}" for t in TASKS], "total", "status"]
    rows = [[g.submission, *[str(g.points.get(t, 0)) for t in TASKS], f"{g.total}/{max_points()}", g.status]
            for g in grades]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _csv_cell(value) -> str:
    """Defuse spreadsheet formulas: a cell that starts like one is quoted with a leading apostrophe."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(grades: list[Grade], students: dict[str, dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", "student", "source", *[f"task{t}" for t in TASKS], "total", "max", "status", "note"])
    for g in grades:
        who = students.get(g.submission, {})
        note = "; ".join(filter(None, [g.note, who.get("note")]))
        writer.writerow([_csv_cell(v) for v in (g.submission, who.get("student", g.submission), who.get("source", ""),
                                                *[g.points.get(t, 0) for t in TASKS], g.total, max_points(), g.status,
                                                note)])
    return out.getvalue()


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_HTML = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def _md(text: str) -> str:
    """Student-controlled text for the middle of a Markdown line: one line, no markup, no HTML."""
    text = _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
    return re.sub(r"[<>&]", lambda m: _HTML[m.group(0)], text)


def _fenced(text: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks in the text."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [fence + "text", text.rstrip(), fence]


def _feedback(grade: Grade) -> str:
    lines = [f"# Feedback: {_md(grade.submission)}", "",
             f"Status: **{grade.status}**" + (f" ({_md(grade.note)})" if grade.note else ""), "",
             f"Points: {grade.total} of {max_points()}", "", "| task | points |", "|---|---|"]
    lines += [f"| {t} | {grade.points.get(t, 0)} of {HIDDEN_POINTS + EXPECTED_POINTS} |" for t in TASKS]
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
            if f.get("diff"):
                lines += [*_fenced(f["diff"]), ""]
    if grade.errors:
        lines += ["", "## Your cells that raised an error", ""]
        for e in grade.errors:
            lines += [f"Cell {e['cell']} of the grading copy:", "", *_fenced(e["error"]), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_reports(grades: list[Grade], out: Path, *, meta: dict) -> None:
    """Write ``grades.csv``, ``results.json`` (for merging) and one feedback file per student.

    :param grades: The grades.
    :param out: Output folder.
    :param meta: Run facts (seed, protections...).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    ordered = sorted(grades, key=lambda g: g.submission)
    for g in ordered:
        write_atomic(out / "feedback" / f"{g.submission}.md", _feedback(g))
    students = meta.get("students") or {}
    write_atomic(out / "grades.csv", _csv(ordered, students))
    write_gradebooks([GradebookRow(g.submission, total=g.total, max_points=max_points(), status=g.status,
                                   feedback=out / "feedback" / f"{g.submission}.md",
                                   **{"student": g.submission, **students.get(g.submission, {})})
                      for g in ordered], out)
    write_atomic(out / "results.json", json.dumps({"meta": meta, "grades": [asdict(g) for g in ordered]}, indent=1))


def _load(path: Path) -> tuple[dict, list[Grade]]:
    raw = json.loads((path / "results.json").read_text())
    grades = [Grade(**{**g, "points": {int(k): v for k, v in g["points"].items()}}) for g in raw["grades"]]
    return raw["meta"], grades


def merge(parts: list[Path], out: Path) -> list[Grade]:
    """Combine the output folders of several shards into one report.

    :param parts: Output folders of ``bmnist-grade --shard K/N`` runs.
    :param out: Where to write the merged report.
    :returns: All grades.
    :raises ValueError: The shards used different seeds or settings, or overlap.
    """
    metas, grades = [], []
    for part in parts:
        meta, part_grades = _load(part)
        metas.append(meta)
        grades += part_grades
    keys = ("seed", "params", "solution")
    if any(tuple(m.get(k) for k in keys) != tuple(metas[0].get(k) for k in keys) for m in metas):
        raise ValueError("the shards were graded with different seeds, parameters or solutions; rerun with one --seed")
    names = [g.submission for g in grades]
    if len(names) != len(set(names)):
        raise ValueError("a submission appears in more than one shard")
    meta = {k: metas[0].get(k) for k in (*keys, "protections")}
    meta["students"] = {name: who for m in metas for name, who in (m.get("students") or {}).items()}
    write_reports(grades, out, meta=meta)
    return sorted(grades, key=lambda g: g.submission)
