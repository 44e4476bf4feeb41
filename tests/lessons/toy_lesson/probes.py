"""The kernel's part of the toy lesson's hidden checks."""

from __future__ import annotations

import numpy as np
from nbjudge.probe import attempt, student


def mean(inputs: dict, namespace: dict) -> dict:
    """Task 1: the student's mean of the drawn vector."""
    return {"mean": attempt(lambda: np.asarray(student(namespace, "mean")(inputs["xs"]), np.float64))}


def standardise(inputs: dict, namespace: dict) -> dict:
    """Task 2: the student's standardised vector."""
    return {"standardised": attempt(lambda: np.asarray(student(namespace, "standardise")(inputs["xs"]), np.float64))}
