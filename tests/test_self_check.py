"""The student's self-check (bmnist_helpers.self_check): each expected-result cell says whether its
printed lines match the instructor's, and the self-check cell says so per task.

The decision is tested on what the expected-result cells printed in the runs of
``tests/test_expected_results.py`` (the solution's cells with one task's answer swapped:
``tests/lesson_cells.py``, shared per session); one real kernel run of the exercise with the
solution's answers shows that the hooks print under the cells and that the last cell sums up.
"""

from __future__ import annotations

import re

import nbformat
import pytest
from bmnist_helpers.self_check import (
    VERDICT_MARK,
    Expected,
    Ran,
    load_expectations,
    sanitize,
    summary,
    task_states,
)
from bmnist_lesson import GRADING_PARAMS
from bmnist_lesson.exercise import EXERCISE_IPYNB, SOLUTION_IPYNB, cell_tags
from bmnist_lesson.files import SANITIZE_FILE
from nbjudge.report import sanitize as engine_sanitize
from nbjudge.report import sanitizers

from tests.fixtures.alternatives import ALTERNATIVES, WRONG
from tests.lesson_cells import Printed, grading_run, run_cells, stored_printed
from tests.solved import put_back_solutions

TASKS = (1, 2, 3, 4, 5)


@pytest.fixture(scope="module")
def exercise() -> tuple[tuple[Expected, ...], tuple]:
    return load_expectations(EXERCISE_IPYNB)


def _runs(printed: Printed, rules) -> dict[str, Ran]:
    return {cell_id: Ran(sanitize(text, rules), "stopped" if cell_id == printed.error else None)
            for cell_id, text in printed.text.items()}


def _states(exercise, printed: Printed):
    cells, rules = exercise
    return task_states(cells, _runs(printed, rules))


def test_the_exercise_holds_the_stored_lines_the_tasks_and_the_one_set_of_patterns(exercise):
    cells, rules = exercise
    stored = stored_printed(nbformat.read(SOLUTION_IPYNB, as_version=4))
    assert {c.id for c in cells} == set(stored.text)
    assert all(c.lines == sanitize(stored.text[c.id], rules) for c in cells)
    assert [(p.pattern, r) for p, r in rules] == [(p.pattern, r) for p, r in sanitizers(SANITIZE_FILE)]
    by_id = {c.id: c for c in cells}
    assert by_id["er-dataloader"].depends == (1,)
    assert by_id["er-examples"].depends == TASKS  # trained by tasks 1 to 4, ranked by task 5


@pytest.mark.parametrize("text", [
    "loss 0.1234 after 12.5 s\n\n<Figure size 640x480 with 1 Axes>\nobject at 0x7f00ab  \nok: True",
    "", "\n\n   \n", "took 3ms, 4 seconds\n(<Axes: >, <matplotlib.image.AxesImage object at 0x1>)\n"])
def test_the_kit_sanitizes_as_the_grader_does(text):
    rules = sanitizers(SANITIZE_FILE)
    assert "\n".join(sanitize(text, rules)) == engine_sanitize(text, rules)


