"""The instructor's side of the binary-MNIST lesson: tasks, points, hidden checks, parameters.

This package is installed by instructors only (``bmnist-lesson``); students get the kit
(``bmnist_helpers``) and the exercise. ``bmnist-grade`` grades this lesson with the engine
(:mod:`nbjudge`), which knows nothing of what is declared here. Each hidden check is in three
parts: :mod:`.draws` (inputs, in the grader), :mod:`.kernel.probes` (calls of the student's
functions, in the kernel: the only module of this package a kernel sees, with
:mod:`.kernel.usable`) and :mod:`.verdicts` (in the grader). The executed solution is
:func:`.files.solution_notebook`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bmnist_helpers.kernel import compile_flags
from bmnist_helpers.lesson import lesson_path
from nbjudge import Check, Lesson, NotReady, SharedCache

from . import draws
from .files import SANITIZE_FILE, solution_notebook

__version__ = "0.1.0"
__all__ = ["GRADING_COMPILE_FLAGS", "GRADING_PARAMS", "LESSON", "TASK_FUNCTIONS"]

TASK_FUNCTIONS = {
    1: ("train_dataloader",),
    2: ("mlp", "init_mlp_params"),
    3: ("loss_fn",),
    4: ("make_update_step", "train"),
    5: ("retrieve_interesting_samples",),
}
# Grading runs every notebook again, so it trains and samples less than the lesson does. The hidden
# checks do not depend on these; the expected-result cells are compared with a reference run that
# uses the same values. After 200 steps the test accuracy was at least 98.5 % for each of 40 seeds,
# so 98 % leaves room for correct code that visits the batches in another order (a broken training
# loop stays far below). The accuracies of single untrained models spread from 20 % to 84 %, so
# the histogram keeps 20: their mean lies between 35 % and 65 % by more than five standard
# deviations (10 models: four).
GRADING_PARAMS = {"NUM_STEPS": "200", "TARGET_ACCURACY": "0.98", "NUM_INITS": "20"}
# A grading run is short, so XLA's compile time outweighs how fast the compiled programs run: with
# no backend optimisation they compile in about two thirds of the time (the lesson's kernel keeps
# level 1, under which its 100 random initialisations run faster).
GRADING_COMPILE_FLAGS = compile_flags(optimization_level=0)
_KERNEL = __name__ + ".kernel"
_PROBES, _VERDICTS = _KERNEL + ".probes", __name__ + ".verdicts"  # verdicts: imported by the grader only
_CHECKS = tuple(Check(task, getattr(draws, name), f"{_PROBES}:{name}", f"{_VERDICTS}:{name}")
                for task, name in enumerate(("dataloader", "model", "objective", "training", "examples"), 1))


# JAX's persistent compilation cache, filled by the warm-up job (the exercise's grading copy: the
# instructor's cells with the stubs as answers) and read by the jobs after it, which write nothing
# there: what instructor code compiles without any answer is compiled once a run.
_COMPILE_CACHE = SharedCache(
    writer_env={"JAX_COMPILATION_CACHE_DIR": "{cache}", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"},
    reader_env={"JAX_COMPILATION_CACHE_DIR": "{cache}", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "1e9"},
)


def _kernel_env() -> dict[str, str]:
    """JAX on the CPU (its compilation cache: :data:`_COMPILE_CACHE`), the grader's XLA flags where
    this jaxlib accepts them, MNIST from the read-only cache and no download. Figures are drawn with the inline backend,
    as in Jupyter, so that the HTML feedback shows the expected-result cells' figures (the worker
    keeps those only)."""
    from bmnist_helpers.data import default_cache_dir
    from bmnist_helpers.kernel import xla_flags

    env = {"JAX_PLATFORMS": "cpu", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
           "BMNIST_CACHE": str(default_cache_dir()), "BMNIST_MIRRORS": "file:///nonexistent"}
    flags = xla_flags(GRADING_COMPILE_FLAGS)
    return {**env, "XLA_FLAGS": flags} if flags else env


def _readable() -> list[Path]:
    """The MNIST cache, where it exists."""
    from bmnist_helpers.data import default_cache_dir

    cache = default_cache_dir()
    return [cache] if cache.exists() else []


def _prepare(log: Callable[[str], None]) -> None:
    """MNIST in the cache before any kernel starts (the kernels have no network): the kit's own
    downloader with its mirrors (``BMNIST_MIRRORS``), in the grader process."""
    from bmnist_helpers.data import CacheError, MirrorError, default_cache_dir, fetch

    try:
        fetch()
    except (MirrorError, CacheError) as exc:
        raise NotReady(f"MNIST is not in the cache {default_cache_dir()} and could not be fetched:\n{exc}\n"
                       "Fill the cache first: python -m bmnist_helpers.data fetch "
                       "(or: ... fetch --from DIR, with the four .gz files in DIR)") from None


LESSON = Lesson(
    name="binary-mnist",
    solution=solution_notebook(),
    exercise=lesson_path("exercise"),
    tasks=TASK_FUNCTIONS,
    checks=_CHECKS,
    params=GRADING_PARAMS,
    skip_tags=frozenset({"solution-only", "explore"}),
    kernel_env=_kernel_env,
    readable=_readable,
    kernel_modules=(_KERNEL, "bmnist_helpers"),
    sanitize=SANITIZE_FILE,
    prepare=_prepare,
    shared_cache=_COMPILE_CACHE,
)
