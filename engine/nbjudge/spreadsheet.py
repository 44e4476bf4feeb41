"""CSV text that a spreadsheet opens as data: every file of grades the engine writes goes through here."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

__all__ = ["csv_cell", "csv_text"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> str:
    """``value`` as a CSV cell, spreadsheet formulas defused: text that starts like one (``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return) gets a leading apostrophe, so that it shows as text."""
    text = str(value)
    return "'" + text if text[:1] in _FORMULA_STARTS else text


def csv_text(rows: Iterable[Iterable[object]]) -> str:
    """The rows as CSV (``\\n`` line ends), each cell through :func:`csv_cell`."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([[csv_cell(v) for v in row] for row in rows])
    return out.getvalue()
