"""Reading a submission and building its grading copy.

Real notebooks are messy: saved without cell ids (nbformat 4.0-4.4, CoCalc, nbstripout), by
Colab (ids in ``metadata.id``), with cells retyped, split, merged, moved or added anywhere. So
the grading copy is built from what the code *does*, not from ids alone:

* The backbone is the solution's cell order. Every instructor cell (setup, parameters, data,
  given helpers, expected-result cells) comes from the instructor, always, whatever the student
  did to their copy of it.
* A student cell that defines a task's function (``def mlp``, ``mlp = ...``) is an answer. It
  goes to the slot of the first task it answers, so answers that were split, merged, retyped or
  moved still run where the lesson needs them.
* A student cell that is neither an instructor cell (same id, or the same code) nor an answer
  stays at its place: after the cell it followed, or at the very top.
* The hidden checks come last (see :mod:`.checks`).

The copy is a list of :class:`Cell` records; the grader's own bookkeeping never uses the
student's cell ids, so no student id can collide with the grader's.
"""

from __future__ import annotations

import ast
import json
import warnings
from dataclasses import dataclass

import nbformat

from ..exercise import EXPECTED_TAG, SOLUTION_ONLY_TAG, cell_tags, task_of
from .checks import TASK_FUNCTIONS, probes

__all__ = ["Cell", "InvalidNotebook", "read_submission", "student_cells", "build_grading_copy", "apply_params",
           "visible_dependencies"]

_NBVAL_MARKERS = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP",
                  "PYTEST_VALIDATE_IGNORE_OUTPUT"}
_FUNCTION_TASK = {name: task for task, names in TASK_FUNCTIONS.items() for name in names}
_PARSE_LIMIT = 1_000_000  # characters: longer cells are kept as they are, not parsed


class InvalidNotebook(ValueError):
    """The submission is not a notebook the grader can read; the message says how to fix it."""


@dataclass(frozen=True)
class Cell:
    """One cell of a grading copy.

    :param source: The code to run.
    :param role: ``"given"`` (from the instructor), ``"student"`` or ``"probe"`` (a hidden check).
    :param name: For given cells the solution's cell id, for probes ``task-N``.
    :param task: The task the cell belongs to, if any.
    :param expected: Whether the cell is an expected-result cell.
    """

    source: str
    role: str
    name: str = ""
    task: int | None = None
    expected: bool = False


def read_submission(data: bytes) -> list[tuple[str, str | None, list[str]]]:
    """Parse a submitted notebook; keep only its code cells' sources, ids and tags.

    :param data: The file's bytes.
    :returns: ``(source, cell id, tags)`` for every code cell, in order; the id is ``None``
        where the notebook has none (nbformat before 4.5, Colab, CoCalc).
    :raises InvalidNotebook: Not UTF-8 JSON, not a notebook, or nbformat 3 that cannot be converted.
    """
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidNotebook("the file is not UTF-8 text; save it again from Jupyter as a .ipynb") from None
    except RecursionError:
        raise InvalidNotebook("the file's JSON is nested too deeply to be a notebook") from None
    except json.JSONDecodeError as exc:
        raise InvalidNotebook(f"the file is not valid JSON ({exc.msg}, line {exc.lineno}); "
                              "save it again from Jupyter, or download it again") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("nbformat"), int):
        raise InvalidNotebook("the file is JSON but not a Jupyter notebook (no 'nbformat' field)")
    if raw["nbformat"] < 4:
        raw = _convert_old(raw)
    elif raw["nbformat"] > 4:
        raise InvalidNotebook(f"nbformat {raw['nbformat']} is newer than this grader reads; save as nbformat 4")
    cells = raw.get("cells")
    if not isinstance(cells, list):
        raise InvalidNotebook("the notebook has no list of cells; save it again from Jupyter")
    found = []
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise InvalidNotebook("a code cell's source is neither text nor a list of lines")
        cell_id = cell.get("id")
        metadata = cell.get("metadata")
        tags = metadata.get("tags") if isinstance(metadata, dict) else None
        tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
        found.append((_strip_markers(source), cell_id if isinstance(cell_id, str) else None, tags))
    return found


def _convert_old(raw: dict) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception:  # noqa: BLE001 - nbformat's converters raise many types
        raise InvalidNotebook(f"nbformat {raw.get('nbformat')} could not be converted; open the file in "
                              "Jupyter and save it again (File > Save), which writes nbformat 4") from None
    return {"nbformat": 4, "cells": [dict(c) for c in nb.cells]}


def _strip_markers(source: str) -> str:
    """Drop comment lines that test tools treat as markers (``# NBVAL_SKIP`` and the like)."""
    return "\n".join(
        line for line in source.splitlines()
        if not (line.strip().startswith("#") and line.strip().lstrip("#").strip() in _NBVAL_MARKERS)
    )


