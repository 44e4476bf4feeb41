"""The kit installed, not only cloned.

Fast tests: the ``lesson`` and ``kernel`` commands and ``bmnist-grade --solution`` checks. Slow
tests (marker ``install``): the wheel is built once per session from a copy of the checkout's files,
then installed into fresh venvs (no system site-packages; PyPI and the warm pip cache only):

* installed: ``pip install -c constraints.txt "bmnist_kit-*.whl[instructor]"``; from an empty folder
  outside the checkout, write the lesson, register the kernel with Binder's ``postBuild``, run the
  exercise's setup, parameters and data cells in that kernel, and grade two fixture submissions;
* floor: every dependency at the lower bound ``pyproject.toml`` declares (wheels only, the kit
  from the built wheel), and the solution notebook run in that venv's kernel;
* Colab-like: Colab's versions (``COLAB``), with numpy, IPython, ipywidgets and matplotlib.pyplot
  imported by the kernel before the first cell; the setup cell installs the kit from a find-links
  folder holding the wheel (``BMNIST_WHEELHOUSE``) and the rest from the package index.

In floor and Colab-like: the expected-result outputs equal the stored ones, the explorers build
their widgets, and no package installed before the setup cell has another version after it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import bmnist_helpers
import nbformat
import pytest
from bmnist_helpers import kernel, lesson, setup
from bmnist_helpers.__main__ import main as kit_main
from nbjudge import cli

from tests.conftest import ROOT, local_mirror

VERSION = bmnist_helpers.__version__
FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
# Byte-compiling every installed file (jax, scipy, matplotlib...) costs more than compiling, on
# import, the modules a test uses.
PIP_QUICK = ["-q", "--no-compile"]


# --- the lesson command -------------------------------------------------------------------------


def test_lesson_writes_the_exercise_and_then_leaves_it_alone(tmp_path, capsys):
    folder = tmp_path / "new" / "lesson"
    assert kit_main(["lesson", str(folder)]) == 0
    written = folder / "binary_mnist.ipynb"
    assert written.read_bytes() == (ROOT / "notebooks" / "binary_mnist.ipynb").read_bytes()
    assert kit_main(["lesson", str(folder)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["binary_mnist.ipynb"]


def test_lesson_never_overwrites_a_students_work(tmp_path, capsys):
    target = tmp_path / "binary_mnist.ipynb"
    target.write_text("my work")
    assert kit_main(["lesson", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "already exists and differs" in err and "--force" in err and "nothing was written" in err
    assert target.read_text() == "my work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary_mnist.ipynb"]

    assert kit_main(["lesson", str(tmp_path), "--force"]) == 0
    assert "binary_mnist.backup-1.ipynb" in capsys.readouterr().out
    assert (tmp_path / "binary_mnist.backup-1.ipynb").read_text() == "my work"
    assert target.read_bytes() == (ROOT / "notebooks" / "binary_mnist.ipynb").read_bytes()

    target.write_text("my second try")
    result = lesson.write_lesson(tmp_path, force=True)
    assert result.status == "replaced" and result.backup.name == "binary_mnist.backup-2.ipynb"
    assert (tmp_path / "binary_mnist.backup-1.ipynb").read_text() == "my work"
    assert result.backup.read_text() == "my second try"


def test_lesson_solution_and_bad_folders(tmp_path, capsys):
    assert kit_main(["lesson", str(tmp_path), "--solution"]) == 0
    solution = tmp_path / "binary_mnist_solution.ipynb"
    assert solution.read_bytes() == (ROOT / "solutions" / "binary_mnist.ipynb").read_bytes()
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert kit_main(["lesson", str(afile)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "sub" / "binary_mnist.ipynb").mkdir(parents=True)
    assert kit_main(["lesson", str(tmp_path / "sub")]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_kernel_command_registers_the_notebooks_kernel_with_its_cache(tmp_path):
    assert kit_main(["kernel", "--prefix", str(tmp_path)]) == 0
    spec = json.loads((tmp_path / "share" / "jupyter" / "kernels" / "bmnist" / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and "ipykernel_launcher" in spec["argv"]
    assert spec["display_name"] == kernel.KERNEL_NAME
    assert spec["env"]["JAX_COMPILATION_CACHE_DIR"].endswith(os.path.join("bmnist-kit", "jax"))
    assert all(flag in spec["env"]["XLA_FLAGS"].split() for flag in kernel.FAST_COMPILE_FLAGS)


def test_xla_flags_this_jaxlib_refuses_are_left_out(monkeypatch):
    # XLA aborts at start-up on a flag it does not know (a jax upgrade may drop one), so the kernel
    # gets only flags a child process started with.
    from bmnist_lesson import GRADING_COMPILE_FLAGS

    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nonexistent")
    kernel.xla_flags.cache_clear()
    try:
        assert kernel.xla_flags(("--xla_cpu_no_such_flag_in_any_version=true",)) == "--xla_dump_to=/nonexistent"
        # the user's own flags stay; the grader's flags are accepted by the jaxlib this kit pins
        assert kernel.xla_flags(GRADING_COMPILE_FLAGS).split() == ["--xla_dump_to=/nonexistent", *GRADING_COMPILE_FLAGS]
    finally:
        kernel.xla_flags.cache_clear()


def test_generator_refuses_to_run_outside_a_checkout(monkeypatch, capsys):
    from bmnist_helpers import exercise

    monkeypatch.setattr(exercise, "in_checkout", lambda: False)
    assert exercise.main([]) == 2
    assert "needs a checkout" in capsys.readouterr().err


# --- bmnist-grade --solution --------------------------------------------------------------------


def _solution_variant(tmp_path: Path, change) -> Path:
    nb = json.loads((ROOT / "solutions" / "binary_mnist.ipynb").read_text())
    change(nb)
    path = tmp_path / "variant.ipynb"
    path.write_text(json.dumps(nb))
    return path


def _strip_outputs(nb):
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None


def _drop_expected(nb):
    nb["cells"] = [c for c in nb["cells"] if "expected-result" not in c["metadata"].get("tags", [])]


@pytest.mark.parametrize(("change", "message"), [
    (_strip_outputs, "have no stored outputs"),
    (_drop_expected, "no expected-result cells of task(s) [1, 2, 3, 4, 5]"),
    (lambda nb: nb.update(nbformat=3), "not an nbformat 4 notebook"),
])
def test_grader_refuses_a_solution_that_is_not_executed(tmp_path, capsys, change, message):
    variant = _solution_variant(tmp_path, change)
    out = tmp_path / "grades"
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(out), "--solution", str(variant)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and "--solution" in err
    assert not out.exists(), "grading must not start"


def test_grader_refuses_the_exercise_as_solution(tmp_path, capsys):
    out = tmp_path / "grades"
    exercise = ROOT / "notebooks" / "binary_mnist.ipynb"
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(out), "--solution", str(exercise)]) == 2
    assert "this is the exercise, not the solution" in capsys.readouterr().err
    assert not out.exists()


def test_the_kits_solution_passes_the_check():
    lesson.check_solution(lesson.lesson_file("solution"))
    with pytest.raises(lesson.NotASolution, match="cannot read it"):
        lesson.check_solution(ROOT / "README.md")


# --- the routes, in fresh venvs -----------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    wheel: Path
    log: str


def _run(argv, *, check=True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        command = " ".join(map(str, argv))
        pytest.fail(f"{command} exited {proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def _grade_two_fixtures(venv: Path, env: dict, home: Path) -> dict[str, dict]:
    """The packaged solution written into ``home``, and two fixture submissions graded there with the
    shipped grading parameters; the rows of ``grades.csv`` by submission."""
    _run([venv / "bin" / "python", "-m", "bmnist_helpers", "lesson", ".", "--solution"], env=env, cwd=home)
    for name in ("full-marks", "untouched"):
        shutil.copy(FIXTURES / f"{name}.ipynb", home / f"{name}.ipynb")
    _run([venv / "bin" / "bmnist-grade", "full-marks.ipynb", "untouched.ipynb", "--out", "grades", "--seed", "20231107",
          "--jobs", "2"], env=env, cwd=home)
    return {r["submission"]: r for r in csv.DictReader(io.StringIO((home / "grades" / "grades.csv").read_text()))}


def _env(tmp: Path, venv: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a user outside the checkout: no PYTHONPATH, no dev venv, own Jupyter dirs."""
    drop = {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "JUPYTER_PATH", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p).resolve() != (ROOT / ".venv" / "bin").resolve()]
    env["PATH"] = os.pathsep.join(([str(venv / "bin")] if venv else []) + path)
    env.update(JUPYTER_DATA_DIR=str(tmp / "jupyter-data"), JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"), BMNIST_MIRRORS=local_mirror(), PYTHONNOUSERSITE="1")
    env.update(extra)
    return env


def _venv(path: Path, env: dict[str, str]) -> Path:
    _run([sys.executable, "-m", "venv", path], env=env)
    return path


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    """The wheel, built once from a copy of the checkout's tracked and new files (no stale build/)."""
    src = tmp_path_factory.mktemp("src")
    files = _run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.split("\n")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", src, "-w", dist])
    wheels = list(dist.glob("bmnist_kit-*.whl"))
    assert len(wheels) == 1, proc.stdout
    return Built(wheels[0], proc.stdout + proc.stderr)


@pytest.mark.install
def test_wheel_carries_the_lesson_and_builds_quietly(built):
    # This machine's pip configuration names index folders that do not exist; pip warns about each.
    warnings = [line for line in built.log.splitlines() if "warn" in line.lower()
                and not line.startswith("WARNING: Location 'file:")]
    assert not warnings, "\n".join(warnings)
    assert built.wheel.name == f"bmnist_kit-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(built.wheel) as whl:
        names = set(whl.namelist())
        for source, packaged in lesson._FILES.values():
            assert whl.read(f"bmnist_helpers/_lesson/{packaged}") == (ROOT / source).read_bytes(), packaged
        meta = whl.read(f"bmnist_kit-{VERSION}.dist-info/METADATA").decode()
    assert "engine/nbjudge/cli.py" in names and "lesson/bmnist_lesson/nbval_sanitize.cfg" in names
    assert not any(n.startswith(("tests/", "solutions/", "notebooks/")) for n in names)
    assert "License-Expression: MIT" in meta
    assert "Requires-Dist: jupyterlab>=4.0; extra == \"lab\"" in meta
    assert "Requires-Dist: nbclient>=0.9; extra == \"instructor\"" in meta
    assert "Requires-Dist: numpy>=1.24.1\n" in meta, "the supported range is in the wheel's metadata"


_RUN_CELLS = """
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


def _stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.install
def test_installed_route(built, tmp_path):
    """pip install the wheel with the instructor extra, then use it only from outside the checkout."""
    home = tmp_path / "classroom"
    home.mkdir()
    env = _env(tmp_path)
    venv = _venv(tmp_path / "venv", env)
    env = _env(tmp_path, venv)
    py = venv / "bin" / "python"
    constraints = ROOT / "constraints.txt"
    _run([py, "-m", "pip", "install", *PIP_QUICK, "-c", constraints, f"{built.wheel}[instructor]"], env=env)
    installed = {line.split("==")[0].lower() for line in _run([py, "-m", "pip", "freeze"], env=env).stdout.split()}
    assert "jupyterlab" not in installed and "bmnist-kit" in installed

    # every module of the base install and of the instructor extra imports in this venv alone
    modules = ["bmnist_helpers." + m for m in ("data", "plotting", "widgets", "lesson", "kernel", "exercise",
               "grading.cli", "grading.worker", "grading.intake", "grading.sandbox", "__main__")]
    _run([py, "-c", f"import importlib; [importlib.import_module(m) for m in {modules!r}]"], env=env, cwd=home)

    # the student's part: the lesson, Binder's kernel registration, the setup and data cells
    _run([py, "-m", "bmnist_helpers", "lesson", "."], env=env, cwd=home)
    _run(["bash", ROOT / "postBuild"], env=env, cwd=home)
    _run([py, "-c", _RUN_CELLS, "binary_mnist.ipynb", "ran.ipynb"], env=env, cwd=home)
    ran = nbformat.read(home / "ran.ipynb", as_version=4)
    executable, package = _stream(ran.cells[-1]).split()
    assert Path(executable).parent == venv / "bin"
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(ROOT)
    solution = nbformat.read(ROOT / "solutions" / "binary_mnist.ipynb", as_version=4)
    data = next(c for c in solution.cells if "data" in c.metadata.get("tags", []))
    assert _stream(ran.cells[2]) == _stream(data) != ""

    # the instructor's part: the packaged solution and bmnist-grade on two fixture submissions
    rows = _grade_two_fixtures(venv, env, home)
    expected = json.loads((FIXTURES / "expected.json").read_text())
    for name, points in (("full-marks", 15), ("untouched", 0)):
        assert sum(expected[name]["points"].values()) == points
        assert int(rows[name]["total"]) == points, rows[name]
    meta = json.loads((home / "grades" / "results.jsonl").read_text().splitlines()[0])
    assert Path(meta["meta"]["solution_file"]).is_relative_to(venv), "graded against the package's own solution"


# --- runtimes that come with their own packages --------------------------------------------------

# Colab's preinstalled versions (issue 21); its kernel imports these modules before the first cell.
COLAB = ["numpy==2.0.2", "ipython==7.34.0", "ipykernel==6.17.1", "ipywidgets==7.7.1", "matplotlib==3.10.0",
         "jax==0.7.2", "jaxlib==0.7.2", "pillow==11.1.0", "tqdm==4.67.1", "platformdirs==4.3.6"]
PREIMPORTED = ("numpy", "IPython", "ipywidgets", "matplotlib.pyplot")
_STARTUP = f"""import sys
import {", ".join(PREIMPORTED)}
PREIMPORTED = {{m: sys.modules[m].__version__ for m in {PREIMPORTED[:3]!r}}}
"""
_REPORT = """import json, sys
print(json.dumps({"preimported": globals().get("PREIMPORTED"),
                  "now": {m: sys.modules[m].__version__ for m in ("numpy", "IPython", "ipywidgets")}}))
"""


def floor_requirements() -> list[str]:
    """The floor of the supported range, from pyproject.toml: every dependency of the base install
    and of the instructor extra (the grader, and the kernel: ipykernel, ipython) at its lower bound."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = []
    for requirement in project["dependencies"] + project["optional-dependencies"]["instructor"]:
        name, lower = re.fullmatch(r"([\w.-]+)>=([\w.]+)", requirement.split(";")[0].strip()).groups()
        floors.append(f"{name}=={lower}")
    return floors


def _versions(py: Path, env: dict[str, str]) -> dict[str, str]:
    listed = json.loads(_run([py, "-m", "pip", "list", "--format=json"], env=env).stdout)
    return {setup.canonical(d["name"]): d["version"] for d in listed}


def _run_lesson(py: Path, env: dict[str, str], tmp_path: Path, monkeypatch, *, wheelhouse: Path):
    """Run the solution notebook (quick parameters) in a kernel of ``py``, started as a managed
    runtime starts one: with numpy, IPython, ipywidgets and matplotlib.pyplot already imported.

    :returns: The executed notebook, the stored solution, and the report of the last cell.
    """
    solution = nbformat.read(ROOT / "solutions" / "binary_mnist.ipynb", as_version=4)
    ran = nbformat.read(ROOT / "solutions" / "binary_mnist.ipynb", as_version=4)
    params = next(c for c in ran.cells if "parameters" in c.metadata.get("tags", []))
    params.source += "\nNUM_STEPS = 600\nTARGET_ACCURACY = 0.95  # quick, as bmnist-grade's tests"
    ran.cells.append(nbformat.v4.new_code_cell(_REPORT))

    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-runtime.py").write_text(_STARTUP)
    spec = tmp_path / "jupyter-path" / "kernels" / "bmnist"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "runtime",
        "language": "python", "env": {"BMNIST_WHEELHOUSE": str(wheelhouse), "PATH": env["PATH"],
                                      "IPYTHONDIR": str(tmp_path / "ipython")},
    }))
    for key in ("PYTHONPATH", "VIRTUAL_ENV"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter-path"))
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")
    from nbclient import NotebookClient

    where = {"metadata": {"path": str(tmp_path)}}  # the working folder: outside the checkout
    NotebookClient(ran, kernel_name="bmnist", timeout=900, resources=where).execute()
    return ran, solution, json.loads(_stream(ran.cells[-1]))


def _assert_the_lesson_ran_as_stored(ran, solution) -> None:
    """Expected results print what they printed for the solution; the explorers build their widgets."""
    stored = {c.id: _stream(c) for c in solution.cells if "expected-result" in c.metadata.get("tags", [])}
    assert len(stored) >= 5
    assert {c.id: _stream(c) for c in ran.cells if c.id in stored} == stored
    widget = "application/vnd.jupyter.widget-view+json"
    explorers = [c.id for c in solution.cells if "explore" in c.metadata.get("tags", [])
                 and any(widget in o.get("data", {}) for o in c.outputs)]
    assert explorers, "the solution's explorers show widgets"
    for cell in ran.cells:
        if cell.id in explorers:
            assert any(widget in o.get("data", {}) for o in cell.outputs), f"{cell.id} built no widget"


def _setup_output(ran) -> str:
    cell = next(c for c in ran.cells if "setup" in c.metadata.get("tags", []))
    assert not [o for o in cell.outputs if o.output_type == "error" or o.get("name") == "stderr"], cell.outputs
    return _stream(cell)


@pytest.mark.install
def test_colab_like_route(built, tmp_path, monkeypatch):
    """Colab's versions, imported before the first cell; the setup cell adds the kit and what is
    missing from a find-links folder and the package index, and replaces nothing."""
    env = _env(tmp_path)
    venv = _venv(tmp_path / "colab", env)
    env = _env(tmp_path, venv)
    py = venv / "bin" / "python"
    _run([py, "-m", "pip", "install", *PIP_QUICK, *COLAB], env=env)
    before = _versions(py, env)
    assert "bmnist-kit" not in before and "optax" not in before and "tueplots" not in before

    ran, solution, report = _run_lesson(py, env, tmp_path, monkeypatch, wheelhouse=built.wheel.parent)
    assert report["preimported"] == report["now"] == {"numpy": "2.0.2", "IPython": "7.34.0", "ipywidgets": "7.7.1"}
    _assert_the_lesson_ran_as_stored(ran, solution)
    after = _versions(py, env)
    replaced = {name: (v, after.get(name)) for name, v in before.items() if after.get(name) != v}
    assert not replaced, f"the setup cell replaced packages the runtime had: {replaced}"
    assert after["bmnist-kit"] == VERSION and {"optax", "tueplots"} <= set(after)
    said = _setup_output(ran)
    assert f"pip install --no-deps bmnist-kit=={VERSION}" in said and "tueplots, optax" in said
    assert len(said.strip().splitlines()) == 2, said


@pytest.mark.install
def test_floor_route(built, tmp_path, monkeypatch):
    """Every dependency at the lower bound pyproject.toml declares: the lesson runs as stored, the
    setup cell, which finds everything inside the range, says and changes nothing, and the grader
    gives the fixtures their marks."""
    env = _env(tmp_path)
    venv = _venv(tmp_path / "floor", env)
    env = _env(tmp_path, venv)
    py = venv / "bin" / "python"
    floors = floor_requirements()
    (tmp_path / "floor.txt").write_text("\n".join(floors) + "\n")
    # wheels only: a floor that a fresh machine would have to compile is not a floor this test can hold
    _run([py, "-m", "pip", "install", *PIP_QUICK, "--only-binary", ":all:", "-c", tmp_path / "floor.txt",
          f"{built.wheel}[instructor]"], env=env)
    before = _versions(py, env)
    for pin in floors:
        name, version = pin.split("==")
        have = before[setup.canonical(name)]
        assert setup.satisfies(have, [("==", version)]), f"{name} {have} is not {pin}"

    ran, solution, _ = _run_lesson(py, env, tmp_path, monkeypatch, wheelhouse=built.wheel.parent)
    _assert_the_lesson_ran_as_stored(ran, solution)
    assert _versions(py, env) == before, "the setup cell changed the environment"
    assert _setup_output(ran) == ""

    # the grader at the floor: the packaged solution, two fixture submissions
    home = tmp_path / "grading"
    home.mkdir()
    rows = _grade_two_fixtures(venv, env, home)
    assert (int(rows["full-marks"]["total"]), int(rows["untouched"]["total"])) == (15, 0), rows
