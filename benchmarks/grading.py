"""Grading cost against a bare solution run, measured side by side in one run.

* one bare run of the solution notebook as a student runs it (nbclient, a fresh kernel, no
  sandbox, no compilation cache, the lesson's parameters);
* ``bmnist-grade`` with its shipped defaults on a class of copies of a full-marks submission, once
  per ``--jobs`` value, each run with its own reference run, as an instructor would see it;
* wall time per submission = class wall time / class size (goal: <= 0.3x the bare run with
  ``--jobs 2``), and CPU seconds per submission = the whole machine's busy CPU time over the class
  run (``/proc/stat``: the grader, the reference run, every worker and kernel) / class size
  (goal: <= 4).

Run: ``python benchmarks/grading.py [--class-size 8] [--jobs 2] [--record FILE] [--isolation]``
(after ``make data``). ``--record`` appends the figures as one JSON line (``benchmarks/summary.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _nbtime import execute  # noqa: E402
from bmnist_lesson import LESSON  # noqa: E402
from bmnist_lesson.exercise import ROOT, load_solution  # noqa: E402
from nbjudge import batch  # noqa: E402

SUBMISSION = ROOT / "tests" / "fixtures" / "submissions" / "full-marks.ipynb"
SEED = 1
GOAL_RATIO, GOAL_CPU = 0.3, 4.0


def busy_cpu_seconds() -> float:
    """The machine's CPU time spent not idle since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measured(work: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and the machine's busy CPU seconds of ``work()``."""
    cpu, start = busy_cpu_seconds(), time.perf_counter()
    work()
    return time.perf_counter() - start, busy_cpu_seconds() - cpu


def bare_run() -> tuple[float, float]:
    """Wall and CPU seconds of one run of the solution notebook in a fresh kernel, kernel start included."""
    return measured(lambda: execute(load_solution(), cwd=ROOT / "solutions", cache_dir=None))


def graded_class(folder: Path, out: Path, *, jobs: int, use_bwrap: bool = True) -> tuple[float, float]:
    """Wall and CPU seconds of ``bmnist-grade`` with its defaults on the class (its reference run included)."""
    grades = []
    wall, cpu = measured(lambda: grades.extend(batch.grade([folder], out=out, jobs=jobs, seed=SEED,
                                                           log=lambda line: None, use_bwrap=use_bwrap)))
    bad = [(g.submission, g.status, g.total) for g in grades if g.status != "ok"]
    if bad:
        raise SystemExit(f"error: the full-marks copies did not all pass: {bad}")
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--class-size", type=int, default=8)
    parser.add_argument("--jobs", default="2", help="comma-separated --jobs values (capped at the cores)")
    parser.add_argument("--isolation", action="store_true",
                        help="also grade the class at the most jobs without bubblewrap (the sandbox's cost)")
    parser.add_argument("--record", type=Path, help="append the figures to this file as a JSON line")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    jobs_list = sorted({j for j in map(int, args.jobs.split(",")) if 1 <= j <= cores}) or [1]
    os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # no warm cache from the user's environment

    bare, bare_cpu = bare_run()
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        for i in range(args.class_size):
            shutil.copy(SUBMISSION, folder / f"student-{i:02d}.ipynb")
        for jobs in jobs_list:
            runs[jobs] = graded_class(folder, Path(tmp) / f"out-{jobs}", jobs=jobs)
        # kernels without bubblewrap (nor its uid, network namespace, tmpfs and shared cache; the cgroups stay)
        open_run = graded_class(folder, Path(tmp) / "out-open", jobs=jobs_list[-1], use_bwrap=False) \
            if args.isolation else None

    grading = " ".join(f"{k}={v}" for k, v in LESSON.params.items())
    print(f"grading a class of {args.class_size} full-marks notebooks (bmnist-grade's defaults: {grading}; "
          f"{cores} cores; measured side by side in this run)")
    print(f"bare solution run (the lesson's parameters, fresh kernel, no sandbox, no compilation cache): "
          f"{bare:.1f} s, {bare_cpu:.1f} CPU-s")
    print(f"{'--jobs':>6s} {'class wall':>11s} {'per submission':>15s} {'vs bare run':>12s} {'CPU-s each':>11s}")
    for jobs, (wall, cpu) in runs.items():
        per = wall / args.class_size
        print(f"{jobs:6d} {wall:10.1f}s {per:14.1f}s {per / bare:11.2f}x {cpu / args.class_size:11.1f}")
    last = jobs_list[-1]
    if open_run is not None:
        print(f"isolation at --jobs {last}: {runs[last][0]:.1f} s in the sandbox vs {open_run[0]:.1f} s without "
              f"bubblewrap: {runs[last][0] / open_run[0]:.2f}x")
    ratio, cpu_each = runs[last][0] / args.class_size / bare, runs[last][1] / args.class_size
    print(f"per submission with --jobs {last}: {ratio:.2f}x a bare solution run (goal <= {GOAL_RATIO}x: "
          f"{'met' if ratio <= GOAL_RATIO else 'MISSED'}), {cpu_each:.1f} CPU-s (goal <= {GOAL_CPU}: "
          f"{'met' if cpu_each <= GOAL_CPU else 'MISSED'}); the class includes its reference run")
    if args.record:
        record = {"benchmark": "grading", "class_size": args.class_size, "jobs": last, "bare_s": bare,
                  "bare_cpu_s": bare_cpu, "per_submission_s": runs[last][0] / args.class_size, "ratio": ratio,
                  "cpu_per_submission_s": cpu_each}
        with open(args.record, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