def _normal(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


def _defined(source: str) -> set[str]:
    """Names of task functions a cell defines at top level (``def``, assignment, import-as)."""
    if len(source) > _PARSE_LIMIT or not any(name in source for name in _FUNCTION_TASK):
        return set()
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        python = TransformerManager().transform_cell(source)  # magics and shell escapes become calls
        tree = ast.parse(python)
    except (SyntaxError, ValueError, RecursionError, MemoryError, IndexError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {alias.asname or alias.name for alias in node.names}
    return names & set(_FUNCTION_TASK)


def apply_params(solution: nbformat.NotebookNode, params: dict[str, str]) -> nbformat.NotebookNode:
    """Override values in the solution's ``parameters`` cell (papermill style).

    :param solution: The solution notebook.
    :param params: ``{NAME: python literal}``; each NAME must be assigned in the parameters cell.
    :returns: A copy with the overrides appended to the parameters cell.
    :raises ValueError: Unknown name or a value that is not a Python literal.
    """
    nb = nbformat.from_dict(json.loads(json.dumps(solution)))
    cell = next((c for c in nb.cells if "parameters" in cell_tags(c)), None)
    if cell is None:
        raise ValueError("the solution has no cell tagged 'parameters'")
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


def _solution_cells(solution: nbformat.NotebookNode) -> list:
    """The solution's code cells that a grading copy runs (no solution-only or explore cells)."""
    skip = {SOLUTION_ONLY_TAG, "explore"}
    return [c for c in solution.cells if c.cell_type == "code" and not skip & set(cell_tags(c))]


def _is_answer(cell) -> bool:
    return task_of(cell) is not None and EXPECTED_TAG not in cell_tags(cell)


def student_cells(cells: list[tuple[str, str | None, list[str]]], solution: nbformat.NotebookNode) -> dict:
    """Sort a student's code cells into the solution's slots.

    :param cells: From :func:`read_submission`.
    :param solution: The solution notebook.
    :returns: ``{solution cell id: [Cell, ...] to run right after it}``; the key ``None`` holds
        the cells that go before the first. Answer cells go to the slot of their first task's
        answer cell; recognised instructor cells are dropped (the instructor's version runs).
    """
    order = _solution_cells(solution)
    given_ids = {c.get("id") for c in order if not _is_answer(c)}
    answer_ids = {c.get("id"): task_of(c) for c in order if _is_answer(c)}
    answer_slot: dict[int, str] = {}
    for cell_id, task in answer_ids.items():
        answer_slot.setdefault(task, cell_id)
    given_code = {_normal(c.source): c.get("id") for c in solution.cells if c.cell_type == "code" and not _is_answer(c)}
    slots: dict[str | None, list[Cell]] = {}
    anchor: str | None = None
    for source, cell_id, tags in cells:
        tasks = sorted({_FUNCTION_TASK[n] for n in _defined(source)})
        if tasks:  # an answer, wherever it is and whatever its id: to its task's slot
            anchor = answer_slot[tasks[0]]
            slots.setdefault(anchor, []).append(Cell(source, "student", task=tasks[0]))
            continue
        given = cell_id if cell_id in given_ids else given_code.get(_normal(source))
        if given is not None:  # an instructor cell: the instructor's version runs in its place
            anchor = given if given in given_ids else anchor
            continue
        tagged = [answer_slot[t] for t in (_tag_task(tag) for tag in tags) if t in answer_slot]
        if cell_id in answer_ids or tagged:  # the answer cell, kept by id or tag, without a task function
            anchor = cell_id if cell_id in answer_ids else tagged[0]
        if source.strip():
            slots.setdefault(anchor, []).append(Cell(source, "student"))
    return slots


def _tag_task(tag: str) -> int | None:
    head, _, number = tag.partition("-")
    return int(number) if head == "task" and number.isdigit() else None


def build_grading_copy(
    cells: list[tuple[str, str | None, list[str]]] | None, solution: nbformat.NotebookNode, *, seed: int
) -> list[Cell]:
    """Merge a student's cells into the instructor's notebook and append the hidden checks.

    :param cells: From :func:`read_submission`; ``None`` builds the solution's own copy (the
        reference run).
    :param solution: The executed solution notebook, with ``apply_params`` already applied.
    :param seed: Seed of the hidden checks.
    :returns: The cells to run, in order.
    """
    slots = {} if cells is None else student_cells(cells, solution)
    copy = list(slots.get(None, []))
    for cell in _solution_cells(solution):
        name = cell.get("id")
        if cells is None or not _is_answer(cell):
            role = "given"
            copy.append(Cell(cell.source, role, name, task_of(cell), EXPECTED_TAG in cell_tags(cell)))
        copy += slots.get(name, [])
    copy += [Cell(p.source, "probe", f"task-{p.task}", p.task) for p in probes(seed)]
    return copy


def visible_dependencies(solution: nbformat.NotebookNode) -> dict[str, set[int]]:
    """The tasks whose functions each expected-result cell runs on, read from the solution's code.

    A name depends on the tasks of the names its cell uses: ``predict_proba`` on task 2 (it calls
    ``mlp``), ``params`` after the training cell on tasks 1 to 4, and so on, in cell order. An
    expected result can be imitated by printing, so its point counts only when the hidden checks
    of all these tasks pass (:func:`.report.score`).

    :param solution: The solution notebook.
    :returns: ``{expected-result cell id: {task, ...}}``.
    """
    needs: dict[str, set[int]] = {name: {task} for task, names in TASK_FUNCTIONS.items() for name in names}
    found = {}
    for cell in _solution_cells(solution):
        tree = ast.parse(cell.source)
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        tasks = set().union(*(needs.get(name, set()) for name in used))
        tasks |= {task_of(cell)} if task_of(cell) is not None else set()
        for node in tree.body:
            for target in _assigned(node):
                needs[target] = needs.get(target, set()) | tasks if target in _FUNCTION_TASK else tasks
        if EXPECTED_TAG in cell_tags(cell):
            found[cell.get("id")] = tasks
    return found


def _assigned(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}
