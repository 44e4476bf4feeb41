"""The hidden checks, in process: every correct style passes, every typical mistake fails.

The grader runs the same probe cells in a sandboxed kernel (tests/test_grading.py grades whole
notebooks); here they run on namespaces of functions, so that many implementations and seeds
take seconds, not a grading run each. Each part of a check is called directly: what is drawn
(:mod:`bmnist_lesson.draws`), what runs in the kernel (``.probes``), the verdict
(``.verdicts``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jax
import numpy as np
import pytest
from bmnist_lesson import LESSON, draws, verdicts
from bmnist_lesson.kernel import probes
from nbjudge.lessons import CheckFailed
from nbjudge.values import MalformedValues, decode_values

from tests.fixtures.alternatives import (
    ALTERNATIVES,
    EARLY_BINDING,
    FORWARD,
    FORWARD_LOSS,
    WRONG,
    WRONG_SHAPE_MLP,
)
from tests.probe_harness import inputs, probe_cell, probe_values, solution_globals, verdict

pytestmark = pytest.mark.notebook

SEEDS = (7, 2024, 31337)


@pytest.fixture(scope="module")
def reference() -> dict[int, dict]:
    """The solution's probe values for each seed."""
    return {seed: probe_values(solution_globals(), seed) for seed in SEEDS}


def _namespace_with(*sources: str) -> dict:
    """A fresh solution namespace with answer cells replaced by ``sources``, run in order."""
    namespace = solution_globals()
    for source in sources:
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
    """Tasks 3 and 4 are judged on the student's own earlier functions, so a broken mlp does not fail them."""
    namespace = _namespace_with(WRONG[2]["sigmoid-applied-twice"])
    seed = SEEDS[0]
    assert verdict(2, namespace, reference[seed], seed)
    assert verdict(3, namespace, reference[seed], seed) is None
    assert verdict(4, namespace, reference[seed], seed) is None


@pytest.mark.parametrize("task, form", [(t, f) for t, forms in EARLY_BINDING.items() for f in forms])
def test_every_early_binding_form_passes_under_several_seeds(reference, task, form):
    """A correct answer that bound the earlier task's function when its cell ran is judged on that
    function, the student's own, not on a stand-in it never calls."""
    namespace = _namespace_with(EARLY_BINDING[task][form])
    for seed in SEEDS:
        assert verdict(task, namespace, reference[seed], seed) is None, (task, form, seed)


_WRONG_BEFORE = {3: WRONG[2]["sigmoid-applied-twice"], 4: WRONG[3]["l2-without-half"]}


@pytest.mark.parametrize("task, form", [(t, f) for t, forms in EARLY_BINDING.items() for f in forms])
def test_an_early_bound_answer_keeps_its_points_after_a_wrong_earlier_task(reference, task, form):
    namespace = _namespace_with(_WRONG_BEFORE[task], EARLY_BINDING[task][form])
    seed = SEEDS[1]
    assert verdict(task - 1, namespace, reference[seed], seed)  # the earlier task is wrong ...
    assert verdict(task, namespace, reference[seed], seed) is None, (task, form)  # ... and costs nothing here


_STUB = 'def {name}(*args, **kwargs):\n    raise NotImplementedError("TODO: task {task}")\n'


@pytest.mark.parametrize("task, style", [(t, s) for t in (3, 4) for s in ALTERNATIVES[t]])
def test_a_missing_earlier_task_is_replaced_by_a_stand_in(reference, task, style):
    stubs = [_STUB.format(name=name, task=t) for t, names in ((2, ("mlp",)), (3, ("loss_fn",))) if t < task
             for name in names]
    namespace = _namespace_with(*stubs, ALTERNATIVES[task][style])
    seed = SEEDS[2]
    got = probe_values(namespace, seed, tasks=(task,))[task]
    assert (got["standin"] if task == 3 else got["standin"]["mlp"] + got["standin"]["loss"]) >= 1
    assert verdict(task, namespace, reference[seed], seed) is None, (task, style)


def test_a_stand_in_reaches_a_wrong_mlp_through_the_notebooks_jitted_forward(reference):
    """Issue 26: logits of shape (batch, 1) cannot serve, so a stand-in takes mlp's place; the
    correct loss_fn that calls forward = jax.jit(mlp) reaches it too, and keeps its points."""
    namespace = _namespace_with(WRONG_SHAPE_MLP, FORWARD, FORWARD_LOSS)
    seed = SEEDS[0]
    assert verdict(2, namespace, reference[seed], seed)
    assert probe_values(namespace, seed, tasks=(3,))[3]["standin"] == 1
    assert verdict(3, namespace, reference[seed], seed) is None
    assert verdict(4, namespace, reference[seed], seed) is None
    x = np.ones((3, 784), np.float32)
    assert namespace["forward"](namespace["init_mlp_params"]((784, 4, 1), stddev=0.1, key=jax.random.key(0)),
                                x).shape == (3, 1)  # the student's own function again, after the checks


