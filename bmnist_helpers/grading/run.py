"""Running grading copies: one nbval process per notebook, its kernel in the sandbox."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..data import default_cache_dir
from .sandbox import KERNEL_NAME, Limits, SandboxConfig, write_kernel_spec

__all__ = ["RunOptions", "RunResult", "run_notebook", "SANITIZE_FILE"]

SANITIZE_FILE = Path(__file__).resolve().parent.parent / "nbval_sanitize.cfg"
_NBVAL_MEMORY_MB = 3072  # the nbval process itself: a flood of output must not take the machine


@dataclass(frozen=True)
class RunOptions:
    """Limits and switches for running grading copies."""

    cell_timeout_s: int = 120
    notebook_timeout_s: int = 600
    limits: Limits = field(default_factory=Limits)
    use_bwrap: bool = True
    mnist_cache: Path | None = None


@dataclass
class RunResult:
    """What one nbval run reported."""

    cells: list[dict]
    exitstatus: int | None
    timed_out: bool
    seconds: float
    log: str


def _limit_nbval(pid: int) -> None:
    """Cap the nbval process's memory. Soft limit only: the kernel launcher below it sets the
    kernel's own, hard limits. (Set from outside: a ``preexec_fn`` would run JAX's fork hooks.)"""
    size = _NBVAL_MEMORY_MB * 1024 * 1024
    resource.prlimit(pid, resource.RLIMIT_AS, (size, resource.RLIM_INFINITY))


def run_notebook(nb: nbformat.NotebookNode, *, workdir: Path, slot: int, options: RunOptions) -> RunResult:
    """Run a grading copy with nbval (lax mode: only cells tagged to be checked are compared).

    :param nb: The grading copy.
    :param workdir: An empty folder for this run, outside the sandbox.
    :param slot: The parallel job slot (each has its own sandbox uid).
    :param options: Limits and switches.
    :returns: Per-cell outcomes and outputs, and how the process ended.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    nb_dir = workdir / "nb"
    nb_dir.mkdir()
    notebook = nb_dir / "grading.ipynb"
    nbformat.write(nb, notebook)
    (nb_dir / "pytest.ini").write_text("[pytest]\n")
    home = Path(tempfile.mkdtemp(prefix="bmnist-kernel-", dir=workdir))
    os.chmod(workdir, 0o711)  # the sandbox uid may pass through to its home, but not list or read
    cache = Path(options.mnist_cache or default_cache_dir())
    config = SandboxConfig(
        home=str(home),
        limits=options.limits,
        slot=slot,
        use_bwrap=options.use_bwrap,
        readable=[str(cache)] if cache.exists() else [],
        env={"BMNIST_CACHE": str(cache), "BMNIST_MIRRORS": "file:///nonexistent"},
    )
    spec_dir = write_kernel_spec(workdir / "jupyter", config)
    results = workdir / "results.json"
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TZ")}
    env.update({
        "JUPYTER_PATH": str(spec_dir),
        "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTER_CONFIG_DIR": str(workdir / "config"),
        "JUPYTER_DATA_DIR": str(workdir / "data"),
        "BMNIST_GRADE_IPC": str(home / "ipc"),
        "BMNIST_GRADE_RESULTS": str(results),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    command = [
        sys.executable, "-m", "pytest", "-p", "bmnist_helpers.grading.nbval_plugin", "-p", "no:cacheprovider",
        "--nbval-lax", f"--nbval-kernel-name={KERNEL_NAME}", f"--nbval-sanitize-with={SANITIZE_FILE}",
        f"--nbval-cell-timeout={options.cell_timeout_s}", "-q", "--no-header", "-W", "ignore",
        "-c", str(nb_dir / "pytest.ini"), "--rootdir", str(nb_dir), str(notebook),
    ]
    start = time.perf_counter()
    timed_out = False
    with open(workdir / "nbval.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=nb_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            _limit_nbval(proc.pid)
            exitstatus = proc.wait(options.notebook_timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            exitstatus = None
        finally:
            _kill_group(proc)
    seconds = time.perf_counter() - start
    cells = json.loads(results.read_text())["cells"] if results.exists() else []
    text = (workdir / "nbval.log").read_bytes()[-20_000:].decode("utf-8", "replace")
    shutil.rmtree(home, ignore_errors=True)
    return RunResult(cells=cells, exitstatus=exitstatus, timed_out=timed_out, seconds=seconds, log=text)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass
    proc.wait()
