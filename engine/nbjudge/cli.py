"""The grader's command line: grade a class of notebooks against a lesson's solution.

::

    PROG SUBMISSION_OR_DIR... --out DIR [--lesson LESSON] [--jobs N] [--timeout S] [--cell-timeout S]
         [--memory MB] [--seed S] [--param NAME=VALUE ...] [--shard K/N] [--resume | --force]
    PROG merge SHARD_DIR... --out DIR
    PROG rebuild OUT
    PROG similarity SUBMISSION_OR_DIR_OR_ZIP... --out DIR [--lesson LESSON] [--threshold T]

``PROG`` is the name the command was installed under (``nbjudge``, or a lesson's own command such
as ``bmnist-grade``). The engine knows no lesson: ``--lesson`` names one (an installed lesson's
name, a module or a package folder with a ``LESSON``; see :mod:`.lessons`), by default the one
installed, or the lesson whose command this is. ``OUT/overrides.csv`` holds points set by hand
(:mod:`.overrides`); every command that writes the outputs applies it.

This module parses the command line; grading the batch is :mod:`.batch`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .batch import DEFAULT_CELL_TIMEOUT_S, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S, NoSubmissions, default_jobs, grade
from .lessons import LessonError, NotReady, installed_lessons
from .protections import ProtectionUnavailable
from .report import summary_table
from .store import OutputInUse, merge

__all__ = ["NoSubmissions", "default_jobs", "grade", "main"]


def _param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: use NAME=VALUE, e.g. NUM_STEPS=600")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use K/N, e.g. 2/4") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: K must lie between 1 and N")
    return k, n


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown once, and only where there is one to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or action.required or "default" in help_text:
            return help_text
        return super()._get_help_string(action) or ""


def _prog() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] and not sys.argv[0].endswith(".py") else "grade"


def _merge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{_prog()} merge", description="Join the output folders of shards.")
    parser.add_argument("parts", nargs="+", type=Path, help="output folders of the --shard K/N runs")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged report (new or empty)")
    args = parser.parse_args(argv)
    try:
        grades, marking = merge(args.parts, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(grades, marking))
    return 0


def _exit_on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # so that the temp folders are removed on the way out


def _parser(lesson: str | None) -> argparse.ArgumentParser:
    prog = _prog()
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=_Help,
        description="Grade a class of notebooks against a lesson's executed solution, each in a fresh sandboxed "
                    "kernel. Results are appended to OUT/results.jsonl as each notebook finishes; grades.csv and "
                    "OUT/feedback/ are written from it.",
        epilog=f"Shards (--shard K/N with one --seed) are joined with: {prog} merge SHARD_DIR... --out DIR. "
               "Points set by hand in OUT/overrides.csv (submission,task,points,reason) are applied by every run, "
               f"and by: {prog} rebuild OUT (no grading). "
               f"Similar answers across a class are listed by: {prog} similarity SUBMISSIONS... --out DIR",
    )
    parser.add_argument("submissions", nargs="+", type=Path,
                        help="notebooks, folders of notebooks (searched recursively), or zip files: a platform's "
                             "export as downloaded (Moodle, Canvas, Gradescope, nbgrader), as a zip or unpacked")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.jsonl, grades.csv and feedback/")
    parser.add_argument("--lesson", default=lesson,
                        help="the lesson: an installed lesson's name, a module name, or the path of a package folder "
                             f"with a LESSON (default: {lesson or 'the one installed'}; installed: "
                             f"{', '.join(installed_lessons()) or 'none'})")
    parser.add_argument("--jobs", type=int, default=None,
                        help=f"notebooks graded in parallel (default: the CPU cores, as far as memory allows: "
                             f"{default_jobs()} here)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds per notebook")
    parser.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT_S,
                        help="seconds per cell; a cell past it is interrupted and the notebook goes on")
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="MB of address space per kernel")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the hidden checks (default: a random one; with --resume the earlier run's)")
    parser.add_argument("--param", type=_param, action="append", default=[],
                        help="NAME=VALUE for the solution's parameters cell, on top of the lesson's grading "
                             "parameters (see docs/grading.md)")
    parser.add_argument("--shard", type=_shard, default="1/1", help="K/N: grade every N-th notebook from the K-th")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="grade only the notebooks OUT has no result for, or whose file changed since (same "
                            "lesson, seed and parameters); the log says why each one is graded")
    again.add_argument("--force", action="store_true",
                       help="move an earlier run's outputs in OUT (results, grades, feedback, gradebooks and zips) "
                            "into OUT/previous-N/ and start anew")
    parser.add_argument("--no-bwrap", action="store_true", help="do not use bubblewrap even where it works")
    parser.add_argument("--solution", type=Path, default=None,
                        help="another executed solution notebook to grade against (default: the lesson's own)")
    return parser


def main(argv: list[str] | None = None, *, lesson: str | None = None) -> int:
    """Command line entry point (``nbjudge``).

    :param argv: Arguments (default: ``sys.argv[1:]``).
    :param lesson: The default of ``--lesson`` (a lesson's own command, e.g. ``bmnist-grade``, names
        its lesson); ``None``: the one lesson installed.
    """
    argv = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_term)
    if argv[:1] == ["merge"]:
        return _merge_main(argv[1:])
    if argv[:1] == ["rebuild"]:
        from .rebuild import main as rebuild_main

        return rebuild_main(argv[1:], prog=f"{_prog()} rebuild")
    if argv[:1] == ["similarity"]:  # a report for the instructor, never a grade
        from .similarity import main as similarity_main

        return similarity_main(argv[1:], prog=f"{_prog()} similarity", lesson=lesson)
    parser = _parser(lesson)
    args = parser.parse_args(argv)
    if args.shard != (1, 1) and args.seed is None and not args.resume:
        parser.error("--shard needs --seed, so that every shard runs the same hidden checks")
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        grade(args.submissions, out=args.out, lesson=args.lesson, jobs=args.jobs, timeout_s=args.timeout,
              cell_timeout_s=args.cell_timeout, memory_mb=args.memory, seed=args.seed, params=dict(args.param),
              shard=args.shard, use_bwrap=not args.no_bwrap, solution_path=args.solution, resume=args.resume,
              force=args.force)
    except (NoSubmissions, OutputInUse, NotReady, LessonError, ValueError, ProtectionUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
