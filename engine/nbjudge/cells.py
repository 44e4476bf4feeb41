"""One reading of a code cell, as the kernel runs it, behind every decision the engine makes about
a student's cell: what it defines (an answer, where that is a task's function), which of those it
leaves as the exercise's stub, and whether a cell that carries an instructor cell's id is that cell.

* The cell is read as IPython runs it. Plain Python is read as it is, however long its lines
  (the notebook as a whole is capped when it is read, :data:`.notebook.MAX_CODE_CHARS`). Line
  magics and shell escapes become calls (IPython's own ``TransformerManager``). A cell magic that
  runs its body in the notebook's namespace (``%%time``, ``%%capture``, ``%%prun``) is read as
  that body, so an answer under ``%%time`` is an answer; any other cell magic (``%%bash``,
  ``%%timeit``, whose body runs inside a function of its own) defines nothing.
* A *stub* is a function whose body, docstring aside, only raises ``NotImplementedError``.
* An id marks an instructor cell only where the source is the instructor's too: the student's
  edit of that cell (most of its names kept, whatever values changed), or a blank cell. A cell of the student's own that
  carries a copied id (JupyterLab's copy and paste keeps ids) is the student's.

:func:`.notebook.student_cells`, :func:`.notebook.stubbed_tasks` and the similarity report
(:mod:`.similarity`) all decide from here.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RUNS_ITS_BODY", "Reading", "answered", "defines", "edit_of", "is_stub", "python_source", "read_cell"]

RUNS_ITS_BODY = frozenset({"time", "capture", "prun"})  # cell magics that run their body in the namespace
SAME_CELL = 0.5  # the share of its names a cell with an instructor's id keeps, to be that cell, edited
_WORD = re.compile(r"[^\W\d]\w*")
_CELL_MAGIC = re.compile(r"%%(\w+)(?:[ \t]|\r?\n|$)")
_MAGIC_DEPTH = 8  # cell magics nested in one another that are unwrapped


@dataclass(frozen=True)
class Reading:
    """What a cell does at its top level, read as the kernel runs it.

    :param python: The cell as the Python that runs (magics turned into calls, bodies of the
        cell magics in :data:`RUNS_ITS_BODY` unwrapped); ``None`` where it does not parse.
    :param bound: The names its top-level statements bind (``def``, ``class``, assignments,
        imports).
    :param stubs: Those of them whose last binding in the cell is a stub (:func:`is_stub`).
    """

    python: str | None
    bound: frozenset[str] = frozenset()
    stubs: frozenset[str] = frozenset()


def _transformed(source: str) -> str | None:
    """The cell through IPython's input transformations, or ``None`` where they fail."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001 - IPython raises several kinds on input it cannot transform
        return None


def _parsed(source: str, depth: int) -> tuple[str, ast.Module] | None:
    """The Python that runs for ``source`` and its tree, or ``None`` where none parses."""
    lines = source.splitlines(keepends=True)
    while lines and not lines[0].strip():  # IPython drops leading blank lines first
        lines.pop(0)
    magic = _CELL_MAGIC.match(lines[0]) if lines else None
    if magic and magic.group(1) in RUNS_ITS_BODY and depth > 0:
        return _parsed("".join(lines[1:]), depth - 1)
    for python in (source, None):  # plain Python as it is; anything else as IPython transforms it
        python = _transformed(source) if python is None else python
        if python is None:
            return None
        try:
            return python, ast.parse(python)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def python_source(source: str) -> str | None:
    """The Python that runs for ``source`` in an IPython kernel, as far as the namespace sees it.

    :param source: A code cell.
    :returns: Python code that parses, or ``None``.
    """
    return read_cell(source).python


def is_stub(node: ast.stmt) -> bool:
    """A function whose body, docstring aside, only raises ``NotImplementedError``: an exercise's stub."""
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return False
    body = node.body[1:] if (node.body and isinstance(node.body[0], ast.Expr)
                             and isinstance(node.body[0].value, ast.Constant)) else node.body
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def _binds(node: ast.stmt) -> set[str]:
    """The names one top-level statement binds."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names if alias.name != "*"}
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target] if getattr(node, "value", True) is not None else []
    else:
        return set()
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


@functools.lru_cache(maxsize=4096)
def read_cell(source: str) -> Reading:
    """Read a code cell once (:class:`Reading`); the same source is read from the cache after.

    :param source: A code cell.
    """
    parsed = _parsed(source, _MAGIC_DEPTH)
    if parsed is None:
        return Reading(None)
    python, tree = parsed
    last: dict[str, bool] = {}
    for node in tree.body:
        for name in _binds(node):
            last[name] = is_stub(node)
    return Reading(python, frozenset(last), frozenset(name for name, stub in last.items() if stub))


def defines(source: str, names: set[str] | frozenset[str]) -> set[str]:
    """Which of ``names`` a cell binds at its top level, read as the kernel runs it."""
    if not any(name in source for name in names):  # no need to parse a cell that never names one
        return set()
    return set(read_cell(source).bound & set(names))


def answered(source: str, functions: Mapping[str, int]) -> list[int]:
    """The tasks a cell answers: those of the task functions it binds at its top level, read as the
    kernel runs it (``def``, any assignment, annotated ones included, and imports). The one test of
    an answer cell: the grading copy (:func:`.notebook.student_cells`) and the similarity report
    (:mod:`.similarity`) both ask it, so they agree on what a student answered.

    :param source: A code cell.
    :param functions: ``{function name: task}`` of the lesson.
    :returns: The task numbers, sorted (empty: not an answer).
    """
    return sorted({functions[name] for name in defines(source, frozenset(functions))})


def _words(source: str) -> set[str]:
    """The names and keywords of a cell (numbers and strings' punctuation left out)."""
    return set(_WORD.findall(source))


def edit_of(source: str, instructor: str) -> bool:
    """Whether a cell that carries an instructor cell's id is that cell: blank, or an edit that keeps
    at least :data:`SAME_CELL` of the instructor cell's names (its values may all have changed);
    the student's own code under a copied id keeps next to none.

    :param source: The student's cell.
    :param instructor: The instructor's cell of that id.
    """
    mine, theirs = _words(source), _words(instructor)
    if not mine or not theirs:
        return not mine
    return len(mine & theirs) >= SAME_CELL * len(theirs)
