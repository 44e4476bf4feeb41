"""The distributions installed, not only cloned.

Marker ``venv`` (the ``lesson`` and ``kernel`` commands and ``bmnist-grade --solution``'s checks,
fast, are in tests/test_lesson_commands.py): the three wheels are built once per session from a copy of the
checkout's files (``make wheels``), then installed into fresh venvs (no system site-packages; PyPI
and the warm pip cache only):

* installed: the kit, the engine and the lesson with ``-c constraints.txt``; from an empty folder
  outside the checkout, write the lesson, register the kernel with Binder's ``postBuild``, run the
  exercise's setup, parameters and data cells in that kernel, and grade two fixture submissions
  against the lesson wheel's own solution;
* floor: every dependency at the lower bound the distributions declare (wheels only), and the
  solution notebook run in that venv's kernel;
* Colab-like: Colab's versions (``COLAB``), with numpy, IPython, ipywidgets and matplotlib.pyplot
  imported by the kernel before the first cell; the setup cell installs the kit from a find-links
  folder holding the wheel (``BMNIST_WHEELHOUSE``) and the rest from the package index;
* the engine alone: its wheel in a venv without jax or the kit grades the toy lesson.

In floor and Colab-like: the expected-result outputs equal the stored ones, the explorers build
their widgets, and no package installed before the setup cell has another version after it.
"""

from __future__ import annotations

import csv
import functools
import http.server
import io
import json
import re
import shutil
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import bmnist_helpers
import nbformat
import pytest
from bmnist_helpers import lesson, setup

from tests.conftest import ROOT
from tests.venvs import PIP_QUICK, RUN_CELLS, cell_stdout, new_venv, run, user_env

VERSION = bmnist_helpers.__version__
FIXTURES = ROOT / "tests" / "fixtures" / "submissions"


# --- the routes, in fresh venvs -----------------------------------------------------------------


@dataclass(frozen=True)
class Built:
    """The three wheels (``kit``, ``engine``, ``lesson``), built as ``make wheels`` builds them."""

    wheels: dict[str, Path]

    @property
    def wheel(self) -> Path:
        """The student kit's."""
        return self.wheels["kit"]


def _grade_two_fixtures(venv: Path, env: dict, home: Path) -> dict[str, dict]:
    """Two fixture submissions graded in ``home`` against the lesson wheel's own solution, with the
    shipped grading parameters; the rows of ``grades.csv`` by submission."""
    for name in ("full-marks", "untouched"):
        shutil.copy(FIXTURES / f"{name}.ipynb", home / f"{name}.ipynb")
    run([venv / "bin" / "bmnist-grade", "full-marks.ipynb", "untouched.ipynb", "--out", "grades", "--seed", "20231107",
         "--jobs", "2"], env=env, cwd=home)
    return {r["submission"]: r for r in csv.DictReader(io.StringIO((home / "grades" / "grades.csv").read_text()))}


def copy_of_checkout(folder: Path) -> Path:
    """The checkout's tracked and new files, copied into ``folder`` (no stale build/ or egg-info)."""
    files = run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT).stdout.split("\n")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    """The three wheels, built once from a copy of the checkout."""
    from bmnist_lesson.release import build_wheels

    src = copy_of_checkout(tmp_path_factory.mktemp("src"))
    return Built(build_wheels(tmp_path_factory.mktemp("dist"), root=src))


def _wheel(path: Path) -> tuple[set[str], zipfile.ZipFile]:
    whl = zipfile.ZipFile(path)
    return set(whl.namelist()), whl


