"""What a kernel can import, made by construction before any job starts.

A kernel sees three things of Python (:func:`kernel_path` and :func:`site_view`):

* Python's own library and the installed distributions that belong to no instructor;
* the lesson's ``kernel_modules`` and the engine's kernel side (:data:`ENGINE_KERNEL_MODULES`),
  copied without bytecode into one read-only folder, the kernels' ``PYTHONPATH``;
* nothing of the *instructor's distributions*: the one that holds this engine, and each that
  declares a lesson (entry point group :data:`.lessons.ENTRY_POINTS`). Their files in
  site-packages (their packages, bytecode, editable-install finders) are not mounted at all.

So a lesson's verdicts and solution, or another lesson's, never reach a kernel: not because a
list hides them, but because only what is named to be copied is there.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .lessons import ENTRY_POINTS

__all__ = ["ENGINE_KERNEL_MODULES", "SiteView", "kernel_path", "site_view"]

# The engine's kernel side: the kernel's start, the guard of the libraries' originals, the probe
# runner and the value codec it uses (numpy only).
ENGINE_KERNEL_MODULES = tuple(f"{__package__}.{name}" for name in ("kernel_start", "guard", "probe", "values"))


@dataclass(frozen=True)
class SiteView:
    """The site-packages folders as a kernel sees them.

    :param folders: Every site-packages folder of this Python (venv and base), shown empty.
    :param entries: What is shown in them: each entry (folder or file) of a distribution that is
        not the instructor's, on this Python's ``sys.path``.
    """

    folders: tuple[str, ...]
    entries: tuple[str, ...]


def _instructor_distributions() -> set[str]:
    """Names of the distributions that hold this engine or declare a lesson."""
    names = {point.dist.name for point in importlib.metadata.entry_points(group=ENTRY_POINTS) if point.dist}
    engine = __package__.partition(".")[0]
    names |= set(importlib.metadata.packages_distributions().get(engine, ()))
    return {name.lower().replace("_", "-") for name in names}


def _site_folders() -> list[Path]:
    folders = {Path(p) for p in site.getsitepackages() if Path(p).is_dir()}
    for base in {sys.prefix, sys.base_prefix}:
        for key in ("purelib", "platlib"):
            path = Path(sysconfig.get_paths(vars={"base": base, "platbase": base})[key])
            if path.is_dir():
                folders.add(path)
    return sorted(f.resolve() for f in folders)


def site_view() -> SiteView:
    """The site-packages folders and the entries of them a kernel may see (see the module's text)."""
    folders = _site_folders()
    on_path = {Path(p).resolve() for p in sys.path if p and Path(p).is_dir()}
    instructor = _instructor_distributions()
    owners: dict[Path, set[str]] = {}
    for dist in importlib.metadata.distributions(path=[str(f) for f in folders if f in on_path]):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        base = Path(str(dist.locate_file(""))).resolve()
        for file in dist.files or ():
            parts = Path(file).parts
            if parts and parts[0] != ".." and base in folders:
                owners.setdefault(base / parts[0], set()).add(name)
    entries = sorted(str(path) for path, names in owners.items() if path.exists() and not names & instructor)
    return SiteView(folders=tuple(map(str, folders)), entries=tuple(entries))


def _copy_module(name: str, folder: Path) -> None:
    """Copy one module or package, as the grader imports it, to the same dotted place in ``folder``."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImportError(f"cannot find the kernel module {name} to copy it for the kernels")
    target = folder.joinpath(*name.split("."))
    for depth in range(1, name.count(".") + 1):  # parent packages: empty, so nothing else comes along
        init = folder.joinpath(*name.split(".")[:depth], "__init__.py")
        init.parent.mkdir(parents=True, exist_ok=True)
        init.touch()
    if spec.submodule_search_locations:
        shutil.copytree(Path(spec.origin).parent, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(spec.origin, target.with_suffix(".py"))


def kernel_path(folder: Path, modules: tuple[str, ...]) -> Path:
    """Make the kernels' import folder: the engine's kernel side and the lesson's kernel modules.

    :param folder: A new folder (in the run's temp folder); made read-only for everyone but root.
    :param modules: The lesson's ``kernel_modules``.
    :returns: ``folder``.
    :raises ImportError: A module cannot be found in the grader's Python.
    """
    folder.mkdir(mode=0o755)
    for name in (*ENGINE_KERNEL_MODULES, *modules):
        _copy_module(name, folder)
    for root, _dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for file in files:
            os.chmod(os.path.join(root, file), 0o644)
    return folder
