"""Build step of bmnist-lesson: the wheel carries the executed solution as package data
(``bmnist_lesson/_solution``; :func:`bmnist_lesson.files.solution_notebook` finds it)."""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from build_copies import copying_build_py  # noqa: E402

SOLUTION_FILES = {"solutions/binary_mnist.ipynb": "bmnist_lesson/_solution/binary_mnist.ipynb"}

setup(cmdclass={"build_py": copying_build_py(SOLUTION_FILES)})
