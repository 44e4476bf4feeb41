"""The instructor's checkout as one editable distribution (``bmnist-course``): the packages of the
three distributions from their folders, with the union of their dependencies, scripts and entry
points as their own ``pyproject.toml`` files declare them. The distributions themselves are built
from their folders (``make wheels``)."""

import sys
from pathlib import Path

from setuptools import setup

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
PARTS = {"kit": "bmnist_helpers", "engine": "nbjudge", "lesson": "bmnist_lesson"}
# What an instructor's checkout needs besides the parts: the lab and the test tools.
DEV = ["pytest>=8", "ruff", "playwright", "mypy", "types-PyYAML", "types-tqdm", "grimp", "sphinx", "myst-nb", "furo"]


def _project(folder: str) -> dict:
    return tomllib.loads((HERE / folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _packages(folder: str, package: str) -> list[str]:
    root = HERE / folder
    return sorted(".".join(p.parent.relative_to(root).parts) for p in (root / package).rglob("__init__.py"))


projects = {folder: _project(folder) for folder in PARTS}
own = {p["name"] for p in projects.values()}
requires = sorted({r for p in projects.values() for r in p.get("dependencies", []) if r.split(">")[0] not in own})
extras = {name: reqs for p in projects.values() for name, reqs in p.get("optional-dependencies", {}).items()}
scripts = {name: target for p in projects.values() for name, target in p.get("scripts", {}).items()}
groups: dict[str, list[str]] = {}
for p in projects.values():
    for group, points in p.get("entry-points", {}).items():
        groups.setdefault(group, []).extend(f"{name} = {target}" for name, target in points.items())

setup(
    packages=[pkg for folder, package in PARTS.items() for pkg in _packages(folder, package)],
    package_dir={package: f"{folder}/{package}" for folder, package in PARTS.items()},
    package_data={"bmnist_lesson": ["nbval_sanitize.cfg"]},
    install_requires=requires,
    extras_require={**extras, "dev": [*extras.get("lab", []), *DEV]},
    entry_points={"console_scripts": [f"{n} = {t}" for n, t in scripts.items()], **groups},
)
