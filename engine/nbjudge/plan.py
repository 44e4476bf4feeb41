"""The grading plan: everything one grading run decides once, before any job starts.

:func:`build_plan` reads the solution, applies the parameters, draws every hidden check's inputs
from ``(seed, task)``, writes the probe cells and works out which tasks each expected-result cell
runs on. The workers get the plan's job part (:meth:`Plan.for_workers`): the solution's cells and
the probe cells, never the inputs' verdicts or the reference values; the grader keeps the rest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .events import WorkerPlan
from .grades import Marking
from .lessons import Lesson
from .notebook import SolutionCell, apply_params, dependencies, normalised_code, solution_cells
from .solution import check_solution
from .values import encode_input

__all__ = ["Plan", "build_plan", "probe_source"]


@dataclass(frozen=True)
class Plan:
    """One grading run's decisions.

    :param lesson: The lesson.
    :param seed: Seed of the hidden checks.
    :param params: The parameters put into the solution's parameters cell.
    :param cells: The solution's cells of a grading copy, parameters applied.
    :param instructor: The normalised code of every instructor cell of the solution.
    :param probes: ``(task, source)`` of each probe cell.
    :param inputs: ``{task: inputs}`` of each hidden check (grader side only).
    :param needs: ``{expected-result cell id: {task, ...}}`` it runs on.
    :param name_tasks: ``{name: {task, ...}}``: the tasks each name the solution's cells define needs.
    :param solution_digest: SHA-256 of the solution file (``--resume`` checks it).
    :param solution_path: Where the solution was read from.
    """

    lesson: Lesson
    seed: int
    params: Mapping[str, str]
    cells: tuple[SolutionCell, ...]
    instructor: frozenset[str]
    probes: tuple[tuple[int, str], ...]
    inputs: Mapping[int, dict[str, Any]]
    needs: Mapping[str, frozenset[int]]
    name_tasks: Mapping[str, frozenset[int]]
    solution_digest: str
    solution_path: Path

    @cached_property
    def marking(self) -> Marking:
        """The lesson's marking, built once per run (every score and report of the run uses this one)."""
        return Marking.of(self.lesson)

    def for_workers(self) -> WorkerPlan:
        """The part a worker needs, as JSON: cells, probe cells and the task functions."""
        return {"cells": [{"id": c.id, "source": c.source, "tags": list(c.tags)} for c in self.cells],
                "instructor": sorted(self.instructor), "probes": [(task, source) for task, source in self.probes],
                "functions": self.lesson.function_tasks()}

    def identity(self) -> dict[str, Any]:
        """What two runs must share for their results to be joined (``--resume``, ``merge``)."""
        return {"lesson": self.lesson.name, "seed": self.seed, "params": dict(self.params),
                "solution": self.solution_digest}


def probe_source(task: int, target: str, inputs: dict[str, Any]) -> str:
    """The probe cell of one hidden check: one call of :func:`.probe.run` with the inputs as literals.

    :param task: The task.
    :param target: ``"module:function"`` of the check's kernel part.
    :param inputs: The drawn inputs.
    """
    payload = {key: encode_input(value) for key, value in inputs.items()}
    runner = __package__ + ".probe"
    return (f"# hidden check of task {task}\n"
            f"__import__({runner!r}, fromlist=['run']).run({target!r}, {payload!r}, globals())\n")


def build_plan(lesson: Lesson, *, seed: int, params: Mapping[str, str], solution: Path | None = None) -> Plan:
    """Decide a grading run.

    :param lesson: The lesson.
    :param seed: Seed of the hidden checks.
    :param params: Overrides for the parameters cell, on top of the lesson's.
    :param solution: Another executed solution notebook than the lesson's.
    :returns: The plan.
    :raises ValueError: An unusable solution, or bad parameters.
    """
    path = Path(solution or lesson.solution)
    notebook = check_solution(path, lesson)  # parsed once, here
    data = path.read_bytes()
    every = solution_cells(notebook)
    params = {**lesson.params, **params}
    graded = [c for c in every if not lesson.skip_tags & set(c.tags)]
    graded = apply_params(graded, params)
    functions = lesson.function_tasks()
    inputs = {check.task: check.draw(np.random.default_rng([int(seed), check.task])) for check in lesson.checks}
    probes = tuple((check.task, probe_source(check.task, check.probe, inputs[check.task]))
                   for check in sorted(lesson.checks, key=lambda c: c.task))
    by_name, by_cell = dependencies(graded, functions)
    needs = {name: frozenset(tasks) for name, tasks in by_cell.items()}
    return Plan(lesson=lesson, seed=int(seed), params=params, cells=tuple(graded),
                instructor=frozenset(normalised_code(c.source) for c in every if not c.answer), probes=probes,
                inputs=inputs, needs=needs, name_tasks={name: frozenset(tasks) for name, tasks in by_name.items()},
                solution_digest=hashlib.sha256(data).hexdigest(), solution_path=path.resolve())
