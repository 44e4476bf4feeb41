"""nbjudge: grade Jupyter notebooks against a lesson's executed solution, each in a sandbox.

The engine knows no lesson. A lesson is a package whose ``LESSON`` is a :class:`Lesson`: its
solution notebook, its tasks, and one :class:`Check` per task (inputs drawn here, a probe run in
the student's kernel, a verdict here). What a lesson's code calls:

* in the grader: :class:`Lesson`, :class:`Check`, :class:`CheckFailed`, :class:`NotReady`,
  :class:`SharedCache`, and the
  comparisons :func:`array`, :func:`close`, :func:`not_raised` for its verdicts;
* in the kernel: :mod:`nbjudge.probe` (``attempt``, ``student``), the only module of the engine a
  kernel sees, with :mod:`nbjudge.values`.

Command line: ``nbjudge --lesson NAME SUBMISSIONS... --out DIR`` (:mod:`.cli`).
"""

import sys

# jsonschema, which nbformat imports, loads rfc3987_syntax where it is installed (jupyter-events
# pulls it in), and that builds a parser for over two seconds; notebook validation never checks
# IRIs. The engine's processes (bmnist-grade, every worker) switch the optional module off before
# anything imports nbformat; the kernels never import this package's __init__.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

from ._atomic import write_atomic  # noqa: E402
from .compare import array, close, not_raised  # noqa: E402
from .lessons import Check, CheckFailed, Lesson, LessonError, NotReady, SharedCache, installed_lessons, load_lesson  # noqa: E402

__version__ = "0.1.0"

__all__ = ["Check", "CheckFailed", "Lesson", "LessonError", "NotReady", "SharedCache", "array", "close",
           "installed_lessons", "load_lesson", "not_raised", "write_atomic"]
