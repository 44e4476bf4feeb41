"""The student's self-check: each expected-result cell says whether its printed lines match the
instructor's, and :func:`self_check` sums it up per task.

The setup cell's :func:`~bmnist_helpers.setup.ensure_kit` calls :func:`register`, which adds two
IPython hooks. ``pre_run_cell`` recognises an expected-result cell by its source (normalised: no
blank lines, no trailing spaces) among the exercise's, and records what the cell's own ``print``
calls write (not what the functions it calls print, as the grader does); ``post_run_cell`` shows
the verdict under the cell, as plain text. No cell tag is read at run time (frontends do not send
them), and nothing needs installing in the frontend.

What it compares with is what the exercise already shows: the instructor's printed lines, the
tasks each expected-result cell runs on, and the sanitize patterns, written by the lesson's
generator into the exercise's metadata (:data:`META`). The patterns' one source is the lesson's
nbval sanitize file; the exercise carries a generated copy. Figures are not compared. Only the
standard library is used.
"""

from __future__ import annotations

import builtins
import io
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "META",
    "VERDICT_MARK",
    "Expected",
    "Ran",
    "TaskState",
    "cell_verdict",
    "first_difference",
    "load_expectations",
    "normalise",
    "register",
    "sanitize",
    "self_check",
    "summary",
    "task_states",
]

META = "bmnist_self_check"  # key of the exercise's notebook and expected-result cell metadata
VERDICT_MARK = "bmnist_self_check"  # key in the metadata of a verdict's display output
# A figure's repr (``<Figure size ...>``): never compared, as in the grader (nbjudge.report).
_FIGURE = re.compile(r"^\(?<(Figure|Axes|matplotlib\.)[^>]*>.*$")
_SANITIZE_CHARS = 20_000


@dataclass(frozen=True)
class Expected:
    """One expected-result cell of the exercise: what the instructor's run printed."""

    id: str
    task: int
    source: str  # normalised (:func:`normalise`)
    lines: tuple[str, ...]  # sanitized
    depends: tuple[int, ...] = ()  # the tasks whose functions the cell runs on, its own included


@dataclass(frozen=True)
class Ran:
    """What one expected-result cell printed in this kernel; ``error``: how it stopped, if it raised."""

    lines: tuple[str, ...]
    error: str | None = None


@dataclass(frozen=True)
class Difference:
    """The first line of a cell that differs (1-based); ``None``: no such line."""

    cell: str
    line: int
    yours: str | None
    instructors: str | None


@dataclass(frozen=True)
class TaskState:
    """A task's verdict: ``matches``, ``differs`` or ``not run``; where it differs, the first
    difference, and the earlier differing task it may follow from."""

    status: str
    difference: Difference | None = None
    follows: int | None = None


def normalise(source: str) -> str:
    """A cell's source as recognised: no blank line, no trailing space, no line-ending difference."""
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


def sanitize(text: str, rules: Sequence[tuple[re.Pattern, str]] = ()) -> tuple[str, ...]:
    """The lines as compared, by the grader's rules: the sanitize patterns applied, trailing spaces,
    blank lines and figure reprs dropped."""
    text = text[:_SANITIZE_CHARS]
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return tuple(line.rstrip() for line in text.splitlines() if line.strip() and not _FIGURE.match(line.strip()))


