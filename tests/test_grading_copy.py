"""Building the grading copy from real-world notebooks (no kernel): every answer lands where the
lesson needs it, every instructor cell runs exactly once, added cells stay at their place."""

from __future__ import annotations

import json

import nbformat
import pytest
from bmnist_lesson import LESSON, TASK_FUNCTIONS
from bmnist_lesson.exercise import SOLUTION_IPYNB, cell_tags
from nbjudge.notebook import InvalidNotebook, build_grading_copy, checked_source, read_submission
from nbjudge.plan import build_plan

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
