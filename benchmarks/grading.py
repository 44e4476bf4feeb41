"""Grader cost, measured side by side in one run.

* seconds per submission (the nbval run in the sandbox, kernel start included);
* overhead: that time over a bare nbclient run of the same grading copy, no sandbox (goal <= 1.3);
* speed-up of ``--jobs 2`` over ``--jobs 1`` on the same class.

Run: ``python benchmarks/grading.py [--class-size 4]`` (after ``make data``). Uses shortened
training (NUM_STEPS=600) as the grading tests do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from bmnist_helpers.exercise import SOLUTION_IPYNB
from bmnist_helpers.grading import cli
from bmnist_helpers.grading.notebook import apply_params, build_grading_copy, read_submission

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "tests" / "fixtures" / "submissions" / "full-marks.ipynb"
PARAMS = {"NUM_STEPS": "600", "TARGET_ACCURACY": "0.95"}
SEED = 1


def bare_seconds(runs: int) -> float:
    """Median wall time of nbclient running the grading copy in a fresh, unsandboxed kernel."""
    solution = apply_params(nbformat.read(SOLUTION_IPYNB, as_version=4), PARAMS)
    copy = build_grading_copy(read_submission(SUBMISSION), solution, seed=SEED)
    times = []
    for _ in range(runs):
        nb = nbformat.from_dict(copy)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3").execute()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def graded_class(folder: Path, jobs: int) -> tuple[float, list[float]]:
    """Wall time of grading the class, and the per-submission seconds."""
    start = time.perf_counter()
    grades = cli.grade([folder], out=folder.parent / f"out-{jobs}", jobs=jobs, seed=SEED, params=PARAMS,
                       timeout_s=600, log=lambda line: None)
    assert all(g.status == "ok" for g in grades), [(g.submission, g.status) for g in grades]
    return time.perf_counter() - start, [g.seconds for g in grades]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--class-size", type=int, default=4)
    args = parser.parse_args()
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # neither side gets a warm compilation cache
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(args.class_size):
            shutil.copy(SUBMISSION, folder / f"student-{i:02d}.ipynb")
        bare = bare_seconds(runs=2)
        wall_1, per_submission = graded_class(folder, jobs=1)
        wall_2, _ = graded_class(folder, jobs=2)
    sandboxed = statistics.median(per_submission)
    print(f"bare nbclient run of a grading copy: {bare:.1f} s")
    print(f"graded in the sandbox with nbval: {sandboxed:.1f} s per submission, overhead {sandboxed / bare:.2f}x "
          "(goal <= 1.3x)")
    print(f"class of {args.class_size} (+1 reference run): --jobs 1 {wall_1:.1f} s, --jobs 2 {wall_2:.1f} s, "
          f"speed-up {wall_1 / wall_2:.2f}x")


if __name__ == "__main__":
    main()
