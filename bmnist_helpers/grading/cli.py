"""``bmnist-grade``: grade a class of notebooks against the solution.

::

    bmnist-grade SUBMISSION_OR_DIR... --out DIR [--jobs N] [--timeout S] [--cell-timeout S]
                 [--memory MB] [--seed S] [--param NAME=VALUE ...] [--shard K/N]
    bmnist-grade merge SHARD_DIR... --out DIR
    bmnist-grade similarity SUBMISSION_OR_DIR... --out DIR [--threshold T]
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from ..exercise import SOLUTION_IPYNB
from ..kernel import xla_flags
from ..lesson import check_solution
from .checks import probes
from .intake import Submission, collect, student_record
from .notebook import apply_params, visible_dependencies
from .report import TASKS, Grade, Reference, merge, reference_from_run, score, summary_table, write_reports
from .run import RunOptions, RunResult, remove_tree, run_job, write_private
from .sandbox import Limits, protections

__all__ = ["grade", "main"]

DEFAULT_TIMEOUT_S = 600
DEFAULT_CELL_TIMEOUT_S = 120
DEFAULT_MEMORY_MB = 4096
# Grading runs every notebook again, so it trains and samples less than the lesson does. The hidden
# checks do not depend on these; the expected-result cells are compared with a reference run that
# uses the same values. After 200 steps the test accuracy was at least 98.5 % for each of 40 seeds,
# so 98 % leaves room for correct code that visits the batches in another order (a broken training
# loop stays far below). The accuracies of single untrained models spread from 20 % to 84 %, so
# the histogram keeps 20: their mean lies between 35 % and 65 % by more than five standard
# deviations (10 models: four).
GRADING_PARAMS = {"NUM_STEPS": "200", "TARGET_ACCURACY": "0.98", "NUM_INITS": "20"}
# A grading run is short, so XLA's compile time outweighs how fast the compiled programs run: with
# no backend optimisation they compile in about two thirds of the time (the lesson's kernel keeps
# level 1, under which its 100 random initialisations run faster).
GRADING_COMPILE_FLAGS = ("--xla_cpu_use_fusion_emitters=false", "--xla_backend_optimization_level=0")


def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def _zeros() -> dict[int, int]:
    return {t: 0 for t in TASKS}


def grade(
    submissions: list[Path],
    *,
    out: Path,
    jobs: int = 1,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    cell_timeout_s: int | None = None,
    memory_mb: int = DEFAULT_MEMORY_MB,
    seed: int | None = None,
    params: dict[str, str] | None = None,
    shard: tuple[int, int] = (1, 1),
    use_bwrap: bool = True,
    solution_path: Path = SOLUTION_IPYNB,
    log=print,
) -> list[Grade]:
    """Grade notebooks; write ``grades.csv``, ``results.json`` and ``feedback/`` into ``out``.

    :param submissions: Notebooks, or folders of them.
    :param out: Output folder.
    :param jobs: Notebooks graded in parallel.
    :param timeout_s: Wall-clock limit per notebook.
    :param cell_timeout_s: Wall-clock limit per cell (default: the smaller of 120 s and ``timeout_s``).
    :param memory_mb: Address-space limit of each kernel.
    :param seed: Seed of the hidden checks; random when ``None``.
    :param params: Overrides for the solution's parameters cell, on top of :data:`GRADING_PARAMS`.
    :param shard: ``(K, N)``: grade only every N-th submission starting at the K-th.
    :param use_bwrap: Use bubblewrap where it works.
    :param solution_path: The executed solution notebook.
    :param log: Where progress lines go.
    :returns: The grades of this shard.
    :raises ValueError: Bad parameters, or a solution that fails its own checks.
    """
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    params = {**GRADING_PARAMS, **(params or {})}
    bwrap = use_bwrap and _bwrap_works()
    if use_bwrap and shutil.which("bwrap") and not bwrap:
        log("warning: bubblewrap is installed but cannot create a sandbox here; grading without it")
    found = sorted(collect(submissions, warn=log), key=lambda s: s.name)
    k, n = shard
    chosen = found[k - 1 :: n]
    options = RunOptions(
        cell_timeout_s=min(cell_timeout_s or DEFAULT_CELL_TIMEOUT_S, timeout_s), notebook_timeout_s=timeout_s,
        limits=Limits(memory_mb=memory_mb, cpu_s=timeout_s * (os.cpu_count() or 1)), use_bwrap=bwrap, jobs=jobs,
        xla_flags=xla_flags(GRADING_COMPILE_FLAGS),  # once, before jobs start side by side
    )
    solution_path = Path(solution_path)
    check_solution(solution_path)  # an executed solution, before anything runs
    apply_params(nbformat.read(solution_path, as_version=4), params)  # refuses unknown names early
    active = protections(use_bwrap=bwrap, jobs=jobs)
    meta = {"seed": seed, "params": params, "solution": str(solution_path), "protections": active,
            "students": {sub.name: student_record(sub) for sub in chosen}}  # who each row is (issue 20)
    log(f"grading {len(chosen)} notebook(s), seed {seed}, {jobs} job(s); protections: "
        + ", ".join(f"{p}: {'yes' if on else 'NO'}" for p, on in active.items()))
    tmp = Path(tempfile.mkdtemp(prefix="bmnist-grade-"))  # mode 0700
    try:
        job = {"solution": solution_path, "params": params, "seed": seed, "options": options}
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(jobs):
            slots.put(slot)

        def with_slot(run):
            slot = slots.get()
            try:
                return run(slot)
            finally:
                slots.put(slot)

        def one(item: tuple[int, Submission]) -> Grade:
            number, sub = item
            workdir = tmp / f"job-{number:05d}"
            try:
                ran = with_slot(lambda slot: _run_one(sub, job, workdir=workdir, slot=slot))
            finally:
                remove_tree(workdir)
            # Scoring waits for the reference run, which runs beside the first submissions.
            graded = ran if isinstance(ran, Grade) else _score_one(sub, ran, reference.result(), job)
            log(f"  {graded.submission}: {graded.status}, {graded.total} points, {graded.seconds:.1f} s")
            return graded

        # Threads beyond the job slots only wait for the reference run, never for a slot it holds.
        with ThreadPoolExecutor(max_workers=2 * max(1, jobs) + 1) as pool:
            reference = pool.submit(with_slot, lambda slot: _reference(job, tmp / "reference", slot=slot))
            grades = list(pool.map(one, enumerate(chosen)))
            reference.result()  # the solution failing its own checks stops the run, even for an empty class
    finally:
        remove_tree(tmp)
    write_reports(grades, out, meta=meta)
    log(summary_table(grades))
    return grades


def _reference(job: dict, workdir: Path, *, slot: int) -> Reference:
    """Run the solution's own grading copy; its hidden-check values and texts are the references."""
    workdir.mkdir(mode=0o700)
    try:
        result = run_job(None, solution=job["solution"], params=job["params"], seed=job["seed"], workdir=workdir,
                         slot=slot, options=job["options"])
        solution = nbformat.read(job["solution"], as_version=4)
        return reference_from_run(result, {p.task: p.inputs for p in probes(job["seed"])},
                                  needs=visible_dependencies(solution))
    finally:
        remove_tree(workdir)


