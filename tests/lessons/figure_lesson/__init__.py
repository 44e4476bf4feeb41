"""The toy lesson with a figure: task 2 has a second expected-result cell that shows a PNG
(``tests/lessons/make_figures.py``), for the tests of the HTML feedback. Tasks, checks and probes
are the toy lesson's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from toy_lesson import LESSON as TOY

__all__ = ["LESSON"]

LESSON = dataclasses.replace(TOY, name="toy-figures", solution=Path(__file__).resolve().parent / "solution.ipynb")