@pytest.mark.venv
def test_each_wheel_carries_its_own_part_only(built):
    from bmnist_lesson import __version__ as lesson_version
    from nbjudge import __version__ as engine_version

    assert {folder: w.name for folder, w in built.wheels.items()} == {
        "kit": f"bmnist_kit-{VERSION}-py3-none-any.whl", "engine": f"nbjudge-{engine_version}-py3-none-any.whl",
        "lesson": f"bmnist_lesson-{lesson_version}-py3-none-any.whl"}
    names, kit = _wheel(built.wheels["kit"])
    for source, packaged in lesson._FILES.values():
        assert kit.read(f"bmnist_helpers/_lesson/{packaged}") == (ROOT / source).read_bytes(), packaged
    assert {n.split("/")[0] for n in names} == {"bmnist_helpers", f"bmnist_kit-{VERSION}.dist-info"}
    assert not [n for n in names if "solution" in n or "verdicts" in n or n.endswith("entry_points.txt")]
    meta = kit.read(f"bmnist_kit-{VERSION}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in meta
    assert "Requires-Dist: jupyterlab>=4.0; extra == \"lab\"" in meta
    assert "Requires-Dist: numpy>=1.24.1\n" in meta, "the supported range is in the wheel's metadata"
    assert not [line for line in meta.splitlines() if line.startswith("Requires-Dist") and "nb" in line]

    names, engine = _wheel(built.wheels["engine"])
    assert {n.split("/")[0] for n in names} == {"nbjudge", f"nbjudge-{engine_version}.dist-info"}
    meta = engine.read(f"nbjudge-{engine_version}.dist-info/METADATA").decode()
    requires = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert requires and not [line for line in requires if "jax" in line or "bmnist" in line], requires

    names, lesson_whl = _wheel(built.wheels["lesson"])
    assert lesson_whl.read("bmnist_lesson/_solution/binary_mnist.ipynb") == \
        (ROOT / "solutions" / "binary_mnist.ipynb").read_bytes()
    points = lesson_whl.read(f"bmnist_lesson-{lesson_version}.dist-info/entry_points.txt").decode()
    assert "binary-mnist = bmnist_lesson:LESSON" in points and "bmnist-grade = bmnist_lesson.cli:main" in points


@pytest.mark.venv
def test_installed_route(built, tmp_path):
    """pip install the three wheels, then use them only from outside the checkout."""
    home = tmp_path / "classroom"
    home.mkdir()
    env = user_env(tmp_path)
    venv = new_venv(tmp_path / "venv", env)
    env = user_env(tmp_path, venv)
    py = venv / "bin" / "python"
    constraints = ROOT / "constraints.txt"
    run([py, "-m", "pip", "install", *PIP_QUICK, "-c", constraints, *built.wheels.values()], env=env)
    installed = {line.split("==")[0].lower() for line in run([py, "-m", "pip", "freeze"], env=env).stdout.split()}
    assert "jupyterlab" not in installed and {"bmnist-kit", "nbjudge", "bmnist-lesson"} <= installed

    # every module of the three distributions imports in this venv alone
    modules = [*("bmnist_helpers." + m for m in ("data", "plotting", "widgets", "lesson", "kernel", "__main__")),
               *("nbjudge." + m for m in ("cli", "worker", "intake", "launcher", "batch", "similarity")),
               *("bmnist_lesson." + m for m in ("exercise", "release", "verdicts", "kernel.probes"))]
    run([py, "-c", f"import importlib; [importlib.import_module(m) for m in {modules!r}]"], env=env, cwd=home)

    # the student's part: the lesson, Binder's kernel registration, the setup and data cells
    run([py, "-m", "bmnist_helpers", "lesson", "."], env=env, cwd=home)
    run(["bash", ROOT / "postBuild"], env=env, cwd=home)
    run([py, "-c", RUN_CELLS, "binary_mnist.ipynb", "ran.ipynb"], env=env, cwd=home)
    ran = nbformat.read(home / "ran.ipynb", as_version=4)
    executable, package = cell_stdout(ran.cells[-1]).split()
    assert Path(executable).parent == venv / "bin"
    assert Path(package).is_relative_to(venv) and not Path(package).is_relative_to(ROOT)
    solution = nbformat.read(ROOT / "solutions" / "binary_mnist.ipynb", as_version=4)
    data = next(c for c in solution.cells if "data" in c.metadata.get("tags", []))
    assert cell_stdout(ran.cells[2]) == cell_stdout(data) != ""

    # the instructor's part: the lesson wheel's solution and bmnist-grade on two fixture submissions
    rows = _grade_two_fixtures(venv, env, home)
    expected = json.loads((FIXTURES / "expected.json").read_text())
    for name, points in (("full-marks", 15), ("untouched", 0)):
        assert sum(expected[name]["points"].values()) == points
        assert int(rows[name]["total"]) == points, rows[name]
    meta = json.loads((home / "grades" / "results.jsonl").read_text().splitlines()[0])
    assert Path(meta["meta"]["solution_file"]).is_relative_to(venv), "graded against the package's own solution"
    pages = {p.name for p in (home / "grades" / "feedback").iterdir()}
    assert {"full-marks.html", "full-marks.md", "untouched.html"} <= pages
    assert (home / "grades" / "report.html").is_file()


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
    """The floor of the supported range: every dependency that the three distributions declare (the
    kit, the engine with the kernel's ipykernel and ipython, the lesson) at its lower bound; the
    distributions themselves are the built wheels."""
    import tomllib

    floors, own = [], {"bmnist-kit", "nbjudge", "bmnist-lesson"}
    for folder in ("kit", "engine", "lesson"):
        for requirement in tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"]["dependencies"]:
            name, lower = re.fullmatch(r"([\w.-]+)>=([\w.]+)", requirement.split(";")[0].strip()).groups()
            if name not in own and f"{name}=={lower}" not in floors:
                floors.append(f"{name}=={lower}")
    return floors


def _versions(py: Path, env: dict[str, str]) -> dict[str, str]:
    listed = json.loads(run([py, "-m", "pip", "list", "--format=json"], env=env).stdout)
    return {setup.canonical(d["name"]): d["version"] for d in listed}


def _runtime_kernel(py: Path, env: dict[str, str], tmp_path: Path, monkeypatch, *, wheelhouse: Path | None) -> str:
    """A kernel of ``py`` started as a managed runtime starts one: with numpy, IPython, ipywidgets
    and matplotlib.pyplot already imported; ``wheelhouse``: its ``BMNIST_WHEELHOUSE``.

    :returns: The kernel's name.
    """
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-runtime.py").write_text(_STARTUP)
    spec = tmp_path / "jupyter-path" / "kernels" / "bmnist"
    spec.mkdir(parents=True, exist_ok=True)
    kernel_env = {"PATH": env["PATH"], "IPYTHONDIR": str(tmp_path / "ipython")}
    if wheelhouse is not None:
        kernel_env["BMNIST_WHEELHOUSE"] = str(wheelhouse)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "runtime",
        "language": "python", "env": kernel_env}))
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "BMNIST_WHEELHOUSE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter-path"))
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")
    return "bmnist"


