"""A notebook's code without its saved outputs: what the grader keeps of a submitted file.

The grader never uses what a student's notebook printed when it was saved, only its code, so a
notebook that is large because of its outputs (an array printed in full, many figures) grades like
any other. Large files are stripped in a child process under a memory and time limit::

    python -m <package>.strip < NOTEBOOK > STRIPPED

so that a hostile file costs the grader neither memory nor time beyond those limits.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

from .tags import cell_tags

__all__ = ["STRIP_ABOVE", "code_only", "strip_outputs"]

STRIP_ABOVE = 2 * 1024 * 1024  # bytes: smaller files are kept as they are
_MEMORY = 3 * 1024**3  # address space of the child that strips one file
_SECONDS = 120
_KEPT = ("cell_type", "source", "id", "metadata")


def strip_outputs(data: bytes) -> bytes:
    """The notebook with only each cell's type, source, id and tags; compact JSON.

    :param data: A notebook file.
    :raises ValueError: Not JSON of a notebook (``json.JSONDecodeError``, ``UnicodeDecodeError``).
    """
    raw = json.loads(data.decode("utf-8-sig"))
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise ValueError("not a notebook with a list of cells")
    cells = []
    for cell in raw["cells"]:
        if isinstance(cell, dict):
            kept = {k: cell[k] for k in _KEPT if k in cell}
            tags = cell_tags(cell)
            kept["metadata"] = {"tags": tags} if tags else {}
            cells.append(kept)
    slim = {k: raw[k] for k in ("nbformat", "nbformat_minor", "worksheets") if k in raw}
    return json.dumps({**slim, "cells": cells}, ensure_ascii=True).encode()


def code_only(data: bytes) -> bytes:
    """``data`` stripped of its outputs when it is large (in a limited child process), else as it is.

    A file that cannot be stripped (not JSON, too deep, past the limits) is returned as it is: the
    worker then reports what is wrong with it, under its own limits.

    :param data: A notebook file's bytes.
    """
    if len(data) <= STRIP_ABOVE:
        return data
    try:
        done = subprocess.run([sys.executable, "-m", __spec__.name], input=data, capture_output=True,
                              timeout=_SECONDS, preexec_fn=_limit, check=False)  # noqa: PLW1509
    except subprocess.TimeoutExpired:
        return data
    return done.stdout if done.returncode == 0 and done.stdout else data


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY, _MEMORY))


def main() -> int:
    """Strip the notebook on stdin to stdout; exit 1 where it is no notebook."""
    sys.setrecursionlimit(10_000)
    try:
        sys.stdout.buffer.write(strip_outputs(sys.stdin.buffer.read()))
    except (ValueError, RecursionError, MemoryError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
