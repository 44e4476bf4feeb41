"""The notebook's setup: make a kernel ready for the lesson without replacing what it already has.

Colab, JupyterHubs and lab images come with their own numpy, IPython, ipywidgets, matplotlib and
often jax, already imported when the first cell runs. Replacing one of them under a running
kernel breaks it (half the old module in memory, half the new one on disk). So the setup cell
(and ``python -m bmnist_helpers setup``) installs only the distributions the kit needs and the
runtime lacks, under a constraints file that pins every distribution already installed:
pip either adds the missing ones without touching anything else, or fails. A dependency that is
installed but outside the kit's supported range is never replaced here: :func:`ensure_kit` stops
with the exact command that would change it and tells the student to restart the runtime.

Only the standard library is used: this runs before the kit's dependencies are known to be there.
The reproducible routes (``make lab``, Binder, conda, CI) install under ``constraints.txt``
instead and never need this.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__

__all__ = [
    "InstallPlan",
    "Requirement",
    "SetupError",
    "constraints_text",
    "ensure_kit",
    "installed_distributions",
    "installed_versions",
    "kit_requirements",
    "parse_requirement",
    "pip_command",
    "plan_setup",
    "satisfies",
]

DIST = "bmnist-kit"
WHEELHOUSE_ENV = "BMNIST_WHEELHOUSE"
RESTART = "restart the runtime (Colab: Runtime > Restart session; Jupyter: Kernel > Restart Kernel)"
# Distributions whose import name is not their canonical name with "-" as "_".
_IMPORT_NAMES = {"pillow": "PIL"}
_OPS = ("~=", "==", "!=", "<=", ">=", "<", ">")
_PRE = {"dev": -3, "a": -2, "alpha": -2, "b": -1, "beta": -1, "c": 0, "rc": 0, "pre": 0, "preview": 0}


class SetupError(RuntimeError):
    """The runtime cannot run the lesson as it is; the message says what to change and how."""


@dataclass(frozen=True)
class Requirement:
    """One base dependency of the kit: ``name`` (canonical) and its specifiers, e.g. ``((">=", "1.26"),)``."""

    name: str
    specifiers: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.name + ",".join(op + version for op, version in self.specifiers)

    @property
    def import_name(self) -> str:
        """The top-level module this distribution provides (``PIL`` for ``pillow``)."""
        return _IMPORT_NAMES.get(self.name, self.name.replace("-", "_"))


@dataclass(frozen=True)
class InstallPlan:
    """What the setup does: ``install`` lists the missing requirements; ``outside`` the installed
    ones outside the supported range, as ``(requirement, installed version, imported)``."""

    install: tuple[Requirement, ...] = ()
    outside: tuple[tuple[Requirement, str, bool], ...] = field(default=())

    @property
    def nothing_to_do(self) -> bool:
        """Every requirement is installed inside its range."""
        return not self.install and not self.outside


def canonical(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str) -> Requirement | None:
    """A requirement of the base install, from a ``Requires-Dist`` line; ``None`` for an extra's.

    :param text: e.g. ``numpy>=1.26`` or ``nbval>=0.11; extra == "instructor"``.
    :raises ValueError: A specifier this parser does not know.
    """
    spec, _, marker = text.partition(";")
    if "extra" in marker:
        return None
    m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*\(?([^)]*)\)?\s*", spec)
    if not m:
        raise ValueError(f"cannot read the requirement {text!r}")
    specifiers = []
    for part in filter(None, (p.strip() for p in m.group(2).split(","))):
        op = next((o for o in _OPS if part.startswith(o)), None)
        if op is None:
            raise ValueError(f"cannot read the version specifier {part!r} of {text!r}")
        specifiers.append((op, part[len(op):].strip()))
    return Requirement(canonical(m.group(1)), tuple(specifiers))


def _key(version: str) -> tuple:
    """A sort key for PEP 440 versions: release, then pre-release < release < post-release."""
    v = version.lower().split("+")[0].lstrip("v")
    m = re.match(r"(?:\d+!)?(\d+(?:\.\d+)*)[-_.]?(?:(dev|a|alpha|b|beta|c|rc|pre|preview|post|rev|r)[-_.]?(\d*))?", v)
    if not m:
        raise ValueError(f"cannot read the version {version!r}")
    release = tuple(int(p) for p in m.group(1).split("."))
    release += (0,) * (6 - len(release))
    stage = 1 if m.group(2) in ("post", "rev", "r") else _PRE.get(m.group(2) or "", 0.5)
    return release, stage, int(m.group(3) or 0)


def satisfies(version: str, specifiers: Sequence[tuple[str, str]]) -> bool:
    """Whether ``version`` meets every ``(operator, version)`` pair (``==X.*`` included)."""
    have = _key(version)
    for op, want in specifiers:
        if want.endswith(".*"):
            prefix = want[:-2].split(".")
            same = version.split("+")[0].split(".")[: len(prefix)] == prefix
            if (op == "==") != same:
                return False
            continue
        ref, kept = _key(want), max(len(want.split(".")) - 1, 1)  # ~=1.4.5: >=1.4.5, ==1.4.*
        ok = {
            ">=": have >= ref, "<=": have <= ref, ">": have > ref, "<": have < ref,
            "==": have == ref, "!=": have != ref,
            "~=": have >= ref and have[0][:kept] == ref[0][:kept],
        }[op]
        if not ok:
            return False
    return True


def _checkout_requirements() -> list[str]:
    """The kit's dependencies as its ``kit/pyproject.toml`` declares them, in an instructor's checkout
    (installed there as part of ``bmnist-course``); empty elsewhere or without a TOML reader."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if sys.version_info >= (3, 11):
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        except (OSError, ValueError, KeyError):
            return []
        return list(project.get("dependencies", [])) if project.get("name") == DIST else []
    return []  # Python 3.10 has no TOML reader


