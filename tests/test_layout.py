"""The repository's three parts as an import graph: no cycle anywhere, the engine never imports the
kit or a lesson, the kit never imports the engine or the lesson, and the engine's kernel side
stands alone (it is copied into the kernels' import folder without the rest)."""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest
from nbjudge.kernel_path import ENGINE_KERNEL_MODULES

from tests.conftest import ROOT

PARTS = {"kit": "bmnist_helpers", "engine": "nbjudge", "lesson": "bmnist_lesson"}


def import_graph(*packages: str) -> grimp.ImportGraph:
    """The graph of the imports among the modules of ``packages`` (grimp reads the sources; nothing runs)."""
    return grimp.build_graph(*packages, cache_dir=None)


def cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Each direct import ``a -> b`` where ``b`` also leads back to ``a``: every edge of every cycle."""
    return sorted((a, b) for a in graph.modules for b in graph.find_modules_directly_imported_by(a)
                  if graph.chain_exists(importer=b, imported=a))


GRAPH = import_graph(*PARTS.values())


def _part(module: str) -> str:
    return next(folder for folder, package in PARTS.items() if module.split(".")[0] == package)


def _imports(module: str) -> set[str]:
    return set(GRAPH.find_modules_directly_imported_by(module))


def test_no_import_cycle_anywhere():
    assert len(GRAPH.modules) > 40
    assert cycles(GRAPH) == []


@pytest.mark.parametrize(("part", "never"), [("engine", {"kit", "lesson"}), ("kit", {"engine", "lesson"})])
def test_a_part_never_imports_what_it_must_stand_without(part, never):
    crossing = [f"{module} -> {target}" for module in sorted(GRAPH.modules) if _part(module) == part
                for target in sorted(_imports(module)) if _part(target) in never]
    assert crossing == []


def test_the_engines_kernel_side_imports_only_itself():
    kernel_side = set(ENGINE_KERNEL_MODULES)
    assert {target for module in kernel_side for target in _imports(module)} <= kernel_side | {"nbjudge"}


def test_the_graph_check_finds_a_cycle_and_a_relative_import(tmp_path, monkeypatch):
    """A relative import of the kit from an engine inside it (the old layout), and a cycle, are found."""
    package = tmp_path / "oldkit"
    (package / "grading").mkdir(parents=True)
    for name, source in {"__init__.py": "", "data.py": "", "grading/__init__.py": "",
                         "grading/report.py": "from .. import data\nfrom . import plan\n",
                         "grading/plan.py": "from .report import x\n"}.items():
        (package / name).write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = import_graph("oldkit")
    assert set(graph.find_modules_directly_imported_by("oldkit.grading.report")) == {"oldkit.data",
                                                                                      "oldkit.grading.plan"}
    assert cycles(graph) == [("oldkit.grading.plan", "oldkit.grading.report"),
                             ("oldkit.grading.report", "oldkit.grading.plan")]


def test_importing_the_whole_engine_loads_no_kit_lesson_or_jax():
    modules = [f"nbjudge.{path.stem}" for path in sorted((ROOT / "engine" / "nbjudge").glob("*.py"))
               if path.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'bmnist_helpers', 'bmnist_lesson', 'jax'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_module_is_over_450_lines():
    """Modules of one concern stay short; the notebooks' percent-format sources are lessons, not modules."""
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / name for name in tracked.stdout.split() if not name.startswith(("solutions/", "notebooks/"))]
    assert len(paths) > 100
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