def _execute(nb: nbformat.NotebookNode, kernel: str, tmp_path: Path, *, allow_errors: bool = False) -> None:
    from nbclient import NotebookClient

    where = {"metadata": {"path": str(tmp_path)}}  # the working folder: outside the checkout
    NotebookClient(nb, kernel_name=kernel, timeout=900, resources=where, allow_errors=allow_errors).execute()


def _run_lesson(py: Path, env: dict[str, str], tmp_path: Path, monkeypatch, *, wheelhouse: Path | None,
                setup_source: str | None = None):
    """Run the solution notebook (quick parameters) in a runtime's kernel of ``py``
    (:func:`_runtime_kernel`); ``setup_source`` replaces its setup cell (a release's).

    :returns: The executed notebook, the stored solution, and the report of the last cell.
    """
    solution = nbformat.read(ROOT / "solutions" / "binary_mnist.ipynb", as_version=4)
    ran = nbformat.read(ROOT / "solutions" / "binary_mnist.ipynb", as_version=4)
    params = next(c for c in ran.cells if "parameters" in c.metadata.get("tags", []))
    params.source += "\nNUM_STEPS = 600\nTARGET_ACCURACY = 0.95  # quick, as bmnist-grade's tests"
    if setup_source is not None:
        next(c for c in ran.cells if "setup" in c.metadata.get("tags", [])).source = setup_source
    ran.cells.append(nbformat.v4.new_code_cell(_REPORT))
    _execute(ran, _runtime_kernel(py, env, tmp_path, monkeypatch, wheelhouse=wheelhouse), tmp_path)
    return ran, solution, json.loads(cell_stdout(ran.cells[-1]))


def _assert_the_lesson_ran_as_stored(ran, solution) -> None:
    """Expected results print what they printed for the solution; the explorers build their widgets."""
    stored = {c.id: cell_stdout(c) for c in solution.cells if "expected-result" in c.metadata.get("tags", [])}
    assert len(stored) >= 5
    assert {c.id: cell_stdout(c) for c in ran.cells if c.id in stored} == stored
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
    return cell_stdout(cell)


