"""Similar answers across a class: a report for the instructor to read, never a grade.

Only the answers are compared. From each notebook (:func:`.notebook.read_submission`) the code
cells that define one of the lesson's task functions are kept; their docstrings and comments are
dropped (the code is parsed and written back out), and so is every line of the given scaffolding
(the exercise's own answer cells: signatures, docstrings, the ``raise NotImplementedError`` stubs).
The rest is fingerprinted with `copydetect <https://github.com/blingenf/copydetect>`_, which
tokenizes the code first, so renamed variables and reformatting do not hide a copy. Every pair
whose shared share of either answer reaches the threshold is listed, with the shared lines, in
``similarity.md``, and in ``similarity.json`` for the class report (``report.html``), which is
written again where ``--out`` holds a grading run's results.

::

    PROG similarity SUBMISSION_OR_DIR_OR_ZIP... --out DIR [--lesson LESSON] [--threshold 0.6]
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import nbformat

from ._atomic import write_atomic
from .cells import answered, read_cell
from .class_report import REPORT as CLASS_REPORT
from .class_report import SIMILARITY_JSON
from .intake import Submission, collect
from .notebook import InvalidNotebook, read_submission

__all__ = ["DEFAULT_THRESHOLD", "Pair", "answer_code", "find_pairs", "main", "report_text", "scaffold_lines"]

DEFAULT_THRESHOLD = 0.6
NOISE_CHARS = 25  # copydetect's k: shorter shared runs of (tokenized) code are noise
REPORT = "similarity.md"
SOLUTION_ROW = "(the lesson's solution)"  # the solution's answers, compared like a submission's


@dataclass(frozen=True)
class Pair:
    """Two submissions whose answers share code.

    :param first: One row's name; ``second``: the other's (in name order).
    :param similarity: The larger of the two shares of shared code (0 to 1).
    :param shares: The share of each answer that the other has too.
    :param shared: The shared lines of ``first``'s answer code, in order.
    """

    first: str
    second: str
    similarity: float
    shares: tuple[float, float]
    shared: tuple[str, ...]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
            body = node.body
            first = body[0] if body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _answer_cells(sources: Iterable[str], functions: Mapping[str, int]) -> list[str]:
    """The answer cells among ``sources`` (:func:`.cells.answered`, as the grader decides), parsed
    and written back out without docstrings or comments."""
    cells = []
    for source in sources:
        if answered(source, functions):
            python = read_cell(source).python  # the code that runs: magics as calls, a %%time cell's body
            assert python is not None  # a cell that binds a name parses
            cells.append(ast.unparse(_without_docstrings(ast.parse(python))))
    return cells


def _functions(task_functions: Mapping[int, Iterable[str]]) -> dict[str, int]:
    """``{function name: task}`` from the lesson's task functions by task."""
    return {name: task for task, group in task_functions.items() for name in group}


def scaffold_lines(exercise: Path, *, task_functions: Mapping[int, Iterable[str]]) -> frozenset[str]:
    """The lines of the exercise's answer cells (the given scaffolding), as :func:`answer_code` writes code.

    :param exercise: The exercise notebook the students started from.
    :param task_functions: The lesson's task functions by task (:attr:`.lessons.Lesson.tasks`).
    """
    nb = nbformat.read(exercise, as_version=4)  # type: ignore[no-untyped-call]
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    return frozenset(line.strip() for cell in _answer_cells(sources, _functions(task_functions))
                     for line in cell.splitlines())


def answer_code(data: bytes, *, task_functions: Mapping[int, Iterable[str]], scaffold: frozenset[str]) -> str:
    """A notebook's answer code: its cells that define task functions, less docstrings, comments and scaffolding.

    :param data: The notebook's bytes.
    :param task_functions: The lesson's task functions by task.
    :param scaffold: From :func:`scaffold_lines`.
    :returns: The code ('' for a notebook that cannot be read or has no answers).
    """
    try:
        sources = [source for source, _, _ in read_submission(data)]
    except InvalidNotebook:
        return ""
    lines = [line for cell in _answer_cells(sources, _functions(task_functions)) for line in cell.splitlines()
             if line.strip() and line.strip() not in scaffold]
    return "\n".join(lines) + ("\n" if lines else "")


