"""Packaging: pyproject, constraints and environment.yml describe one environment."""

from __future__ import annotations

import re

import tomllib

from tests.conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


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


def _runtime() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [_name(r) for r in project["dependencies"]]


def test_runtime_dependencies_are_the_agreed_ones():
    assert set(_runtime()) == {
        "jax", "jaxlib", "numpy", "matplotlib", "tueplots", "ipywidgets", "jupytext", "nbval",
        "jupyterlab", "optax", "tqdm", "platformdirs",
    }


def test_constraints_pin_every_dependency():
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for name in _runtime() + [_name(r) for r in project["optional-dependencies"]["dev"]]:
        assert name in pins, f"constraints.txt does not pin {name}"


def test_environment_yml_matches_pyproject_and_constraints():
    conda, pins = _conda(), _pins()
    missing = [n for n in _runtime() if n not in conda]
    assert not missing, f"environment.yml lacks {missing}"
    for name in _runtime():
        assert conda[name] == pins[name], f"{name}: environment.yml has {conda[name]}, constraints.txt {pins[name]}"
    assert "-e ." in (ROOT / "environment.yml").read_text()