def _serve(folder: Path, port: int = 0) -> http.server.ThreadingHTTPServer:
    """An HTTP server on loopback for ``folder``, serving in a thread of its own."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.mark.venv
def test_release_route_colab_like(tmp_path, monkeypatch):
    """A release whose KIT_URL is a loopback web server, in Colab's versions imported before the
    first cell: with the server down, the setup cell says so in two lines and shows no traceback;
    with it up, the setup cell installs the kit from that URL and what is missing from the package
    index, replaces nothing, and every expected result equals the instructor's."""
    from bmnist_lesson.release import write_release

    server = _serve(tmp_path)  # only to hold a free port; the release is served from it below
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    url = f"http://127.0.0.1:{port}/wheels/bmnist_kit-{VERSION}-py3-none-any.whl"
    release = write_release(tmp_path / "release", kit_url=url, repo_url="https://github.com/course/bmnist-exercise",
                            log=lambda line: None)
    setup_cell = next(c for c in nbformat.read(release.notebook, as_version=4).cells
                      if "setup" in c.metadata.get("tags", []))
    assert f"KIT_URL = {url!r}" in setup_cell.source

    env = user_env(tmp_path)
    venv = new_venv(tmp_path / "colab", env)
    env = user_env(tmp_path, venv)
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", *PIP_QUICK, *COLAB], env=env)
    before = _versions(py, env)
    assert "bmnist-kit" not in before and "optax" not in before and "tueplots" not in before

    # the server is down: two lines, what was tried and what to do; no pip or Python traceback
    alone = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup_cell.source)])
    _execute(alone, _runtime_kernel(py, env, tmp_path, monkeypatch, wheelhouse=None), tmp_path, allow_errors=True)
    outputs = alone.cells[0].outputs
    assert [o.output_type for o in outputs] == ["error"], outputs
    lines = "\n".join(outputs[0].traceback).splitlines()
    assert len(lines) == 2 and url in lines[0] and "ask your instructor" in lines[1], lines
    assert "Traceback" not in "\n".join(lines) and _versions(py, env) == before

    server = _serve(release.folder, port)
    try:
        ran, solution, report = _run_lesson(py, env, tmp_path, monkeypatch, wheelhouse=None,
                                            setup_source=setup_cell.source)
    finally:
        server.shutdown()
        server.server_close()
    assert report["preimported"] == report["now"] == {"numpy": "2.0.2", "IPython": "7.34.0", "ipywidgets": "7.7.1"}
    _assert_the_lesson_ran_as_stored(ran, solution)
    after = _versions(py, env)
    replaced = {name: (v, after.get(name)) for name, v in before.items() if after.get(name) != v}
    assert not replaced, f"the setup cell replaced packages the runtime had: {replaced}"
    assert after["bmnist-kit"] == VERSION and {"optax", "tueplots"} <= set(after)
    said = _setup_output(ran)
    assert f"pip install --no-deps {url}" in said and "tueplots, optax" in said
    assert len(said.strip().splitlines()) == 2, said
    check = next(c for c in ran.cells if "self-check" in c.metadata.get("tags", []))
    verdicts = [line for line in cell_stdout(check).splitlines() if line.startswith("task ")]
    assert verdicts == [f"task {n}: matches" for n in range(1, 6)], cell_stdout(check)  # the kit's self-check


@pytest.mark.venv
def test_floor_route(built, tmp_path, monkeypatch):
    """Every dependency at the lower bound pyproject.toml declares: the lesson runs as stored, the
    setup cell, which finds everything inside the range, says and changes nothing, and the grader
    gives the fixtures their marks."""
    env = user_env(tmp_path)
    venv = new_venv(tmp_path / "floor", env)
    env = user_env(tmp_path, venv)
    py = venv / "bin" / "python"
    floors = floor_requirements()
    (tmp_path / "floor.txt").write_text("\n".join(floors) + "\n")
    # wheels only: a floor that a fresh machine would have to compile is not a floor this test can hold
    run([py, "-m", "pip", "install", *PIP_QUICK, "--only-binary", ":all:", "-c", tmp_path / "floor.txt",
         *built.wheels.values()], env=env)
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


@pytest.mark.venv
def test_the_engine_alone_grades_the_toy_lesson(built, tmp_path):
    """The engine's wheel in a venv of its own, without jax or the kit: its console script grades the
    toy lesson from that lesson's folder; the solution gets full marks, a blank copy less."""
    from tests.lessons import make_toy

    env = user_env(tmp_path)
    venv = new_venv(tmp_path / "engine", env)
    env = user_env(tmp_path, venv)
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", *PIP_QUICK, "-c", ROOT / "constraints.txt", built.wheels["engine"]], env=env)
    installed = {line.split("==")[0].lower() for line in run([py, "-m", "pip", "freeze"], env=env).stdout.split()}
    assert "nbjudge" in installed
    assert not {"jax", "jaxlib", "optax", "tueplots", "bmnist-kit", "bmnist-lesson"} & installed, installed

    lesson_folder = shutil.copytree(ROOT / "tests" / "lessons" / "toy_lesson", tmp_path / "toy_lesson",
                                    ignore=shutil.ignore_patterns("__pycache__"))
    klass = tmp_path / "class"
    klass.mkdir()
    submissions = make_toy.submissions()
    (klass / "correct.ipynb").write_text((lesson_folder / "solution.ipynb").read_text())
    (klass / "blank.ipynb").write_text(submissions["untouched"][0])
    run([venv / "bin" / "nbjudge", klass, "--out", tmp_path / "grades", "--lesson", lesson_folder, "--seed", "11",
         "--jobs", "2", "--cell-timeout", "30"], env=env, cwd=tmp_path)
    rows = {r["submission"]: r for r in csv.DictReader(io.StringIO((tmp_path / "grades" / "grades.csv").read_text()))}
    assert (int(rows["correct"]["total"]), rows["correct"]["status"]) == (6, "ok"), rows["correct"]
    assert int(rows["blank"]["total"]) < 6, rows["blank"]