def load_expectations(path: Path) -> tuple[tuple[Expected, ...], tuple[tuple[re.Pattern, str], ...]]:
    """The expected-result cells of an exercise notebook, as its generator described them.

    :param path: The exercise ``.ipynb``.
    :returns: The cells, in order (none where the notebook has no self-check data), and the
        sanitize patterns.
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    rules = tuple((re.compile(regex), replace)
                  for regex, replace in nb.get("metadata", {}).get(META, {}).get("sanitize", []))
    found = []
    for cell in nb.get("cells", []):
        data = cell.get("metadata", {}).get(META)
        if cell.get("cell_type") != "code" or not data:
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        found.append(Expected(cell.get("id", "?"), int(data["task"]), normalise(source),
                              sanitize("\n".join(data["expected"]), rules), tuple(data.get("depends", ()))))
    return tuple(found), rules


def first_difference(expected: Expected, ran: Ran) -> Difference | None:
    """The first line where a cell's printed lines differ from the instructor's; an error counts
    as a difference at the line where the cell stopped."""
    want, have = expected.lines, ran.lines
    for i in range(max(len(want), len(have))):
        a = want[i] if i < len(want) else None
        b = have[i] if i < len(have) else None
        if a != b:
            return Difference(expected.id, i + 1, b, a)
    if ran.error:
        return Difference(expected.id, len(have) + 1, f"(the cell stopped: {ran.error})", None)
    return None


def _follows(expected: Expected, states: Mapping[int, TaskState]) -> int | None:
    earlier = [t for t in expected.depends if t < expected.task and states.get(t, TaskState("")).status == "differs"]
    return min(earlier) if earlier else None


def task_states(expectations: Sequence[Expected], runs: Mapping[str, Ran]) -> dict[int, TaskState]:
    """Each task's verdict: ``differs`` where one of its cells that ran differs, ``matches`` where
    all of them ran and match, else ``not run``; a difference follows from the earliest earlier
    task that differs among those its first differing cell runs on."""
    states: dict[int, TaskState] = {}
    for task in sorted({e.task for e in expectations}):
        cells = [e for e in expectations if e.task == task]
        diffs = [(e, d) for e in cells if e.id in runs for d in [first_difference(e, runs[e.id])] if d]
        if diffs:
            states[task] = TaskState("differs", diffs[0][1], _follows(diffs[0][0], states))
        else:
            states[task] = TaskState("matches" if all(e.id in runs for e in cells) else "not run")
    return states


def _quoted(line: str | None) -> str:
    return "(no line)" if line is None else repr(line)


def follows_text(task: int) -> str:
    """What a difference that follows from an earlier task says."""
    return f"follows from task {task}: fix that first"


def summary(expectations: Sequence[Expected], runs: Mapping[str, Ran]) -> list[str]:
    """The self-check cell's lines: one per task, then what to do next."""
    states = task_states(expectations, runs)
    lines = []
    for task, state in states.items():
        line = f"task {task}: {state.status}"
        if state.difference:
            d = state.difference
            line += f" ({d.cell}, line {d.line}: yours {_quoted(d.yours)}, the instructor's {_quoted(d.instructors)})"
        if state.follows:
            line += f"; {follows_text(state.follows)}"
        lines.append(line)
    differing = [t for t, s in states.items() if s.status == "differs"]
    if differing:
        lines.append(f"Next: fix task {differing[0]}, the first that differs, then run the notebook again "
                     "from the top.")
    elif any(s.status == "not run" for s in states.values()):
        lines.append("Next: run the whole notebook (Run All), fix the first error it stops at, then run this "
                     "cell again.")
    else:
        lines.append("Next: every expected result matches; submit. The grader's hidden checks can still find "
                     "faults that no printed line shows (the README lists them).")
    return lines


def cell_verdict(expected: Expected, ran: Ran, states: Mapping[int, TaskState]) -> str:
    """The text shown under an expected-result cell."""
    d = first_difference(expected, ran)
    if d is None:
        printed = f"{len(expected.lines)} printed lines" if expected.lines else "it prints no line"
        return f"self-check: matches the instructor's output ({printed}; figures are not compared)"
    text = [f"self-check: differs from the instructor's output, first at line {d.line} of {len(expected.lines)}",
            f"  yours:            {d.yours if d.yours is not None else '(no line)'}",
            f"  the instructor's: {d.instructors if d.instructors is not None else '(no line)'}"]
    follows = _follows(expected, states)
    if follows:
        text.append(f"  This cell runs on task {follows}'s functions too, and task {follows} differs: "
                    f"{follows_text(follows)}.")
    return "\n".join(text)


def _is_cell_code(name: str) -> bool:
    """Whether a code object's name is a cell's top level: ``<module>``, or ``<cell line: N>`` (IPython 7.3x)."""
    return name == "<module>" or name.startswith("<cell line")


