"""The exercise with its answers put back, for tests and the fixture generator only: the inverse
of :func:`bmnist_lesson.exercise.strip_solutions`. The lesson never ships it."""

from __future__ import annotations

import re
from collections.abc import Iterator

import nbformat
from bmnist_lesson.exercise import solution_regions

__all__ = ["put_back_solutions"]

# The one line that :func:`bmnist_lesson.exercise.strip_solutions` puts in place of a region.
_STUB = re.compile(r'^[ \t]*raise NotImplementedError\("TODO: task (\d+), \w+"\)$', re.M)


def put_back_solutions(
    exercise: nbformat.NotebookNode, solution: nbformat.NotebookNode, *, except_task: int | None = None
) -> nbformat.NotebookNode:
    """Replace each TODO stub of an exercise by the solution region it came from.

    :param exercise: An exercise notebook (modified in place and returned).
    :param solution: The solution notebook it was generated from (cells matched by id).
    :param except_task: Leave this task's stubs in place.
    :raises KeyError: A stubbed cell's id is not in the solution.
    """
    by_id = {c.get("id"): c for c in solution.cells}
    for cell in exercise.cells:
        if cell.cell_type != "code" or not _STUB.search(cell.source):
            continue
        regions = iter(solution_regions(by_id[cell["id"]].source))

        def fill(match: re.Match[str], regions: Iterator[str] = regions) -> str:
            region = next(regions)
            return match.group(0) if int(match.group(1)) == except_task else region.rstrip("\n")

        cell.source = _STUB.sub(fill, cell.source)
    return exercise
