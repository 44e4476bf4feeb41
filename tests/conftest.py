"""Shared fixtures: the solution's own functions, MNIST, and paths."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parent.parent
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def local_mirror() -> str:
    """The MNIST mirror for tests: $BMNIST_MIRRORS if set, else ../shared/data/mnist."""
    return os.environ.get("BMNIST_MIRRORS") or SHARED_MNIST.as_uri()


@pytest.fixture(scope="session")
def solution():
    """The solution notebook's definitions (setup, parameters, data, answers, helpers) as a namespace."""
    from tests.solution_ns import solution_namespace

    return solution_namespace()
