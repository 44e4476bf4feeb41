"""Grading a batch: a class of notebooks against a lesson's solution, each a sandboxed job.

:func:`grade` probes the sandbox's capabilities once (:func:`.capabilities.probe_capabilities`),
reports them in the results header (:func:`.protections.protections`), runs the reference and the
submissions in job slots (:func:`_grade_all`), and scores and records each as it finishes. The
command line that calls it is :mod:`.cli`.
"""

from __future__ import annotations

import json
import os
import queue
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TypeVar

from .capabilities import Capabilities, bwrap_path, probe_capabilities
from .events import run_of
from .figures import shown_line
from .grades import Grade, Reference
from .guard import PRELOAD_ENV
from .intake import Submission, collect, student_record
from .kernel_path import kernel_path, site_view
from .lessons import Lesson, load_lesson
from .limits import Limits
from .notebook import build_grading_copy, only_stubs, read_submission
from .plan import Plan, build_plan
from .protections import ProtectionUnavailable, protections
from .run import RunOptions, RunResult, remove_tree, run_sandboxed_job, write_private
from .scoring import reference_from_run, score
from .shared_cache import publish
from .store import ResultsFile, checked_overrides, digest, earlier_run, open_results
from .summary import summary_table
from .temp_reaper import reaped_temp_folder

__all__ = ["DEFAULT_CELL_TIMEOUT_S", "DEFAULT_MEMORY_MB", "DEFAULT_TIMEOUT_S", "NoSubmissions", "default_jobs",
           "grade"]

_T = TypeVar("_T")
DEFAULT_TIMEOUT_S = 600
DEFAULT_CELL_TIMEOUT_S = 120
DEFAULT_MEMORY_MB = 4096
_WORKER_OVERHEAD_MB = 600  # what a worker and its kernel's start take besides the kernel's own use
_TEMP_PREFIX = "grading-"
_SHARED_CACHE = "shared-cache"  # in the run's temp folder: the warm-up's cache, read-only to jobs
# The warm-up job costs about what 7 to 8 jobs save with its cache (0.7 CPU-s each, for this lesson;
# see docs/performance.md); it runs where at least this many notebooks start after it.
_WARM_UP_AFTER = 8


