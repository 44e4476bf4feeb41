"""The lesson's notebooks wherever the kit lives, and ``python -m bmnist_helpers lesson DIR``.

In a checkout of the repository the files are its own (``notebooks/``, ``solutions/``,
``constraints.txt``). In an installed wheel they are package data in ``bmnist_helpers/_lesson``,
copied there by the build step in ``setup.py``. Only the standard library is used here, so that a
student's base install can write the lesson::

    python -m bmnist_helpers lesson DIR              # the exercise: DIR/binary_mnist.ipynb
    python -m bmnist_helpers lesson DIR --solution   # the executed solution: DIR/binary_mnist_solution.ipynb

A file already in DIR that differs from the kit's (a student's work) is never overwritten without
``--force``, and with ``--force`` it is first kept as a numbered backup beside it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from ._atomic import write_atomic
from .grading.tags import EXPECTED_TAG, cell_tags, task_of

__all__ = [
    "CHECKOUT",
    "LessonExists",
    "NotASolution",
    "WriteResult",
    "check_solution",
    "in_checkout",
    "lesson_file",
    "lesson_path",
    "write_lesson",
]

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parent  # the repository root, when the package is used from a checkout
_DATA = PACKAGE_DIR / "_lesson"
# kind: (path in a checkout, name in the package data and in the folder the lesson is written to).
# setup.py's LESSON_FILES makes the same copies.
_FILES = {
    "exercise": ("notebooks/binary_mnist.ipynb", "binary_mnist.ipynb"),
    "solution": ("solutions/binary_mnist.ipynb", "binary_mnist_solution.ipynb"),
    "constraints": ("constraints.txt", "constraints.txt"),
}
_SOURCE = "solutions/binary_mnist.py"
_STUB = re.compile(r'raise NotImplementedError\("TODO')


class LessonExists(FileExistsError):
    """The target folder holds a different version of the notebook (probably a student's work)."""


class NotASolution(ValueError):
    """A notebook given as the solution is not an executed solution notebook."""


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_lesson` did: ``status`` is ``written``, ``unchanged`` or ``replaced``."""

    path: Path
    status: str
    backup: Path | None = None


def in_checkout() -> bool:
    """Whether the package is used from a checkout of the repository (an editable install)."""
    return (CHECKOUT / _SOURCE).is_file() and (CHECKOUT / "pyproject.toml").is_file()


def lesson_path(kind: str) -> Path:
    """Where a lesson file is: the checkout's own file in a checkout, else the package's copy.

    :param kind: ``exercise``, ``solution`` or ``constraints``.
    :returns: The path; it may be missing in a broken install (see :func:`lesson_file`).
    :raises ValueError: Unknown kind.
    """
    if kind not in _FILES:
        raise ValueError(f"unknown lesson file {kind!r}; one of {', '.join(_FILES)}")
    in_repo, packaged = _FILES[kind]
    return CHECKOUT / in_repo if in_checkout() else _DATA / packaged


def lesson_file(kind: str) -> Path:
    """Like :func:`lesson_path`, but the file must exist.

    :param kind: ``exercise``, ``solution`` or ``constraints``.
    :raises FileNotFoundError: The install lacks the file, with the command that repairs it.
    """
    path = lesson_path(kind)
    if not path.is_file():
        raise FileNotFoundError(
            f"the kit's {kind} file {path} is missing; reinstall the kit "
            f"(pip install --force-reinstall bmnist-kit=={__version__}) or run `make solution` in a checkout"
        )
    return path


def _backup_name(path: Path) -> Path:
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}.backup-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise LessonExists(f"{path.parent} holds too many backups of {path.name}; move some away")


def write_lesson(folder: Path, *, solution: bool = False, force: bool = False) -> WriteResult:
    """Write the exercise (or the executed solution) notebook into ``folder``.

    :param folder: Target folder; created if missing.
    :param solution: Write the solution notebook instead of the exercise.
    :param force: Replace a different file of the same name; the old one is kept as a backup.
    :returns: The path written and what happened.
    :raises LessonExists: A different file is there and ``force`` is not set.
    :raises NotADirectoryError: ``folder`` is a file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder; name a folder to write the lesson into")
    kind = "solution" if solution else "exercise"
    data = lesson_file(kind).read_bytes()
    target = folder / _FILES[kind][1]
    if target.is_dir():
        raise LessonExists(f"{target} is a folder; move it away or write the lesson into another folder")
    if not target.exists():
        write_atomic(target, data)
        return WriteResult(target, "written")
    if target.read_bytes() == data:
        return WriteResult(target, "unchanged")
    if not force:
        raise LessonExists(
            f"{target} already exists and differs from the kit's {kind} (your work?); nothing was written. "
            "Write the lesson into another folder, or add --force to replace it (the old file is kept as a backup)."
        )
    backup = _backup_name(target)
    with open(backup, "xb") as f:  # exclusive: never overwrite an earlier backup
        f.write(target.read_bytes())
    write_atomic(target, data)
    return WriteResult(target, "replaced", backup)


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def check_solution(path: Path) -> None:
    """Refuse a notebook that cannot serve as the grader's solution, before grading starts.

    The solution must be an executed solution notebook: answer cells and expected-result cells for
    every task, each expected-result cell with its stored outputs, and no ``TODO`` stubs.

    :param path: The notebook given as ``--solution``.
    :raises NotASolution: What is wrong, and how to get a usable notebook.
    """
    fix = (
        "give the executed solution: `python -m bmnist_helpers lesson DIR --solution` writes the kit's, "
        "`make solution` re-runs it in a checkout, or run all cells of your own variant and save it"
    )
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotASolution(f"--solution {path}: cannot read it as a notebook ({exc}); {fix}") from exc
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise NotASolution(f"--solution {path}: not an nbformat 4 notebook; {fix}")
    code = [c for c in nb["cells"] if isinstance(c, dict) and c.get("cell_type") == "code"]
    stubs = [c.get("id", "?") for c in code if _STUB.search(_source(c))]
    if stubs:
        raise NotASolution(f"--solution {path}: this is the exercise, not the solution (TODO stubs in {stubs}); {fix}")
    from .binary_mnist import TASK_FUNCTIONS  # here: that package declares this lesson from this module's files

    expected = [c for c in code if EXPECTED_TAG in cell_tags(c)]
    answers = {task_of(c) for c in code if EXPECTED_TAG not in cell_tags(c)}
    missing_expected = [n for n in TASK_FUNCTIONS if n not in {task_of(c) for c in expected}]
    missing_answers = [n for n in TASK_FUNCTIONS if n not in answers]
    if missing_expected or missing_answers:
        what = [f"expected-result cells of task(s) {missing_expected}"] if missing_expected else []
        what += [f"answer cells of task(s) {missing_answers}"] if missing_answers else []
        raise NotASolution(f"--solution {path}: no {' and no '.join(what)} (cells tagged task-N); {fix}")
    unrun = [c.get("id", "?") for c in expected if not c.get("outputs")]
    if unrun:
        raise NotASolution(f"--solution {path}: expected-result cells {unrun} have no stored outputs; {fix}")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``lesson`` command's arguments.

    :param parser: The subcommand's parser.
    """
    parser.add_argument("folder", type=Path, help="folder to write the notebook into (created if missing)")
    parser.add_argument("--solution", action="store_true",
                        help=f"write the executed solution ({_FILES['solution'][1]}) instead of the exercise")
    parser.add_argument("--force", action="store_true",
                        help="replace a different notebook of the same name; the old one is kept as a backup")


def run(args: argparse.Namespace) -> int:
    """Run the ``lesson`` command.

    :param args: Parsed arguments (see :func:`configure_parser`).
    :returns: Exit status: 0 written or unchanged, 1 refused.
    """
    try:
        result = write_lesson(args.folder, solution=args.solution, force=args.force)
    except (LessonExists, NotADirectoryError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if result.status == "unchanged":
        print(f"{result.path} is already the kit's version {__version__}; nothing to do")
    elif result.status == "replaced":
        print(f"wrote {result.path} (bmnist-kit {__version__}); your previous file is kept as {result.backup}")
    else:
        print(f"wrote {result.path} (bmnist-kit {__version__})")
    return 0
