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
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .figures import shown_line
from .guard import PRELOAD_ENV
from .intake import Submission, collect, student_record
from .kernel_path import kernel_path, site_view
from .lessons import Lesson, LessonError, NotReady, installed_lessons, load_lesson
from .plan import Plan, build_plan
from .report import Grade, Marking, Reference, reference_from_run, score, summary_table
from .run import RunOptions, RunResult, remove_tree, run_job, write_private
from .sandbox import Limits, protections
from .store import OutputInUse, ResultsFile, checked_overrides, digest, merge, open_results, read_results

__all__ = ["NoSubmissions", "default_jobs", "grade", "main"]

DEFAULT_TIMEOUT_S = 600
DEFAULT_CELL_TIMEOUT_S = 120
DEFAULT_MEMORY_MB = 4096
_WORKER_OVERHEAD_MB = 600  # what a worker and its kernel's start take besides the kernel's own use
_TEMP_PREFIX = "grading-"
# Removes the run's temp folder once the grader is gone, however it ended: a pipe from the grader
# closes when the grader exits or is killed. Workers and kernels die with the grader
# (PR_SET_PDEATHSIG); the short waits let them go before their folders are removed.
_REAPER = """
import os, subprocess, sys, time
sys.stdin.buffer.read()
for wait in (0, 0.5, 2, 5):
    time.sleep(wait)
    if not os.path.lexists(sys.argv[1]):
        break
    subprocess.run(["rm", "-rf", "--one-file-system", "--", sys.argv[1]], check=False, stderr=subprocess.DEVNULL)
"""


class NoSubmissions(ValueError):
    """The paths given hold no notebook to grade."""


