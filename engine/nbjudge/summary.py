"""The plain-text summary table the grader prints at the end of a run."""

from __future__ import annotations

from .grades import Grade, Marking

__all__ = ["summary_table"]


def summary_table(grades: list[Grade], marking: Marking) -> str:
    """A plain-text table: one row per submission (its points by task, total and status)."""
    head = ["submission", *[f"t{t}" for t in marking.tasks], "total", "status"]
    rows = [[g.submission, *[str(g.points.get(t, 0)) for t in marking.tasks], f"{g.total}/{marking.max}", g.status]
            for g in grades]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])
