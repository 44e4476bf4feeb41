"""The lesson's exercise wherever the kit lives, and ``python -m bmnist_helpers lesson DIR``.

In a checkout of the repository the files are its own (``notebooks/``, ``constraints.txt``). In an
installed wheel they are package data in ``bmnist_helpers/_lesson``, copied there by the build step
in ``kit/setup.py``. The kit holds the exercise only: the solution is the instructor's, and neither
the kit nor its wheel carries it. Only the standard library is used here, so that a student's
base install can write the lesson::

    python -m bmnist_helpers lesson DIR              # the exercise: DIR/binary_mnist.ipynb

A file already in DIR that differs from the kit's (a student's work) is never overwritten without
``--force``, and with ``--force`` it is first kept as a numbered backup beside it.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from ._atomic import write_atomic

__all__ = [
    "CHECKOUT",
    "LessonExists",
    "WriteResult",
    "in_checkout",
    "lesson_file",
    "lesson_path",
    "write_lesson",
]

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parents[1]  # the repository root, when the package is used from a checkout (kit/bmnist_helpers)
_DATA = PACKAGE_DIR / "_lesson"
# kind: (path in a checkout, name in the package data and in the folder the lesson is written to).
# kit/setup.py's LESSON_FILES makes the same copies.
_FILES = {
    "exercise": ("notebooks/binary_mnist.ipynb", "binary_mnist.ipynb"),
    "constraints": ("constraints.txt", "constraints.txt"),
}
SOLUTION_REFUSED = (
    "the solution is not part of bmnist-kit: it is your instructor's, and they publish what you may see of it. "
    "The exercise's expected-result boxes show what each task should print and draw."
)


class LessonExists(FileExistsError):
    """The target folder holds a different version of the notebook (probably a student's work)."""


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_lesson` did: ``status`` is ``written``, ``unchanged`` or ``replaced``."""

    path: Path
    status: str
    backup: Path | None = None


def in_checkout() -> bool:
    """Whether the package is used from a checkout of the repository (an editable install)."""
    return (CHECKOUT / _FILES["exercise"][0]).is_file() and (CHECKOUT / "kit" / "pyproject.toml").is_file()


def lesson_path(kind: str) -> Path:
    """Where a lesson file is: the checkout's own file in a checkout, else the package's copy.

    :param kind: ``exercise`` or ``constraints``.
    :returns: The path; it may be missing in a broken install (see :func:`lesson_file`).
    :raises ValueError: Unknown kind.
    """
    if kind not in _FILES:
        raise ValueError(f"unknown lesson file {kind!r}; one of {', '.join(_FILES)}")
    in_repo, packaged = _FILES[kind]
    return CHECKOUT / in_repo if in_checkout() else _DATA / packaged


def lesson_file(kind: str) -> Path:
    """Like :func:`lesson_path`, but the file must exist.

    :param kind: ``exercise`` or ``constraints``.
    :raises FileNotFoundError: The install lacks the file, with the command that repairs it.
    """
    path = lesson_path(kind)
    if not path.is_file():
        raise FileNotFoundError(
            f"the kit's {kind} file {path} is missing; reinstall the kit "
            f"(pip install --force-reinstall bmnist-kit=={__version__}) or run `make exercise` in a checkout"
        )
    return path


def _backup_name(path: Path) -> Path:
    for n in range(1, 10_000):
        candidate = path.with_name(f"{path.stem}.backup-{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise LessonExists(f"{path.parent} holds too many backups of {path.name}; move some away")


def write_lesson(folder: Path, *, force: bool = False) -> WriteResult:
    """Write the exercise notebook into ``folder``.

    :param folder: Target folder; created if missing.
    :param force: Replace a different file of the same name; the old one is kept as a backup.
    :returns: The path written and what happened.
    :raises LessonExists: A different file is there and ``force`` is not set.
    :raises NotADirectoryError: ``folder`` is a file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder; name a folder to write the lesson into")
    kind = "exercise"
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


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``lesson`` command's arguments.

    :param parser: The subcommand's parser.
    """
    parser.add_argument("folder", type=Path, help="folder to write the notebook into (created if missing)")
    parser.add_argument("--solution", action="store_true",
                        help="(not in the kit: the solution is the instructor's; this says so and writes nothing)")
    parser.add_argument("--force", action="store_true",
                        help="replace a different notebook of the same name; the old one is kept as a backup")


def run(args: argparse.Namespace) -> int:
    """Run the ``lesson`` command.

    :param args: Parsed arguments (see :func:`configure_parser`).
    :returns: Exit status: 0 written or unchanged, 1 refused (``--solution`` among them).
    """
    if args.solution:
        print(f"error: {SOLUTION_REFUSED}", file=sys.stderr)
        return 1
    try:
        result = write_lesson(args.folder, force=args.force)
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