def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def default_jobs(memory_mb: int = DEFAULT_MEMORY_MB) -> int:
    """How many notebooks to grade side by side: one per CPU core, as far as the free memory allows.

    :param memory_mb: The memory limit of each kernel.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/proc/meminfo") as meminfo:
            free_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return max(1, cores)
    return max(1, min(cores, free_kb // 1024 // (memory_mb + _WORKER_OVERHEAD_MB)))


@dataclass(frozen=True)
class _Run:
    """What every job of one grading run shares."""

    plan: Plan
    plan_file: Path
    options: RunOptions
    tmp: Path


def _options(lesson: Lesson, *, imports: Path, jobs: int, timeout_s: int, cell_timeout_s: int | None,
             memory_mb: int, bwrap: bool) -> RunOptions:
    """The run's options; ``imports`` is the kernels' import folder (:func:`.kernel_path.kernel_path`)."""
    probes = sorted({check.probe.partition(":")[0] for check in lesson.checks})
    env = {**lesson.kernel_env(), "PYTHONPATH": str(imports), PRELOAD_ENV: ",".join(probes)}  # once, before jobs
    return RunOptions(
        cell_timeout_s=min(cell_timeout_s or DEFAULT_CELL_TIMEOUT_S, timeout_s), notebook_timeout_s=timeout_s,
        limits=Limits(memory_mb=memory_mb, cpu_s=timeout_s * (os.cpu_count() or 1)), use_bwrap=bwrap, jobs=jobs,
        kernel_env=env, readable=tuple(sorted({*map(str, lesson.readable()), str(imports)})), site=site_view())


def grade(
    submissions: list[Path],
    *,
    out: Path,
    lesson: Lesson | str | None = None,
    jobs: int | None = None,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    cell_timeout_s: int | None = None,
    memory_mb: int = DEFAULT_MEMORY_MB,
    seed: int | None = None,
    params: dict[str, str] | None = None,
    shard: tuple[int, int] = (1, 1),
    use_bwrap: bool = True,
    solution_path: Path | None = None,
    resume: bool = False,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> list[Grade]:
    """Grade notebooks; append each result to ``out/results.jsonl`` as it finishes, then write
    ``grades.csv`` and ``feedback/`` from it.

    :param submissions: Notebooks, or folders of them.
    :param out: Output folder.
    :param lesson: The lesson, or its name for :func:`.lessons.load_lesson` (default: the one installed).
    :param jobs: Notebooks graded in parallel (default: :func:`default_jobs`).
    :param timeout_s: Wall-clock limit per notebook.
    :param cell_timeout_s: Wall-clock limit per cell (default: the smaller of 120 s and ``timeout_s``).
    :param memory_mb: Address-space limit of each kernel.
    :param seed: Seed of the hidden checks; random when ``None`` (with ``resume``: the earlier run's).
    :param params: Overrides for the solution's parameters cell, on top of the lesson's.
    :param shard: ``(K, N)``: grade only every N-th submission starting at the K-th.
    :param use_bwrap: Use bubblewrap where it works.
    :param solution_path: Another executed solution notebook than the lesson's.
    :param resume: Grade only what ``out`` does not hold yet (same lesson, seed and parameters).
    :param force: Set an earlier run's outputs in ``out`` aside (``out/previous-N/``) and start anew.
        ``out/overrides.csv`` stays, and every run applies it (:mod:`.overrides`).
    :param log: Where progress lines go.
    :returns: The grades of this shard, with the points set by hand.
    :raises NoSubmissions: Nothing to grade (a mistyped folder, say); nothing is written.
    :raises OutputInUse: ``out`` holds another run's results.
    :raises NotReady: What the lesson needs (its data) is missing and cannot be fetched.
    :raises ValueError: Bad parameters, a solution that fails its own checks, or overrides that cannot be
        applied (:class:`.overrides.OverrideError`; nothing is written).
    """
    lesson = lesson if isinstance(lesson, Lesson) else load_lesson(lesson)
    found = sorted(collect(submissions, warn=log), key=lambda s: s.name)
    if not found:
        raise NoSubmissions("no notebook to grade in " + ", ".join(map(str, submissions))
                            + ": check the path (a folder is searched for *.ipynb files, also in its sub-folders)")
    if resume and seed is None and (Path(out) / "results.jsonl").is_file():
        seed = read_results(Path(out))[0].get("seed")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    jobs = jobs or default_jobs(memory_mb)
    plan = build_plan(lesson, seed=seed, params=params or {}, solution=solution_path)
    bwrap = use_bwrap and _bwrap_works()
    if use_bwrap and shutil.which("bwrap") and not bwrap:
        log("warning: bubblewrap is installed but cannot create a sandbox here; grading without it")
    lesson.prepare(log)
    active = protections(use_bwrap=bwrap, jobs=jobs)
    meta = {**plan.identity(), "solution_file": str(plan.solution_path), "marking": asdict(Marking.of(lesson)),
            "protections": active}
    k, n = shard
    chosen = found[k - 1 :: n]
    overrides = checked_overrides(Path(out), [s.name for s in chosen], Marking.of(lesson))  # before any write
    results = open_results(Path(out), meta, resume=resume, force=force, log=log)
    why = {s.name: _why_again(s, results.done) for s in chosen}
    todo = [s for s in chosen if why[s.name] is not None]
    log(f"grading {len(todo)} notebook(s) of {len(chosen)}, lesson {lesson.name}, seed {seed}, {jobs} job(s); "
        "protections: " + ", ".join(f"{p}: {'yes' if on else 'NO'}" for p, on in active.items()))
    if resume:
        for sub in todo:
            log(f"  {sub.name}: graded again: {why[sub.name]}")
    tmp = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))  # mode 0700
    reaper = subprocess.Popen([sys.executable, "-c", _REAPER, str(tmp)], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        options = _options(lesson, imports=kernel_path(tmp / "kernel-path", lesson.kernel_modules), jobs=jobs,
                           timeout_s=timeout_s, cell_timeout_s=cell_timeout_s, memory_mb=memory_mb, bwrap=bwrap)
        plan_file = tmp / "plan.json"
        write_private(plan_file, json.dumps(plan.for_workers()).encode())
        _grade_all(todo, _Run(plan, plan_file, options, tmp), results, jobs=jobs, log=log,
                   beside=active["CPU share per job (cgroup)"]
                   and active.get("memory limit per job, shared memory included (cgroup)", False))
    except BaseException:
        if not results.done and not resume:
            (Path(out) / "results.jsonl").unlink(missing_ok=True)  # this run's own header, nothing graded
        raise
    finally:
        remove_tree(tmp)
        reaper.stdin.close()
        reaper.wait()
    grades = results.rebuild([s.name for s in chosen], overrides=overrides, log=log)
    log(summary_table(grades, Marking.of(lesson)))
    return grades


def _why_again(sub: Submission, done: dict[str, tuple[str, Grade]]) -> str | None:
    """Why ``sub`` is graded in this run although the results file may hold it; ``None``: it does not need to be."""
    if sub.data is None:
        return "it could not be read, so its row is made again"
    if sub.name not in done:
        return "it has no line in results.jsonl yet"
    if done[sub.name][0] != digest(sub.data):
        return "its file changed since its line in results.jsonl was written"
    return None


def _grade_all(todo: list[Submission], run: _Run, results: ResultsFile, *, jobs: int, beside: bool,
               log: Callable[[str], None]) -> None:
    """Run the reference and the submissions; score and record each as it finishes.

    :param beside: Each job has a CPU share and a memory limit of its own (cgroups), so no student
        job can starve the reference or take its memory: it runs beside the first submissions.
        Otherwise it runs alone, first.
    """
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)
    lock = threading.Lock()

    def with_slot(work):
        slot = slots.get()
        try:
            return work(slot)
        finally:
            slots.put(slot)

    def one(item: tuple[int, Submission]) -> None:
        number, sub = item
        ran = with_slot(lambda slot: _run_one(sub, run, workdir=run.tmp / f"job-{number:05d}", slot=slot))
        # Scoring waits for the reference run.
        graded = ran if isinstance(ran, Grade) else _score_one(sub, ran, reference.result(), run)
        with lock:
            results.append(graded, digest(sub.data), student_record(sub))
        log(f"  {graded.submission}: {graded.status}, {graded.total} points, {graded.seconds:.1f} s")

    # Threads beyond the job slots only wait for the reference run, never for a slot it holds.
    with ThreadPoolExecutor(max_workers=2 * max(1, jobs) + 1) as pool:
        reference = pool.submit(with_slot, lambda slot: _reference(run, log=log, slot=slot))
        if not beside:
            reference.result()  # alone: no student job starts before it has finished
        list(pool.map(one, enumerate(todo)))
        done = reference.result()  # the solution failing its own checks stops the run, even for an empty class
    results.append_shown(shown_line(done.tasks, done.figures))  # what the HTML feedback shows beside a student's


def _reference(run: _Run, *, log: Callable[[str], None], slot: int = 0, attempts: int = 2) -> Reference:
    """Run the solution's own grading copy (retried once: a machine's hiccup is not the solution's
    fault); its hidden-check values and texts are the references.

    :raises ValueError: The solution fails its own grading copy every time.
    """
    for attempt in range(1, attempts + 1):
        workdir = run.tmp / f"reference-{attempt}"
        workdir.mkdir(mode=0o700)
        try:
            result = run_job(None, plan=run.plan_file, workdir=workdir, slot=slot, options=run.options)
            return reference_from_run(result, run.plan)
        except ValueError:
            if attempt == attempts:
                raise
            log("warning: the reference run failed; running it once more")
        finally:
            remove_tree(workdir)
    raise AssertionError("unreachable")


def _run_one(sub: Submission, run: _Run, *, workdir: Path, slot: int) -> RunResult | Grade:
    """Run one submission's grading copy; whatever goes wrong becomes this submission's status."""
    if sub.data is None:
        return RunResult(events=[{"event": "invalid", "note": sub.problem or "could not be read"}], exitcode=None,
                         timed_out=False, seconds=0.0, log="")
    try:
        workdir.mkdir(mode=0o700)
        copy = workdir / "submission.ipynb"
        write_private(copy, sub.data)
        return run_job(copy, plan=run.plan_file, workdir=workdir, slot=slot, options=run.options)
    except Exception as exc:  # noqa: BLE001 - one submission must never stop the batch
        return _grader_error(sub, exc, run)
    finally:
        remove_tree(workdir)


def _score_one(sub: Submission, result: RunResult, reference: Reference, run: _Run) -> Grade:
    """The grade of one run against the reference."""
    try:
        return score(sub.name, result, reference, run.plan, timeout_s=run.options.notebook_timeout_s,
                     cell_timeout_s=run.options.cell_timeout_s)
    except Exception as exc:  # noqa: BLE001 - one submission must never stop the batch
        return _grader_error(sub, exc, run)


def _grader_error(sub: Submission, exc: Exception, run: _Run) -> Grade:
    """A failure of the grader on one submission; the note names the error's type only (its message
    may quote student output, which must never read as the grader's words)."""
    return Grade(sub.name, "grader-error", Marking.of(run.plan.lesson).zeros(),
                 note=f"the grader failed on this notebook ({type(exc).__name__}); grade it again or report it")


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
        return super()._get_help_string(action)


def _prog() -> str:
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] and not sys.argv[0].endswith(".py") else "grade"


def _merge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{_prog()} merge", description="Join the output folders of shards.")
    parser.add_argument("parts", nargs="+", type=Path, help="output folders of the --shard K/N runs")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged report (new or empty)")
    args = parser.parse_args(argv)
    try:
        grades = merge(args.parts, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(grades, Marking(**read_results(args.out)[0]["marking"])))
    return 0


def _exit_on_term(signum, frame) -> None:
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
    except (NoSubmissions, OutputInUse, NotReady, LessonError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