def _fingerprint(name: str, code: str, boilerplate: list[Any] | None) -> Any:
    from copydetect import CodeFingerprint  # type: ignore[import-untyped]

    return CodeFingerprint(f"{name}.py", NOISE_CHARS, 1, boilerplate=boilerplate, fp=io.StringIO(code))


def _lines_of(code: str, slices: tuple[Any, Any]) -> tuple[str, ...]:
    starts, ends = slices
    offsets, lines, at = [], code.splitlines(keepends=True), 0
    for line in lines:
        offsets.append((at, at + len(line)))
        at += len(line)
    hit = [any(start < end_line and end > start_line for start, end in zip(starts, ends, strict=True))
           for start_line, end_line in offsets]
    return tuple(line.rstrip("\n") for line, shared in zip(lines, hit, strict=True) if shared)


def find_pairs(codes: Mapping[str, str], *, threshold: float = DEFAULT_THRESHOLD,
               scaffold: str = "") -> list[Pair]:
    """The pairs of answers that share at least ``threshold`` of either one's code.

    :param codes: Answer code by row name (from :func:`answer_code`).
    :param threshold: Smallest share (0 to 1) reported.
    :param scaffold: Code every student was given; its fingerprints are never counted.
    :returns: The pairs, most similar first.
    """
    from copydetect import compare_files

    boilerplate = list(_fingerprint("scaffold", scaffold, None).hashes) if scaffold.strip() else []
    prints = {name: _fingerprint(name, code, boilerplate) for name, code in sorted(codes.items()) if code.strip()}
    pairs = []
    for first, second in combinations(sorted(prints), 2):
        overlap, shares, slices = compare_files(prints[first], prints[second])
        if overlap == 0 or max(shares) < threshold:
            continue
        pairs.append(Pair(first, second, float(max(shares)), (float(shares[0]), float(shares[1])),
                          _lines_of(prints[first].raw_code, slices[0])))
    return sorted(pairs, key=lambda p: (-p.similarity, p.first, p.second))


def report_text(pairs: list[Pair], *, count: int, threshold: float) -> str:
    """The Markdown report: the submissions that match the lesson's solution first (a student who
    found it), then one section per pair, with the shared lines."""
    found = [pair.second for pair in pairs if pair.first == SOLUTION_ROW]
    lines = ["# Similar answers", "",
             "A report for the instructor to read, never a grade: similar code can have innocent causes (the "
             "same tutorial, a study group that discussed the approach). Only the answer cells were compared, "
             "without the given scaffolding, docstrings and comments; variable names do not matter.", "",
             f"{count} notebook(s) with answers compared; {len(pairs)} pair(s) share at least {threshold:.0%} of "
             "either answer.", ""]
    if found:
        lines += ["## Answers that match the lesson's solution", "",
                  f"{len(found)} submission(s) share at least {threshold:.0%} of their answer code with the "
                  "solution (its section below shows the shared lines): " + ", ".join(found) + ".", ""]
    for pair in pairs:
        fence = "`" * max(3, max((len(run) for run in "".join(pair.shared).split() if set(run) == {"`"}),
                                 default=0) + 1)
        lines += [f"## {pair.first} and {pair.second}: {pair.similarity:.0%}", "",
                  f"{pair.shares[0]:.0%} of {pair.first}'s answer code is in {pair.second}'s, "
                  f"{pair.shares[1]:.0%} the other way. Shared lines of {pair.first}:", "",
                  fence + "python", *pair.shared, fence, ""]
    return "\n".join(lines)


def _same_student(a: Submission, b: Submission) -> bool:
    return bool(a.platform) and (a.platform, a.student) == (b.platform, b.student)


