"""The grading worker: one process per notebook, started and limited by :mod:`.run`.

::

    python -m <package>.worker JOB.json

It reads the submission, builds the grading copy from the run's plan (:mod:`.plan`), starts the
sandboxed kernel and runs the copy cell by cell with nbclient. For every cell it appends one JSON
line to the job's results file: how the cell ended (from the runner's own knowledge: its timer,
the kernel's liveness, the execute reply), its text output, and, for hidden checks, the values the
kernel sent. Nothing is judged here; the grader process reads the lines and decides. Reading and
merging run here, under the job's memory and time limits, so that a monstrous notebook costs only
its own job.

An expected-result cell runs as :func:`.notebook.checked_source` rewrites it: its own lines come as
outputs of :data:`.values.PRINTED_MIME`, between a begin and an end mark. Its record's ``text``
holds those lines and whatever came outside the marks (a hook's output before or after the cell);
what the code it calls printed between the marks goes to ``ignored``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import nbformat

from .events import CellRecord, CellStatus, CopyCell, CopyRecord, Job, WorkerPlan
from .figures import CELL_FIGURES, JOB_FIGURE_CHARS, png_base64
from .limits import PROCESS_LIMIT_MARK
from .notebook import (
    Cell,
    InvalidNotebook,
    SolutionCell,
    build_grading_copy,
    checked_source,
    read_submission,
    stubbed_tasks,
)
from .parent_death import die_with_parent  # noqa: E402
from .values import PRINTED_MIME, RESULTS_BUDGET, TEXT_CHARS, VALUES_MIME, bounded_values  # noqa: E402

__all__ = ["main"]

_TEXT_LIMIT = TEXT_CHARS
_TIMEOUT_ENAME = "GraderCellTimeout"
_RESERVE = 64 * 1024  # kept back for the records that end a job
_MAX_KERNELS = 4  # kernels per notebook: the first, and one more after each cell that ended one
_RUNNER = f"{__package__}.probe"  # the kernel's side: hidden checks, and an expected-result cell's own lines
_ASKED_EXIT = "it asked the kernel to exit: exit(), quit() or get_ipython().ask_exit()"


def _clean(text: object, limit: int) -> str:
    """Text as the grader may store it: at most ``limit`` characters, lone surrogates replaced."""
    return str(text)[:limit].encode("utf-8", "replace").decode("utf-8")


def _client_class() -> type[Any]:
    from nbclient import NotebookClient

    class Client(NotebookClient):
        """nbclient that keeps a bounded record of each cell's text and values instead of its outputs.

        ``output`` and ``clear_output`` are replaced, not extended: the grader needs the text and the
        values only, and keeping every output (a print flood, a huge image) would let one notebook
        fill the worker's memory. Values count only in a probe cell (``probe``); anywhere else they
        are dropped unread. PNG figures are kept in an expected-result cell only (``figures``),
        within :mod:`.figures`' bounds; one past them is counted, not kept.
        """

        captured: dict[str, Any] = {}
        probe: bool = False
        expected: bool = False  # an expected-result cell: its own lines, marks and figures count
        figure_chars: int = 0  # of every figure kept by this client

        def output(self, outs: list[Any], msg: dict[str, Any], display_id: str | None,
                   cell_index: int) -> None:
            kind, content = msg["msg_type"], msg["content"]
            cap = self.captured
            if not isinstance(content, dict):
                raise _Malformed
            where = self.destination()
            if kind == "stream" and content.get("name") == "stdout":
                _append(cap, where, content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                data = content.get("data")
                data = data if isinstance(data, dict) else {}
                if VALUES_MIME in data:
                    if self.probe:  # a probe sends exactly one; anything else makes the values void
                        cap["values_count"] = cap.get("values_count", 0) + 1
                        cap["values"] = bounded_values(data[VALUES_MIME])
                elif PRINTED_MIME in data:
                    if self.expected:  # anywhere else it is dropped unread
                        _printed(cap, data[PRINTED_MIME])
                elif "text/plain" in data:
                    _append(cap, where, _clean(data["text/plain"], _TEXT_LIMIT) + "\n")
                if self.expected and "image/png" in data:
                    self._keep_figure(data["image/png"])
            elif kind == "error":
                cap["error"] = {"ename": _clean(content.get("ename", ""), 200),
                                "evalue": _clean(content.get("evalue", ""), 2000)}
            return None

        def _keep_figure(self, data: object) -> None:
            figure, cap = png_base64(data), self.captured
            kept = cap.setdefault("figures", [])
            if figure and len(kept) < CELL_FIGURES and self.figure_chars + len(figure) <= JOB_FIGURE_CHARS:
                kept.append(figure)
                self.figure_chars += len(figure)
            else:
                cap["figures_left_out"] = cap.get("figures_left_out", 0) + 1

        def clear_output(self, outs: list[Any], msg: dict[str, Any], cell_index: int) -> None:
            where = self.destination()
            self.captured.pop(where, None)
            if where == "text":
                self.captured.pop("figures", None)

        def destination(self) -> str:
            """Where stdout goes now: between an expected-result cell's marks it is what the code
            the cell calls printed (``ignored``); anywhere else it is the cell's ``text``."""
            return "ignored" if self.expected and self.captured.get("phase") == "begin" else "text"

    return Client


