"""The hidden checks' verdicts, in process: every correct style passes, every typical mistake fails.

The grader runs the same probe cells in a sandboxed kernel (tests/test_grading.py grades whole
notebooks); here they run on namespaces of functions, so that many implementations and seeds
take seconds, not a grading run each.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from bmnist_helpers.grading.checks import MalformedValues, decode_values, probes
from tests.fixtures.alternatives import ALTERNATIVES, WRONG
from tests.probe_harness import probe_values, solution_globals, verdict

SEEDS = (7, 2024, 31337)


@pytest.fixture(scope="module")
def reference() -> dict[int, dict]:
    """The solution's probe values for each seed."""
    return {seed: probe_values(solution_globals(), seed) for seed in SEEDS}


def _namespace_with(source: str) -> dict:
    """A fresh solution namespace with one answer cell replaced by ``source``."""
    namespace = solution_globals()
    exec(compile(source, "student", "exec"), namespace)
    return namespace


def _numbers(values) -> set[str]:
    """Every number in the reference values, as it would be printed with 3 or more digits."""
    if isinstance(values, dict):
        return set().union(*(_numbers(v) for v in values.values())) if values else set()
    if isinstance(values, list):
        return set().union(*(_numbers(v) for v in values)) if values else set()
    flat = np.asarray(values, np.float64).reshape(-1)[:50]
    return {f"{v:.3g}" for v in flat if abs(v) >= 0.01 and len(f"{v:.3g}".strip("-0.")) >= 2}


@pytest.mark.parametrize("task, style", [(t, s) for t, styles in ALTERNATIVES.items() for s in styles])
def test_every_correct_style_passes_under_several_seeds(reference, task, style):
    namespace = _namespace_with(ALTERNATIVES[task][style])
    for seed in SEEDS:
        assert verdict(task, namespace, reference[seed], seed) is None, (task, style, seed)


@pytest.mark.parametrize("task, mistake", [(t, m) for t, mistakes in WRONG.items() for m in mistakes])
def test_every_typical_mistake_fails_and_the_message_leaks_nothing(reference, task, mistake):
    namespace = _namespace_with(WRONG[task][mistake])
    for seed in SEEDS[:2]:
        message = verdict(task, namespace, reference[seed], seed)
        assert message, (task, mistake, seed)
        if task != 1:  # task 1's values are positions, as small as the batch sizes a message names
            numbers = _numbers(reference[seed][task])
            leaked = {n for n in numbers if re.search(rf"(?<![\d.]){re.escape(n)}(?![\d])", message)}
            assert not leaked, (message, leaked)


def test_one_wrong_task_costs_only_that_task(reference):
    """Tasks 3 and 4 run on stand-ins, so a broken mlp does not fail them."""
    namespace = _namespace_with(WRONG[2]["sigmoid-applied-twice"])
    seed = SEEDS[0]
    assert verdict(2, namespace, reference[seed], seed)
    assert verdict(3, namespace, reference[seed], seed) is None
    assert verdict(4, namespace, reference[seed], seed) is None


def test_probe_cells_hold_no_solution_code():
    from bmnist_helpers.exercise import load_solution, solution_regions

    answers = [line.strip() for c in load_solution().cells for region in solution_regions(c.source)
               for line in region.splitlines() if len(line.strip()) > 25]
    for probe in probes(1):
        assert not [line for line in answers if line in probe.source]


def test_inputs_differ_per_seed_and_repeat_per_seed():
    a, b, again = probes(1), probes(2), probes(1)
    assert [p.source for p in a] == [p.source for p in again]
    assert all(pa.source != pb.source for pa, pb in zip(a, b, strict=True))


def _nested(depth: int) -> dict:
    raw: dict = {"l": []}
    for _ in range(depth):
        raw = {"l": [raw]}
    return raw


@pytest.mark.parametrize("raw", [
    [], {"x": 1}, {"t": "|O", "s": [1], "b": ""}, {"t": "<f4", "s": [10**9], "b": ""},
    {"t": "<f4", "s": [2], "b": "not base64!"}, _nested(20),
])
def test_malformed_values_are_refused(raw):
    with pytest.raises(MalformedValues):
        decode_values(json.loads(json.dumps(raw)))
