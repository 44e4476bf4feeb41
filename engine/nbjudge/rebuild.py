"""``PROG rebuild OUT``: write every output of a grading run again, without grading.

grades.csv, the feedback and the platforms' gradebooks and zips are written from ``OUT/results.jsonl``
and the points set by hand in ``OUT/overrides.csv`` (:mod:`.overrides`). Overrides that cannot be
applied are an error (exit code 2) and nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .report import summary_table
from .store import rebuild

__all__ = ["main"]


def main(argv: list[str], *, prog: str = "rebuild") -> int:
    """Command line of ``rebuild``; returns the exit code (2: nothing written)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Write grades.csv, OUT/feedback/ and the platforms' gradebooks again from "
                               "OUT/results.jsonl and OUT/overrides.csv (columns submission,task,points,reason), "
                               "without grading.")
    parser.add_argument("out", type=Path, help="the output folder of a grading run or a merge")
    args = parser.parse_args(argv)
    try:
        grades, marking = rebuild(args.out, log=print)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(grades, marking))
    return 0
