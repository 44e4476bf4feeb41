"""What the student's self-check compares with, written into the exercise by its generator.

The kit's :mod:`bmnist_helpers.self_check` reads it from the exercise notebook: in the notebook's
metadata, the sanitize patterns (the lesson's nbval sanitize file, :data:`.files.SANITIZE_FILE`, is
their one source); in each expected-result cell's metadata, its task, the tasks whose functions it
runs on (:func:`nbjudge.notebook.dependencies`, from the solution's code) and the lines the
instructor's run printed, which the exercise already shows in the markdown copy beside the cell.
"""

from __future__ import annotations

import nbformat
from bmnist_helpers.self_check import META, VERDICT_MARK
from nbjudge.notebook import dependencies, solution_cells
from nbjudge.report import sanitizers
from nbjudge.tags import EXPECTED_TAG, cell_tags, task_of

from .files import SANITIZE_FILE

__all__ = ["META", "VERDICT_MARK", "add_self_check", "is_verdict", "notebook_metadata", "printed_lines",
           "self_check_differs", "task_dependencies"]


def is_verdict(output) -> bool:
    """Whether a stored output is the self-check's verdict (not part of the cell's own output)."""
    return bool(output.get("metadata", {}).get(VERDICT_MARK))


def self_check_differs(nb: nbformat.NotebookNode) -> bool:
    """Whether an executed solution's self-check saw a difference (it compared with the exercise's
    lines, which come from the run before: the printed lines changed since)."""
    verdicts = [o.get("data", {}).get("text/plain", "") for c in nb.cells if c.cell_type == "code"
                for o in c.get("outputs", []) if is_verdict(o)]
    return any("matches" not in v.splitlines()[0] for v in verdicts if v)


def printed_lines(cell) -> list[str]:
    """The lines an executed cell printed (its stream outputs), as stored."""
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream").splitlines()


def task_dependencies(solution: nbformat.NotebookNode, *, skip: frozenset[str] | None = None) -> dict[str, list[int]]:
    """``{expected-result cell id: [task, ...]}``: the tasks whose functions each cell runs on.

    :param solution: The solution notebook.
    :param skip: Tags of the cells a grading copy leaves out; default: the lesson's.
    """
    from . import LESSON, TASK_FUNCTIONS

    skip = LESSON.skip_tags if skip is None else skip
    functions = {name: task for task, names in TASK_FUNCTIONS.items() for name in names}
    cells = [c for c in solution_cells(solution) if not skip & set(c.tags)]
    return {cell_id: sorted(tasks) for cell_id, tasks in dependencies(cells, functions)[1].items()}


def notebook_metadata() -> dict:
    """The self-check's part of the exercise's notebook metadata: the sanitize patterns."""
    return {"sanitize": [[pattern.pattern, replace] for pattern, replace in sanitizers(SANITIZE_FILE)]}


def add_self_check(exercise: nbformat.NotebookNode, solution: nbformat.NotebookNode, *,
                   skip: frozenset[str] | None = None) -> nbformat.NotebookNode:
    """Write the self-check's data into the exercise (in place): see the module's docstring.

    :param exercise: The exercise being built; its expected-result cells keep the solution's ids.
    :param solution: The executed solution notebook.
    :param skip: Tags of the cells a grading copy leaves out; default: the lesson's.
    """
    depends = task_dependencies(solution, skip=skip)
    stored = {c.get("id"): c for c in solution.cells if c.cell_type == "code"}
    for cell in exercise.cells:
        if cell.cell_type == "code" and EXPECTED_TAG in cell_tags(cell):
            cell.metadata[META] = {"task": task_of(cell), "depends": depends.get(cell["id"], [task_of(cell)]),
                                   "expected": printed_lines(stored[cell["id"]])}
    exercise.metadata[META] = notebook_metadata()
    return exercise