class _Malformed(Exception):
    """The kernel sent a message the worker cannot read."""


def _append(cap: dict[str, Any], key: str, text: object) -> None:
    """Add ``text`` to ``cap[key]``, keeping at most :data:`_TEXT_LIMIT` characters (once full,
    what comes is dropped without being copied)."""
    kept = cap.get(key, "")
    room = _TEXT_LIMIT - len(kept)
    if room > 0:
        cap[key] = kept + _clean(text, room)


_NEXT_PHASE = {None: "begin", "begin": "end"}


def _printed(cap: dict[str, Any], sent: object) -> None:
    """One output of :data:`PRINTED_MIME` in an expected-result cell: a line of its own, or a mark.

    A line always counts; a mark counts only in order (begin once, then end once). A mark sent from
    elsewhere thus never keeps one of the cell's own lines from counting.
    """
    if not isinstance(sent, dict):
        return
    if isinstance(sent.get("text"), str):
        _append(cap, "text", sent["text"])
    elif sent.get("mark") == _NEXT_PHASE.get(cap.get("phase")):
        cap["phase"] = sent["mark"]


def _asked_to_exit(reply: object) -> bool:
    """Whether a cell's execute reply says that IPython ends the kernel after it: ``exit()``,
    ``quit()`` and ``get_ipython().ask_exit()`` reply first and stop the kernel about 0.1 s later."""
    payload = reply.get("payload") if isinstance(reply, dict) else None
    return isinstance(payload, list) and any(
        isinstance(p, dict) and p.get("source") == "ask_exit" and not p.get("keepkernel") for p in payload)


class _Results:
    """The job's results file: one JSON line per record, within :data:`RESULTS_BUDGET` bytes."""

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.written = 0

    def write(self, record: Mapping[str, Any], *, final: bool = False) -> bool:
        """Append ``record``; ``False`` (and nothing written) when it would pass the budget.

        :param final: A record that ends the job, which may use the reserve.
        """
        line = json.dumps(record, ensure_ascii=True) + "\n"
        if self.written + len(line) > RESULTS_BUDGET - (0 if final else _RESERVE):
            return False
        self.handle.write(line)
        self.handle.flush()
        self.written += len(line)
        return True


