"""Building the grading copy from real-world notebooks (no kernel): every answer lands where the
lesson needs it, every instructor cell runs exactly once, added cells stay at their place."""

from __future__ import annotations

import json

import nbformat
import pytest
from bmnist_lesson import LESSON, TASK_FUNCTIONS
from bmnist_lesson.exercise import SOLUTION_IPYNB, cell_tags
from nbjudge.cells import defines, edit_of, read_cell
from nbjudge.notebook import InvalidNotebook, build_grading_copy, checked_source, read_submission, stubbed_tasks
from nbjudge.plan import build_plan
from nbjudge.similarity import answer_code

from tests.fixtures import make_submissions

FIXTURES = make_submissions.fixtures()
SOLUTION = nbformat.read(SOLUTION_IPYNB, as_version=4)
PLAN = build_plan(LESSON, seed=1, params={})


def _grading_copy(cells):
    return build_grading_copy(cells, list(PLAN.cells), list(PLAN.probes), functions=LESSON.function_tasks(),
                              instructor=set(PLAN.instructor))
GIVEN = [c.get("id") for c in SOLUTION.cells if c.cell_type == "code"
         and not {"solution-only", "explore"} & set(cell_tags(c))
         and not (any(t.startswith("task-") for t in cell_tags(c)) and "expected-result" not in cell_tags(c))]


def _copy(name: str):
    nb = FIXTURES[name][0]
    text = nb if isinstance(nb, str) else nbformat.writes(nb)
    return _grading_copy(read_submission(text.encode()))


@pytest.mark.parametrize("name", [n for n in FIXTURES if n.startswith(("style-", "alt-")) or n == "full-marks"])
def test_answers_land_before_their_expected_results(name):
    copy = _copy(name)
    assert [c.name for c in copy if c.role == "given"] == GIVEN  # each instructor cell once, in order
    for task, functions in TASK_FUNCTIONS.items():
        first_expected = next(i for i, c in enumerate(copy) if c.expected and c.task == task)
        defined = " ".join(c.source for c in copy[:first_expected] if c.role == "student")
        assert all(f"def {f}(" in defined or f"{f} =" in defined for f in functions), (task, name)


def test_a_cell_added_above_the_first_stays_on_top():
    copy = _copy("style-edited-cells")
    assert copy[0].role == "student" and "import math" in copy[0].source


def test_student_ids_and_tags_never_reach_the_graders_bookkeeping():
    copy = _copy("attack-forged-messages")
    assert [c.role for c in copy[-5:]] == ["probe"] * 5
    assert sum(c.source == "x_student = 1" for c in copy) == 4


def test_edited_instructor_cells_are_replaced_by_the_instructors():
    nb = nbformat.read(make_submissions.EXERCISE_IPYNB, as_version=4)
    params = next(c for c in nb.cells if "parameters" in cell_tags(c))
    params.source = params.source.replace("NUM_STEPS = 1000", "NUM_STEPS = 1")
    copy = _grading_copy(read_submission(nbformat.writes(nb).encode()))
    assert not any("NUM_STEPS = 1\n" in c.source + "\n" for c in copy)


@pytest.mark.parametrize("data, message", [
    (b"\xff\xfe not utf-8", "not UTF-8"),
    (b'{"cells": [', "not valid JSON"),
    (b"[1, 2]", "not a Jupyter notebook"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
        {"cell_type": "code", "source": 5, "metadata": {}, "outputs": []}]}).encode(), "neither text"),
    (json.dumps({"nbformat": 5, "cells": []}).encode(), "newer"),
])
def test_unreadable_notebooks_get_a_clear_message(data, message):
    with pytest.raises(InvalidNotebook, match=message):
        read_submission(data)


def test_nbformat_3_is_converted():
    source = "def mlp(params, inputs):\n    return 1"
    v3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {"name": "old"}, "worksheets": [{"cells": [
        {"cell_type": "code", "input": source, "language": "python", "outputs": []}]}]}
    assert [(s, tags) for s, _, tags in read_submission(json.dumps(v3).encode())] == [(source, [])]


def test_an_expected_result_cell_runs_with_its_own_prints_marked():
    """Only the ``print`` names change; the end mark goes before a last bare expression (issue 26)."""
    call = "__import__('m', fromlist=['show'])"
    source = ('x = "ü"  # print(x) in a comment stays\nprint(x, end=""); print(len(x))\n'
              "for i in range(2):\n    print(i)\n")
    assert checked_source(source, runner="m") == (
        f"{call}.mark('begin')\n"
        'x = "ü"  # print(x) in a comment stays\n'
        f'{call}.show(x, end=""); {call}.show(len(x))\nfor i in range(2):\n    {call}.show(i)\n'
        f"\n{call}.mark('end')\n")
    assert checked_source("a = 1; a", runner="m") == f"{call}.mark('begin')\na = 1; {call}.mark('end'); a\n"
    assert checked_source("%time x = 1", runner="m") == "%time x = 1"  # not Python: run as it is


