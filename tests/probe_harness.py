"""Run the hidden checks in this process, on a namespace of functions (no kernel, no sandbox).

The grader runs the same probe cells in a sandboxed kernel; running them here lets the tests check
each part of a check (what is drawn, what runs in the kernel, the verdict) on many implementations
and seeds in seconds.
"""

from __future__ import annotations

import contextlib
import io
from unittest import mock

import jupytext
import matplotlib.pyplot as plt
import numpy as np
from bmnist_lesson import LESSON
from bmnist_lesson.exercise import SOLUTION_PY
from nbjudge.lessons import judge
from nbjudge.plan import probe_source
from nbjudge.values import VALUES_MIME, decode_values

from tests.solution_ns import definition_cells

CHECKS = {check.task: check for check in LESSON.checks}


def solution_globals() -> dict:
    """A fresh dict holding the solution's definitions, which is also their ``globals()``,
    as in a kernel: swapping ``mlp`` in it reaches every function that calls ``mlp``."""
    namespace: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()):
        for source in definition_cells(jupytext.read(SOLUTION_PY)):
            exec(compile(source, str(SOLUTION_PY), "exec"), namespace)
    plt.close("all")
    return namespace


def inputs(task: int, seed: int) -> dict:
    """What the grader draws for ``task`` in a run with ``seed``."""
    return CHECKS[task].draw(np.random.default_rng([seed, task]))


def probe_cell(task: int, seed: int) -> str:
    """The probe cell a grading copy runs for ``task``."""
    return probe_source(task, CHECKS[task].probe, inputs(task, seed))


def probe_values(namespace: dict, seed: int, tasks=(1, 2, 3, 4, 5)) -> dict[int, object]:
    """The decoded values each task's probe cell sends back when run in ``namespace``."""
    sent: dict[int, object] = {}
    for task in tasks:
        def display(obj, raw=False, task=task):
            sent[task] = obj[VALUES_MIME]

        with mock.patch("IPython.display.display", display), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(probe_cell(task, seed), f"probe-{task}", "exec"), namespace)
    return {task: decode_values(value) for task, value in sent.items()}


def verdict(task: int, namespace: dict, reference_values: dict[int, object], seed: int) -> str | None:
    """The verdict on ``task`` for the functions in ``namespace``."""
    got = probe_values(namespace, seed, tasks=(task,))
    return judge(CHECKS[task], inputs(task, seed), got.get(task), reference_values[task])
