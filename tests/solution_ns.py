"""Run the definition cells of a lesson notebook (no expected-result cells) into a namespace."""

from __future__ import annotations

import contextlib
import io
import types

import jupytext
import matplotlib.pyplot as plt
from bmnist_lesson.exercise import SOLUTION_PY, cell_tags

DEFINITION_TAGS = {"setup", "parameters", "keys", "data", "helpers"}


def definition_cells(nb) -> list[str]:
    """Sources of the cells that define things: setup, parameters, keys, data, helpers and task answers."""
    sources = []
    for cell in nb.cells:
        tags = set(cell_tags(cell))
        if cell.cell_type != "code" or tags & {"expected-result", "solution-only", "explore"}:
            continue
        if tags & DEFINITION_TAGS or any(t.startswith("task-") for t in tags):
            sources.append(cell.source)
    return sources


def solution_namespace(path=SOLUTION_PY) -> types.SimpleNamespace:
    """Execute the definition cells of ``path`` and return their globals."""
    namespace: dict = {"__name__": "bmnist_solution"}
    with contextlib.redirect_stdout(io.StringIO()):  # the data cell prints shapes
        for source in definition_cells(jupytext.read(path)):
            exec(compile(source, str(path), "exec"), namespace)
    plt.close("all")
    return types.SimpleNamespace(**namespace)
