"""The ``bmnist`` Jupyter kernel: this Python, with a persistent JAX compilation cache.

::

    python -m bmnist_helpers kernel [--sys-prefix | --user | --prefix DIR] [--name bmnist]

Registers the kernel spec that the lesson's notebooks ask for. It runs the Python that ran the
command and sets ``JAX_COMPILATION_CACHE_DIR`` to ``jax/`` in the kit's user cache folder, so
that re-running a notebook compiles nothing twice, and ``XLA_FLAGS`` to
:data:`FAST_COMPILE_FLAGS` where the installed jaxlib accepts them (run the command again after
upgrading jax). ``make setup``, Binder's ``postBuild`` and the pip and conda routes of the docs
(docs/students.md, docs/install.md) all register the kernel with this command. Needs ``ipykernel``
(the ``lab`` or ``instructor`` extra).
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["KERNEL_NAME", "FAST_COMPILE_FLAGS", "compile_flags", "install_kernel", "kernel_env", "xla_flags"]

KERNEL_NAME = "bmnist"  # the kernelspec name in the lesson's notebook metadata


def compile_flags(*, optimization_level: int = 1) -> tuple[str, ...]:
    """XLA options that compile this lesson's small programs fast: XLA's CPU compiler takes longer
    than running them. No fusion emitters and backend ``optimization_level`` 1 (of 0-3) compile the
    notebook's programs in about 60 % of the time, and they run no slower. LLVM's expensive passes
    off and each program kept as one LLVM module (not split to compile on several threads) take
    about an eighth off the notebook's CPU time on 2 cores, with the same printed results.

    :param optimization_level: XLA's backend optimisation level (the grader's short runs take 0).
    """
    return ("--xla_cpu_use_fusion_emitters=false", "--xla_llvm_disable_expensive_passes=true",
            "--xla_cpu_parallel_codegen_split_count=1", f"--xla_backend_optimization_level={optimization_level}")


FAST_COMPILE_FLAGS = compile_flags()  # the lesson's kernel's


# Starts an XLA CPU client, which reads XLA_FLAGS: jaxlib alone, in a fifth of the time that
# importing jax takes (jax itself where this jaxlib has no such function).
_FLAG_CHECK = """
try:
    from jaxlib.xla_client import make_cpu_client
except ImportError:
    import jax.numpy as jnp
    jnp.zeros(1).block_until_ready()
else:
    make_cpu_client()
"""


@functools.cache
def xla_flags(flags: tuple[str, ...] = FAST_COMPILE_FLAGS) -> str:
    """``XLA_FLAGS`` for the lesson's kernels: this process's own plus ``flags``, if the installed
    jaxlib accepts them (XLA aborts on a flag it does not know; checked once, in a child process).

    :param flags: The options to add (the grader passes its own).
    :returns: The value, possibly empty.
    """
    own = os.environ.get("XLA_FLAGS", "")
    wanted = " ".join([own, *flags]).strip()
    check = [sys.executable, "-c", _FLAG_CHECK]
    try:
        ok = subprocess.run(check, env={**os.environ, "XLA_FLAGS": wanted, "JAX_PLATFORMS": "cpu"},
                            capture_output=True, timeout=300, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return wanted if ok else own


def kernel_env() -> dict[str, str]:
    """The environment the kernel starts with: where JAX keeps compiled programs, how XLA compiles."""
    import platformdirs

    cache = Path(platformdirs.user_cache_dir("bmnist-kit")) / "jax"
    env = {"JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.05"}
    flags = xla_flags()
    return {**env, "XLA_FLAGS": flags} if flags else env


def _in_environment() -> bool:
    return sys.prefix != sys.base_prefix or (Path(sys.prefix) / "conda-meta").is_dir()


def install_kernel(*, name: str = KERNEL_NAME, user: bool | None = None, prefix: Path | None = None) -> Path:
    """Register the kernel spec.

    :param name: Kernel name (and display name).
    :param user: Install for the user; by default only outside a venv or conda environment.
    :param prefix: Install under ``PREFIX/share/jupyter/kernels`` instead (e.g. ``sys.prefix``).
    :returns: The folder of the kernel spec.
    :raises RuntimeError: ``ipykernel`` is not installed.
    """
    try:
        from ipykernel.kernelspec import install
    except ImportError as exc:
        raise RuntimeError("ipykernel is not installed; pip install 'bmnist-kit[lab]' brings it") from exc
    if prefix is None and user is None:
        user = not _in_environment()
        prefix = None if user else Path(sys.prefix)
    path = install(user=bool(user), prefix=str(prefix) if prefix else None, kernel_name=name,
                   display_name=name, env=kernel_env())
    return Path(path)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``kernel`` command's arguments.

    :param parser: The subcommand's parser.
    """
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sys-prefix", action="store_true", help="into this venv or conda environment")
    where.add_argument("--user", action="store_true", help="for this user")
    where.add_argument("--prefix", type=Path, help="under PREFIX/share/jupyter/kernels")
    parser.add_argument("--name", default=KERNEL_NAME, help=f"kernel name (default: {KERNEL_NAME})")


def run(args: argparse.Namespace) -> int:
    """Run the ``kernel`` command.

    :param args: Parsed arguments (see :func:`configure_parser`).
    :returns: Exit status.
    """
    prefix = Path(sys.prefix) if args.sys_prefix else args.prefix
    try:
        path = install_kernel(name=args.name, user=True if args.user else None, prefix=prefix)
    except (RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"registered kernel {args.name!r} in {path}")
    return 0
