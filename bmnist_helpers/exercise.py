"""Generate the student exercise from the solution notebook (nbdev/nbgrader style).

``solutions/binary_mnist.py`` is the single source. Every answer in it sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION``; the generator replaces each such region with a
stub that raises ``NotImplementedError("TODO: ...")``, keeps the expected-result outputs stored in
``solutions/binary_mnist.ipynb``, clears every other output, drops solution-only cells, and writes
``notebooks/binary_mnist.py`` and ``.ipynb``. Command line::

    python -m bmnist_helpers.exercise                       # regenerate the exercise
    python -m bmnist_helpers.exercise --check               # exit 1 if the exercise is stale
    python -m bmnist_helpers.exercise --execute-solution    # re-run the solution, store outputs
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import jupytext
import nbformat

from ._atomic import write_atomic
from .lesson import CHECKOUT, in_checkout, lesson_path

__all__ = [
    "BEGIN",
    "END",
    "EXPECTED_TAG",
    "SOLUTION_ONLY_TAG",
    "build_exercise",
    "cell_tags",
    "execute_solution",
    "exercise_files",
    "load_solution",
    "put_back_solutions",
    "solution_regions",
    "strip_solutions",
    "task_of",
]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
EXPECTED_TAG = "expected-result"
SOLUTION_ONLY_TAG = "solution-only"
# The .py sources exist only in a checkout; the notebooks are the checkout's, or, in an installed
# wheel, the package's copies (bmnist_helpers.lesson finds them).
ROOT = CHECKOUT
SOLUTION_PY = ROOT / "solutions" / "binary_mnist.py"
SOLUTION_IPYNB = lesson_path("solution")
EXERCISE_PY = ROOT / "notebooks" / "binary_mnist.py"
EXERCISE_IPYNB = lesson_path("exercise")
_KERNELSPEC = {"display_name": "bmnist", "language": "python", "name": "bmnist"}
_REGION = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n(.*?)^[ \t]*{re.escape(END)}[^\n]*$", re.M | re.S)
_DEF = re.compile(r"^[ \t]*def (\w+)\(", re.M)


def cell_tags(cell) -> list[str]:
    """Return the tags of a notebook cell (an empty list when it has none).

    :param cell: An nbformat cell.
    """
    tags = cell.get("metadata", {}).get("tags", [])
    return list(tags) if isinstance(tags, list) else []


def task_of(cell) -> int | None:
    """Return ``N`` for a cell tagged ``task-N``, else ``None``.

    :param cell: An nbformat cell.
    """
    for tag in cell_tags(cell):
        if re.fullmatch(r"task-\d+", tag):
            return int(tag.split("-")[1])
    return None


def solution_regions(source: str) -> list[str]:
    """Return the code between each pair of solution markers, in order.

    :param source: Cell or file source.
    """
    return [m.group(2) for m in _REGION.finditer(source)]


def strip_solutions(source: str, *, task: int | None = None) -> str:
    """Replace every solution region by a ``raise NotImplementedError("TODO: ...")`` stub.

    :param source: Cell source with ``### BEGIN SOLUTION`` / ``### END SOLUTION`` regions.
    :param task: Task number, quoted in the TODO message.
    :returns: The source with stubs, indented like the regions they replace.
    :raises ValueError: A marker without its partner.
    """
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in:\n{source[:200]}")

    def stub(match: re.Match) -> str:
        names = _DEF.findall(source[: match.start()])
        where = f" {names[-1]}" if names else ""
        label = f"task {task}," if task is not None else "task"
        return f'{match.group(1)}raise NotImplementedError("TODO: {label}{where}")'

    return _REGION.sub(stub, source)


_STUB = re.compile(r'^[ \t]*raise NotImplementedError\("TODO: task (\d+), \w+"\)$', re.M)


def put_back_solutions(
    exercise: nbformat.NotebookNode, solution: nbformat.NotebookNode, *, except_task: int | None = None
) -> nbformat.NotebookNode:
    """Replace each TODO stub of an exercise by the solution region it came from (the inverse of
    :func:`strip_solutions`), for tests and fixtures.

    :param exercise: An exercise notebook (modified in place and returned).
    :param solution: The solution notebook it was generated from (cells matched by id).
    :param except_task: Leave this task's stubs in place.
    """
    by_id = {c.get("id"): c for c in solution.cells}
    for cell in exercise.cells:
        if cell.cell_type != "code" or not _STUB.search(cell.source):
            continue
        regions = iter(solution_regions(by_id[cell["id"]].source))

        def fill(match: re.Match, regions=regions) -> str:
            region = next(regions)
            return match.group(0) if int(match.group(1)) == except_task else region.rstrip("\n")

        cell.source = _STUB.sub(fill, cell.source)
    return exercise


def _cell_id(index: int, cell) -> str:
    named = [t for t in cell_tags(cell) if t.startswith("er-")]
    return named[0] if named else f"cell-{index:02d}"


def load_solution(path: Path = SOLUTION_PY) -> nbformat.NotebookNode:
    """Read the solution script as a notebook with stable cell ids (``er-*`` tag or position).

    :param path: The py:percent source.
    """
    nb = jupytext.read(path)
    for index, cell in enumerate(nb.cells):
        cell["id"] = _cell_id(index, cell)
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    return nb


def _header(source: Path) -> nbformat.NotebookNode:
    rel = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    return nbformat.v4.new_markdown_cell(
        f"> **DO NOT EDIT the source of this file by hand.** It is generated from `{rel}` by "
        "`make exercise` (`python -m bmnist_helpers.exercise`). Instructors change the solution "
        "and regenerate; students work right here in the notebook.",
        id="generated-header",
    )


def build_exercise(solution: nbformat.NotebookNode, *, source: Path = SOLUTION_PY) -> nbformat.NotebookNode:
    """Turn an executed solution notebook into the exercise notebook.

    :param solution: The solution notebook, with its stored outputs.
    :param source: Path named in the generated header.
    :returns: A new notebook: stubs instead of answers, outputs only in expected-result cells.
    """
    exercise = copy.deepcopy(solution)
    cells = [_header(source)]
    for cell in exercise.cells:
        tags = cell_tags(cell)
        if SOLUTION_ONLY_TAG in tags:
            continue
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, task=task_of(cell))
            if EXPECTED_TAG not in tags:
                cell.outputs = []
                cell.execution_count = None
        cells.append(cell)
    exercise.cells = cells
    return exercise


def _with_outputs(source_nb: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The solution source with the outputs of the stored executed notebook, matched by cell id."""
    stored = {c["id"]: c for c in executed.cells if c.cell_type == "code"}
    for cell in source_nb.cells:
        if cell.cell_type == "code" and cell["id"] in stored and stored[cell["id"]].source == cell.source:
            cell.outputs = stored[cell["id"]].outputs
            cell.execution_count = stored[cell["id"]].execution_count
    return source_nb


