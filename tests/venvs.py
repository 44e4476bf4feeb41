"""Fresh virtual environments for the install and release tests: a user's environment outside the
checkout, a new venv, commands that must succeed, and the lesson's first cells run in a kernel."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, local_mirror

# Byte-compiling every installed file (jax, scipy, matplotlib...) costs more than compiling, on
# import, the modules a test uses.
PIP_QUICK = ["-q", "--no-compile"]


def run(argv, *, check=True, **kwargs) -> subprocess.CompletedProcess:
    """``argv`` run, its output captured; the test fails when it exits non-zero (unless ``check=False``)."""
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        command = " ".join(map(str, argv))
        pytest.fail(f"{command} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def user_env(tmp: Path, venv: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a user outside the checkout: no PYTHONPATH, no dev venv, own Jupyter dirs."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p).resolve() != (ROOT / ".venv" / "bin").resolve()]
    env["PATH"] = os.pathsep.join(([str(venv / "bin")] if venv else []) + path)
    env.update(JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"), BMNIST_MIRRORS=local_mirror(), PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


def new_venv(path: Path, env: dict[str, str]) -> Path:
    run([sys.executable, "-m", "venv", path], env=env)
    return path


RUN_CELLS = """
import sys, nbformat
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells = [c for c in nb.cells if c.cell_type == "code"
            and {"setup", "parameters", "data"} & set(c.metadata.get("tags", []))]
where = "import sys, bmnist_helpers; print(sys.executable); print(bmnist_helpers.__file__)"
nb.cells.append(nbformat.v4.new_code_cell(where))
client = NotebookClient(nb, kernel_name=nb.metadata.kernelspec.name, timeout=600, resources={"metadata": {"path": "."}})
client.execute()
nbformat.write(nb, sys.argv[2])
"""


def cell_stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")
