"""Reading a submission and building its grading copy.

A grading copy follows the solution's cell order. The student contributes only the cells that
hold their answers (matched by cell id) and any cells they added; everything else, the
parameters, the data loading, the given helpers and every expected-result cell with its stored
outputs, comes from the instructor. Hidden-check cells go at the end.
"""

from __future__ import annotations

import ast
import copy
import json

import nbformat

from ..exercise import EXPECTED_TAG, SOLUTION_ONLY_TAG, cell_tags
from .checks import HIDDEN_TAG, hidden_check_cells

__all__ = ["InvalidNotebook", "read_submission", "build_grading_copy", "apply_params", "CHECK_TAG"]

CHECK_TAG = "nbval-check-output"
_NBVAL_MARKERS = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP",
                  "PYTEST_VALIDATE_IGNORE_OUTPUT"}
_STUDENT_TAGS = {f"task-{n}" for n in range(1, 6)}  # the answer cells; expected-result excluded below
_KERNELSPEC = {"name": "bmnist", "display_name": "bmnist", "language": "python"}


class InvalidNotebook(ValueError):
    """The submission is not a notebook the grader can read."""


def read_submission(path) -> nbformat.NotebookNode:
    """Read and validate a submitted notebook; discard everything but cell sources and ids.

    :param path: The ``.ipynb`` file.
    :returns: A clean nbformat 4 notebook with the kit's kernel.
    :raises InvalidNotebook: Not JSON, not nbformat 4, or not valid against the schema.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        raw = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidNotebook(f"cannot read {path}: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("nbformat") != 4:
        version = raw.get("nbformat") if isinstance(raw, dict) else None
        raise InvalidNotebook(f"nbformat {version!r}; save the notebook with Jupyter 4 or newer (nbformat 4)")
    try:
        nb = nbformat.reads(text, as_version=4)  # joins list-of-lines sources into strings
        nbformat.validate(nb)
    except Exception as exc:  # noqa: BLE001 - nbformat raises several types
        raise InvalidNotebook(f"not a valid notebook: {str(exc).splitlines()[0][:300]}") from exc
    clean = nbformat.v4.new_notebook(metadata={"kernelspec": dict(_KERNELSPEC)})
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        clean.cells.append(nbformat.v4.new_code_cell(_strip_markers(cell.source), id=cell.get("id")))
    return clean


def _strip_markers(source: str) -> str:
    """Drop the comment lines that nbval treats as markers (it strips '#' and spaces the same way)."""
    return "\n".join(
        line for line in source.splitlines()
        if not (line.strip().startswith("#") and line.strip().lstrip("#").strip() in _NBVAL_MARKERS)
    )


def apply_params(solution: nbformat.NotebookNode, params: dict[str, str]) -> nbformat.NotebookNode:
    """Override values in the solution's ``parameters`` cell (papermill style).

    :param solution: The solution notebook.
    :param params: ``{NAME: python literal}``; each NAME must be assigned in the parameters cell.
    :returns: A copy with the overrides appended to the parameters cell.
    :raises ValueError: Unknown name or a value that is not a Python literal.
    """
    nb = copy.deepcopy(solution)
    cell = next(c for c in nb.cells if "parameters" in cell_tags(c))
    known = {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    lines = []
    for name, value in params.items():
        if name not in known:
            raise ValueError(f"--param {name}: not in the parameters cell; known: {', '.join(sorted(known))}")
        try:
            ast.literal_eval(value)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"--param {name}={value}: the value must be a Python literal") from exc
        lines.append(f"{name} = {value}")
    if lines:
        cell.source += "\n# grader overrides\n" + "\n".join(lines)
    return nb


def _instructor(cell, *, check: bool) -> nbformat.NotebookNode:
    cell = copy.deepcopy(cell)
    tags = cell_tags(cell)
    cell.metadata = {"tags": [*tags, CHECK_TAG] if check else tags}
    if not check:
        cell.outputs = []
    return cell


def _is_answer(cell) -> bool:
    tags = set(cell_tags(cell))
    return bool(tags & _STUDENT_TAGS) and EXPECTED_TAG not in tags


def build_grading_copy(
    student: nbformat.NotebookNode | None,
    solution: nbformat.NotebookNode,
    *,
    seed: int,
    references: dict[str, list] | None = None,
) -> nbformat.NotebookNode:
    """Merge a student's answers into the instructor's notebook and append the hidden checks.

    :param student: From :func:`read_submission`; ``None`` builds the solution's own copy.
    :param solution: The executed solution notebook (with ``apply_params`` already applied).
    :param seed: Seed of the hidden checks.
    :param references: Outputs of the hidden checks on the solution, by cell id; without them
        the hidden cells are not compared (that is how the references are produced).
    :returns: The grading copy.
    """
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": dict(_KERNELSPEC)})
    solution_ids = {c.get("id") for c in solution.cells}
    extra: dict[str | None, list] = {}
    if student is not None:
        last = None
        for cell in student.cells:
            if cell.get("id") in solution_ids:
                last = cell.get("id")
            else:
                extra.setdefault(last, []).append(cell)
        by_id = {c.get("id"): c for c in student.cells}
    for cell in solution.cells:
        tags = cell_tags(cell)
        if cell.cell_type != "code" or SOLUTION_ONLY_TAG in tags or "explore" in tags:
            pass
        elif student is not None and _is_answer(cell):
            mine = by_id.get(cell.get("id"))
            if mine is not None:
                answer = nbformat.v4.new_code_cell(mine.source, id=cell.get("id"))
                answer.metadata = {"tags": tags}
                nb.cells.append(answer)
        else:
            nb.cells.append(_instructor(cell, check=EXPECTED_TAG in tags))
        for added in extra.get(cell.get("id"), []):
            nb.cells.append(nbformat.v4.new_code_cell(added.source, id=added.get("id")))
    for task, source in hidden_check_cells(seed, reference=_reference_source(solution)):
        cell_id = f"hidden-{task if task is not None else 'setup'}"
        tags = [HIDDEN_TAG] + ([f"task-{task}"] if task is not None else [])
        hidden = nbformat.v4.new_code_cell(source, id=cell_id)
        if references is not None and task is not None:
            hidden.outputs = [nbformat.from_dict(o) for o in references.get(cell_id, [])]
            hidden.execution_count = 1  # nbval refuses outputs of a cell that was never run
            tags.append(CHECK_TAG)
        hidden.metadata = {"tags": tags}
        nb.cells.append(hidden)
    for index, cell in enumerate(nb.cells):  # ids must be unique for nbformat
        cell["id"] = cell.get("id") or f"added-{index}"
    _dedupe_ids(nb)
    return nb


def _reference_source(solution: nbformat.NotebookNode) -> str:
    """The solution's model and objective cells (tasks 2 and 3), runnable on their own."""
    answers = [c.source for c in solution.cells if _is_answer(c) and {"task-2", "task-3"} & set(cell_tags(c))]
    return "import jax\nimport jax.numpy as jnp\nimport numpy as np\n\n" + "\n\n".join(answers)


def _dedupe_ids(nb) -> None:
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if cell["id"] in seen:
            cell["id"] = f"{cell['id'][:40]}-dup{index}"
        seen.add(cell["id"])

