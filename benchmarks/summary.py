"""The figures of one ``make bench`` run side by side, each beside its baseline and its goal.

Run: ``python benchmarks/summary.py FILE`` with the JSON lines that ``notebook.py --record FILE``
and ``grading.py --record FILE`` appended in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def _cpu_model() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> None:
    records = {r["benchmark"]: r for r in map(json.loads, Path(sys.argv[1]).read_text().splitlines())}
    nb, gr = records["notebook"], records["grading"]
    rows = [
        ("solution notebook vs the sheet's notebook, cold cache", f"{nb['cold_s']:.1f} s", f"{nb['baseline_s']:.1f} s",
         f"{nb['cold_ratio']:.2f}x", 0.25, nb["cold_ratio"]),
        ("solution notebook vs the sheet's notebook, warm cache", f"{nb['warm_s']:.1f} s", f"{nb['baseline_s']:.1f} s",
         f"{nb['warm_ratio']:.2f}x", 0.2, nb["warm_ratio"]),
        (f"grading per submission, class of {gr['class_size']}, --jobs {gr['jobs']}, vs one bare run",
         f"{gr['per_submission_s']:.1f} s", f"{gr['bare_s']:.1f} s", f"{gr['ratio']:.2f}x", 0.3, gr["ratio"]),
        ("CPU seconds per graded submission (whole machine)", f"{gr['cpu_per_submission_s']:.1f} CPU-s",
         f"{gr['bare_cpu_s']:.1f} CPU-s", f"{gr['cpu_per_submission_s']:.1f}", 4.0, gr["cpu_per_submission_s"]),
    ]
    print(f"\nmake bench, side by side in one run ({os.cpu_count()} cores, {_cpu_model()}, Python "
          f"{platform.python_version()})")
    print(f"{'measure':66s} {'kit':>11s} {'baseline':>12s} {'figure':>8s} {'goal':>6s}")
    for name, kit, base, figure, goal, value in rows:
        print(f"{name:66s} {kit:>11s} {base:>12s} {figure:>8s} {'<= ' + str(goal):>6s} "
              f"{'met' if value <= goal else 'MISSED'}")


if __name__ == "__main__":
    main()