def kit_requirements() -> tuple[Requirement, ...]:
    """The base install's requirements, as the installed kit declares them (``kit/pyproject.toml``).

    :returns: Empty when the kit is imported without being installed (a bare source tree).
    """
    try:
        lines = importlib.metadata.requires(DIST) or []
    except importlib.metadata.PackageNotFoundError:
        lines = _checkout_requirements()
    return tuple(r for r in map(parse_requirement, lines) if r is not None)


def installed_distributions() -> dict[str, str]:
    """Canonical name -> version of every installed distribution, the first on ``sys.path`` winning."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and dist.version:
            found.setdefault(canonical(name), dist.version)
    return found


def installed_versions(names: Collection[str]) -> dict[str, str]:
    """Canonical name -> version of those of ``names`` that are installed (a quick look-up each,
    where :func:`installed_distributions` reads every distribution's metadata)."""
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def plan_setup(requirements: Sequence[Requirement], installed: Mapping[str, str],
               imported: Collection[str]) -> InstallPlan:
    """Decide what the setup does; a pure function of what is installed and imported.

    :param requirements: The kit's base requirements.
    :param installed: Canonical distribution name -> installed version.
    :param imported: Names of the modules the kernel has imported (``sys.modules``).
    :returns: The missing requirements (to install) and those installed outside their range
        (never replaced: the student is told how).
    """
    install, outside = [], []
    for req in requirements:
        version = installed.get(req.name)
        if version is None:
            install.append(req)
        elif not satisfies(version, req.specifiers):
            outside.append((req, version, req.import_name in imported))
    return InstallPlan(tuple(install), tuple(outside))


def constraints_text(installed: Mapping[str, str]) -> str:
    """A pip constraints file that pins every installed distribution to its version.

    Versions that are not PEP 440 (old legacy releases) cannot be pinned and are left out.
    """
    lines = ["# every distribution already installed stays as it is (bmnist_helpers.setup)"]
    for name, version in sorted(installed.items()):
        try:
            _key(version)
        except ValueError:
            continue
        lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def pip_command(requirements: Sequence[Requirement], *, constraints: Path, python: str = sys.executable,
                wheelhouse: str | None = None) -> list[str]:
    """The pip command that adds ``requirements`` and changes nothing installed.

    :param constraints: The file written from :func:`constraints_text`.
    :param wheelhouse: A folder of wheels to look in besides the package index (``BMNIST_WHEELHOUSE``).
    """
    where = ["--find-links", wheelhouse] if wheelhouse else []
    return [python, "-m", "pip", "install", "-q", "--upgrade-strategy", "only-if-needed",
            "--constraint", str(constraints), *where, *map(str, requirements)]


def _quoted(requirements: Sequence[Requirement]) -> str:
    return " ".join(f'"{r}"' for r in requirements)


def _outside_message(plan: InstallPlan) -> str:
    rows = [f"  {req.name} {version}{' (already imported by this kernel)' if imported else ''}: needs {req}"
            for req, version, imported in plan.outside]
    change = [req for req, _, _ in plan.outside] + list(plan.install)
    return "\n".join([
        f"bmnist-kit {__version__} needs other versions of packages this runtime already has; nothing was changed:",
        *rows,
        "To change them, run this in a new cell:",
        f"  %pip install {_quoted(change)}",
        f"then {RESTART} and run the notebook again from the top.",
        "Or use a runtime that has them: see the kit's docs/install.md, 'Runtimes that come with their own packages'.",
    ])


def _changed(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    return [f"{name} {version} -> {after.get(name, 'removed')}" for name, version in sorted(before.items())
            if after.get(name) != version]


def _kit_note(kit: str | None) -> None:
    wanted = kit.partition("==")[2] if kit else ""
    if wanted and wanted != __version__:
        print(f"Note: this notebook was made with bmnist-kit {wanted}; this kernel has {__version__}. For the "
              f"notebook's own, run %pip install bmnist-kit=={wanted} and {RESTART}.")


def ensure_kit(
    kit: str | None = None, *, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
) -> InstallPlan:
    """Make this kernel ready for the lesson: add what is missing, replace nothing.

    Silent when everything is there. In a notebook's kernel it also starts the self-check
    (:func:`bmnist_helpers.self_check.register`). Otherwise it prints one line naming what pip installs, and
    installs it under a constraints file that pins every installed distribution.

    :param kit: The notebook's kit requirement (``bmnist-kit==X.Y.Z``); a different installed
        version gets a note, never a reinstall (the kernel has imported it).
    :param run: Runs the pip command (tests pass a fake).
    :returns: What was planned.
    :raises SetupError: A dependency is outside its range (nothing changed), pip failed, or pip
        changed an installed package; each message says what to run and to restart the runtime.
    """
    _kit_note(kit)
    requirements = kit_requirements()
    plan = plan_setup(requirements, installed_versions([r.name for r in requirements]), set(sys.modules))
    if plan.outside:
        raise SetupError(_outside_message(plan))
    if not plan.install:
        _start_self_check()
        return plan
    before = installed_distributions()
    names = ", ".join(r.name for r in plan.install)
    print(f"bmnist-kit: installing what this runtime lacks, {names} (pip install {_quoted(plan.install)}); "
          "nothing already installed is changed")
    with tempfile.TemporaryDirectory(prefix="bmnist-setup-") as tmp:
        constraints = Path(tmp) / "installed.txt"
        constraints.write_text(constraints_text(before), encoding="utf-8")
        command = pip_command(plan.install, constraints=constraints, wheelhouse=os.environ.get(WHEELHOUSE_ENV))
        proc = run(command, capture_output=True, text=True)
    importlib.invalidate_caches()
    changed = _changed(before, installed_distributions())
    if changed:
        raise SetupError(f"pip changed packages this runtime already had: {', '.join(changed)}. "
                         f"{RESTART[0].upper() + RESTART[1:]} and run the notebook again from the top.")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-6:])
        raise SetupError(
            f"pip could not add {names} without changing packages this runtime already has; "
            "nothing already installed was changed.\n"
            f"{tail}\nTo let pip change them, run %pip install {_quoted(plan.install)} in a new cell, then {RESTART}."
        )
    _start_self_check()
    return plan


def _start_self_check() -> None:
    """In a notebook's kernel, let each expected-result cell say whether it matches (:mod:`.self_check`),
    and draw each figure once (:mod:`.inline`)."""
    from .inline import draw_once
    from .self_check import register

    register()
    draw_once()


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """The ``setup`` command has no arguments.

    :param parser: The subcommand's parser.
    """


def run(args: argparse.Namespace) -> int:
    """Run the ``setup`` command: :func:`ensure_kit` for this Python.

    :param args: Parsed arguments.
    :returns: 0 ready, 1 not (the reason is printed).
    """
    try:
        plan = ensure_kit()
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if plan.nothing_to_do:
        print(f"bmnist-kit {__version__}: every dependency is installed inside its supported range; nothing to do")
    return 0