def exercise_files() -> dict[Path, str]:
    """The exercise files as they should be, built from the solution script and notebook.

    :returns: ``{path: text}`` for ``notebooks/binary_mnist.py`` and ``.ipynb``.
    """
    solution = _with_outputs(load_solution(), nbformat.read(SOLUTION_IPYNB, as_version=4))
    exercise = build_exercise(solution)
    return {
        EXERCISE_IPYNB: nbformat.writes(exercise) + "\n",
        EXERCISE_PY: jupytext.writes(exercise, fmt="py:percent"),
    }


def execute_solution(*, timeout: int = 600) -> nbformat.NotebookNode:
    """Run the solution script in a fresh kernel and store it, outputs included, as the ``.ipynb``.

    :param timeout: Seconds allowed per cell.
    :returns: The executed notebook.
    """
    from nbclient import NotebookClient

    nb = load_solution()
    resources = {"metadata": {"path": str(ROOT / "solutions")}}
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources=resources).execute()
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    write_atomic(SOLUTION_IPYNB, nbformat.writes(nb) + "\n")
    return nb


def stale_files() -> list[Path]:
    """Return the exercise files whose content differs from a fresh generation."""
    return [p for p, text in exercise_files().items() if not p.exists() or p.read_text(encoding="utf-8") != text]


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m bmnist_helpers.exercise", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed exercise is stale")
    parser.add_argument("--execute-solution", action="store_true", help="re-run the solution and store its outputs")
    args = parser.parse_args(argv)
    if not in_checkout():
        print("error: generating the lesson needs a checkout of the repository (its source is "
              "solutions/binary_mnist.py); an installed kit writes its notebooks with "
              "`python -m bmnist_helpers lesson DIR`", file=sys.stderr)
        return 2
    if args.execute_solution:
        execute_solution()
        print(f"executed {SOLUTION_IPYNB.relative_to(ROOT)}")
        return 0
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run `make exercise`)", file=sys.stderr)
        return 1 if stale else 0
    for path, text in exercise_files().items():
        write_atomic(path, text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