class NoSubmissions(ValueError):
    """The paths given hold no notebook to grade."""


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
             memory_mb: int, capabilities: Capabilities) -> RunOptions:
    """The run's options; ``imports`` is the kernels' import folder (:func:`.kernel_path.kernel_path`)."""
    probes = sorted({check.probe.partition(":")[0] for check in lesson.checks})
    env = {**lesson.kernel_env(), "PYTHONPATH": str(imports), PRELOAD_ENV: ",".join(probes)}  # once, before jobs
    return RunOptions(
        cell_timeout_s=min(cell_timeout_s or DEFAULT_CELL_TIMEOUT_S, timeout_s), notebook_timeout_s=timeout_s,
        limits=Limits(memory_mb=memory_mb, cpu_s=timeout_s * (os.cpu_count() or 1)), capabilities=capabilities,
        jobs=jobs, kernel_env=env, readable=tuple(sorted({*map(str, lesson.readable()), str(imports)})),
        site=site_view(), shared_cache=lesson.shared_cache)


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
    :param use_bwrap: Use bubblewrap where it works (the sandbox's capabilities are probed once, here,
        and every job gets them or fails: :class:`.protections.ProtectionUnavailable`).
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
    :raises ProtectionUnavailable: The reference run could not get a protection the run promised (a
        submission's job that cannot is that submission's ``grader-error``, naming it).
    """
    lesson = lesson if isinstance(lesson, Lesson) else load_lesson(lesson)
    found = sorted(collect(submissions, warn=log), key=lambda s: s.name)
    if not found:
        raise NoSubmissions("no notebook to grade in " + ", ".join(map(str, submissions))
                            + ": check the path (a folder is searched for *.ipynb files, also in its sub-folders)")
    earlier = earlier_run(Path(out)) if resume else None
    if earlier is not None and seed is None:
        seed = earlier[0].get("seed")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    jobs = jobs or default_jobs(memory_mb)
    plan = build_plan(lesson, seed=seed, params=params or {}, solution=solution_path)
    capabilities = probe_capabilities(use_bwrap=use_bwrap)
    if use_bwrap and bwrap_path() and not capabilities.bwrap:
        log("warning: bubblewrap is installed but cannot create a sandbox here; grading without it")
    lesson.prepare(log)
    active = protections(capabilities, jobs=jobs)
    meta = {**plan.identity(), "solution_file": str(plan.solution_path), "marking": asdict(plan.marking),
            "protections": active}
    k, n = shard
    chosen = found[k - 1 :: n]
    overrides = checked_overrides(Path(out), [s.name for s in chosen], plan.marking)  # before any write
    results = open_results(Path(out), meta, resume=resume, force=force, earlier=earlier, log=log)
    why = {s.name: _why_again(s, results.done) for s in chosen}
    todo = [s for s in chosen if why[s.name] is not None]
    log(f"grading {len(todo)} notebook(s) of {len(chosen)}, lesson {lesson.name}, seed {seed}, {jobs} job(s); "
        "protections: " + ", ".join(f"{p}: {'yes' if on else 'NO'}" for p, on in active.items()))
    if resume:
        for sub in todo:
            log(f"  {sub.name}: graded again: {why[sub.name]}")
    try:
        with reaped_temp_folder(_TEMP_PREFIX) as tmp:
            options = _options(lesson, imports=kernel_path(tmp / "kernel-path", lesson.kernel_modules), jobs=jobs,
                               timeout_s=timeout_s, cell_timeout_s=cell_timeout_s, memory_mb=memory_mb,
                               capabilities=capabilities)
            plan_file = tmp / "plan.json"
            write_private(plan_file, json.dumps(plan.for_workers()).encode())
            # Each job with a CPU share and a memory limit of its own: the reference runs beside the first jobs.
            beside = capabilities.cgroups is not None and capabilities.cgroups.memory
            _grade_all(todo, _Run(plan, plan_file, options, tmp), results, jobs=jobs, log=log, beside=beside)
    except BaseException:
        if not results.done and not resume:
            (Path(out) / "results.jsonl").unlink(missing_ok=True)  # this run's own header, nothing graded
        raise
    grades = results.rebuild([s.name for s in chosen], overrides=overrides, log=log)
    log(summary_table(grades, plan.marking))
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

    def with_slot(work: Callable[[int], _T]) -> _T:
        slot = slots.get()
        try:
            return work(slot)
        finally:
            slots.put(slot)

    def options() -> RunOptions:
        """The run's options, with the warm-up's shared cache once it is published."""
        published = run.tmp / _SHARED_CACHE
        return replace(run.options, published_cache=str(published)) if published.is_dir() else run.options

    def one(item: tuple[int, Submission]) -> None:
        number, sub = item
        ran = with_slot(lambda slot: _run_one(sub, run, workdir=run.tmp / f"job-{number:05d}", slot=slot,
                                              options=options()))
        # Scoring waits for the reference run.
        graded = ran if isinstance(ran, Grade) else _score_one(sub, ran, reference.result(), run)
        with lock:
            results.append(graded, digest(sub.data), student_record(sub))
        log(f"  {graded.submission}: {graded.status}, {graded.total} points, {graded.seconds:.1f} s")

    # Threads beyond the job slots only wait for the reference run, never for a slot it holds.
    with ThreadPoolExecutor(max_workers=2 * max(1, jobs) + 2) as pool:
        if _warms_up(run, submissions=len(todo), jobs=jobs):
            warm_up = pool.submit(with_slot, lambda slot: _warm_up(run, slot=slot, log=log))
            if not beside:
                warm_up.result()
        reference = pool.submit(with_slot, lambda slot: _reference(run, log=log, slot=slot, options=options()))
        if not beside:
            reference.result()  # alone: no student job starts before it has finished
        list(pool.map(one, enumerate(todo)))
        done = reference.result()  # the solution failing its own checks stops the run, even for an empty class
    results.append_shown(shown_line(done.tasks, done.figures))  # what the HTML feedback shows beside a student's


def _warms_up(run: _Run, *, submissions: int, jobs: int) -> bool:
    """Whether a warm-up job fills the lesson's shared cache: the lesson has one and an exercise, the
    jobs run in bubblewrap (read-only to them), and enough notebooks start after it to repay it
    (:data:`_WARM_UP_AFTER`)."""
    lesson = run.plan.lesson
    return (lesson.shared_cache is not None and lesson.exercise is not None and lesson.exercise.is_file()
            and run.options.capabilities.bwrap and submissions - jobs >= _WARM_UP_AFTER)


def _warm_up(run: _Run, *, slot: int, log: Callable[[str], None]) -> None:
    """Run the exercise's grading copy (the stubs as answers: no student code, no solution code) to
    fill the shared cache, and publish it read-only to the jobs after it (:mod:`.shared_cache`).

    An exercise that answers anything (an instructor's filled-in copy) runs no warm-up, and a
    warm-up that did not end cleanly (a kernel that died, a cell past its time) publishes nothing,
    as its last entry may be cut short. Whatever goes wrong only leaves the jobs without the cache.
    """
    exercise = run.plan.lesson.exercise
    assert exercise is not None
    workdir = run.tmp / "warm-up"
    try:
        data, functions = exercise.read_bytes(), run.plan.lesson.function_tasks()
        copy = build_grading_copy(read_submission(data), list(run.plan.cells), list(run.plan.probes),
                                  functions=functions, instructor=set(run.plan.instructor))
        if not only_stubs(copy, functions):
            log(f"warning: {exercise} answers a task, so no warm-up job fills the shared cache; "
                "make it again from the solution (make exercise)")
            return
        workdir.mkdir(mode=0o700)
        write_private(workdir / "submission.ipynb", data)
        result = run_sandboxed_job(workdir / "submission.ipynb", plan=run.plan_file, workdir=workdir, slot=slot,
                                   options=replace(run.options, fills_cache=True))
        ended = {record["status"] for record in run_of(result.events).records.values()}
        if result.timed_out or result.exitcode != 0 or ended - {"ok", "error"}:
            log("warning: the warm-up job did not end cleanly; every job compiles on its own")
            return
        publish(workdir, run.tmp / _SHARED_CACHE)
    except Exception as exc:  # noqa: BLE001 - the cache only saves time
        log(f"warning: the warm-up job failed ({type(exc).__name__}: {exc}); every job compiles on its own")
    finally:
        remove_tree(workdir)


def _reference(run: _Run, *, log: Callable[[str], None], slot: int, options: RunOptions,
               attempts: int = 2) -> Reference:
    """Run the solution's own grading copy (retried once: a machine's hiccup is not the solution's
    fault); its hidden-check values and texts are the references.

    :param slot: The job slot it runs in.
    :param options: The run's options as a job starting now gets them (the warm-up's cache, once published).
    :raises ValueError: The solution fails its own grading copy every time.
    """
    for attempt in range(1, attempts + 1):
        workdir = run.tmp / f"reference-{attempt}"
        workdir.mkdir(mode=0o700)
        try:
            result = run_sandboxed_job(None, plan=run.plan_file, workdir=workdir, slot=slot, options=options)
            return reference_from_run(result, run.plan)
        except ValueError:
            if attempt == attempts:
                raise
            log("warning: the reference run failed; running it once more")
        finally:
            remove_tree(workdir)
    raise AssertionError("unreachable")


def _run_one(sub: Submission, run: _Run, *, workdir: Path, slot: int, options: RunOptions) -> RunResult | Grade:
    """Run one submission's grading copy with ``options``; whatever goes wrong becomes this submission's status."""
    if sub.data is None:
        return Grade(sub.name, "invalid-notebook", run.plan.marking.zeros(), note=sub.problem or "could not be read")
    try:
        workdir.mkdir(mode=0o700)
        copy = workdir / "submission.ipynb"
        write_private(copy, sub.data)
        return run_sandboxed_job(copy, plan=run.plan_file, workdir=workdir, slot=slot, options=options)
    except ProtectionUnavailable as exc:  # the grader's own words: what the sandbox could not give
        return Grade(sub.name, "grader-error", run.plan.marking.zeros(), note=str(exc))
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
    return Grade(sub.name, "grader-error", run.plan.marking.zeros(),
                 note=f"the grader failed on this notebook ({type(exc).__name__}); grade it again or report it")
