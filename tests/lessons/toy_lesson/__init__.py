"""A toy lesson for the grading engine's own tests: two tasks on numpy alone, graded in seconds.

Task 1 writes ``mean(xs)``, task 2 ``standardise(xs)`` (which may call ``mean``). It shows what a
lesson declares (see docs/engine.md, "Adding a lesson"): the solution notebook, the tasks and their
functions, one hidden check per task in three parts, and the grading parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from nbjudge import Check, Lesson, close

__all__ = ["LESSON"]


def _draw_values(rng: np.random.Generator) -> dict:
    """A vector of 5 to 20 values, mean and spread of order one."""
    return {"xs": rng.normal(rng.uniform(-2, 2), rng.uniform(0.5, 2), int(rng.integers(5, 20)))}


def _judge_mean(inputs: dict, got: dict, ref: dict) -> None:
    close(got.get("mean"), ref.get("mean"), "the mean")


def _judge_standardise(inputs: dict, got: dict, ref: dict) -> None:
    close(got.get("standardised"), ref.get("standardised"), "the standardised values")


LESSON = Lesson(
    name="toy",
    solution=Path(__file__).resolve().parent / "solution.ipynb",
    tasks={1: ("mean",), 2: ("standardise",)},
    checks=(Check(1, _draw_values, f"{__name__}.probes:mean", _judge_mean),
            Check(2, _draw_values, f"{__name__}.probes:standardise", _judge_standardise)),
    params={"SCALE": "2"},
    kernel_modules=(f"{__name__}.probes",),
)
