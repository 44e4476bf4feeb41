"""Scoring a run and writing grades.csv, per-student feedback and the summary table."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._atomic import write_atomic
from ..exercise import EXPECTED_TAG
from .checks import HIDDEN_TAG
from .run import RunResult

__all__ = [
    "EXPECTED_POINTS", "HIDDEN_POINTS", "TASKS", "Grade",
    "merge", "output_text", "score", "summary_table", "write_reports",
]

TASKS = (1, 2, 3, 4, 5)
HIDDEN_POINTS = 2  # per task: the hidden checks
EXPECTED_POINTS = 1  # per task: its expected-result cells, counted only with the hidden checks passed
STATUSES = ("ok", "failed", "timeout", "crashed", "invalid-notebook", "sandbox-error")
_TRUNCATE = 1500


@dataclass
class Grade:
    """One submission's result."""

    submission: str
    status: str
    points: dict[int, int] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    note: str = ""
    seconds: float = 0.0
    errors: list[dict] = field(default_factory=list)  # cells of the student's that raised

    @property
    def total(self) -> int:
        """Sum of the task points."""
        return sum(self.points.values())


def max_points() -> int:
    """The most points a submission can get."""
    return len(TASKS) * (HIDDEN_POINTS + EXPECTED_POINTS)


def _task(tags: list[str]) -> int | None:
    for tag in tags:
        if tag.startswith("task-") and tag[5:].isdigit():
            return int(tag[5:])
    return None


def output_text(outputs: list[dict]) -> str:
    """The text a list of nbformat outputs shows: streams, text/plain data and errors."""
    parts = []
    for out in outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", "") + "\n")
        elif out.get("output_type") == "error":
            parts.append(f"{out.get('ename')}: {out.get('evalue')}\n")
    return "".join(parts)


def _last_line(message: str) -> str:
    lines = [line for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _cut(text: str) -> str:
    return text if len(text) <= _TRUNCATE else text[:_TRUNCATE] + f"\n... ({len(text) - _TRUNCATE} more characters)"


def score(name: str, result: RunResult, expected: dict[str, dict]) -> Grade:
    """Points and status from an nbval run.

    :param name: Submission name.
    :param result: What the run reported.
    :param expected: For every checked cell id: ``{"text": expected output, "tags": [...]}``.
    :returns: The grade.
    """
    cells = result.cells
    checked = [c for c in cells if EXPECTED_TAG in c["tags"] or HIDDEN_TAG in c["tags"]]
    passed = {c["id"] for c in checked if c["outcome"] == "passed" and c["when"] == "call"}
    points = {}
    for task in TASKS:
        hidden = f"hidden-{task}" in passed
        expected_ids = [i for i, e in expected.items() if task == _task(e["tags"])]
        visible = all(i in passed for i in expected_ids)
        points[task] = HIDDEN_POINTS * hidden + EXPECTED_POINTS * (hidden and visible)
    failures = [
        {"cell": c["id"], "task": _task(c["tags"]), "expected": _cut(expected.get(c["id"], {}).get("text", "")),
         "got": _cut(output_text(c["outputs"]) or _last_line(c["message"]) or "(no output)")}
        for c in checked if c["id"] not in passed
    ]
    missing = [i for i in expected if i not in {c["id"] for c in checked}]
    failures += [{"cell": i, "task": _task(expected[i]["tags"]), "expected": _cut(expected[i]["text"]),
                  "got": "(not run)"} for i in missing]
    errors = [{"cell": c["id"], "error": _cut(_last_line(c["message"]))} for c in cells
              if c["outcome"] == "failed" and c not in checked]
    messages = " ".join(c["message"] for c in cells)
    setup_failed = any(c["when"] == "setup" and c["outcome"] == "failed" for c in cells[:1])
    if setup_failed and not passed:
        status, note = "sandbox-error", "the kernel did not start in the sandbox"
    elif result.timed_out or "Timeout of" in messages or any(c["outcome"] == "xfailed" for c in cells):
        status, note = "timeout", "a cell or the notebook ran past its time limit"
    elif "Kernel dead" in messages or "Kernel died" in messages:
        status, note = "crashed", "the kernel died"
    elif result.exitstatus not in (0, 1) or not cells:
        status, note = "crashed", "the test process died"
    elif failures or errors:
        status, note = "failed", ""
    else:
        status, note = "ok", ""
    return Grade(name, status, points, failures, note, round(result.seconds, 1), errors)


def summary_table(grades: list[Grade]) -> str:
    """A plain-text table: one row per submission."""
    head = ["submission", *[f"t{t}" for t in TASKS], "total", "status"]
    rows = [[g.submission, *[str(g.points.get(t, 0)) for t in TASKS], f"{g.total}/{max_points()}", g.status]
            for g in grades]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _csv(grades: list[Grade]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["submission", *[f"task{t}" for t in TASKS], "total", "max", "status"])
    for g in grades:
        writer.writerow([g.submission, *[g.points.get(t, 0) for t in TASKS], g.total, max_points(), g.status])
    return out.getvalue()


def _feedback(grade: Grade) -> str:
    lines = [f"# Feedback: {grade.submission}", "", f"Status: **{grade.status}**"
             + (f" ({grade.note})" if grade.note else ""), "", f"Points: {grade.total} of {max_points()}", "",
             "| task | points |", "|---|---|"]
    lines += [f"| {t} | {grade.points.get(t, 0)} of {HIDDEN_POINTS + EXPECTED_POINTS} |" for t in TASKS]
    if grade.errors:
        lines += ["", "## Your cells that raised an error", ""]
        lines += [f"- `{e['cell']}`: {e['error']}" for e in grade.errors]
    if grade.failures:
        lines += ["", "## Checks that failed", ""]
        for f in grade.failures:
            kind = "hidden check" if f["cell"].startswith("hidden-") else "expected result"
            lines += [f"### Task {f['task']}: {kind} `{f['cell']}`", "", "Expected:", "```", f["expected"].rstrip(),
                      "```", "Got:", "```", f["got"].rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


def write_reports(grades: list[Grade], out: Path, *, meta: dict) -> None:
    """Write ``grades.csv``, ``results.json`` (for merging) and one feedback file per student.

    :param grades: The grades. :param out: Output folder. :param meta: Run facts (seed, protections...).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    ordered = sorted(grades, key=lambda g: g.submission)
    for g in ordered:
        write_atomic(out / "feedback" / f"{g.submission}.md", _feedback(g))
    write_atomic(out / "grades.csv", _csv(ordered))
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
    write_reports(grades, out, meta=meta)
    return sorted(grades, key=lambda g: g.submission)
