"""The worker's protocol: the records a worker appends to its job's results file, one JSON line
each, and the grader's reading of them (:func:`run_of`).

A worker (:mod:`.worker`) writes, in order: ``copy`` (the grading copy's cells), then one ``cell``
record per cell as it ends (a later record of a cell replaces an earlier one), ``restart`` and
``gave-up`` where a cell ended the kernel, and ``done``; or ``invalid`` / ``kernel-failed`` alone.
A probe's values travel once, as JSON data in its ``cell`` record (``values``); the worker drops
values past :data:`.values.VALUES_BYTES` or :func:`.values.countable` (``None`` then).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict, cast

__all__ = ["CellError", "CellRecord", "CellStatus", "CopyCell", "CopyRecord", "Job", "JobRun", "PlanCell", "Role",
           "WorkerPlan", "run_of"]

CellStatus = Literal["ok", "error", "timeout", "dead", "malformed", "overflow"]
Role = Literal["given", "student", "probe"]  # who wrote a cell of the grading copy: :class:`.notebook.Cell`


class Job(TypedDict):
    """``JOB.json``: what the grader (:mod:`.run`) tells one worker.

    :param submission: The notebook file; ``None``: the reference run (the solution's own copy).
    :param plan: The file of :class:`WorkerPlan`.
    :param cell_timeout: Seconds per cell.
    :param kernel_name: The sandboxed kernel's spec.
    :param ipc: The kernel's socket path prefix.
    :param home: The kernel's working folder.
    :param results: The job's results file, where the worker appends its records.
    :param grader_pid: The grader's process id (the worker exits where its parent is another).
    """

    submission: str | None
    plan: str
    cell_timeout: int
    kernel_name: str
    ipc: str
    home: str
    results: str
    grader_pid: int


class PlanCell(TypedDict):
    """One solution cell of a grading copy (:class:`.notebook.SolutionCell`), as JSON."""

    id: str
    source: str
    tags: list[str]


class WorkerPlan(TypedDict):
    """The part of a run's plan a worker needs (:meth:`.plan.Plan.for_workers`), as JSON.

    :param cells: The solution's cells of the grading copy, parameters applied.
    :param instructor: The normalised code of every instructor cell.
    :param probes: ``[task, source]`` of each hidden check.
    :param functions: ``{function name: task}`` of the lesson.
    """

    cells: list[PlanCell]
    instructor: list[str]
    probes: list[tuple[int, str]]
    functions: dict[str, int]


class CopyCell(TypedDict):
    """One cell of the grading copy, as the worker describes it (:class:`.notebook.Cell` without its code)."""

    role: Role
    name: str
    task: int | None
    expected: bool


class CopyRecord(TypedDict):
    """``{"event": "copy"}``: the grading copy, and the tasks still the exercise's stub
    (:func:`.notebook.stubbed_tasks`)."""

    event: Literal["copy"]
    cells: list[CopyCell]
    stubbed: list[int]


class CellError(TypedDict):
    """The error a cell raised: its exception's name and value, cut."""

    ename: str
    evalue: str


class _CellRecord(TypedDict):
    event: Literal["cell"]
    index: int
    status: CellStatus
    text: str
    seconds: float
    error: CellError | None
    values: Any  # a probe's values, JSON data (:func:`.values.decode_values`), or None
    values_count: int


class CellRecord(_CellRecord, total=False):
    """``{"event": "cell"}``: how one cell of the copy ended, what it printed, and a probe's values.

    :param ignored: What the code an expected-result cell called printed (never compared).
    :param figures: An expected-result cell's PNGs (base64); ``figures_left_out``: how many not kept.
    :param limit: ``"processes"`` where the sandbox stopped the job at its process limit.
    :param how: How the kernel ended, where the status is ``dead``.
    """

    ignored: str
    figures: list[str]
    figures_left_out: int
    limit: str
    how: str


@dataclass(frozen=True)
class JobRun:
    """The records of one job, read once: the copy, each cell's latest record, the stubbed tasks.

    :param cells: The grading copy's cells (empty where the worker sent none).
    :param records: Cell index -> that cell's latest record.
    :param stubbed: The tasks the worker found still the exercise's stub.
    """

    cells: list[CopyCell] = field(default_factory=list)
    records: dict[int, CellRecord] = field(default_factory=dict)
    stubbed: frozenset[int] = frozenset()


def run_of(events: Iterable[Mapping[str, Any]]) -> JobRun:
    """Read a job's records (:attr:`.run.RunResult.events`) into a :class:`JobRun`.

    :param events: The records, in the order the worker wrote them.
    """
    events = list(events)
    copy = next((e for e in events if e.get("event") == "copy"), None)
    records = {e["index"]: cast(CellRecord, e) for e in events
               if e.get("event") == "cell" and isinstance(e.get("index"), int)}
    return JobRun(cells=list(copy["cells"]) if copy else [], records=records,
                  stubbed=frozenset(copy.get("stubbed") or []) if copy else frozenset())
