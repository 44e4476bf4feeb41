"""What the engine needs to know of a lesson, and loading a lesson by name.

The engine knows no task, no data set and no library of a lesson. A lesson is an importable
package (or a package folder) whose ``LESSON`` attribute is a :class:`Lesson`: its executed
solution notebook, its tasks and the functions each task defines, its points, its hidden checks,
the parameters grading overrides, what its kernels need (environment, readable folders) and what
must be ready before the first job starts (data in a cache, say).

A hidden check (:class:`Check`) has three parts, as otter and nbgrader separate them:

* ``draw(rng)``: the inputs, drawn in the grader from ``(seed, task)``;
* ``probe``: ``"module:function"``, run in the student's kernel as ``function(inputs, namespace)``;
  it calls the student's functions on the inputs and returns raw values (see :mod:`.probe`);
* ``judge(inputs, got, ref)``: the verdict, in the grader, on the student's values ``got`` and the
  solution's ``ref`` from the reference run; it raises :class:`CheckFailed` with a message for the
  student, which never holds a reference value.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ENTRY_POINTS", "STUB_MARK", "Check", "CheckFailed", "Lesson", "LessonError", "NotReady", "SharedCache",
           "installed_lessons", "judge", "load_lesson"]

# What an exercise's stub raises starts with: ``NotImplementedError("TODO: task 3, mlp")``. A lesson's
# exercise generator writes it from here, and :attr:`Lesson.stub` finds it in an error message.
STUB_MARK = "TODO: task"

# Packages declare their lessons as entry points of this group (pyproject.toml):
#   [project.entry-points."grading.lessons"]
#   my-lesson = "my_package.my_lesson:LESSON"
ENTRY_POINTS = "grading.lessons"


class CheckFailed(Exception):
    """A hidden check failed; the message is for the student."""


class LessonError(ValueError):
    """The lesson cannot be loaded or is not usable; the message names the fix."""


class NotReady(RuntimeError):
    """What a lesson needs before grading (data in a cache, say) is missing; the message says how to get it."""


@dataclass(frozen=True)
class Check:
    """One task's hidden check: inputs drawn here, values computed in the kernel, verdict here.

    :param task: The task it checks.
    :param draw: ``draw(rng) -> inputs``: a dict of numpy arrays, numbers and lists of them.
    :param probe: ``"module:function"`` of the kernel part, importable inside the sandbox.
    :param judge: ``judge(inputs, got, ref)``; raises :class:`CheckFailed`. Or its
        ``"module:function"``, imported in the grader only (a module the kernel need not import).
    """

    task: int
    draw: Callable[..., Any]
    probe: str
    judge: Callable[..., Any] | str


@dataclass(frozen=True)
class SharedCache:
    """A folder of derived data (a compilation cache, say) that one warm-up job fills and every
    later job reads, read-only: what the instructor's cells compile is compiled once a run.

    The warm-up job is the grading copy of the lesson's :attr:`Lesson.exercise`: the instructor's
    cells and the hidden checks with the stubs as answers, so no student code and no solution
    code runs in it (:mod:`.shared_cache`). The grader copies its plain files into a folder of its
    own, and each later job sees that folder read-only (bubblewrap). A job that starts before the
    copy exists, or a run without bubblewrap, gets a private writable folder instead. ``{cache}``
    in a value is the folder as the kernel sees it.

    :param writer_env: The kernel variables that fill the folder (the warm-up's, and a private one's).
    :param reader_env: The kernel variables that read the shared folder and write nothing to it.
    """

    writer_env: Mapping[str, str]
    reader_env: Mapping[str, str]


def _nothing(log: Callable[[str], None]) -> None:
    """A lesson that needs nothing prepared."""


def _no_env() -> dict[str, str]:
    return {}


def _no_folders() -> list[Path]:
    return []


@dataclass(frozen=True)
class Lesson:
    """Everything the engine needs of a lesson.

    :param name: A short name, written into every results file (``--resume`` checks it).
    :param solution: The executed solution notebook (its stored outputs are the expected results).
    :param exercise: The exercise notebook students start from (its answer cells are the given
        scaffolding, left out of the similarity report).
    :param tasks: ``{task: (function names the student defines, ...)}``, in task order.
    :param checks: One :class:`Check` per task.
    :param hidden_points: Points for a task's hidden check.
    :param expected_points: Points for a task's expected-result cells (counted only with the
        hidden checks of every task those cells run on passed).
    :param params: Values grading puts into the parameters cell (``NAME: Python literal``).
    :param skip_tags: Cells with one of these tags are not part of a grading copy.
    :param stub: A pattern that finds the stub of an unanswered task in an error message; group 1
        is the task's number.
    :param kernel_env: ``kernel_env() -> {NAME: value}`` for the kernels; ``{home}`` in a value is
        the kernel's home folder. Called once per grading run, before any job starts.
    :param readable: ``readable() -> [folder, ...]`` the kernels may read besides Python (a data cache, say).
    :param kernel_modules: What the kernels import of the lesson's side: modules or packages (the
        probes, the student kit when it is not installed as a distribution of its own), named as the
        grader imports them. Each is copied, without bytecode, into a read-only folder on the kernels'
        ``PYTHONPATH``; nothing else of the lesson's package (its verdicts, its solution) reaches a
        kernel. Each check's probe module must be among them.
    :param sanitize: An nbval sanitize file: the patterns that make printed output comparable (timings,
        addresses). Applied to the reference and the student's output alike.
    :param prepare: ``prepare(log)`` before any job starts (fill a data cache); raises
        :class:`NotReady` with the command that fixes it.
    :param shared_cache: A folder a warm-up job fills for the jobs after it (:class:`SharedCache`;
        needs :attr:`exercise`).
    """

    name: str
    solution: Path
    tasks: Mapping[int, tuple[str, ...]]
    checks: tuple[Check, ...]
    exercise: Path | None = None
    hidden_points: int = 2
    expected_points: int = 1
    params: Mapping[str, str] = field(default_factory=dict)
    skip_tags: frozenset[str] = frozenset()
    stub: re.Pattern[str] = re.compile(re.escape(STUB_MARK) + r" (\d+)")
    kernel_env: Callable[[], dict[str, str]] = _no_env
    readable: Callable[[], list[Path]] = _no_folders
    kernel_modules: tuple[str, ...] = ()
    sanitize: Path | None = None
    prepare: Callable[[Callable[[str], None]], None] = _nothing
    shared_cache: SharedCache | None = None

    def function_tasks(self) -> dict[str, int]:
        """``{function name: task}`` for every function a task defines."""
        return {name: task for task, names in self.tasks.items() for name in names}


def judge(check: Check, inputs: dict[str, Any], got: object, ref: object) -> str | None:
    """The verdict on one hidden check.

    :param check: The check.
    :param inputs: What its ``draw`` gave.
    :param got: The decoded values from the student's kernel (``None`` when none came).
    :param ref: The decoded values from the reference run.
    :returns: ``None`` when the task passes, else one message for the student.
    """
    if got is None:
        return "the check sent back no values (the cell was not reached, or it failed)"
    if not isinstance(got, dict):
        return "the check sent back malformed values"
    if set(got) == {"error"}:
        return f"the check could not call your functions: {got['error']}"
    verdict = check.judge
    if isinstance(verdict, str):
        module, _, name = verdict.partition(":")
        verdict = getattr(importlib.import_module(module), name)
    try:
        verdict(inputs, got, ref)
    except CheckFailed as fail:
        return str(fail)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        return f"the check could not read the values ({type(exc).__name__})"
    return None


def installed_lessons() -> dict[str, str]:
    """The lessons installed packages declare: ``{name: "module:attribute"}``."""
    from importlib.metadata import entry_points

    return {point.name: point.value for point in entry_points(group=ENTRY_POINTS)}


def load_lesson(spec: str | None = None) -> Lesson:
    """Load a lesson: an installed lesson's name, a module name (``pkg.lesson``), or the path of a
    package folder; ``None``: the one lesson installed.

    :param spec: What ``--lesson`` was given.
    :returns: The module's ``LESSON``.
    :raises LessonError: Nothing importable there, no :class:`Lesson` in it, or no single lesson
        installed to take by default.
    """
    installed = installed_lessons()
    if spec is None:
        if len(installed) != 1:
            raise LessonError(f"name the lesson with --lesson; installed: {', '.join(installed) or 'none'}")
        spec = next(iter(installed))
    attribute = "LESSON"
    if spec in installed:
        spec, _, attribute = installed[spec].partition(":")
    path = Path(spec)
    if path.is_dir() and (path / "__init__.py").is_file():
        root = path.resolve().parent
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        spec = path.resolve().name
    elif not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", spec):
        raise LessonError(f"--lesson {spec}: neither a package folder (with __init__.py) nor a module name")
    try:
        module = importlib.import_module(spec)
    except ImportError as exc:
        raise LessonError(f"--lesson {spec}: cannot import it ({exc}); give a module name that Python can "
                          "import, or the path of the lesson's package folder") from exc
    lesson = getattr(module, attribute or "LESSON", None)
    if not isinstance(lesson, Lesson):
        raise LessonError(f"--lesson {spec}: the module has no {attribute} = Lesson(...) (see docs/engine.md, "
                          "'Adding a lesson')")
    tasks = sorted(lesson.tasks)
    if sorted(c.task for c in lesson.checks) != tasks:
        raise LessonError(f"--lesson {spec}: every task needs exactly one check (tasks {tasks})")
    outside = [c.probe for c in lesson.checks if not _within(c.probe.partition(":")[0], lesson.kernel_modules)]
    if outside:
        raise LessonError(f"--lesson {spec}: the probes {', '.join(outside)} are not in the lesson's kernel_modules "
                          f"{list(lesson.kernel_modules)}; add their module there, or the kernels cannot import them")
    return lesson


def _within(module: str, roots: tuple[str, ...]) -> bool:
    """Whether ``module`` is one of ``roots`` or inside one of them."""
    return any(module == root or module.startswith(root + ".") for root in roots)
