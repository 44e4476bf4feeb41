"""Run the hidden-check probes in this process, on a namespace of functions (no kernel, no sandbox).

The grader runs the same probe cells in a sandboxed kernel; running them here lets the tests check
the verdicts on many implementations and seeds in seconds.
"""

from __future__ import annotations

import contextlib
import io
from unittest import mock

from bmnist_helpers.grading.checks import VALUES_MIME, decode_values, judge, probes


def probe_values(namespace: dict, seed: int) -> dict[int, object]:
    """The decoded values each task's probe sends back when run in ``namespace``."""
    sent: dict[int, object] = {}
    for probe in probes(seed):
        def display(obj, raw=False, task=probe.task):
            sent[task] = obj[VALUES_MIME]

        with mock.patch("IPython.display.display", display), contextlib.redirect_stdout(io.StringIO()):
            exec(compile(probe.source, f"probe-{probe.task}", "exec"), namespace)
    return {task: decode_values(value) for task, value in sent.items()}


def verdicts(namespace: dict, reference: dict, seed: int) -> dict[int, str | None]:
    """``judge`` of every task for ``namespace`` against the reference namespace's values."""
    got, ref = probe_values(namespace, seed), probe_values(reference, seed)
    inputs = {p.task: p.inputs for p in probes(seed)}
    return {task: judge(task, inputs[task], got.get(task), ref[task]) for task in inputs}
