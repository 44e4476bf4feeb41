"""Refuse a notebook that cannot serve as a lesson's solution, before any job starts.

A solution is an executed notebook with answer cells and expected-result cells for every task of
the lesson, each expected-result cell with its stored outputs, and no stub of an unanswered task.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .lessons import Lesson
from .tags import EXPECTED_TAG, cell_tags, task_of

__all__ = ["NotASolution", "cell_source", "check_solution"]

_FIX = ("give the lesson's executed solution notebook, or run all cells of your own variant and save it with its "
        "outputs")


class NotASolution(ValueError):
    """A notebook given as the solution is not an executed solution of the lesson."""


def cell_source(cell: Mapping[str, Any]) -> str:
    """A notebook cell's source as one text (nbformat stores it as text or a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def check_solution(path: Path, lesson: Lesson) -> dict[str, Any]:
    """Check a solution notebook against the lesson's task list.

    :param path: The notebook (``--solution``, or the lesson's own).
    :param lesson: The lesson it should answer.
    :returns: The notebook's JSON, parsed (read it from here: the solution is parsed once).
    :raises NotASolution: What is wrong, and how to get a usable notebook.
    """
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotASolution(f"--solution {path}: cannot read it as a notebook ({exc}); {_FIX}") from None
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise NotASolution(f"--solution {path}: not an nbformat 4 notebook; {_FIX}")
    code = [c for c in nb["cells"] if isinstance(c, dict) and c.get("cell_type") == "code"]
    stubs = [c.get("id", "?") for c in code if lesson.stub.search(cell_source(c))]
    if stubs:
        raise NotASolution(f"--solution {path}: this is the exercise, not the solution (stubs in cells {stubs}); "
                           f"{_FIX}")
    expected = [c for c in code if EXPECTED_TAG in cell_tags(c)]
    answered = {task_of(c) for c in code if EXPECTED_TAG not in cell_tags(c)}
    missing_expected = [n for n in lesson.tasks if n not in {task_of(c) for c in expected}]
    missing_answers = [n for n in lesson.tasks if n not in answered]
    if missing_expected or missing_answers:
        what = [f"expected-result cells of task(s) {missing_expected}"] if missing_expected else []
        what += [f"answer cells of task(s) {missing_answers}"] if missing_answers else []
        raise NotASolution(f"--solution {path}: no {' and no '.join(what)} (cells tagged task-N); {_FIX}")
    unrun = [c.get("id", "?") for c in expected if not c.get("outputs")]
    if unrun:
        raise NotASolution(f"--solution {path}: expected-result cells {unrun} have no stored outputs; {_FIX}")
    return nb
