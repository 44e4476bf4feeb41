"""``python -m bmnist_helpers.lab``: JupyterLab on the student's own copy of the exercise.

This is what ``make lab`` runs in a checkout. The student works in ``work/binary_mnist.ipynb``, a
copy of the exercise that git ignores: it is made from ``notebooks/binary_mnist.ipynb`` the first
time and never overwritten, so the kit's tracked notebooks stay as committed and ``git pull``
updates them without touching the student's work. The URL that JupyterLab prints opens that copy;
the file browser shows the repository without build artefacts (``*.egg-info``, ``build``,
``dist``). Arguments after the options go to ``jupyter lab`` unchanged::

    python -m bmnist_helpers.lab                    # make work/binary_mnist.ipynb once, open it
    python -m bmnist_helpers.lab --no-browser       # the same, without opening a browser

To start over, ``python -m bmnist_helpers lesson work --force`` replaces the copy with the kit's
current exercise and keeps the old one as ``work/binary_mnist.backup-N.ipynb``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .lesson import CHECKOUT, in_checkout, write_lesson

__all__ = ["HIDDEN", "WORK_FOLDER", "lab_options", "main", "student_copy"]

WORK_FOLDER = "work"
# Jupyter's own default hide_globs, and the build artefacts of an editable install and a wheel.
HIDDEN = ("__pycache__", "*.pyc", "*.pyo", ".DS_Store", "*.so", "*.dylib", "*~", "*.egg-info", "build", "dist")


def student_copy(root: Path = CHECKOUT, *, folder: str = WORK_FOLDER) -> tuple[Path, bool]:
    """The student's own copy of the exercise, made from the kit's exercise if it is not there yet.

    :param root: The repository root.
    :param folder: The copy's folder, relative to ``root``.
    :returns: ``(path, made)``: the copy, and whether it was made just now. An existing copy is
        never written to.
    """
    target = Path(root) / folder
    existing = target / "binary_mnist.ipynb"
    if existing.exists():
        return existing, False
    return write_lesson(target).path, True


def lab_options(root: Path, notebook: Path) -> list[str]:
    """The ``jupyter lab`` options of ``make lab``: serve ``root``, open ``notebook`` first.

    ``LabApp.default_url`` puts the notebook into the URL that JupyterLab prints and opens, so the
    printed link leads to the notebook and not to the Launcher.

    :param root: The folder the file browser shows.
    :param notebook: The notebook to open, inside ``root``.
    :returns: Command-line options for ``jupyter lab``.
    """
    relative = Path(notebook).resolve().relative_to(Path(root).resolve()).as_posix()
    return [
        f"--ServerApp.root_dir={root}",
        f"--LabApp.default_url=/lab/tree/{relative}",
        f"--ContentsManager.hide_globs={json.dumps(list(HIDDEN))}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.news_url=",
    ]


def main(argv: list[str] | None = None) -> int:
    """Make the student's copy if needed, then replace this process by ``jupyter lab`` on it.

    :param argv: Arguments (default: ``sys.argv[1:]``); unknown ones go to ``jupyter lab``.
    :returns: Exit status (only when JupyterLab could not be started).
    """
    parser = argparse.ArgumentParser(prog="python -m bmnist_helpers.lab", description=__doc__.split("\n")[0])
    parser.add_argument("--folder", default=WORK_FOLDER,
                        help=f"folder of the student's copy, in the repository (default: {WORK_FOLDER})")
    args, rest = parser.parse_known_args(argv)
    if not in_checkout():
        print("error: this command serves a checkout of the repository; with an installed kit, write the lesson "
              "with `python -m bmnist_helpers lesson DIR` and run `jupyter lab DIR/binary_mnist.ipynb`",
              file=sys.stderr)
        return 2
    path, made = student_copy(CHECKOUT, folder=args.folder)
    shown = path.relative_to(CHECKOUT)
    if made:
        print(f"Your notebook: {shown}, a fresh copy of the exercise (git ignores it; the kit never overwrites it).")
    else:
        print(f"Your notebook: {shown}, your own work, as you left it. To start over from the kit's exercise: "
              f"python -m bmnist_helpers lesson {shown.parent} --force (keeps the old one as a backup).")
    command = [sys.executable, "-m", "jupyterlab", *lab_options(CHECKOUT, path), *rest]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    sys.stdout.flush()
    try:
        os.execv(sys.executable, command)
    except OSError as exc:
        print(f"error: could not start JupyterLab ({exc}); run `make setup` first", file=sys.stderr)
        return 1
    return 0  # not reached: execv does not return


if __name__ == "__main__":
    sys.exit(main())
