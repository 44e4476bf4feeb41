"""Packaging: pyproject, constraints, environment.yml, postBuild, setup.py and the README describe one kit."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path

import bmnist_helpers
import pytest
import tomllib
from bmnist_helpers import kernel, lesson

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
BASE = {"jax", "jaxlib", "numpy", "matplotlib", "pillow", "tueplots", "ipywidgets", "optax", "tqdm", "platformdirs"}
# Which extra each module of the package belongs to; every other module is in the base install.
MODULE_EXTRA = {"exercise.py": "instructor", "grading": "instructor", "kernel.py": "lab", "lab.py": "lab"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _extra(name: str) -> set[str]:
    """The distributions an extra declares, with the base and the extras it includes."""
    declared = {_name(r) for r in PROJECT["dependencies"]}
    for requirement in PROJECT["optional-dependencies"][name]:
        if _name(requirement) == "bmnist-kit":
            for included in re.search(r"\[(.*)\]", requirement).group(1).split(","):
                declared |= _extra(included.strip())
        else:
            declared.add(_name(requirement))
    return declared


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version
    return pins


def _conda() -> dict[str, str]:
    deps = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^  - ([A-Za-z0-9_.-]+)(?:=([^\s]+))?\s*$", line)
        if m:
            deps[_name(m.group(1))] = m.group(2)
    return deps


def test_base_install_is_what_a_students_kernel_needs():
    assert {_name(r) for r in PROJECT["dependencies"]} == BASE
    assert {"nbval", "jupytext", "nbformat", "nbclient", "jupyter-client"} <= _extra("instructor")
    assert "jupyterlab" in _extra("lab")
    assert _extra("instructor") | _extra("lab") | {"pytest", "ruff", "playwright"} == _extra("dev")
    base = {_name(r) for r in PROJECT["dependencies"]}
    for student_never_uses in ("jupyterlab", "nbval", "jupytext"):
        assert student_never_uses not in base


def test_every_dependency_has_a_lower_bound():
    """The supported range starts somewhere (tests/test_install.py::test_floor_route runs its floor)."""
    requirements = PROJECT["dependencies"] + PROJECT["optional-dependencies"]["instructor"] + \
        PROJECT["optional-dependencies"]["lab"]
    unbounded = [r for r in requirements if ">=" not in r]
    assert not unbounded, f"no lower bound: {unbounded}"


def _distribution_of() -> dict[str, set[str]]:
    """Import name -> distribution names, from the dev environment's installed packages."""
    return {k: {_name(d) for d in v} for k, v in importlib.metadata.packages_distributions().items()}


def _imports(path: Path) -> set[str]:
    """Top-level names of every import in a file, also those inside functions, and of every
    module the file runs as ``python -m NAME``."""
    source = path.read_text()
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    names |= {m.split(".")[0] for m in re.findall(r'"-m",\s*"([\w.]+)"', source)}
    return names - set(sys.stdlib_module_names) - {"bmnist_helpers", "__future__", "pip"}  # pip: the installer


def _module_extra(path: Path) -> str:
    rel = path.relative_to(ROOT / "bmnist_helpers").parts
    return MODULE_EXTRA.get(rel[0], "base")


def test_every_import_is_declared_in_the_extra_that_uses_it():
    dists = _distribution_of()
    files = sorted((ROOT / "bmnist_helpers").rglob("*.py"))
    assert len(files) > 10
    # The notebook's own imports run in the student's kernel: they belong to the base install.
    files.append(ROOT / "solutions" / "binary_mnist.py")
    problems = []
    for path in files:
        extra = "base" if "solutions" in path.parts else _module_extra(path)
        declared = {_name(r) for r in PROJECT["dependencies"]} | (set() if extra == "base" else _extra(extra))
        for name in sorted(_imports(path)):
            owners = dists.get(name)
            assert owners, f"{path.name} imports {name}, which no installed distribution provides"
            if not owners & declared:
                problems.append(f"{path.relative_to(ROOT)} ({extra}) imports {name} from {sorted(owners)}")
    assert not problems, "undeclared imports:\n" + "\n".join(problems)


def test_the_import_check_sees_lazy_imports_and_subprocess_modules():
    helpers = ROOT / "bmnist_helpers"
    imports = _imports(helpers / "_html.py") | _imports(helpers / "grading" / "worker.py")
    assert {"PIL", "nbclient", "nbformat"} <= imports


def test_constraints_pin_every_dependency():
    pins = _pins()
    for name in _extra("dev"):
        assert name in pins, f"constraints.txt does not pin {name}"


