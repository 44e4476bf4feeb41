"""Cell tags the engine reads: which task a cell belongs to, and which cells are expected results.

The conventions are nbgrader's and papermill's, not a lesson's: ``task-N`` marks the cells of task
``N``, ``expected-result`` a cell whose output every student's copy is compared with, and
``parameters`` the one settings cell (papermill).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["EXPECTED_TAG", "PARAMETERS_TAG", "cell_tags", "task_of", "task_of_tags"]

EXPECTED_TAG = "expected-result"
PARAMETERS_TAG = "parameters"
_TASK_TAG = re.compile(r"task-(\d+)")


def cell_tags(cell: Mapping[str, Any]) -> list[str]:
    """The tags of a notebook cell (an empty list when it has none or they are malformed).

    :param cell: An nbformat cell, or the plain dict of one.
    """
    metadata = cell.get("metadata")
    tags = metadata.get("tags") if isinstance(metadata, Mapping) else None
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def task_of_tags(tags: list[str]) -> int | None:
    """``N`` for the first tag ``task-N``, else ``None``.

    :param tags: A cell's tags.
    """
    for tag in tags:
        match = _TASK_TAG.fullmatch(tag)
        if match:
            return int(match.group(1))
    return None


def task_of(cell: Mapping[str, Any]) -> int | None:
    """``N`` for a cell tagged ``task-N``, else ``None``.

    :param cell: An nbformat cell, or the plain dict of one.
    """
    return task_of_tags(cell_tags(cell))