def _run_one(sub: Submission, job: dict, *, workdir: Path, slot: int) -> RunResult | Grade:
    """Run one submission's grading copy; whatever goes wrong becomes this submission's status."""
    if sub.data is None:
        return Grade(sub.name, "invalid-notebook", _zeros(), note=sub.problem or "could not be read")
    try:
        workdir.mkdir(mode=0o700)
        copy = workdir / "submission.ipynb"
        write_private(copy, sub.data)
        return run_job(copy, solution=job["solution"], params=job["params"], seed=job["seed"], workdir=workdir,
                       slot=slot, options=job["options"])
    except Exception as exc:  # noqa: BLE001 - one submission must never stop the batch
        return _grader_error(sub, exc)


def _score_one(sub: Submission, result: RunResult, reference: Reference, job: dict) -> Grade:
    """The grade of one run against the reference."""
    options: RunOptions = job["options"]
    try:
        return score(sub.name, result, reference, timeout_s=options.notebook_timeout_s,
                     cell_timeout_s=options.cell_timeout_s)
    except Exception as exc:  # noqa: BLE001 - one submission must never stop the batch
        return _grader_error(sub, exc)


def _grader_error(sub: Submission, exc: Exception) -> Grade:
    return Grade(sub.name, "grader-error", _zeros(), note=f"{type(exc).__name__}: {str(exc)[:200]}")


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


def _merge_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bmnist-grade merge", description="Join the output folders of shards.")
    parser.add_argument("parts", nargs="+", type=Path, help="output folders of `bmnist-grade --shard K/N` runs")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged report")
    args = parser.parse_args(argv)
    try:
        grades = merge(args.parts, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary_table(grades))
    return 0


def _exit_on_term(signum, frame) -> None:
    raise SystemExit(128 + signum)  # so that the temp folders are removed on the way out


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_term)
    if argv[:1] == ["merge"]:
        return _merge_main(argv[1:])
    if argv[:1] == ["similarity"]:  # issue 20: a report, never a grade
        from .similarity import main as similarity_main

        return similarity_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="bmnist-grade", description=__doc__.split("\n")[0].strip("`: ") + ".",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Shards (--shard K/N with one --seed) are joined with: bmnist-grade merge SHARD_DIR... --out DIR",
    )
    parser.add_argument("submissions", nargs="+", type=Path, help="notebooks or folders of notebooks")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv, results.json and feedback/")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel (up to the CPU cores)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds per notebook")
    parser.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT_S,
                        help="seconds per cell; a cell past it is interrupted and the notebook goes on")
    parser.add_argument("--memory", type=int, default=DEFAULT_MEMORY_MB, help="MB of address space per kernel")
    parser.add_argument("--seed", type=int, default=None, help="seed of the hidden checks (default: random)")
    parser.add_argument("--param", type=_param, action="append", default=[],
                        help="NAME=VALUE for the solution's parameters cell, e.g. NUM_STEPS=1000; grading uses "
                        + " ".join(f"{k}={v}" for k, v in GRADING_PARAMS.items()) + " unless told otherwise")
    parser.add_argument("--shard", type=_shard, default=(1, 1), help="K/N: grade every N-th notebook from the K-th")
    parser.add_argument("--no-bwrap", action="store_true", help="do not use bubblewrap even where it works")
    parser.add_argument("--solution", type=Path, default=SOLUTION_IPYNB,
                        help="the executed solution notebook to grade against (default: the kit's own)")
    args = parser.parse_args(argv)
    if args.shard != (1, 1) and args.seed is None:
        parser.error("--shard needs --seed, so that every shard runs the same hidden checks")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        check_solution(args.solution)
        grade(args.submissions, out=args.out, jobs=args.jobs, timeout_s=args.timeout, cell_timeout_s=args.cell_timeout,
              memory_mb=args.memory, seed=args.seed, params=dict(args.param), shard=args.shard,
              use_bwrap=not args.no_bwrap, solution_path=args.solution)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