def similarity_report(paths: list[Path], *, out: Path, exercise: Path, task_functions: Mapping[int, Iterable[str]],
                      solution: Path | None = None, threshold: float = DEFAULT_THRESHOLD,
                      log: Callable[[str], None] = print) -> list[Pair]:
    """Compare the answers of a class, and of the lesson's solution, and write ``out/similarity.md``.

    :param paths: Notebooks, folders or zip exports (as grading takes them).
    :param out: Folder of the report.
    :param exercise: The exercise notebook (its answer cells are the scaffolding).
    :param task_functions: The lesson's task functions by task.
    :param solution: The solution notebook: a submission close to it is listed first, as
        :data:`SOLUTION_ROW`'s pair.
    :param threshold: Smallest share reported.
    :returns: The pairs listed.
    """
    rows = [row for row in collect(paths, warn=log) if row.data is not None]
    scaffold = scaffold_lines(exercise, task_functions=task_functions)
    codes = {row.name: answer_code(row.data or b"", task_functions=task_functions, scaffold=scaffold) for row in rows}
    if solution is not None:
        codes[SOLUTION_ROW] = answer_code(Path(solution).read_bytes(), task_functions=task_functions,
                                          scaffold=scaffold)
    by_name = {row.name: row for row in rows}
    pairs = [p for p in find_pairs(codes, threshold=threshold)
             if not (p.first in by_name and p.second in by_name
                     and _same_student(by_name[p.first], by_name[p.second]))]
    write_atomic(Path(out) / REPORT, report_text(pairs, count=sum(bool(c.strip()) for c in codes.values()),
                                                 threshold=threshold))
    listed = [{"first": p.first, "second": p.second, "similarity": p.similarity, "shares": list(p.shares)}
              for p in pairs]
    write_atomic(Path(out) / SIMILARITY_JSON, json.dumps(listed, indent=1))  # for the class report
    return pairs


def _refresh_class_report(out: Path, log: Callable[[str], None]) -> None:
    """Where ``out`` holds a grading run's results, write its outputs again, so that its class report
    lists the pairs."""
    from .store import RESULTS, ResultsFile, read_results

    if (Path(out) / RESULTS).is_file():
        ResultsFile(Path(out), *read_results(Path(out))).rebuild(log=log)
        log(f"the class report {Path(out) / CLASS_REPORT} lists them too")


def main(argv: list[str], *, prog: str = "similarity", lesson: str | None = None) -> int:
    """The ``similarity`` subcommand of the grader; ``lesson``: the default of ``--lesson``."""
    from .lessons import LessonError, load_lesson

    parser = argparse.ArgumentParser(prog=prog, description="List pairs of similar answers (a report, never a grade).")
    parser.add_argument("submissions", nargs="+", type=Path,
                        help="notebooks, folders of notebooks, or zip files: a platform's export as downloaded "
                             "(Moodle, Canvas, Gradescope, nbgrader)")
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {REPORT}")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="smallest share of either answer's code that two answers share, 0 to 1 "
                             "(default: %(default)s)")
    parser.add_argument("--lesson", default=lesson,
                        help=f"the lesson, as for grading (default: {lesson or 'the installed one'})")
    parser.add_argument("--exercise", type=Path, default=None,
                        help="the exercise the students started from (default: the lesson's)")
    args = parser.parse_args(argv)
    if not 0 < args.threshold <= 1:
        parser.error("--threshold must lie between 0 and 1, e.g. 0.6")
    try:
        chosen = load_lesson(args.lesson)
        exercise = args.exercise or chosen.exercise
        if exercise is None:
            raise LessonError("the lesson names no exercise notebook; give --exercise")
        pairs = similarity_report(args.submissions, out=args.out, exercise=exercise, task_functions=chosen.tasks,
                                  solution=chosen.solution, threshold=args.threshold)
        _refresh_class_report(args.out, print)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(pairs)} pair(s) at or above {args.threshold:.0%}; see {args.out / REPORT}")
    return 0
