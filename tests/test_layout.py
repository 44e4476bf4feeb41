"""The repository's three parts as an import graph: no cycle anywhere, the engine never imports the
kit or a lesson, the kit never imports the engine or the lesson, and the engine's kernel side
stands alone (it is copied into the kernels' import folder without the rest)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from nbjudge.kernel_path import ENGINE_KERNEL_MODULES

from tests.conftest import ROOT

PARTS = {"kit": "bmnist_helpers", "engine": "nbjudge", "lesson": "bmnist_lesson"}


def _module_name(folder: str, path: Path) -> str:
    parts = path.relative_to(ROOT / folder).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(module: str, is_package: bool, tree: ast.AST, names: set[str]) -> set[str]:
    """The modules of ``names`` that a module imports, relative imports resolved: ``from X import y``
    imports X.y where that is a module, else X."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            submodules = {".".join(filter(None, (target, alias.name))) for alias in node.names} & names
            found |= submodules if len(submodules) == len(node.names) else submodules | {target}
    return found & names


def import_graph(sources: dict[str, tuple[bool, str]]) -> dict[str, set[str]]:
    """``{module: modules of the graph it imports}`` for ``{module: (is a package, source)}``."""
    names = set(sources)
    return {module: _imported(module, is_package, ast.parse(source), names) - {module}
            for module, (is_package, source) in sources.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _sources() -> dict[str, tuple[bool, str]]:
    return {_module_name(folder, path): (path.name == "__init__.py", path.read_text())
            for folder, package in PARTS.items() for path in sorted((ROOT / folder / package).rglob("*.py"))}


GRAPH = import_graph(_sources())


def _part(module: str) -> str:
    return next(folder for folder, package in PARTS.items() if module.split(".")[0] == package)


def test_no_import_cycle_anywhere():
    assert len(GRAPH) > 40
    assert cycles(GRAPH) == []


@pytest.mark.parametrize(("part", "never"), [("engine", {"kit", "lesson"}), ("kit", {"engine", "lesson"})])
def test_a_part_never_imports_what_it_must_stand_without(part, never):
    crossing = [f"{module} -> {target}" for module, targets in sorted(GRAPH.items()) if _part(module) == part
                for target in sorted(targets) if _part(target) in never]
    assert crossing == []


def test_the_engines_kernel_side_imports_only_itself():
    kernel_side = set(ENGINE_KERNEL_MODULES)
    assert {target for module in kernel_side for target in GRAPH[module]} <= kernel_side | {"nbjudge"}


def test_the_graph_check_finds_what_a_word_scan_misses():
    """A relative import of the kit from an engine inside it (the old layout), and a cycle, are found."""
    sources = {"kit": (True, ""), "kit.data": (False, ""), "kit.grading": (True, ""),
               "kit.grading.report": (False, "from .. import data\nfrom . import plan\n"),
               "kit.grading.plan": (False, "from .report import x\n")}
    graph = import_graph(sources)
    assert graph["kit.grading.report"] == {"kit.data", "kit.grading.plan"}
    assert cycles(graph) == [["kit.grading.plan", "kit.grading.report"]]


def test_importing_the_whole_engine_loads_no_kit_lesson_or_jax():
    modules = [f"nbjudge.{path.stem}" for path in sorted((ROOT / "engine" / "nbjudge").glob("*.py"))
               if path.stem != "__init__"]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'bmnist_helpers', 'bmnist_lesson', 'jax'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
