"""pytest plugin loaded into the grader's nbval process (outside the sandbox).

* Kernels talk over IPC (Unix sockets) instead of loopback TCP, because a kernel in its own
  network namespace cannot reach the nbval process over TCP. ``BMNIST_GRADE_IPC`` names the
  socket path prefix.
* Every cell's outcome and outputs are written as JSON to ``BMNIST_GRADE_RESULTS``, in this
  process, where the student's code cannot reach them.
"""

from __future__ import annotations

import json
import os
import time
from queue import Empty

import pytest

_RESULTS: list[dict] = []
_MAX_TEXT = 20_000


class KernelDied(RuntimeError):
    """The kernel process is gone: it exited, or a resource limit killed it."""


def _watch_kernel_death() -> None:
    """Make nbval notice a dead kernel within a second instead of waiting out the cell timeout."""
    from nbval.kernel import RunningKernel

    original = RunningKernel.get_message

    def get_message(self, stream, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                return original(self, stream, timeout=step)
            except Empty:
                if not self.is_alive():
                    raise KernelDied("Kernel died: it exited or was stopped by a resource limit") from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    RunningKernel.get_message = get_message


def pytest_configure(config):
    _watch_kernel_death()
    prefix = os.environ.get("BMNIST_GRADE_IPC")
    if not prefix:
        return
    import nbval.kernel
    from jupyter_client.manager import KernelManager

    class IpcKernelManager(KernelManager):
        """A kernel manager whose kernels listen on Unix sockets under ``prefix``."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = prefix

    nbval.kernel.KernelManager = IpcKernelManager


def _outputs(item) -> list[dict]:
    """The cell's fresh outputs as nbformat dicts, text only, long text cut."""
    outputs = []
    for out in getattr(item, "test_outputs", None) or []:
        entry = {k: out[k] for k in ("output_type", "name", "execution_count", "ename") if k in out}
        if "text" in out:
            entry["text"] = str(out["text"])[:_MAX_TEXT]
        if "evalue" in out:
            entry["evalue"], entry["traceback"] = str(out["evalue"])[:_MAX_TEXT], []
        if "data" in out:
            entry["data"] = {k: str(v)[:_MAX_TEXT] for k, v in out["data"].items() if k == "text/plain"}
            entry["metadata"] = {}
        outputs.append(entry)
    return outputs


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cell = getattr(item, "cell", None)
    if cell is None or (report.when != "call" and report.passed):
        return
    _RESULTS.append({
        "id": cell.get("id"),
        "tags": list(cell.get("metadata", {}).get("tags", [])),
        "when": report.when,
        "outcome": "xfailed" if hasattr(report, "wasxfail") else report.outcome,
        "message": str(report.longrepr)[-_MAX_TEXT:] if report.failed else "",
        "outputs": _outputs(item),
    })


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("BMNIST_GRADE_RESULTS")
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"exitstatus": int(exitstatus), "cells": _RESULTS}, f)
        os.replace(tmp, path)
