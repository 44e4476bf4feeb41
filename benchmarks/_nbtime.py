"""Shared by the benchmarks: run a notebook in a fresh kernel and time its cells by lesson part."""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbclient import NotebookClient

# Tags of the kit's cells that open a part of the lesson; untagged cells belong to the part above.
_TAG_ROLES = {"setup": "setup", "parameters": "setup", "data": "data", "task-1": "dataloader",
              "task-2": "untrained", "task-3": "gradients", "task-4": "training", "task-5": "examples",
              "explore": "explore"}
OTHER = "kernel start, between cells"


@contextmanager
def _environ(**values: str | None):
    saved = {k: os.environ.get(k) for k in values}
    try:
        for key, value in values.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def execute(nb: nbformat.NotebookNode, *, cwd: Path, cache_dir: Path | None, kernel_name: str = "python3",
            xla_flags: str | None = None) -> tuple[nbformat.NotebookNode, float]:
    """Execute ``nb`` in a fresh kernel, the kernel start included in the time.

    :param nb: The notebook; executed in place.
    :param cwd: Working folder of the kernel.
    :param cache_dir: JAX compilation cache of the kernel, or ``None`` for none at all.
    :param kernel_name: Kernel spec to start.
    :param xla_flags: ``XLA_FLAGS`` of the kernel, or ``None`` for none.
    :returns: The executed notebook and the wall seconds from asking for a kernel to the last cell's
        reply (the kernel's shutdown is left out).
    """
    cache = {"JAX_COMPILATION_CACHE_DIR": str(cache_dir) if cache_dir is not None else None,
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.05" if cache_dir is not None else None,
             "XLA_FLAGS": xla_flags}
    with _environ(**cache):
        start = datetime.now(timezone.utc)
        # --log-level: ipykernel's start-up warning about plain TCP on localhost is noise here.
        NotebookClient(nb, timeout=1200, kernel_name=kernel_name, resources={"metadata": {"path": str(cwd)}},
                       extra_arguments=["--log-level=ERROR"]).execute()
    # The kernel's shutdown after the last reply is not part of what a user waits for.
    replies = [_stamp(c.metadata.get("execution", {}).get("shell.execute_reply"))
               for c in nb.cells if c.cell_type == "code"]
    return nb, (max(r for r in replies if r is not None) - start).total_seconds()


def _stamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def cell_seconds(cell) -> float:
    """Seconds between the kernel receiving a cell and its reply, from nbclient's time stamps."""
    stamps = cell.metadata.get("execution", {})
    start, end = _stamp(stamps.get("iopub.execute_input")), _stamp(stamps.get("shell.execute_reply"))
    return (end - start).total_seconds() if start and end else 0.0


def role_seconds(nb: nbformat.NotebookNode, total: float | None = None) -> dict[str, float]:
    """Seconds per part of the lesson (``metadata.bench_role``, else the kit's cell tags).

    :param nb: An executed notebook.
    :param total: The run's wall time; if given, the rest goes under :data:`OTHER`.
    :returns: Seconds keyed by part, in notebook order.
    """
    out: dict[str, float] = {}
    role = "setup"
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        role = cell.metadata.get("bench_role") or next((_TAG_ROLES[t] for t in tags if t in _TAG_ROLES), role)
        out[role] = out.get(role, 0.0) + cell_seconds(cell)
    if total is not None:
        out[OTHER] = total - sum(out.values())
    return out


def cell_table(nb: nbformat.NotebookNode) -> list[tuple[str, float]]:
    """Per-cell seconds, each cell named by its id (the kit's cells) or its part (the baseline's)."""
    return [(c.metadata.get("bench_role") or c.get("id", "?"), cell_seconds(c)) for c in nb.cells
            if c.cell_type == "code"]