def run_job(job: Job) -> None:
    """Build and run one grading copy; append one JSON line per event to ``job["results"]``.

    :param job: ``submission`` (a file, or ``None`` for the reference run), ``plan`` (the file of
        :meth:`.plan.Plan.for_workers`), ``cell_timeout``, ``kernel_name``, ``ipc`` (socket path
        prefix), ``home`` (the kernel's working folder), ``results``.
    """
    fd = os.open(job["results"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # the grader's alone
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        results = _Results(handle)
        plan: WorkerPlan = json.loads(Path(job["plan"]).read_text())
        solution = [SolutionCell(c["id"], c["source"], tuple(c["tags"])) for c in plan["cells"]]
        student = None
        if job["submission"] is not None:
            try:
                student = read_submission(Path(job["submission"]).read_bytes())
            except InvalidNotebook as exc:
                results.write({"event": "invalid", "note": _clean(exc, 2000)}, final=True)
                return
        copy = build_grading_copy(student, solution, [(task, source) for task, source in plan["probes"]],
                                  functions=plan["functions"], instructor=set(plan["instructor"]))
        cells: list[CopyCell] = [{"role": c.role, "name": c.name, "task": c.task, "expected": c.expected}
                                 for c in copy]
        stubbed = stubbed_tasks(copy, plan["functions"]) if student is not None else []
        described: CopyRecord = {"event": "copy", "cells": cells, "stubbed": stubbed}
        if not results.write(described):
            results.write({"event": "invalid", "note": "the notebook has more cells than the grader reads"}, final=True)
            return
        nb = nbformat.v4.new_notebook(metadata={  # type: ignore[no-untyped-call]
            "kernelspec": {"name": job["kernel_name"], "language": "python", "display_name": job["kernel_name"]}})
        nb.cells = [nbformat.v4.new_code_cell(_runnable(c), id=f"c{i}")  # type: ignore[no-untyped-call]
                    for i, c in enumerate(copy)]
        _execute(nb, job, results, probes={i for i, c in enumerate(copy) if c.role == "probe"},
                 expected={i for i, c in enumerate(copy) if c.role == "given" and c.expected})


def _runnable(cell: Cell) -> str:
    """The code the kernel runs for a cell of the copy: an expected-result cell as :func:`.notebook.checked_source`."""
    return checked_source(cell.source, runner=_RUNNER) if cell.role == "given" and cell.expected else cell.source


def _as_sent(obj: Any) -> Any:
    return obj


def _exit_of(km: Any) -> str:
    """How the kernel ended, in the grader's words (its launcher's exit status)."""
    process = getattr(getattr(km, "provisioner", None), "process", None)
    code = None
    for _ in range(20):
        code = process.poll() if process is not None else None
        if code is not None:
            break
        time.sleep(0.05)
    if code is None:
        return "it stopped answering"
    if code > 128:
        name = {9: "SIGKILL (the memory limit, or a kill)", 11: "SIGSEGV (a crash)", 6: "SIGABRT"}.get(code - 128)
        return f"it was killed by signal {code - 128}" + (f", {name}" if name else "")
    return f"it exited with status {code}"


def _execute(nb: Any, job: Job, results: _Results, *, probes: set[int], expected: set[int]) -> None:
    """Run the copy; where a cell ends the kernel, run the copy again in a fresh kernel without it.

    Every cell's record is written as it ends; a later attempt's record of a cell replaces an
    earlier one. A cell that ended a kernel keeps its ``dead`` record and is left out of every
    later attempt, so it costs only what depends on it. At most :data:`_MAX_KERNELS` kernels.
    """
    fatal: set[int] = set()
    for _attempt in range(_MAX_KERNELS):
        outcome = _attempt_copy(nb, job, results, probes=probes, expected=expected, skip=fatal)
        if outcome is None:
            return
        fatal.add(outcome[0])
        results.write({"event": "restart", "after": outcome[0], "how": outcome[1]}, final=True)
    results.write({"event": "gave-up", "kernels": _MAX_KERNELS}, final=True)


def _attempt_copy(nb: Any, job: Job, results: _Results, *, probes: set[int], expected: set[int],
                  skip: set[int]) -> tuple[int, str] | None:
    """One kernel's run of the copy, leaving out ``skip``.

    :returns: ``(index, how)`` of the cell that ended the kernel; ``None`` when the copy ran to its
        end, or the job ends here (no kernel, unreadable traffic, output budget spent).
    """
    from jupyter_client import session
    from jupyter_client.manager import AsyncKernelManager
    from nbclient.exceptions import DeadKernelError

    # The dates of the messages' headers stay text: parsing them was a fifth of the worker's cost per
    # message (a flood of output), and nothing here reads a date (``record_timing=False``).
    session.extract_dates = _as_sent

    # A timeout is known from nbclient's own timer: an interrupted cell gets this reply, whose
    # secret the kernel never sees, so no output of student code can pass for it.
    token = secrets.token_hex(16)
    replies: dict[int, dict[str, Any]] = {}
    # The async manager: nbclient's pollers (iopub, execute reply, kernel alive) must not block one another.
    km = AsyncKernelManager(kernel_name=job["kernel_name"], transport="ipc", ip=job["ipc"])
    client = _client_class()(
        nb, km=km, timeout=job["cell_timeout"], interrupt_on_timeout=True, allow_errors=True, startup_timeout=60,
        error_on_timeout={"ename": _TIMEOUT_ENAME, "evalue": token, "traceback": []},
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(cell_index, execute_reply),
        resources={"metadata": {"path": job["home"]}}, record_timing=False,
        shutdown_kernel="immediate")  # everything is recorded; the sandbox cleans up
    mark = Path(job["home"]) / PROCESS_LIMIT_MARK
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(client.setup_kernel())
        except Exception as exc:  # noqa: BLE001 - any failure to start is the sandbox's
            results.write({"event": "kernel-failed", "note": _clean(f"{type(exc).__name__}: {exc}", 300)}, final=True)
            return None
        for index, cell in enumerate(nb.cells):
            if index in skip:
                continue
            client.captured, client.probe, client.expected = {}, index in probes, index in expected
            status: CellStatus = "ok"
            start = time.perf_counter()
            try:
                client.execute_cell(cell, index, store_history=False)
            except DeadKernelError:
                status = "dead"
            except Exception:  # noqa: BLE001 - a bad signature, a malformed message: the kernel's traffic
                status = "malformed"
            cap = client.captured
            content = (replies.get(index) or {}).get("content", {})
            if status == "ok" and content.get("ename") == _TIMEOUT_ENAME and content.get("evalue") == token:
                status = "timeout"
            elif status == "ok" and "error" in cap:
                status = "error"
            record: CellRecord = {"event": "cell", "index": index, "status": status, "text": cap.get("text", ""),
                      "seconds": round(time.perf_counter() - start, 3), "error": cap.get("error"),
                      "values": cap.get("values"), "values_count": cap.get("values_count", 0)}
            if cap.get("ignored"):
                record["ignored"] = cap["ignored"]
            if cap.get("figures") or cap.get("figures_left_out"):
                record["figures"], record["figures_left_out"] = cap.get("figures", []), cap.get("figures_left_out", 0)
            if mark.exists():  # the sandbox stopped the job at its process limit
                mark.unlink()
                record["limit"], record["status"] = "processes", "dead"
                record["how"] = "it started more processes than the job's limit, and the job was stopped"
            elif status == "dead":
                record["how"] = _exit_of(km)
            elif status in ("ok", "error") and _asked_to_exit(content):  # else the next cell would be blamed
                record["status"], record["how"] = "dead", _ASKED_EXIT
            if not results.write(record):
                results.write({"event": "cell", "index": index, "status": "overflow", "text": "", "seconds": 0,
                               "error": None, "values": None, "values_count": 0}, final=True)
                return None
            if record["status"] == "dead":
                return index, record["how"]
            if status == "malformed":
                return None
        results.write({"event": "done"}, final=True)
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m <package>.worker JOB.json``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {__spec__.name if __spec__ else 'worker'} JOB.json", file=sys.stderr)
        return 2
    die_with_parent()  # when the grader is gone, however it ended
    # Past RLIMIT_FSIZE a write fails with EFBIG instead of killing the worker: the budget of the
    # results file (_Results) is what stops a job; the limit only backs it up. The sandbox's launcher
    # restores the default for the kernel.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    job: Job = json.loads(Path(args[0]).read_text())
    if os.getppid() != job["grader_pid"]:  # the grader died before the line above took effect
        return 3
    os.chdir(job["home"])
    run_job(job)
    return 0


if __name__ == "__main__":
    sys.exit(main())
