"""Where the instructor's files of the lesson are: in a checkout, the repository's own; in an
installed ``bmnist-lesson`` wheel, its package data (copied there by ``lesson/setup.py``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHECKOUT", "SANITIZE_FILE", "SOLUTION_PY", "in_checkout", "solution_notebook"]

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT = PACKAGE_DIR.parents[1]  # the repository root, when the package is used from a checkout
SOLUTION_PY = CHECKOUT / "solutions" / "binary_mnist.py"  # the single source; only in a checkout
SANITIZE_FILE = PACKAGE_DIR / "nbval_sanitize.cfg"  # what makes printed output comparable (nbval's format)
_PACKAGED = PACKAGE_DIR / "_solution" / "binary_mnist.ipynb"


def in_checkout() -> bool:
    """Whether the package is used from a checkout of the repository (an editable install)."""
    return SOLUTION_PY.is_file()


def solution_notebook() -> Path:
    """The executed solution notebook: the checkout's ``solutions/binary_mnist.ipynb``, else the wheel's copy."""
    return CHECKOUT / "solutions" / "binary_mnist.ipynb" if in_checkout() else _PACKAGED
