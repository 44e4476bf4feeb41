"""The class at a glance: ``OUT/report.html``, written with ``grades.csv`` from the same grades.

One self-contained page (inline SVG charts, no script, nothing loaded from elsewhere), summaries
first and rows after, so it stays readable for a class of hundreds: the counts of each status, the
distribution of the total and of each task's points, each hidden check's failures with their most
common reasons, the expected-result cells that differ (and how many of those follow from an
earlier task), grading time with the slowest submissions named, the similarity pairs where
``similarity.json`` is in the folder (``similarity --out`` the same folder), then one row per
submission, linked to its feedback page.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ._atomic import write_atomic
from .feedback_html import esc, page

__all__ = ["REPORT", "SIMILARITY_JSON", "bars_svg", "class_report_html", "reason", "read_pairs",
           "write_class_report"]

REPORT = "report.html"
SIMILARITY_JSON = "similarity.json"
_REASONS = 5  # most common reasons shown per check
_SLOWEST = 10
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def reason(message: str) -> str:
    """A failure's message with its numbers replaced by ``#``, so that like failures count together."""
    return _NUMBER.sub("#", " ".join(str(message).split()))[:300]


def bars_svg(counts: Sequence[tuple[str, int]], *, label: str) -> str:
    """A bar chart as inline SVG: one bar per ``(name, count)``, its count above it.

    :param counts: The bars, left to right.
    :param label: What the chart shows (its accessible name).
    """
    width, height, top, bottom = max(28, min(60, 640 // max(1, len(counts)))), 110, 16, 18
    most = max((c for _, c in counts), default=0) or 1
    bars = []
    for i, (name, count) in enumerate(counts):
        h = round((height - top - bottom) * count / most)
        x, y = i * width, height - bottom - h
        bars.append(f'<rect x="{x + 2}" y="{y}" width="{width - 4}" height="{h}" fill="#4a78b5"/>'
                    f'<text x="{x + width / 2}" y="{y - 3}" text-anchor="middle">{count}</text>'
                    f'<text x="{x + width / 2}" y="{height - 4}" text-anchor="middle">{esc(name)}</text>')
    total = width * max(1, len(counts))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{total}" height="{height}" '
            f'viewBox="0 0 {total} {height}"><title>{esc(label)}</title>{"".join(bars)}</svg>')


def read_pairs(out: Path) -> list[dict[str, Any]] | None:
    """The similarity pairs written into ``out`` (``None`` when that report has not run there)."""
    try:
        pairs = json.loads((Path(out) / SIMILARITY_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [p for p in pairs if isinstance(p, dict)] if isinstance(pairs, list) else None


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of cells that are HTML already (the callers escape)."""
    top = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><tr>{top}</tr>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                                            for r in rows) + "</table>"


def _statuses(grades: Sequence[Any]) -> str:
    counts = Counter(g.status for g in grades)
    return "<h2>Statuses</h2>" + _table(["status", "submissions"], [(esc(s), str(n)) for s, n in counts.most_common()])


def _points(grades: Sequence[Any], marking: Any) -> str:
    totals = Counter(g.total for g in grades)
    parts = ["<h2>Points</h2>", f"<h3>Total (of {marking.max})</h3>",
             bars_svg([(str(p), totals[p]) for p in range(marking.max + 1)], label="submissions by total points")]
    for task in marking.tasks:
        counts = Counter(g.points.get(task, 0) for g in grades)
        parts += [f"<h3>Task {task} (of {marking.per_task})</h3>",
                  bars_svg([(str(p), counts[p]) for p in range(marking.per_task + 1)],
                           label=f"submissions by points of task {task}")]
    return "\n".join(parts)


def _hidden(grades: Sequence[Any], marking: Any) -> str:
    rows = []
    for task in marking.tasks:
        reasons = Counter(reason(f["message"]) for g in grades for f in g.failures
                          if f["kind"] == "hidden" and f["task"] == task)
        failed = sum(any(f["kind"] == "hidden" and f["task"] == task for f in g.failures) for g in grades)
        common = "<br>".join(f"{n} &times; {esc(r)}" for r, n in reasons.most_common(_REASONS))
        rows.append((f"task {task}", f"{failed} of {len(grades)}", common or "&mdash;"))
    return "<h2>Hidden checks</h2>" + _table(["check", "failed", "most common reasons (numbers as #)"], rows)


def _expected(grades: Sequence[Any]) -> str:
    differ: Counter[tuple[int, str]] = Counter()
    follow: Counter[tuple[int, str]] = Counter()
    for g in grades:
        for f in g.failures:
            if f["kind"] == "expected":
                key = (f["task"], f["cell"] or "(the task's point)")
                differ[key] += 1
                follow[key] += bool(f.get("follows"))
    rows = [(f"task {t}", f"<code>{esc(c)}</code>", str(n), str(follow[(t, c)]))
            for (t, c), n in sorted(differ.items())]
    return "<h2>Expected results that differ</h2>" + (
        _table(["task", "cell", "differ", "of which follow from an earlier task"], rows) if rows else "<p>None.</p>")


def _times(grades: Sequence[Any]) -> str:
    seconds = sorted(g.seconds for g in grades)
    if not seconds:
        return ""
    p90 = seconds[min(len(seconds) - 1, int(0.9 * len(seconds)))]
    slow = sorted(grades, key=lambda g: -g.seconds)[:_SLOWEST]
    return ("<h2>Grading time</h2>"
            f"<p>Median {statistics.median(seconds):.1f} s, 90th percentile {p90:.1f} s, slowest "
            f"{seconds[-1]:.1f} s ({esc(slow[0].submission)}); {sum(seconds):.0f} s in all.</p>"
            + _table(["slowest", "seconds", "status"],
                     [(esc(g.submission), f"{g.seconds:.1f}", esc(g.status)) for g in slow]))


def _similarity(pairs: list[dict[str, Any]] | None) -> str:
    if pairs is None:
        return ("<h2>Similar answers</h2><p class=\"muted\">Not run for this folder: the <code>similarity</code> "
                "command with <code>--out</code> this folder lists them here.</p>")
    rows = [(esc(p.get("first", "")), esc(p.get("second", "")), f"{float(p.get('similarity', 0)):.0%}")
            for p in pairs]
    return ("<h2>Similar answers</h2><p>A report to read, never a grade (<code>similarity.md</code> shows the "
            f"shared lines). {len(rows)} pair(s).</p>" + (_table(["first", "second", "similarity"], rows) if rows
                                                         else ""))


def _rows(grades: Sequence[Any], marking: Any) -> str:
    head = ["submission", *[f"t{t}" for t in marking.tasks], "total", "status", "seconds", "note"]
    rows = [(f'<a href="feedback/{esc(quote(g.submission))}.html">{esc(g.submission)}</a>',
             *[str(g.points.get(t, 0)) for t in marking.tasks], str(g.total), esc(g.status), f"{g.seconds:.1f}",
             esc(g.note)) for g in grades]
    return "<h2>Submissions</h2>" + _table(head, rows)


def class_report_html(grades: Sequence[Any], marking: Any, *, assignment: str,
                      pairs: list[dict[str, Any]] | None = None) -> str:
    """The class report of ``grades`` (in the order given).

    :param pairs: The similarity pairs (:func:`read_pairs`); ``None``: that report has not run.
    """
    totals = [g.total for g in grades]
    mean = f"mean {statistics.fmean(totals):.1f}, median {statistics.median(totals):g} of {marking.max}" if totals \
        else "no submission"
    body = [f"<h1>Class report: {esc(assignment)}</h1>", f"<p>{len(grades)} submission(s); points: {mean}.</p>",
            _statuses(grades), _points(grades, marking), _hidden(grades, marking), _expected(grades), _times(grades),
            _similarity(pairs), _rows(grades, marking)]
    return page(f"Class report: {assignment}", "\n".join(body))


def write_class_report(grades: Sequence[Any], out: Path, *, marking: Any, assignment: str) -> None:
    """Write ``out/report.html`` (with the similarity pairs found in ``out``)."""
    write_atomic(Path(out) / REPORT, class_report_html(grades, marking, assignment=assignment, pairs=read_pairs(out)))
