"""``bmnist-grade``: grade a class of notebooks against the solution's expected results.

::

    bmnist-grade SUBMISSION_OR_DIR... --out DIR [--jobs N] [--timeout S] [--memory MB]
                 [--seed S] [--param NAME=VALUE ...] [--shard K/N]
    bmnist-grade merge SHARD_DIR... --out DIR
"""

from __future__ import annotations

import argparse
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from ..exercise import SOLUTION_IPYNB, cell_tags
from ..lesson import check_solution
from .checks import HIDDEN_TAG
from .notebook import CHECK_TAG, InvalidNotebook, apply_params, build_grading_copy, read_submission
from .report import Grade, merge, output_text, score, summary_table, write_reports
from .run import RunOptions, run_notebook
from .sandbox import Limits, protections

__all__ = ["grade", "main"]


def _submissions(paths: list[Path]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in paths:
        files = sorted(path.glob("*.ipynb")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise SystemExit(f"error: no .ipynb files in {path}")
        for file in files:
            if not file.exists():
                raise SystemExit(f"error: {file} does not exist")
            name = file.stem if file.stem not in found else f"{file.parent.name}-{file.stem}"
            found[name] = file
    return found


def _expected(copy: nbformat.NotebookNode) -> dict[str, dict]:
    checked = [c for c in copy.cells if CHECK_TAG in cell_tags(c)]
    return {c["id"]: {"text": output_text(c.outputs), "tags": cell_tags(c)} for c in checked}


def _bwrap_works() -> bool:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def grade(
    submissions: list[Path],
    *,
    out: Path,
    jobs: int = 1,
    timeout_s: int = 600,
    cell_timeout_s: int | None = None,
    memory_mb: int = 4096,
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
    :param timeout_s: Wall-clock limit per notebook; ``cell_timeout_s`` per cell (default: the same).
    :param memory_mb: Address-space limit of each kernel.
    :param seed: Seed of the hidden checks; random when ``None``.
    :param params: Overrides for the solution's parameters cell.
    :param shard: ``(K, N)``: grade only every N-th submission starting at the K-th.
    :param use_bwrap: Use bubblewrap where it works.
    :param solution_path: The executed solution notebook.
    :param log: Where progress lines go.
    :returns: The grades of this shard.
    """
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    params = dict(params or {})
    bwrap = use_bwrap and _bwrap_works()
    if use_bwrap and shutil.which("bwrap") and not bwrap:
        log("warning: bubblewrap is installed but cannot create a sandbox here; grading without it")
    k, n = shard
    found = _submissions(submissions)
    names = sorted(found)[k - 1 :: n]
    options = RunOptions(
        cell_timeout_s=cell_timeout_s or timeout_s, notebook_timeout_s=timeout_s,
        limits=Limits(memory_mb=memory_mb, cpu_s=timeout_s * (os.cpu_count() or 1)), use_bwrap=bwrap,
    )
    solution = apply_params(nbformat.read(solution_path, as_version=4), params)
    active = protections(use_bwrap=bwrap)
    meta = {"seed": seed, "params": params, "solution": str(solution_path), "protections": active}
    log(f"grading {len(names)} notebook(s), seed {seed}, {jobs} job(s); protections: "
        + ", ".join(f"{p}: {'yes' if on else 'NO'}" for p, on in active.items()))
    with tempfile.TemporaryDirectory(prefix="bmnist-grade-") as tmp:
        references = _references(solution, seed=seed, workdir=Path(tmp) / "reference", options=options)
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(jobs):
            slots.put(slot)

        def one(name: str) -> Grade:
            try:
                student = read_submission(found[name])
            except InvalidNotebook as exc:
                return Grade(name, "invalid-notebook", {t: 0 for t in range(1, 6)}, note=str(exc))
            copy = build_grading_copy(student, solution, seed=seed, references=references)
            slot = slots.get()
            try:
                result = run_notebook(copy, workdir=Path(tmp) / name, slot=slot, options=options)
            finally:
                slots.put(slot)
            graded = score(name, result, _expected(copy))
            log(f"  {name}: {graded.status}, {graded.total} points, {graded.seconds:.1f} s")
            return graded

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            grades = list(pool.map(one, names))
    write_reports(grades, out, meta=meta)
    log(summary_table(grades))
    return grades


def _references(solution, *, seed: int, workdir: Path, options: RunOptions) -> dict[str, list]:
    """Run the solution's own grading copy; its hidden-check outputs are the references."""
    copy = build_grading_copy(None, solution, seed=seed)
    result = run_notebook(copy, workdir=workdir, slot=0, options=options)
    by_id = {c["id"]: c for c in result.cells}
    broken = [c["id"] for c in result.cells if c["outcome"] != "passed"]
    hidden = [c["id"] for c in copy.cells if HIDDEN_TAG in cell_tags(c)]
    if broken or any(h not in by_id for h in hidden):
        raise SystemExit(
            "error: the solution itself does not pass its grading copy"
            f" (cells {broken or 'missing'}); check --param values.\n{result.log[-3000:]}"
        )
    return {h: by_id[h]["outputs"] for h in hidden}


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


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        parser = argparse.ArgumentParser(prog="bmnist-grade merge", description="merge the output folders of shards")
        parser.add_argument("parts", nargs="+", type=Path)
        parser.add_argument("--out", type=Path, required=True)
        args = parser.parse_args(argv[1:])
        try:
            grades = merge(args.parts, args.out)
        except (ValueError, FileNotFoundError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(summary_table(grades))
        return 0
    parser = argparse.ArgumentParser(prog="bmnist-grade", description=__doc__.split("\n")[0])
    parser.add_argument("submissions", nargs="+", type=Path, help="notebooks or folders of notebooks")
    parser.add_argument("--out", type=Path, required=True, help="folder for grades.csv and feedback/")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks graded in parallel")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per notebook")
    parser.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default: --timeout)")
    parser.add_argument("--memory", type=int, default=4096, help="MB of address space per kernel")
    parser.add_argument("--seed", type=int, default=None, help="seed of the hidden checks (default: random)")
    parser.add_argument("--param", type=_param, action="append", default=[], help="NAME=VALUE for the parameters cell")
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
