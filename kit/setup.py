"""Build step of bmnist-kit: the wheel carries the exercise and the constraints as package data
(``bmnist_helpers/_lesson``; :mod:`bmnist_helpers.lesson` reads them). Never the solution."""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from build_copies import copying_build_py  # noqa: E402

# Keep in step with bmnist_helpers/lesson.py (_FILES); tests/test_release.py opens the wheel.
LESSON_FILES = {
    "notebooks/binary_mnist.ipynb": "bmnist_helpers/_lesson/binary_mnist.ipynb",
    "constraints.txt": "bmnist_helpers/_lesson/constraints.txt",
}

setup(cmdclass={"build_py": copying_build_py(LESSON_FILES)})
