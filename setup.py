"""Build step of bmnist-kit: the wheel carries the lesson as package data.

Instructors edit ``solutions/binary_mnist.py``; ``make solution`` and ``make exercise`` write the
executed solution and the exercise notebooks beside it, at the repository root. Those files stay
where they are. Building a wheel copies them, with ``constraints.txt``, into
``bmnist_helpers/_lesson/`` of the build tree only (never of the checkout), so that an installed
kit can write the lesson (``python -m bmnist_helpers lesson``) and grade without a checkout. An
editable install gets no copies: ``bmnist_helpers.lesson`` then reads the checkout's own files.
Everything else about the package is in ``pyproject.toml``.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# Keep in step with bmnist_helpers/lesson.py (_FILES); tests/test_install.py checks the wheel.
LESSON_FILES = {
    "notebooks/binary_mnist.ipynb": "binary_mnist.ipynb",
    "solutions/binary_mnist.ipynb": "binary_mnist_solution.ipynb",
    "constraints.txt": "constraints.txt",
}


class BuildPyWithLesson(build_py):
    """``build_py`` that also copies the lesson files into ``bmnist_helpers/_lesson``."""

    def _lesson_targets(self):
        lesson = Path(self.build_lib, "bmnist_helpers", "_lesson")
        return {HERE / source: lesson / name for source, name in LESSON_FILES.items()}

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for source, target in self._lesson_targets().items():
            if not source.is_file():
                raise SystemExit(f"error: {source} is missing; build bmnist-kit from a checkout or its sdist")
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    def get_outputs(self, include_bytecode=True):
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(t) for t in self._lesson_targets().values()]


setup(cmdclass={"build_py": BuildPyWithLesson})
