"""Feedback as one self-contained HTML page per submission: ``feedback/NAME.html``.

The page needs nothing but itself: styles inline, figures as ``data:`` URIs, no script, and a
Content-Security-Policy that lets it load nothing else, so it opens from a zip or an LMS
attachment. It gives the points per task, each failed check in the student's terms, the diff of
printed lines, and the student's figures of each expected-result cell beside the instructor's
(the reference run's). Everything the student's run wrote (messages, printed lines, names) goes
through :func:`esc`, so it shows as text, never as markup. Hidden checks' reference values are
never in a grade, so never here.

A difference that follows from an earlier task's failed check says so (marked by
:func:`.scoring.mark_follows`).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any

from .figures import Shown, png_base64
from .status import STATUSES

__all__ = ["esc", "feedback_html", "follows_text", "page"]

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1,h2,h3{line-height:1.2}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow-x:auto;white-space:pre-wrap}
.del{background:#fde2e2;display:block}.ins{background:#dcf5dc;display:block}
.ok{color:#176117}.bad{color:#a11}.follows{background:#fff4d6;border-left:4px solid #e0a800;padding:.3em .6em}
.pair{display:flex;flex-wrap:wrap;gap:1em}.pair figure{margin:0;flex:1 1 28em;min-width:0}
figure img{max-width:100%;height:auto;border:1px solid #ddd}figcaption{font-weight:600}
.muted{color:#666}svg text{font:11px system-ui,sans-serif}
"""


def esc(text: object) -> str:
    """Text as HTML text: every character that could act as markup escaped."""
    return html.escape(str(text), quote=True)


def page(title: str, body: str) -> str:
    """A whole page around ``body``: inline style, no script, nothing loaded from elsewhere."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def follows_text(tasks: Iterable[int]) -> str:
    """``follows from task 3: fix that first`` (the earliest first where several are named)."""
    tasks = sorted(set(tasks))
    if len(tasks) == 1:
        return f"follows from task {tasks[0]}: fix that first"
    named = ", ".join(map(str, tasks[:-1])) + f" and {tasks[-1]}"
    return f"follows from tasks {named}: fix task {tasks[0]} first"


def _follows(failure: Mapping[str, Any]) -> str:
    tasks = failure.get("follows") or []
    return f'<p class="follows">This {esc(follows_text(tasks))}.</p>' if tasks else ""


def _diff(diff: str) -> str:
    """The marked diff as a block: ``-`` lines (the instructor's) and ``+`` lines (yours) coloured."""
    lines = []
    for line in diff.splitlines():
        kind = {"- ": "del", "+ ": "ins"}.get(line[:2])
        lines.append(f'<span class="{kind}">{esc(line)}</span>' if kind else esc(line) + "\n")
    return "<pre>" + "".join(lines) + "</pre>"


def _img(figure: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{figure}" alt="{esc(alt)}">'


def _figures(cell: str, yours: tuple[str, ...], theirs: tuple[str, ...]) -> str:
    """The student's figures of one cell beside the instructor's."""
    yours, theirs = (tuple(f for f in map(png_base64, side) if f) for side in (yours, theirs))
    if not yours and not theirs:
        return ""
    mine = "".join(_img(f, f"your figure {i} of {cell}") for i, f in enumerate(yours, 1)) or (
        '<p class="muted">Your run showed no figure here.</p>')
    ref = "".join(_img(f, f"the instructor's figure {i} of {cell}") for i, f in enumerate(theirs, 1)) or (
        '<p class="muted">The instructor\'s run showed no figure here.</p>')
    return (f'<div class="pair"><figure><figcaption>Yours</figcaption>{mine}</figure>'
            f"<figure><figcaption>The instructor's</figcaption>{ref}</figure></div>")


def _expected_cell(cell: str, failure: Mapping[str, Any] | None, grade: Any, shown: Shown) -> str:
    head = f"<h3>Expected result <code>{esc(cell)}</code>: " if cell else "<h3>Expected results: "
    if failure is None:
        parts = [head + '<span class="ok">matches</span></h3>']
    else:
        parts = [head + '<span class="bad">differs</span></h3>', f"<p>{esc(failure['message'])}</p>",
                 _follows(failure)]
        if failure.get("diff"):
            parts += ["<p>Lines marked <code>-</code> are in the instructor's result, lines marked "
                      "<code>+</code> in yours.</p>", _diff(failure["diff"])]
    figures = getattr(grade, "figures", {}) or {}
    if cell:
        parts.append(_figures(cell, tuple(figures.get(cell, ())), tuple(shown.figures.get(cell, ()))))
    return "\n".join(p for p in parts if p)


def _task(task: int, grade: Any, marking: Any, shown: Shown, fix: Any = None) -> str:
    points = grade.points.get(task, 0)
    mark = "ok" if points == marking.per_task else "bad"
    parts = [f'<section id="task-{task}"><h2>Task {task}: <span class="{mark}">{points} of {marking.per_task}'
             "</span> points</h2>"]
    if fix is not None:
        parts.append(f"<p><strong>Set by your instructor</strong>: {esc(fix.reason)}</p>")
    hidden = [f for f in grade.failures if f["task"] == task and f["kind"] == "hidden"]
    if hidden:
        parts += ['<p><strong>Hidden check: <span class="bad">failed</span></strong>. It calls your functions on '
                  "new inputs and tests what a correct function does.</p>"]
        parts += [f"<p>{esc(f['message'])}</p>{_follows(f)}" for f in hidden]
    elif grade.status not in ("invalid-notebook", "sandbox-error", "grader-error"):
        parts.append('<p><strong>Hidden check: <span class="ok">passed</span></strong>.</p>')
    failed = {f["cell"]: f for f in grade.failures if f["task"] == task and f["kind"] == "expected"}
    cells = shown.cells_of(task)
    for cell in [*cells, *(c for c in failed if c not in cells)]:
        parts.append(_expected_cell(cell, failed.get(cell), grade, shown))
    return "\n".join(parts) + "</section>"


def feedback_html(grade: Any, marking: Any, shown: Shown, *, fixes: Mapping[int, Any] | None = None) -> str:
    """The feedback page of one grade.

    :param grade: The grade (its failures, errors and figures), with any points set by hand.
    :param marking: The lesson's marking.
    :param shown: The reference run's expected-result cells and figures.
    :param fixes: The points set by hand, by task (:class:`.overrides.Override`): each is marked,
        with its reason.
    """
    fixes = fixes or {}
    rows = "".join(f'<tr><td><a href="#task-{t}">Task {t}</a></td><td class="n">{grade.points.get(t, 0)} of '
                   f"{marking.per_task}{' (set by your instructor)' if t in fixes else ''}</td></tr>"
                   for t in marking.tasks)
    body = [f"<h1>Feedback: {esc(grade.submission)}</h1>",
            f"<p>Status: <strong>{esc(grade.status)}</strong> ({esc(STATUSES.get(grade.status, ''))})"
            + (f". {esc(grade.note)}" if grade.note else "") + "</p>",
            f"<p>Points: <strong>{grade.total} of {marking.max}</strong></p>",
            f"<table><tr><th>task</th><th>points</th></tr>{rows}</table>",
            *(_task(t, grade, marking, shown, fixes.get(t)) for t in marking.tasks)]
    if grade.errors:
        body.append("<h2>Your cells that raised an error</h2>")
        body += [f"<p>Cell {esc(e['cell'])} of the grading copy:</p><pre>{esc(e['error'])}</pre>" for e in grade.errors]
    return page(f"Feedback: {grade.submission}", "\n".join(body))
