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
* A student cell that is neither an instructor cell (the same code, or its id with most of its
  code: :func:`.cells.edit_of`, so a copied id alone marks nothing) nor an answer stays at its
  place: after the cell it followed, or at the very top.
* Every cell is read once, as the kernel runs it (:mod:`.cells`): an answer under ``%%time`` is
  an answer, and a stub is a stub wherever it is.
* The hidden checks come last (see :mod:`.plan`).

The copy is a list of :class:`Cell` records; the grader's own bookkeeping never uses the
student's cell ids, so no student id can collide with the grader's.
"""

from __future__ import annotations

import ast
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import nbformat

from .cells import answered, defines, edit_of, read_cell
from .events import Role
from .solution import cell_source
from .tags import EXPECTED_TAG, PARAMETERS_TAG, cell_tags, task_of_tags

__all__ = ["MAX_CODE_CELLS", "MAX_CODE_CHARS", "Cell", "InvalidNotebook", "SolutionCell", "SubmittedCell",
           "apply_params", "build_grading_copy", "checked_source", "dependencies", "only_stubs", "read_submission",
           "solution_cells", "student_cells", "stubbed_tasks"]

_NBVAL_MARKERS = {"NBVAL_IGNORE_OUTPUT", "NBVAL_CHECK_OUTPUT", "NBVAL_RAISES_EXCEPTION", "NBVAL_SKIP",
                  "PYTEST_VALIDATE_IGNORE_OUTPUT"}
MAX_CODE_CELLS = 2_000  # code cells the grader runs (the exercise has about 40)
MAX_CODE_CHARS = 5_000_000  # characters of code the grader runs (the exercise has about 25,000)


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
    role: Role
    name: str = ""
    task: int | None = None
    expected: bool = False


class SubmittedCell(NamedTuple):
    """One code cell of a submission, as the grader keeps it (:func:`read_submission`).

    :param source: Its code, test tools' marker comments dropped.
    :param id: Its cell id; ``None`` where the notebook has none (nbformat before 4.5, Colab, CoCalc).
    :param tags: Its tags (:func:`.tags.cell_tags`).
    """

    source: str
    id: str | None
    tags: list[str]


def read_submission(data: bytes) -> list[SubmittedCell]:
    """Parse a submitted notebook; keep only its code cells' sources, ids and tags.

    :param data: The file's bytes.
    :returns: A :class:`SubmittedCell` for every code cell, in order.
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
    found: list[SubmittedCell] = []
    size = 0
    for cell in cells:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        if len(found) >= MAX_CODE_CELLS:
            raise InvalidNotebook(f"the notebook has more than {MAX_CODE_CELLS} code cells; the grader runs at most "
                                  "that many: merge or delete scratch cells and submit again")
        source = cell.get("source", "")
        if isinstance(source, list) and all(isinstance(s, str) for s in source):
            source = "".join(source)
        if not isinstance(source, str):
            raise InvalidNotebook("a code cell's source is neither text nor a list of lines")
        _refuse_lone_surrogates(source, len(found) + 1)
        cell_id = cell.get("id")
        size += len(source)
        if size > MAX_CODE_CHARS:
            raise InvalidNotebook(f"the notebook's code is longer than {MAX_CODE_CHARS // 10**6} million characters; "
                                  "the grader runs at most that much: delete large pasted data and submit again")
        found.append(SubmittedCell(_strip_markers(source), cell_id if isinstance(cell_id, str) else None,
                                   cell_tags(cell)))
    return found


def _refuse_lone_surrogates(source: str, number: int) -> None:
    """A JSON escape such as ``\\ud83d`` alone is no character: no kernel can be sent such code."""
    try:
        source.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(source[exc.start])
        raise InvalidNotebook(f"code cell {number} holds half of a surrogate pair (U+{code:04X}) at character "
                              f"{exc.start + 1}, which is no character; delete it or type it again, and save "
                              "the notebook") from None