@pytest.mark.parametrize("task, form", [(t, f) for t, forms in EARLY_BINDING.items() for f in forms])
def test_a_stand_in_reaches_every_early_binding_form(reference, task, form):
    """Where the earlier function cannot serve (an mlp of the wrong shape, a loss_fn still the
    stub), its stand-in reaches an answer that bound it when its cell ran, in every form."""
    before = WRONG_SHAPE_MLP if task == 3 else _STUB.format(name="loss_fn", task=3)
    namespace = _namespace_with(before, EARLY_BINDING[task][form])
    seed = SEEDS[1]
    got = probe_values(namespace, seed, tasks=(task,))[task]
    assert (got["standin"] if task == 3 else got["standin"]["loss"]) == 1
    assert verdict(task, namespace, reference[seed], seed) is None, (task, form)


_CONSTANT_MODEL = """\
def mlp(params, inputs, *, nonlinearity=jax.nn.relu):
    return jnp.zeros(len(inputs))
"""

_SELF_CONSISTENT = {
    # the cross-entropy of logits 0 is log 2, whatever the data: consistent with the constant model above
    3: _CONSTANT_MODEL + """
def loss_fn(params, inputs, targets, *, l2_reg):
    return jnp.log(2.0) + 0.5 * l2_reg * sum(jnp.sum(w**2) + jnp.sum(b**2) for w, b in params)
""",
    # an objective without gradient, and an update that leaves the parameters where they are
    4: """\
def loss_fn(params, inputs, targets, *, l2_reg):
    return jnp.float32(0.0) * sum(jnp.sum(w) for w, _ in params)


def make_update_step(optimizer, *, weight_decay):
    def update(params, opt_state, inputs, targets):
        return params, opt_state, loss_fn(params, inputs, targets, l2_reg=weight_decay)

    return update
""",
}


@pytest.mark.parametrize("task", sorted(_SELF_CONSISTENT))
def test_a_trivial_answer_does_not_pass_by_agreeing_with_its_own_trivial_helper(reference, task):
    """Each check is anchored on values the grader computes: a degenerate earlier function is
    replaced by a stand-in whose values the grader computes itself."""
    namespace = _namespace_with(_SELF_CONSISTENT[task])
    for seed in SEEDS[:2]:
        assert verdict(task, namespace, reference[seed], seed), (task, seed)


def test_probes_hold_no_solution_code():
    from bmnist_lesson.exercise import load_solution, solution_regions

    answers = [line.strip() for c in load_solution().cells for region in solution_regions(c.source)
               for line in region.splitlines() if len(line.strip()) > 25]
    assert answers
    kernel_side = [probe_cell(task, 1) for task in range(1, 6)] + [Path(probes.__file__).read_text()]
    for text in kernel_side:
        assert not [line for line in answers if line in text]


def test_inputs_differ_per_seed_and_repeat_per_seed():
    a, b, again = ([probe_cell(t, seed) for t in range(1, 6)] for seed in (1, 2, 1))
    assert a == again
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_the_lesson_declares_one_check_per_task_in_three_parts():
    assert sorted(c.task for c in LESSON.checks) == sorted(LESSON.tasks) == [1, 2, 3, 4, 5]
    for check in LESSON.checks:
        module, _, name = check.probe.partition(":")
        assert module == probes.__name__ and callable(getattr(probes, name))
        verdict_module, _, verdict = check.judge.partition(":")
        assert check.draw.__module__ == draws.__name__ and verdict_module == verdicts.__name__
        assert callable(getattr(verdicts, verdict))


def test_drawn_inputs_follow_the_lessons_shapes():
    rng = np.random.default_rng(3)
    batch = draws.dataloader(rng)
    assert batch["images"].shape[1:] == (28, 28) and len(batch["labels"]) == len(batch["images"])
    assert len(batch["images"]) % batch["batch_size"] != 0  # a short last batch, always
    assert np.array_equal(batch["images"][:, 0, 0], np.arange(len(batch["images"])))
    model = draws.model(rng)
    assert [w.shape[0] for w, _ in model["params"]][0] == 28 * 28 and model["init_sizes"] == list(draws.LESSON_SIZES)


def test_the_kernel_part_calls_the_students_function_and_reports_what_it_raised():
    namespace = solution_globals()
    values = probes.examples(inputs(5, 7), namespace)
    assert set(values["rows"]) == {"posmax", "posmin", "negmax", "negmin"}
    del namespace["retrieve_interesting_samples"]
    assert "is not defined" in probes.examples(inputs(5, 7), namespace)["rows"].message


def test_a_verdict_names_what_failed_and_passes_the_reference():
    seed, task = 7, 3
    reference = probe_values(solution_globals(), seed, tasks=(task,))[task]
    verdicts.objective(inputs(task, seed), reference, reference)  # the reference passes its own check
    broken = {**reference, "penalised": reference["penalised"] * 1.5}
    with pytest.raises(CheckFailed, match="the penalty term"):
        verdicts.objective(inputs(task, seed), broken, reference)


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
