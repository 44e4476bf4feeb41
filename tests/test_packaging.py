"""Packaging: the three distributions (kit/, engine/, lesson/), the checkout's install, constraints,
environment.yml, postBuild and the README agree."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path

import bmnist_helpers
import bmnist_lesson
import nbjudge
import pytest
import tomllib
from bmnist_helpers import kernel, lesson

from tests.conftest import ROOT

PARTS = {"kit": "bmnist_helpers", "engine": "nbjudge", "lesson": "bmnist_lesson"}
PROJECTS = {folder: tomllib.loads((ROOT / folder / "pyproject.toml").read_text())["project"] for folder in PARTS}
KIT, ENGINE, LESSON = (PROJECTS[f] for f in PARTS)
BASE = {"jax", "jaxlib", "numpy", "matplotlib", "pillow", "tueplots", "ipywidgets", "optax", "tqdm", "platformdirs"}
# Modules of the kit that belong to its lab extra; every other module of the kit is in its base install.
KIT_LAB_MODULES = {"kernel.py", "lab.py"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _declared(folder: str, *, extras: tuple[str, ...] = ()) -> set[str]:
    """The distributions one part may import from: its own dependencies (and extras), and, for a
    part that requires another part of this repository, everything that part declares."""
    project = PROJECTS[folder]
    declared = {_name(r) for r in project["dependencies"]}
    for extra in extras:
        declared |= {_name(r) for r in project.get("optional-dependencies", {}).get(extra, [])}
    for other, part in PROJECTS.items():
        if _name(part["name"]) in declared:
            declared |= _declared(other) | {_name(part["name"])}
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


def test_the_kit_is_what_a_students_kernel_needs_and_nothing_of_the_instructors():
    assert {_name(r) for r in KIT["dependencies"]} == BASE
    assert {_name(r) for r in KIT["optional-dependencies"]["lab"]} == {"jupyterlab", "ipykernel"}
    assert "scripts" not in KIT and "entry-points" not in KIT, "the kit has no console script and no lesson"
    assert not BASE & {"nbval", "jupytext", "nbclient", "bmnist-lesson", "nbjudge"}


def test_the_engine_needs_neither_jax_nor_the_kit():
    engine = {_name(r) for r in ENGINE["dependencies"]}
    assert not engine & {"jax", "jaxlib", "optax", "matplotlib", "bmnist-kit", "bmnist-lesson"}
    assert {"nbformat", "nbclient", "jupyter-client", "ipykernel", "numpy"} <= engine
    assert ENGINE["scripts"] == {"nbjudge": "nbjudge.cli:main"}


def test_the_lesson_is_the_instructors():
    lesson_deps = {_name(r) for r in LESSON["dependencies"]}
    assert {"bmnist-kit", "nbjudge", "nbval", "jupytext"} <= lesson_deps
    assert LESSON["scripts"] == {"bmnist-grade": "bmnist_lesson.cli:main"}
    assert LESSON["entry-points"]["grading.lessons"] == {"binary-mnist": "bmnist_lesson:LESSON"}


def test_the_checkouts_install_is_the_union_of_the_three():
    """`pip install -e ".[dev]"` at the root installs every part's dependencies, scripts and lesson."""
    root = importlib.metadata.distribution("bmnist-course")
    requires = {_name(r) for r in root.requires or [] if "extra ==" not in r}
    wanted = set().union(*({_name(r) for r in p["dependencies"]} for p in PROJECTS.values()))
    assert requires == wanted - {"bmnist-kit", "nbjudge", "bmnist-lesson"}
    points = {(p.group, p.name, p.value) for p in root.entry_points}
    assert ("console_scripts", "bmnist-grade", "bmnist_lesson.cli:main") in points
    assert ("console_scripts", "nbjudge", "nbjudge.cli:main") in points
    assert ("grading.lessons", "binary-mnist", "bmnist_lesson:LESSON") in points


def test_every_dependency_has_a_lower_bound():
    """The supported range starts somewhere (tests/test_install.py::test_floor_route runs its floor)."""
    requirements = [r for p in PROJECTS.values() for r in p["dependencies"]] + KIT["optional-dependencies"]["lab"]
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
    return names - set(sys.stdlib_module_names) - {"__future__", "pip"}  # pip: the installer


def test_every_import_is_declared_by_the_part_that_uses_it():
    dists = _distribution_of()
    own = set(PARTS.values())
    problems, count = [], 0
    files = [(folder, path) for folder, package in PARTS.items()
             for path in sorted((ROOT / folder / package).rglob("*.py"))]
    # The notebook's own imports run in the student's kernel: they belong to the kit's base install.
    files.append(("kit", ROOT / "solutions" / "binary_mnist.py"))
    for folder, path in files:
        count += 1
        extras = ("lab",) if folder == "kit" and path.name in KIT_LAB_MODULES else ()
        declared = _declared(folder, extras=extras)
        for name in sorted(_imports(path) - {"__future__"}):
            if name in own:
                owner = next(f for f, package in PARTS.items() if package == name)
                if owner != folder and _name(PROJECTS[owner]["name"]) not in declared:
                    problems.append(f"{path.relative_to(ROOT)} imports {name}, another part it does not require")
                continue
            owners = dists.get(name)
            assert owners, f"{path.name} imports {name}, which no installed distribution provides"
            if not owners & declared:
                problems.append(f"{path.relative_to(ROOT)} ({folder}) imports {name} from {sorted(owners)}")
    assert count > 40
    assert not problems, "undeclared imports:\n" + "\n".join(problems)


