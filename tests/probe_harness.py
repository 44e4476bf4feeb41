"""Run the hidden-check probes in this process, on a namespace of functions (no kernel, no sandbox).

The grader runs the same probe cells in a sandboxed kernel; running them here lets the tests check
the verdicts on many implementations and seeds in seconds.
"""

from __future__ import annotations

import contextlib
import io
from unittest import mock

import jupytext
import matplotlib.pyplot as plt

from bmnist_helpers.exercise import SOLUTION_PY
from bmnist_helpers.grading.checks import VALUES_MIME, decode_values, judge, probes
from tests.solution_ns import definition_cells


def solution_globals() -> dict:
    """A fresh dict holding the solution's definitions, which is also their ``globals()``,
    as in a kernel: swapping ``mlp`` in it reaches every function that calls ``mlp``."""
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for source in definition_cells(jupytext.read(SOLUTION_PY)):
            exec(compile(source, str(SOLUTION_PY), "exec"), namespace)
    plt.close("all")
    return namespace


def probe_values(namespace: dict, seed: int, tasks=(1, 2, 3, 4, 5)) -> dict[int, object]:
    """The decoded values each task's probe sends back when run in ``namespace``."""
    sent: dict[int, object] = {}
    for probe in (p for p in probes(seed) if p.task in tasks):
        def display(obj, raw=False, task=probe.task):
            sent[task] = obj[VALUES_MIME]

        with mock.patch("IPython.display.display", display), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(probe.source, f"probe-{probe.task}", "exec"), namespace)
    return {task: decode_values(value) for task, value in sent.items()}


def verdict(task: int, namespace: dict, reference_values: dict[int, object], seed: int) -> str | None:
    """``judge`` of one task for the functions in ``namespace``."""
    got = probe_values(namespace, seed, tasks=(task,))
    inputs = next(p.inputs for p in probes(seed) if p.task == task)
    return judge(task, inputs, got.get(task), reference_values[task])