_STUB = 'def make_update_step(optimizer, *, weight_decay):\n    """Doc."""\n    raise NotImplementedError("TODO")\n'
_ANSWER = "def make_update_step(optimizer, *, weight_decay):\n    return optimizer\n"


@pytest.mark.parametrize("source, bound, stubs", [
    (_ANSWER, {"make_update_step"}, set()),
    (_STUB, {"make_update_step"}, {"make_update_step"}),
    ("%%time\n" + _ANSWER, {"make_update_step"}, set()),  # the body runs in the notebook's namespace
    ("\n%%capture out\n%%time\n" + _STUB, {"make_update_step"}, {"make_update_step"}),  # nested, blank line first
    ("%%prun -s cumulative\n" + _ANSWER, {"make_update_step"}, set()),
    ("%%timeit\n" + _ANSWER, set(), set()),  # its body runs inside a function of its own: defines nothing
    ("%%bash\n" + _ANSWER, set(), set()),
    ("%%time?\n" + _ANSWER, {"make_update_step"}, set()),  # help on the magic, then the code, as IPython runs it
    ("%matplotlib inline\n!ls\n" + _ANSWER, {"make_update_step"}, set()),  # line magics become calls
    ("data = [" + "0.5, " * 250_000 + "]\n" + _ANSWER, {"data", "make_update_step"}, set()),  # a long line
    (_ANSWER + _STUB, {"make_update_step"}, {"make_update_step"}),  # the last definition counts
    (_STUB + "make_update_step = print\n", {"make_update_step"}, set()),
    ("import numpy.linalg, optax as make_update_step", {"numpy", "make_update_step"}, set()),
    ("make_update_step[0] = 1\nx, (y, z) = 1, (2, 3)\nw: int\n", {"x", "y", "z"}, set()),
    ("def make_update_step(:\n", set(), set()),
])
def test_a_cell_is_read_as_the_kernel_runs_it(source, bound, stubs):
    """Issue 26: one reading of a cell for stub and answer; cell magics and long lines as they run."""
    reading = read_cell(source)
    assert (set(reading.bound), set(reading.stubs)) == (bound, stubs)
    assert defines(source, {"make_update_step"}) == bound & {"make_update_step"}


def test_the_grader_and_the_similarity_report_read_the_same_answers():
    sources = ["%%time\n" + _ANSWER, "%%bash\n" + _ANSWER.replace("optimizer", "shell"),
               "import optax as make_update_step"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    code = answer_code(nbformat.writes(nb).encode(), task_functions={4: ["make_update_step"]}, scaffold=frozenset())
    assert code.startswith("def make_update_step(optimizer") and "import optax" in code
    assert "%%" not in code and "shell" not in code


@pytest.mark.parametrize("source, same", [
    ("SEED = 12345\nDTYPE = np.float32\nNUM_STEPS = 1\n", True),  # the instructor's cell, edited
    ("SEED = 1\nDTYPE = np.float64\nNUM_STEPS = 2\nBATCH_SIZE = 3\n", True),  # every value changed
    ("SEED = 12345\nDTYPE = np.float32\nNUM_STEPS = 1000\nBATCH_SIZE = 100\ndef f():\n    return 1\n", True),
    ("", True),
    ("def _helper(x):\n    return x\n", False),  # the student's own code under a copied id
    ("SEED = 12345\ndef _helper(x):\n    y = x + 1\n    z = y * 2\n    return z\n", False),
])
def test_an_id_marks_an_instructor_cell_only_with_the_instructors_code(source, same):
    instructor = "SEED = 12345\nDTYPE = np.float32\nNUM_STEPS = 1000\nBATCH_SIZE = 100\n"
    assert edit_of(source, instructor) is same


def _functions_of_copy(name: str) -> tuple[list, list[int]]:
    copy = _copy(name)
    return copy, stubbed_tasks(copy, LESSON.function_tasks())


def test_an_answer_under_time_below_the_stub_counts_and_runs_in_its_tasks_place():
    copy, stubbed = _functions_of_copy("magic-time-answer-below-stub")
    assert stubbed == []
    first_expected = next(i for i, c in enumerate(copy) if c.expected and c.task == 4)
    assert any(c.source.startswith("%%time") and "def make_update_step(" in c.source for c in copy[:first_expected])
    assert _functions_of_copy("control-answer-below-stub")[1] == []
    assert _functions_of_copy("control-stubs-2-3")[1] == [2, 3]


@pytest.mark.parametrize("name", ["copied-id-helper-cell", "control-helper-cell"])
def test_a_students_cell_with_a_copied_id_is_kept(name):
    copy = _copy(name)
    assert [c.name for c in copy if c.role == "given"] == GIVEN  # the setup cell runs once, the instructor's
    helper = next(i for i, c in enumerate(copy) if c.role == "student" and "def _cross_entropy(" in c.source)
    answer = next(i for i, c in enumerate(copy) if c.role == "student" and "def loss_fn(" in c.source)
    assert helper < answer