def _convert_old(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nb = nbformat.reads(json.dumps(raw), as_version=4)  # type: ignore[no-untyped-call]
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


def normalised_code(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


@dataclass(frozen=True)
class SolutionCell:
    """One code cell of the solution, as the grading plan holds it.

    :param id: The cell's id.
    :param source: Its code.
    :param tags: Its tags.
    """

    id: str
    source: str
    tags: tuple[str, ...] = ()

    @property
    def task(self) -> int | None:
        """The task of a cell tagged ``task-N``."""
        return task_of_tags(list(self.tags))

    @property
    def expected(self) -> bool:
        """Whether it is an expected-result cell."""
        return EXPECTED_TAG in self.tags

    @property
    def answer(self) -> bool:
        """Whether it is a task's answer cell (where the student's code goes)."""
        return self.task is not None and not self.expected


def solution_cells(solution: Mapping[str, Any]) -> list[SolutionCell]:
    """The solution's code cells, in order.

    :param solution: The solution notebook: an ``nbformat`` node, or its JSON as parsed
        (:func:`.solution.check_solution`).
    """
    return [SolutionCell(str(c.get("id")), cell_source(c), tuple(cell_tags(c))) for c in solution["cells"]
            if c.get("cell_type") == "code"]


def stubbed_tasks(copy: list[Cell], functions: Mapping[str, int]) -> list[int]:
    """The tasks a function of which is, at its last top-level definition in the student's cells, a stub.

    Such a task is not answered, whatever the notebook's hooks make its hidden check send. Cells
    are read as the kernel runs them (:func:`.cells.read_cell`: an answer under ``%%time`` counts).

    :param copy: A grading copy (:func:`build_grading_copy`).
    :param functions: ``{function name: task}`` of the lesson.
    :returns: The task numbers, sorted.
    """
    return sorted({functions[name] for name, stub in _last_is_stub(copy, set(functions)).items() if stub})


def only_stubs(copy: list[Cell], functions: Mapping[str, int]) -> bool:
    """Whether every function of the lesson is defined in the student's cells and is, at its last
    top-level definition, its stub: an exercise as it was published, which answers nothing.

    :param copy: A grading copy (:func:`build_grading_copy`).
    :param functions: ``{function name: task}`` of the lesson.
    """
    last = _last_is_stub(copy, set(functions))
    return set(last) == set(functions) and all(last.values())


def _last_is_stub(copy: list[Cell], names: set[str]) -> dict[str, bool]:
    """``{name: whether its last top-level definition in the student's cells is a stub}`` for the
    ``names`` those cells define."""
    last: dict[str, bool] = {}
    for cell in copy:
        if cell.role == "student" and defines(cell.source, names):
            reading = read_cell(cell.source)
            for name in reading.bound & names:
                last[name] = name in reading.stubs
    return last


def apply_params(cells: list[SolutionCell], params: Mapping[str, str]) -> list[SolutionCell]:
    """Override values in the solution's ``parameters`` cell (papermill style).

    :param cells: The solution's code cells.
    :param params: ``{NAME: python literal}``; each NAME must be assigned in the parameters cell.
    :returns: The cells, the parameters cell with the overrides appended.
    :raises ValueError: No parameters cell, an unknown name, or a value that is not a Python literal.
    """
    index = next((i for i, c in enumerate(cells) if PARAMETERS_TAG in c.tags), None)
    if index is None:
        raise ValueError(f"the solution has no cell tagged {PARAMETERS_TAG!r}")
    cell = cells[index]
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
    if not lines:
        return list(cells)
    changed = replace(cell, source=cell.source + "\n# grader overrides\n" + "\n".join(lines))
    return [*cells[:index], changed, *cells[index + 1:]]


def student_cells(cells: Sequence[SubmittedCell], solution: list[SolutionCell],
                  *, functions: Mapping[str, int], instructor: set[str]) -> dict[str | None, list[Cell]]:
    """Sort a student's code cells into the solution's slots.

    :param cells: From :func:`read_submission`.
    :param solution: The solution cells of the grading copy.
    :param functions: ``{function name: task}`` of the lesson.
    :param instructor: The normalised code of every instructor cell of the solution (graded or not):
        a student's unchanged copy of one is dropped.
    :returns: ``{solution cell id: [Cell, ...] to run right after it}``; the key ``None`` holds
        the cells that go before the first. Answer cells go to the slot of their first task's
        answer cell; recognised instructor cells are dropped (the instructor's version runs).
    """
    given_source = {c.id: c.source for c in solution if not c.answer}
    given_ids = set(given_source)
    answer_ids = {c.id: c.task for c in solution if c.answer and c.task is not None}  # an answer has a task
    answer_slot: dict[int, str] = {}
    for answer_id, task in answer_ids.items():
        answer_slot.setdefault(task, answer_id)
    given_code = {normalised_code(c.source): c.id for c in solution if not c.answer}
    slots: dict[str | None, list[Cell]] = {}
    anchor: str | None = None
    for source, cell_id, tags in cells:
        tasks = answered(source, functions)
        if tasks:  # an answer, wherever it is and whatever its id: to its task's slot
            anchor = answer_slot[tasks[0]]
            slots.setdefault(anchor, []).append(Cell(source, "student", task=tasks[0]))
            continue
        normal = normalised_code(source)
        # the instructor's cell by its id only where the code is theirs too, not a copied id alone
        own_id = cell_id is not None and cell_id in given_ids and edit_of(source, given_source[cell_id])
        given = cell_id if own_id else given_code.get(normal)
        if given is not None or normal in instructor:  # the instructor's version runs in its place
            anchor = given if given in given_ids else anchor
            continue
        tagged = [answer_slot[t] for t in (task_of_tags([tag]) for tag in tags) if t in answer_slot]
        if cell_id in answer_ids or tagged:  # the answer cell, kept by id or tag, without a task function
            anchor = cell_id if cell_id in answer_ids else tagged[0]
        if source.strip():
            slots.setdefault(anchor, []).append(Cell(source, "student"))
    return slots


def build_grading_copy(cells: Sequence[SubmittedCell] | None, solution: list[SolutionCell],
                       probes: list[tuple[int, str]], *, functions: Mapping[str, int],
                       instructor: set[str]) -> list[Cell]:
    """Merge a student's cells into the instructor's notebook and append the hidden checks.

    :param cells: From :func:`read_submission`; ``None`` builds the solution's own copy (the
        reference run).
    :param solution: The solution cells of the grading copy, parameters applied.
    :param probes: ``(task, source)`` of each hidden check.
    :param functions: ``{function name: task}`` of the lesson.
    :param instructor: See :func:`student_cells`.
    :returns: The cells to run, in order.
    """
    slots = {} if cells is None else student_cells(cells, solution, functions=functions, instructor=instructor)
    copy = list(slots.get(None, []))
    for cell in solution:
        if cells is None or not cell.answer:
            copy.append(Cell(cell.source, "given", cell.id, cell.task, cell.expected))
        copy += slots.get(cell.id, [])
    copy += [Cell(source, "probe", f"task-{task}", task) for task, source in probes]
    return copy


def _is_print(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"


def _spliced(lines: list[bytes], edits: list[tuple[int, int, int | None, bytes]]) -> list[bytes]:
    """``lines`` with each ``(line, start, end, text)`` put in place of those bytes (lines from 1)."""
    lines = list(lines)
    for line, start, end, text in sorted(edits, reverse=True):
        lines[line - 1] = lines[line - 1][:start] + text + lines[line - 1][end:]
    return lines


def checked_source(source: str, *, runner: str) -> str:
    """An expected-result cell as its grading copy runs it: its own ``print`` calls become
    ``runner.show``, and ``runner.mark`` is called where its code begins and ends (:mod:`.probe`).

    Only the ``print`` names are replaced, in place; every other character stays. The end mark
    goes before a last bare expression, so that its value is still shown as the cell's result. A
    cell that does not parse as Python (a magic) is kept as it is.

    :param source: The instructor's cell.
    :param runner: The module that holds ``show`` and ``mark``.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return source
    if not tree.body:
        return source
    call = f"__import__({runner!r}, fromlist=['show'])"
    lines = [line.encode("utf-8") for line in source.split("\n")]
    edits = [(n.func.lineno, n.func.col_offset, n.func.end_col_offset, f"{call}.show".encode())
             for n in ast.walk(tree) if isinstance(n, ast.Call) and _is_print(n)]
    last = tree.body[-1]
    end = f"{call}.mark('end')"
    if isinstance(last, ast.Expr) and not _is_print(last.value):
        edits.append((last.lineno, last.col_offset, last.col_offset, f"{end}; ".encode()))
        tail = ""
    else:
        tail = "\n" + end
    body = b"\n".join(_spliced(lines, edits)).decode("utf-8")
    return f"{call}.mark('begin')\n{body}{tail}\n"


def dependencies(solution: list[SolutionCell],
                 functions: Mapping[str, int]) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """The tasks whose functions each name and each expected-result cell run on, read from the
    solution's code.

    A name depends on the tasks of the names its cell uses (a helper that calls a task's function,
    a variable computed by a cell that called one, ...), in cell order. An expected result can be
    imitated by printing, so its point counts only when the hidden checks of all these tasks pass;
    and a cell that fails for want of a name (``params``) is blamed on the tasks that name needs.

    :param solution: The solution cells of the grading copy.
    :param functions: ``{function name: task}`` of the lesson.
    :returns: ``({name: {task, ...}}, {expected-result cell id: {task, ...}})``.
    """
    needs: dict[str, set[int]] = {name: {task} for name, task in functions.items()}
    found = {}
    for cell in solution:
        tree = ast.parse(cell.source)
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        tasks = set().union(*(needs.get(name, set()) for name in used))
        tasks |= {cell.task} if cell.task is not None else set()
        for node in tree.body:
            for target in _assigned(node):
                needs[target] = needs.get(target, set()) | tasks if target in functions else tasks
        if cell.expected:
            found[cell.id] = tasks
    return needs, found


def _assigned(node: ast.stmt) -> set[str]:
    """The names a statement of the solution writes to, changed in place included (``x[i] = ...``)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    return {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}