def test_environment_yml_matches_pyproject_and_constraints():
    conda, pins = _conda(), _pins()
    wanted = BASE | {_name(r) for r in PROJECT["optional-dependencies"]["lab"]}
    missing = sorted(wanted - set(conda))
    assert not missing, f"environment.yml lacks {missing}"
    for name in wanted:
        assert conda[name] == pins[name], f"{name}: environment.yml has {conda[name]}, constraints.txt {pins[name]}"
    assert '-e ".[lab]"' in (ROOT / "environment.yml").read_text()


def test_version_is_written_once():
    text = (ROOT / "pyproject.toml").read_text()
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    assert 'version = { attr = "bmnist_helpers.__version__" }' in text
    assert re.fullmatch(r"\d+\.\d+\.\d+", bmnist_helpers.__version__)
    assert importlib.metadata.version("bmnist-kit") == bmnist_helpers.__version__


def test_setup_cells_pin_the_kits_version():
    """The notebooks record which release made their outputs; bumping the version means `make solution`."""
    for path in (ROOT / "solutions" / "binary_mnist.py", ROOT / "notebooks" / "binary_mnist.py"):
        pins = re.findall(r'KIT = "bmnist-kit==([^"]+)"', path.read_text())
        assert pins == [bmnist_helpers.__version__], f"{path.name}: setup cell pins {pins}"


def test_license_is_an_spdx_expression():
    assert PROJECT["license"] == "MIT"  # a TOML table makes setuptools warn on every install


def test_one_project_url_used_by_readme_and_setup_cell():
    urls = PROJECT["urls"]
    assert len(urls) == 1
    url = next(iter(urls.values()))
    owner, repo = re.fullmatch(r"https://github\.com/([\w.-]+)/([\w.-]+)", url).groups()
    readme = (ROOT / "README.md").read_text()
    colab = f"https://colab.research.google.com/github/{owner}/{repo}/blob/main/notebooks/binary_mnist.ipynb"
    binder = f"https://mybinder.org/v2/gh/{owner}/{repo}/main?labpath=notebooks%2Fbinary_mnist.ipynb"
    assert colab in readme and binder in readme
    for path in (ROOT / "README.md", ROOT / "solutions" / "binary_mnist.py", ROOT / "notebooks" / "binary_mnist.py"):
        text = path.read_text()
        others = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+)", text)) - {f"{owner}/{repo}", "pnkraemer/tueplots"}
        assert not others, f"{path.name} names another project URL: {others}"
        assert "git+https" not in text
    cells = (ROOT / "solutions" / "binary_mnist.py").read_text().split("# %%")
    setup_cell = next(c for c in cells if c.startswith(' tags=["setup"]'))
    anchors = re.findall(re.escape(url) + r"#([\w-]+)", setup_cell)
    assert anchors, "the setup cell links to the README's install instructions"
    titles = re.findall(r"^#+ (.+)$", readme, re.M)
    headings = {re.sub(r"[^\w -]", "", t).strip().lower().replace(" ", "-") for t in titles}
    assert set(anchors) <= headings, f"README has no heading for {anchors}"


def test_setup_py_copies_what_the_lesson_module_reads():
    tree = ast.parse((ROOT / "setup.py").read_text())
    copies = next(ast.literal_eval(n.value) for n in tree.body
                  if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "LESSON_FILES")
    assert copies == {in_repo: packaged for in_repo, packaged in lesson._FILES.values()}
    manifest = (ROOT / "MANIFEST.in").read_text()
    for source in copies:
        assert source in manifest, f"MANIFEST.in does not put {source} into the sdist"
        assert (ROOT / source).is_file()


def test_in_a_checkout_the_lesson_files_are_the_checkouts_own():
    assert lesson.in_checkout()
    assert lesson.lesson_file("solution") == ROOT / "solutions" / "binary_mnist.ipynb"
    assert lesson.lesson_file("exercise") == ROOT / "notebooks" / "binary_mnist.ipynb"
    assert lesson.lesson_file("constraints") == ROOT / "constraints.txt"
    with pytest.raises(ValueError, match="unknown lesson file"):
        lesson.lesson_path("answers")


def test_postbuild_registers_the_kernel_the_notebooks_ask_for():
    post = ROOT / "postBuild"
    assert os.access(post, os.X_OK), "repo2docker runs postBuild only when it is executable"
    commands = [line for line in post.read_text().splitlines() if line.strip() and not line.startswith("#")]
    kernel_lines = [c for c in commands if "-m bmnist_helpers kernel" in c]
    assert len(kernel_lines) == 1 and "--sys-prefix" in kernel_lines[0]
    named = re.search(r"--name (\S+)", kernel_lines[0]).group(1)
    assert named == kernel.KERNEL_NAME
    for path in (ROOT / "notebooks" / "binary_mnist.ipynb", ROOT / "solutions" / "binary_mnist.ipynb"):
        assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == named, path
    assert "bmnist_helpers kernel --sys-prefix" in (ROOT / "Makefile").read_text()
