"""Build step shared by the distributions' ``setup.py``: copy files of the repository into a wheel.

The notebooks stay where links and habits point (``notebooks/``, ``solutions/``); a wheel that
needs one gets a copy in its package data, made in the build tree only (never in the checkout).
An editable install gets no copies: the package then reads the checkout's own file.
"""

from __future__ import annotations

from pathlib import Path

from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def copying_build_py(copies: dict[str, str]) -> type[build_py]:
    """A ``build_py`` that also copies ``{path in the repository: path in the build tree}``.

    :raises SystemExit: A source file is missing (a wheel built outside a checkout).
    """

    class BuildPyWithCopies(build_py):
        def _targets(self) -> dict[Path, Path]:
            return {ROOT / source: Path(self.build_lib, target) for source, target in copies.items()}

        def run(self):
            super().run()
            if getattr(self, "editable_mode", False):
                return
            for source, target in self._targets().items():
                if not source.is_file():
                    raise SystemExit(f"error: {source} is missing; build the wheels from a checkout (make wheels)")
                self.mkpath(str(target.parent))
                self.copy_file(str(source), str(target))

        def get_outputs(self, include_bytecode=True):
            outputs = super().get_outputs(include_bytecode)
            if getattr(self, "editable_mode", False):
                return outputs
            return outputs + [str(t) for t in self._targets().values()]

    return BuildPyWithCopies
