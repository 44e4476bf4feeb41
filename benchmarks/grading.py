"""Grading cost against a bare solution run, measured side by side in one run.

* one bare run of the solution notebook as a student runs it (nbclient, a fresh kernel, no
  sandbox, no compilation cache, the lesson's parameters);
* ``bmnist-grade`` with its defaults on a class of copies of a full-marks submission, once per
  ``--jobs`` value (1, 2, 4, as far as the cores go), each run with its own reference run, as an
  instructor would see it;
* wall time per submission = class wall time / class size (goal: <= 0.5x the bare run with
  ``--jobs`` equal to the cores).

Run: ``python benchmarks/grading.py [--class-size 8] [--jobs 1,2,4]`` (after ``make data``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _nbtime import execute  # noqa: E402
from bmnist_lesson import LESSON  # noqa: E402
from bmnist_lesson.exercise import ROOT, load_solution  # noqa: E402
from nbjudge import cli  # noqa: E402

SUBMISSION = ROOT / "tests" / "fixtures" / "submissions" / "full-marks.ipynb"
SEED = 1
GOAL = 0.5


def bare_seconds() -> float:
    """Wall time of one run of the solution notebook in a fresh kernel, kernel start included."""
    _, seconds = execute(load_solution(), cwd=ROOT / "solutions", cache_dir=None)
    return seconds


def graded_class(folder: Path, out: Path, *, jobs: int, use_bwrap: bool = True) -> float:
    """Wall time of ``bmnist-grade`` with its default parameters on the class (its reference run included)."""
    start = time.perf_counter()
    grades = cli.grade([folder], out=out, jobs=jobs, seed=SEED, log=lambda line: None, use_bwrap=use_bwrap)
    seconds = time.perf_counter() - start
    bad = [(g.submission, g.status, g.total) for g in grades if g.status != "ok"]
    if bad:
        raise SystemExit(f"error: the full-marks copies did not all pass: {bad}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--class-size", type=int, default=8)
    parser.add_argument("--jobs", default="1,2,4", help="comma-separated --jobs values (capped at the cores)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    jobs_list = sorted({j for j in map(int, args.jobs.split(",")) if 1 <= j <= cores}) or [1]
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # no warm cache from the user's environment

    bare = bare_seconds()
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(args.class_size):
            shutil.copy(SUBMISSION, folder / f"student-{i:02d}.ipynb")
        for jobs in jobs_list:
            walls[jobs] = graded_class(folder, Path(tmp) / f"out-{jobs}", jobs=jobs)
        # the isolation's cost: the same class at the most jobs, kernels without bubblewrap (nor its uid,
        # network namespace and tmpfs; the cgroups stay)
        bare_kernels = graded_class(folder, Path(tmp) / "out-open", jobs=jobs_list[-1], use_bwrap=False)

    grading = " ".join(f"{k}={v}" for k, v in LESSON.params.items())
    print(f"grading a class of {args.class_size} full-marks notebooks (bmnist-grade's defaults: {grading}; "
          f"{cores} cores; measured side by side in this run)")
    print(f"bare solution run (the lesson's parameters, fresh kernel, no sandbox, no compilation cache): {bare:.1f} s")
    print(f"{'--jobs':>6s} {'class wall':>11s} {'per submission':>15s} {'vs bare run':>12s} {'speed-up':>9s}")
    for jobs, wall in walls.items():
        per = wall / args.class_size
        print(f"{jobs:6d} {wall:10.1f}s {per:14.1f}s {per / bare:11.2f}x {walls[jobs_list[0]] / wall:8.2f}x")
    isolated = walls[jobs_list[-1]]
    print(f"isolation at --jobs {jobs_list[-1]}: {isolated:.1f} s in the sandbox vs {bare_kernels:.1f} s without "
          f"bubblewrap: {isolated / bare_kernels:.2f}x")
    best = walls[jobs_list[-1]] / args.class_size / bare
    print(f"per submission with --jobs {jobs_list[-1]}: {best:.2f}x a bare solution run "
          f"(goal <= {GOAL}x with --jobs = cores: {'met' if best <= GOAL else 'MISSED'}; "
          "the class wall time includes one reference run)")


if __name__ == "__main__":
    main()
