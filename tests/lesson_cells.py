"""Run the solution notebook's cells in this process and keep what each expected-result cell printed.

A run goes cell by cell through the code cells that a grading copy runs (no solution-only or
explore cells), in one namespace, and stops at the first error as Run All does. It records, per
expected-result cell, the text the cell printed. :class:`LessonRun` runs the solution once and
keeps a copy of the namespace before each task's first answer cell, so that a student's answer to
one task can then run from that point on (:meth:`LessonRun.with_answer`) without running the cells
before it again.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import traceback
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import nbformat
from bmnist_lesson.exercise import EXPECTED_TAG, SOLUTION_ONLY_TAG, cell_tags, load_solution, task_of


@dataclass
class Printed:
    """What the expected-result cells printed, by cell id; ``error`` names the cell that raised, if any."""

    text: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def lines(self, cell_id: str) -> list[str]:
        """The printed lines of one cell (empty when it did not run)."""
        return self.text.get(cell_id, "").splitlines()


def stored_printed(nb: nbformat.NotebookNode) -> Printed:
    """The printed text (stream outputs) that the executed notebook stores for each expected-result cell."""
    return Printed({c["id"]: "".join(o.get("text", "") for o in c.outputs if o.output_type == "stream")
                    for c in nb.cells if c.cell_type == "code" and EXPECTED_TAG in cell_tags(c)})


def lesson_cells(*, params: dict[str, str] | None = None) -> list[nbformat.NotebookNode]:
    """The solution's code cells a grading copy runs, with ``params`` appended to the parameters cell.

    :param params: ``{NAME: python literal}`` overrides, as ``bmnist-grade --param`` takes them.
    """
    cells = []
    for cell in load_solution().cells:
        tags = cell_tags(cell)
        if cell.cell_type != "code" or SOLUTION_ONLY_TAG in tags or "explore" in tags:
            continue
        cell = copy.deepcopy(cell)
        if "parameters" in tags and params:
            cell.source += "\n" + "\n".join(f"{name} = {value}" for name, value in params.items())
        cells.append(cell)
    return cells


def _is_answer(cell) -> bool:
    return task_of(cell) is not None and EXPECTED_TAG not in cell_tags(cell)


def run_cells(cells, namespace: dict, printed: Printed) -> None:
    """Execute ``cells`` in ``namespace``, adding what expected-result cells print to ``printed``.

    Stops at the first cell that raises (Run All does the same) and notes it in ``printed.error``,
    with the traceback's last line appended to that cell's text when it is an expected-result cell.
    """
    for cell in cells:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(cell.source, f"<cell {cell['id']}>", "exec"), namespace)
        except Exception:  # noqa: BLE001 - the notebook would show it; the run stops here
            printed.error = cell["id"]
            out.write(traceback.format_exc().strip().splitlines()[-1] + "\n")
        finally:
            plt.close("all")
        if EXPECTED_TAG in cell_tags(cell):
            printed.text[cell["id"]] = out.getvalue()
        if printed.error:
            return


class LessonRun:
    """The solution run once in this process, with a copy of its namespace before each task's answer."""

    def __init__(self, *, params: dict[str, str] | None = None) -> None:
        self.cells = lesson_cells(params=params)
        self.printed = Printed()
        self._before: dict[int, tuple[int, dict]] = {}
        namespace: dict = {"__name__": "__main__"}
        for index, cell in enumerate(self.cells):
            task = task_of(cell)
            if _is_answer(cell) and task not in self._before:
                self._before[task] = (index, dict(namespace))
            run_cells([cell], namespace, self.printed)
            if self.printed.error:
                raise RuntimeError(f"the solution failed in cell {self.printed.error}: "
                                   f"{self.printed.text.get(self.printed.error, '')}")

    @functools.cache  # noqa: B019 - one run per test session (grading_run), kept for the whole session
    def with_answer(self, task: int, source: str) -> Printed:
        """Run the notebook with ``source`` as the whole answer to ``task`` (the solution's own answers
        to the other tasks), from that task's first answer cell to the end.

        The answer runs in place of the task's first answer cell; the task's other answer cells are
        left out, as the grader does with a student's answer cell. The cells before it are not run
        again: their results come from a copy of the solution run's namespace.

        :param task: The task, 1 to 5.
        :param source: The complete source of the answer cell.
        :returns: What the expected-result cells printed, from the task's first answer cell on; the
            cells before it print what the solution's did.
        """
        start, namespace = self._before[task]
        answer = nbformat.v4.new_code_cell(source, id=f"answer-{task}")
        answer.metadata["tags"] = [f"task-{task}"]
        rest = [c for c in self.cells[start:] if not (_is_answer(c) and task_of(c) == task)]
        before = {c["id"] for c in self.cells[:start]}
        printed = Printed({k: v for k, v in self.printed.text.items() if k in before})
        run_cells([answer, *rest], dict(namespace), printed)
        return printed


@functools.cache
def grading_run() -> LessonRun:
    """The solution run once per test session with the grader's settings; its answers' runs are
    kept, so that the tests of the expected results and of the self-check share them."""
    from bmnist_lesson import GRADING_PARAMS

    return LessonRun(params=GRADING_PARAMS)
