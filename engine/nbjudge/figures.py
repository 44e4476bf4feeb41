"""The PNG figures of expected-result cells: kept by the worker, checked here, shown in the feedback.

The worker keeps, for each expected-result cell, the ``image/png`` outputs it displayed, within
the bounds below (larger figures are left out and counted). The grader keeps only well-formed PNG
data (base64 of a PNG signature), so a figure can go into an HTML page as a ``data:`` URI and
nothing else. A submission's figures travel in its grade (``results.jsonl``); the reference run's
are one ``{"shown": ...}`` line of the same file (:func:`shown_line`, :func:`read_shown`), so a
rebuild, a resume and a merge find them where the grades are.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CELL_FIGURES", "FIGURE_CHARS", "JOB_FIGURE_CHARS", "Shown", "figures_of", "png_base64", "read_shown",
           "shown_line"]

FIGURE_CHARS = 1_000_000  # base64 characters of one figure (about 730 KB of PNG)
CELL_FIGURES = 6  # figures kept per cell
JOB_FIGURE_CHARS = 3_000_000  # base64 characters of every figure of one job together
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_PNG = b"\x89PNG\r\n\x1a\n"


def png_base64(data: object) -> str | None:
    """``data`` as a kept figure: base64 text of a PNG within :data:`FIGURE_CHARS`, else ``None``.

    :param data: What a display message's ``image/png`` held (whitespace is dropped).
    """
    if not isinstance(data, str):
        return None
    text = "".join(data[: FIGURE_CHARS + FIGURE_CHARS // 50].split())
    if not text or len(text) > FIGURE_CHARS or len(text) % 4 or not _BASE64.fullmatch(text):
        return None
    try:
        head = base64.b64decode(text[:24], validate=True)
    except (binascii.Error, ValueError):
        return None
    return text if head.startswith(_PNG) else None


def _kept(figures: object) -> tuple[str, ...]:
    """The well-formed figures of a cell's record, at most :data:`CELL_FIGURES`."""
    if not isinstance(figures, list):
        return ()
    return tuple(f for f in map(png_base64, figures[:CELL_FIGURES]) if f)


def figures_of(events: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, ...]]:
    """The figures of a run's expected-result cells, by cell name (cells without figures left out).

    :param events: A worker's records (:attr:`.run.RunResult.events`).
    """
    events = list(events)
    copy = next((e.get("cells") or [] for e in events if e.get("event") == "copy"), [])
    records = {e["index"]: e for e in events if e.get("event") == "cell" and isinstance(e.get("index"), int)}
    found: dict[str, tuple[str, ...]] = {}
    left = JOB_FIGURE_CHARS
    for index, cell in enumerate(copy):
        if not (isinstance(cell, dict) and cell.get("expected")) or index not in records:
            continue
        kept = []
        for figure in _kept(records[index].get("figures")):
            if len(figure) <= left:
                kept.append(figure)
                left -= len(figure)
        if kept:
            found[str(cell.get("name"))] = tuple(kept)
    return found


@dataclass(frozen=True)
class Shown:
    """What the reference run showed: the task of each expected-result cell, in the notebook's order,
    and the instructor's figures of each."""

    tasks: Mapping[str, int] = field(default_factory=dict)
    figures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def cells_of(self, task: int) -> list[str]:
        """The expected-result cells of one task, in order."""
        return [name for name, t in self.tasks.items() if t == task]


def shown_line(tasks: Mapping[str, int], figures: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """The results-file line of the reference run's cells and figures."""
    return {"shown": {"tasks": dict(tasks), "figures": {k: list(v) for k, v in figures.items()}}}


def read_shown(results: Path) -> Shown:
    """The last reference line of a results file (an empty :class:`Shown` when there is none).

    Only lines that start as :func:`shown_line` writes them are parsed, so a class's grades are
    not read twice.
    """
    found = None
    try:
        with open(results, "rb") as handle:
            for line in handle:
                if line.startswith(b'{"shown":') and line.endswith(b"\n"):
                    found = line
    except OSError:
        return Shown()
    try:
        raw = json.loads(found)["shown"] if found else {}
        tasks = {str(k): int(v) for k, v in raw.get("tasks", {}).items()}
        return Shown(tasks, {str(k): _kept(v) for k, v in raw.get("figures", {}).items()})
    except (ValueError, TypeError, AttributeError):
        return Shown()