def test_the_import_check_sees_lazy_imports_and_subprocess_modules():
    imports = _imports(ROOT / "kit" / "bmnist_helpers" / "_html.py")
    imports |= _imports(ROOT / "engine" / "nbjudge" / "worker.py")
    assert {"PIL", "nbclient", "nbformat"} <= imports


def test_constraints_pin_every_dependency():
    pins = _pins()
    wanted = set().union(*(_declared(folder, extras=("lab",)) for folder in PARTS)) - {"bmnist-kit", "nbjudge"}
    for name in wanted | {"pytest", "ruff", "playwright"}:
        assert name in pins, f"constraints.txt does not pin {name}"


def test_environment_yml_matches_the_kit_and_constraints():
    conda, pins = _conda(), _pins()
    wanted = BASE | {_name(r) for r in KIT["optional-dependencies"]["lab"]}
    missing = sorted(wanted - set(conda))
    assert not missing, f"environment.yml lacks {missing}"
    for name in wanted:
        assert conda[name] == pins[name], f"{name}: environment.yml has {conda[name]}, constraints.txt {pins[name]}"
    assert '-e "./kit[lab]"' in (ROOT / "environment.yml").read_text(), "Binder gets the student kit only"


@pytest.mark.parametrize(("folder", "module"),
                         [("kit", bmnist_helpers), ("engine", nbjudge), ("lesson", bmnist_lesson)])
def test_each_version_is_written_once(folder, module):
    text = (ROOT / folder / "pyproject.toml").read_text()
    assert "version" not in PROJECTS[folder] and PROJECTS[folder]["dynamic"] == ["version"]
    assert f'version = {{ attr = "{PARTS[folder]}.__version__" }}' in text
    assert re.fullmatch(r"\d+\.\d+\.\d+", module.__version__)


def test_setup_cells_pin_the_kits_version():
    """The notebooks record which release made their outputs; bumping the version means `make solution`."""
    for path in (ROOT / "solutions" / "binary_mnist.py", ROOT / "notebooks" / "binary_mnist.py"):
        pins = re.findall(r'KIT = "bmnist-kit==([^"]+)"', path.read_text())
        assert pins == [bmnist_helpers.__version__], f"{path.name}: setup cell pins {pins}"


def test_license_is_an_spdx_expression():
    assert {p["license"] for p in PROJECTS.values()} == {"MIT"}  # a TOML table makes setuptools warn on every install


def test_no_placeholder_url_anywhere_a_student_looks():
    """The kit and the notebooks name no repository or package index of their own: the release
    writes the course's (KIT_URL, REPO_URL); the checkout's setup cell has none."""
    for project in PROJECTS.values():
        assert "urls" not in project
    for path in (ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "solutions" / "binary_mnist.py",
                 ROOT / "notebooks" / "binary_mnist.py", *(ROOT / "kit").rglob("*.py"), *(ROOT / "kit").rglob("*.md")):
        text = path.read_text()
        assert "bmnist-kit/bmnist-kit" not in text, path
        named = set(re.findall(r"github\.com/([\w.-]+/[\w.-]+)", text))
        others = named - {"pnkraemer/tueplots", "COURSE/bmnist-exercise"}  # the docs' example for instructors
        assert not others, f"{path.name} names a repository: {others}"
    for path in (ROOT / "solutions" / "binary_mnist.py", ROOT / "notebooks" / "binary_mnist.py"):
        assert re.findall(r"^KIT_URL = (.*)$", path.read_text(), re.M) == ["None"]


def _copies(setup_py: Path, name: str) -> dict[str, str]:
    tree = ast.parse(setup_py.read_text())
    return next(ast.literal_eval(n.value) for n in tree.body
                if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == name)


def test_the_build_steps_copy_what_the_packages_read():
    kit = _copies(ROOT / "kit" / "setup.py", "LESSON_FILES")
    assert kit == {in_repo: f"bmnist_helpers/_lesson/{packaged}" for in_repo, packaged in lesson._FILES.values()}
    assert not [source for source in kit if "solution" in source], "the kit's wheel never carries the solution"
    from bmnist_lesson import files

    solution = _copies(ROOT / "lesson" / "setup.py", "SOLUTION_FILES")
    assert solution == {"solutions/binary_mnist.ipynb": "bmnist_lesson/_solution/binary_mnist.ipynb"}
    assert files._PACKAGED.relative_to(files.PACKAGE_DIR.parent) == Path(solution["solutions/binary_mnist.ipynb"])
    for source in [*kit, *solution]:
        assert (ROOT / source).is_file()


def test_in_a_checkout_the_lesson_files_are_the_checkouts_own():
    from bmnist_lesson import files

    assert lesson.in_checkout() and files.in_checkout()
    assert files.solution_notebook() == ROOT / "solutions" / "binary_mnist.ipynb"
    assert lesson.lesson_file("exercise") == ROOT / "notebooks" / "binary_mnist.ipynb"
    assert lesson.lesson_file("constraints") == ROOT / "constraints.txt"
    with pytest.raises(ValueError, match="unknown lesson file"):
        lesson.lesson_path("solution")


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