class _Hooks:
    """The IPython hooks of one kernel, and what its expected-result cells printed."""

    def __init__(self, shell, expectations: Sequence[Expected], rules: Sequence[tuple[re.Pattern, str]]) -> None:
        self.shell = shell
        self.expectations = tuple(expectations)
        self.rules = tuple(rules)
        self.by_source = {e.source: e for e in self.expectations}
        self.runs: dict[str, Ran] = {}
        self.current: Expected | None = None
        self.buffer = io.StringIO()
        self.print: Callable | None = None

    def pre_run_cell(self, info=None) -> None:
        self._restore()
        self.current = self.by_source.get(normalise(getattr(info, "raw_cell", "") or ""))
        if self.current is None:
            return
        self.buffer = io.StringIO()
        self.print = builtins.print
        builtins.print = self._print

    def _print(self, *args, sep=" ", end="\n", file=None, flush=False) -> None:
        original = self.print or print
        original(*args, sep=sep, end=end, file=file, flush=flush)
        if (file is None or file is sys.stdout) and self._own(sys._getframe(1)):
            self.buffer.write((" " if sep is None else sep).join(map(str, args)) + ("\n" if end is None else end))

    def _own(self, caller) -> bool:
        """Whether a ``print`` comes from the cell's own code (its module or a function it defines)."""
        frame = caller
        while frame is not None and not (_is_cell_code(frame.f_code.co_name) and frame.f_globals is self.shell.user_ns):
            frame = frame.f_back
        return frame is not None and frame.f_code.co_filename == caller.f_code.co_filename

    def _restore(self) -> None:
        if self.print is not None:
            builtins.print = self.print
            self.print = None

    def post_run_cell(self, result=None) -> None:
        self._restore()
        expected, self.current = self.current, None
        if expected is None:
            return
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        stopped = f"{type(error).__name__}: {error}".strip().rstrip(":") if error else None
        ran = Ran(sanitize(self.buffer.getvalue(), self.rules), stopped)
        self.runs[expected.id] = ran
        text = cell_verdict(expected, ran, task_states(self.expectations, self.runs))
        sys.stdout.flush()
        self.shell.display_pub.publish(data={"text/plain": text}, metadata={VERDICT_MARK: True})

    def remove(self) -> None:
        self._restore()
        for event in ("pre_run_cell", "post_run_cell"):
            try:
                self.shell.events.unregister(event, getattr(self, event))
            except ValueError:
                pass


_active: _Hooks | None = None


def register(*, path: Path | None = None, shell=None) -> bool:
    """Start the self-check in this IPython kernel (again: what ran before is forgotten).

    :param path: The exercise notebook; default: the kit's (:func:`bmnist_helpers.lesson.lesson_path`).
    :param shell: The IPython shell; default: the running one.
    :returns: Whether the hooks are registered (not outside IPython, nor without the exercise's data).
    """
    global _active
    shell = shell or getattr(builtins, "get_ipython", lambda: None)()
    if shell is None:
        return False
    if path is None:
        from .lesson import lesson_path

        path = lesson_path("exercise")
    try:
        expectations, rules = load_expectations(path)
    except (OSError, ValueError, KeyError, TypeError, re.error):
        return False
    if not expectations:
        return False
    if _active is not None:
        _active.remove()
    _active = _Hooks(shell, expectations, rules)
    shell.events.register("pre_run_cell", _active.pre_run_cell)
    shell.events.register("post_run_cell", _active.post_run_cell)
    return True


def self_check(*, runs: Mapping[str, Ran] | None = None, expectations: Iterable[Expected] | None = None) -> None:
    """Print one line per task (``task N: matches``, ``differs`` or ``not run``), then what to do next.

    :param runs: What the expected-result cells printed; default: this kernel's, from the hooks.
    :param expectations: The exercise's expected-result cells; default: the hooks'.
    """
    if runs is None or expectations is None:
        if _active is None:
            print("The self-check is not running: run the setup cell at the top (it starts it), then Run All.")
            return
        runs = _active.runs if runs is None else runs
        expectations = _active.expectations if expectations is None else expectations
    for line in summary(tuple(expectations), runs):
        print(line)