def test_the_solution_stores_matches_under_every_expected_result_and_in_the_last_cell():
    nb = nbformat.read(SOLUTION_IPYNB, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "self-check" in cell_tags(code[-1])
    printed = "".join(o.get("text", "") for o in code[-1].outputs)
    assert printed.splitlines()[:5] == [f"task {t}: matches" for t in TASKS]
    for cell in code:
        if "expected-result" in cell_tags(cell):
            verdicts = [o for o in cell.outputs if o.get("metadata", {}).get(VERDICT_MARK)]
            assert len(verdicts) == 1 and "matches" in verdicts[0].data["text/plain"], cell.id


@pytest.mark.notebook
@pytest.mark.parametrize(("task", "style"), [(t, s) for t, group in ALTERNATIVES.items() for s in group])
def test_every_correct_alternative_matches_every_task(exercise, task, style):
    states = _states(exercise, grading_run().with_answer(task, ALTERNATIVES[task][style]))
    assert {t: s.status for t, s in states.items()} == dict.fromkeys(TASKS, "matches")


@pytest.mark.notebook
@pytest.mark.parametrize(("task", "mistake"), [(t, m) for t, group in WRONG.items() for m in group])
def test_every_typical_mistake_differs_in_its_own_task_and_nowhere_before(exercise, task, mistake):
    states = _states(exercise, grading_run().with_answer(task, WRONG[task][mistake]))
    assert states[task].status == "differs" and states[task].follows is None
    assert all(states[t].status == "matches" for t in TASKS if t < task)
    assert all(states[t].follows == task for t in TASKS if t > task and states[t].status == "differs")


@pytest.mark.notebook
def test_a_task_3_mistake_marks_what_differs_in_tasks_4_and_5_as_following_from_it(exercise):
    cells, rules = exercise
    printed = grading_run().with_answer(3, WRONG[3]["summed-cross-entropy"])
    lines = summary(cells, _runs(printed, rules))
    assert lines[:2] == ["task 1: matches", "task 2: matches"]
    assert re.fullmatch(r"task 3: differs \(er-gradients, line \d+: yours .*\)", lines[2])
    for task, line in zip((4, 5), lines[3:5], strict=True):
        assert line.startswith(f"task {task}: differs (")
        assert line.endswith("; follows from task 3: fix that first")
    assert "fix task 3" in lines[5]


def _exercise_cells():
    nb = nbformat.read(EXERCISE_IPYNB, as_version=4)
    cells = []
    for cell in nb.cells:
        tags = cell_tags(cell)
        if cell.cell_type != "code" or "explore" in tags or "self-check" in tags:
            continue
        if "parameters" in tags:
            cell.source += "\n" + "\n".join(f"{k} = {v}" for k, v in GRADING_PARAMS.items())
        cells.append(cell)
    return cells


@pytest.mark.notebook
def test_the_untouched_exercise_matches_no_task(exercise):
    cells, rules = exercise
    run_all = Printed()
    namespace: dict = {"__name__": "__main__"}
    run_cells(_exercise_cells(), namespace, run_all)  # Run All: stops at the first error
    by_hand: dict[str, Ran] = {}
    for cell in _exercise_cells():  # every cell run by hand, in order, whatever raised before
        one = Printed()
        run_cells([cell], namespace, one)
        by_hand |= _runs(one, rules)
    for runs in (_runs(run_all, rules), by_hand):
        states = task_states(cells, runs)
        assert not [t for t, s in states.items() if s.status == "matches"], states
    assert task_states(cells, _runs(run_all, rules))[1].status == "differs"
    last = summary(cells, {})
    assert last[:5] == [f"task {t}: not run" for t in TASKS] and "Run All" in last[5]


@pytest.mark.notebook
def test_the_hooks_print_under_each_cell_in_a_kernel_and_the_last_cell_sums_up():
    from nbclient import NotebookClient

    solution = nbformat.read(SOLUTION_IPYNB, as_version=4)
    nb = put_back_solutions(nbformat.read(EXERCISE_IPYNB, as_version=4), solution)
    nb.cells = [c for c in nb.cells if "explore" not in cell_tags(c)]
    for cell in nb.cells:
        if "parameters" in cell_tags(cell):
            cell.source += "\n" + "\n".join(f"{k} = {v}" for k, v in GRADING_PARAMS.items())
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(EXERCISE_IPYNB.parent)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        verdicts = [o.data["text/plain"] for o in cell.outputs if o.get("metadata", {}).get(VERDICT_MARK)]
        if "expected-result" in cell_tags(cell):
            assert cell.outputs[-1].get("metadata", {}).get(VERDICT_MARK), cell.id  # under the cell's output
            assert len(verdicts) == 1 and verdicts[0].startswith("self-check: matches"), (cell.id, verdicts)
        else:
            assert not verdicts, cell.id
    printed = "".join(o.get("text", "") for o in code[-1].outputs).splitlines()
    assert printed[:5] == [f"task {t}: matches" for t in TASKS] and len(printed) == 6
