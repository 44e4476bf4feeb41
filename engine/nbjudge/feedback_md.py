"""The per-student Markdown feedback (``feedback/NAME.md``): status, points, and what each failed
check found, rendered from a :class:`.grades.Grade`; student text in it is escaped (:func:`md`)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .feedback_html import follows_text
from .grades import Grade, Marking
from .overrides import Override

__all__ = ["feedback_markdown", "fenced", "md"]

_MD_ALWAYS = re.compile(r"([\\`*|~])")  # markup wherever it stands
_MD_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")  # emphasis; not inside a word (loss_fn)
_MD_LINK = re.compile(r"\]([(\[:])")  # a link or reference needs ']' right before '(', '[' or ':'
_MD_HTML = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")  # a tag, a comment or an entity; '< 5' or 'a & b' stay


def md(text: object) -> str:
    """Student-controlled text for the middle of a Markdown line: one line, no markup, no HTML,
    escaped only where a character would act, so that the raw file reads well too."""
    escaped = _MD_ALWAYS.sub(r"\\\1", " ".join(str(text).split()))
    escaped = _MD_UNDERSCORE.sub(r"\\_", _MD_LINK.sub(r"]\\\1", escaped))
    return _MD_HTML.sub(lambda m: {"<": "&lt;", "&": "&amp;"}[m.group(0)], escaped)


def fenced(text: str) -> list[str]:
    """A code block whose fence is longer than any run of backticks in the text."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [fence + "text", text.rstrip(), fence]


def feedback_markdown(grade: Grade, marking: Marking, fixes: Mapping[int, Override] | None = None) -> str:
    """One submission's feedback file.

    :param grade: The grade, with any points set by hand (:func:`.report.with_overrides`).
    :param marking: The lesson's marking.
    :param fixes: The points set by hand, by task, with the instructor's reasons.
    :returns: Markdown text, ending in one newline.
    """
    fixes = fixes or {}
    by_hand = dict.fromkeys(fixes, " (set by your instructor)")
    lines = [f"# Feedback: {md(grade.submission)}", "",
             f"Status: **{grade.status}**" + (f" ({md(grade.note)})" if grade.note else ""), "",
             f"Points: {grade.total} of {marking.max}", "", "| task | points |", "|---|---|"]
    lines += [f"| {t} | {grade.points.get(t, 0)} of {marking.per_task}{by_hand.get(t, '')} |" for t in marking.tasks]
    if fixes:
        lines += ["", "## Points set by your instructor", ""]
        lines += [f"- Task {t}: {o.points} of {marking.per_task}: {md(o.reason)}" for t, o in sorted(fixes.items())]
    hidden = [f for f in grade.failures if f["kind"] == "hidden"]
    if hidden:
        lines += ["", "## Hidden checks that failed", "",
                  "Each check calls your functions on new inputs and tests what a correct function does.", ""]
        lines += [f"- Task {f['task']}: {md(f['message'])}" for f in hidden]
    visible = [f for f in grade.failures if f["kind"] == "expected"]
    if visible:
        lines += ["", "## Expected results that differ", "",
                  "Lines marked `-` are in the expected result, lines marked `+` in yours.", ""]
        for f in visible:
            lines += [f"### Task {f['task']}" + (f": `{f['cell']}`" if f["cell"] else ""), "", md(f["message"]), ""]
            if f.get("follows"):
                lines += [f"This {follows_text(f.get('follows', []))}.", ""]
            if f.get("diff"):
                lines += [*fenced(f.get("diff", "")), ""]
    if grade.ignored:
        lines += ["", "## Output of your own that was not compared", "",
                  "Only each expected-result cell's own lines are compared. What your functions printed while "
                  "it ran was ignored and costs nothing:", ""]
        lines += [f"- Task {i['task']}, `{i['cell']}`: {i['lines']} line(s)" for i in grade.ignored]
    if grade.errors:
        lines += ["", "## Your cells that raised an error", ""]
        for e in grade.errors:
            lines += [f"Cell {e['cell']} of the grading copy:", "", *fenced(e["error"]), ""]
    return "\n".join(lines).rstrip() + "\n"
