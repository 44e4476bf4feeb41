"""bmnist_helpers.setup: the notebook's setup adds what a runtime lacks and replaces nothing.

The runtime is faked (what is installed, what is imported, what pip does), so these tests run in
milliseconds; tests/test_install.py runs the same code against real pip in fresh venvs.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import bmnist_helpers
import pytest
import tomllib
from bmnist_helpers import setup
from bmnist_helpers.__main__ import main as kit_main
from bmnist_helpers.setup import Requirement, SetupError

from tests.conftest import ROOT

# A Colab-like runtime: what it has, and what its kernel imported before the first cell.
COLAB = {"numpy": "2.0.2", "ipython": "7.34.0", "ipykernel": "6.17.1", "ipywidgets": "7.7.1", "matplotlib": "3.10.0",
         "jax": "0.7.2", "jaxlib": "0.7.2", "pillow": "11.1.0", "tqdm": "4.67.1", "platformdirs": "4.3.6",
         "bmnist-kit": "0.1.0"}
IMPORTED = {"numpy", "IPython", "ipywidgets", "matplotlib", "matplotlib.pyplot", "bmnist_helpers"}
REQS = tuple(setup.parse_requirement(r) for r in tomllib.loads((ROOT / "kit" / "pyproject.toml").read_text())[
    "project"]["dependencies"])


def test_requirements_come_from_the_installed_metadata_and_match_pyproject():
    assert setup.kit_requirements() == REQS
    assert all(any(op == ">=" for op, _ in r.specifiers) for r in REQS), "every dependency has a lower bound"
    assert setup.parse_requirement('nbval>=0.11; extra == "instructor"') is None
    parsed = setup.parse_requirement("Foo_Bar[x] (>=1.2, !=1.3)")
    assert parsed == Requirement("foo-bar", ((">=", "1.2"), ("!=", "1.3")))
    with pytest.raises(ValueError, match="specifier 'foo'"):
        setup.parse_requirement("numpy foo")


@pytest.mark.parametrize(("version", "spec", "ok"), [
    ("2.0.2", ">=1.26", True), ("1.26.0", ">=1.26", True), ("1.25.2", ">=1.26", False),
    ("1.26.0rc1", ">=1.26", False), ("1.26.0.post1", ">1.26", True), ("0.4.26", ">=0.4.26", True),
    ("0.4.9", ">=0.4.26", False), ("2.1.0+cu121", "<2.1.1,!=2.0.*", True), ("2.0.5", "!=2.0.*", False),
    ("1.4.9", "~=1.4.5", True), ("1.5.0", "~=1.4.5", False), ("3.10.0", "", True),
])
def test_versions_are_compared_as_pep_440_orders_them(version, spec, ok):
    specifiers = setup.parse_requirement("x" + spec).specifiers
    assert setup.satisfies(version, specifiers) is ok


def test_plan_installs_only_what_is_missing_and_never_what_is_there():
    plan = setup.plan_setup(REQS, COLAB, IMPORTED)
    assert isinstance(plan, setup.InstallPlan) and not plan.nothing_to_do
    assert not hasattr(setup, "Plan"), "the kit's plan is InstallPlan: Plan is the grading engine's (nbjudge.plan)"
    assert [r.name for r in plan.install] == ["tueplots", "optax"]
    assert not plan.outside
    old = {**COLAB, "numpy": "1.20.0", "tqdm": "4.40.0"}
    plan = setup.plan_setup(REQS, old, IMPORTED)
    assert [(r.name, v, imported) for r, v, imported in plan.outside] == [("numpy", "1.20.0", True),
                                                                          ("tqdm", "4.40.0", False)]
    assert {r.name for r in plan.install} == {"tueplots", "optax"}


class FakeRuntime:
    """What ensure_kit sees: installed distributions (before and after pip), and a pip that records."""

    def __init__(self, monkeypatch, installed, *, after=None, returncode=0, stderr=""):
        self.installed, self.after, self.calls, self.constraints = dict(installed), after, [], None
        self.returncode, self.stderr = returncode, stderr
        monkeypatch.setattr(setup, "installed_distributions", lambda: dict(self.installed))
        monkeypatch.setattr(setup, "installed_versions",
                            lambda names: {n: self.installed[n] for n in names if n in self.installed})
        monkeypatch.setattr(setup, "kit_requirements", lambda: REQS)
        for name in IMPORTED:
            monkeypatch.setitem(sys.modules, name, sys.modules.get(name, object()))

    def run(self, command, **kwargs):
        self.calls.append(command)
        path = command[command.index("--constraint") + 1]
        self.constraints = dict(line.split("==") for line in Path(path).read_text().splitlines() if "==" in line)
        values = {command[i + 1] for i, a in enumerate(command) if a in ("--constraint", "--find-links",
                                                                          "--upgrade-strategy")}
        requested = [setup.parse_requirement(a).name for a in command[4:] if not a.startswith("-") and a not in values]
        if self.after is not None:
            self.installed = self.after
        elif self.returncode == 0:
            self.installed.update({name: "1.0" for name in requested})
        return subprocess.CompletedProcess(command, self.returncode, "", self.stderr)


def test_a_runtime_that_has_everything_is_left_alone_silently(monkeypatch, capsys):
    everything = {**COLAB, "tueplots": "0.2.5", "optax": "0.2.8"}
    fake = FakeRuntime(monkeypatch, everything)
    assert setup.ensure_kit("bmnist-kit==0.1.0", run=fake.run).nothing_to_do
    assert fake.calls == [] and capsys.readouterr().out == ""


def test_missing_packages_are_added_under_pins_of_everything_installed(monkeypatch, capsys):
    fake = FakeRuntime(monkeypatch, COLAB)
    monkeypatch.setenv("BMNIST_WHEELHOUSE", "/wheels")
    setup.ensure_kit("bmnist-kit==0.1.0", run=fake.run)
    [command] = fake.calls
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-2:] == [str(r) for r in REQS if r.name in ("tueplots", "optax")]
    assert command[command.index("--find-links") + 1] == "/wheels"
    assert fake.constraints == COLAB, "every installed distribution is pinned to its version"
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "tueplots, optax" in out and "pip install" in out


def test_setup_never_replaces_a_package_the_kernel_has_imported(monkeypatch, capsys):
    """The must-show test: an imported numpy below the floor is reported, never reinstalled."""
    fake = FakeRuntime(monkeypatch, {**COLAB, "numpy": "1.20.0"})
    with pytest.raises(SetupError) as raised:
        setup.ensure_kit("bmnist-kit==0.1.0", run=fake.run)
    assert fake.calls == [], "pip must not run: it would replace numpy under the running kernel"
    message = str(raised.value)
    numpy = next(r for r in REQS if r.name == "numpy")
    assert f"numpy 1.20.0 (already imported by this kernel): needs {numpy}" in message
    assert "nothing was changed" in message and "restart the runtime" in message
    # the exact command, for everything that has to change (numpy, and the missing two)
    assert re.search(rf'%pip install "{numpy}" "tueplots>=[\d.]+" "optax>=[\d.]+"', message)


def test_a_package_pip_changed_anyway_is_named_with_a_restart(monkeypatch):
    fake = FakeRuntime(monkeypatch, COLAB, after={**COLAB, "numpy": "2.4.6", "tueplots": "0.2.5", "optax": "0.2.8"})
    with pytest.raises(SetupError, match=r"numpy 2\.0\.2 -> 2\.4\.6.*Restart the runtime"):
        setup.ensure_kit(run=fake.run)


def test_pip_refusing_says_what_and_how(monkeypatch):
    fake = FakeRuntime(monkeypatch, COLAB, returncode=1, stderr="ERROR: ResolutionImpossible: optax needs jax>=9")
    with pytest.raises(SetupError) as raised:
        setup.ensure_kit(run=fake.run)
    message = str(raised.value)
    assert "ResolutionImpossible" in message and "nothing already installed was changed" in message
    assert '%pip install "tueplots>=' in message and "restart the runtime" in message


def test_another_kit_version_gets_a_note_not_a_reinstall(monkeypatch, capsys):
    fake = FakeRuntime(monkeypatch, {**COLAB, "tueplots": "0.2.5", "optax": "0.2.8"})
    setup.ensure_kit("bmnist-kit==0.0.9", run=fake.run)
    assert fake.calls == []
    assert "made with bmnist-kit 0.0.9; this kernel has 0.1.0" in capsys.readouterr().out


def test_constraints_pin_each_installed_distribution_and_skip_unreadable_versions():
    text = setup.constraints_text({"numpy": "2.0.2", "legacy": "not a version", "torch": "2.1.0+cu121"})
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["numpy==2.0.2", "torch==2.1.0+cu121"]


def test_the_setup_command(monkeypatch, capsys):
    FakeRuntime(monkeypatch, {**COLAB, "tueplots": "0.2.5", "optax": "0.2.8"})
    assert kit_main(["setup"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    FakeRuntime(monkeypatch, {**COLAB, "numpy": "1.0"})
    assert kit_main(["setup"]) == 1
    assert "error: " in capsys.readouterr().err


def test_this_checkouts_environment_is_inside_the_range():
    requirements = setup.kit_requirements()
    quick = setup.installed_versions([r.name for r in requirements] + ["no-such-distribution"])
    assert quick == {r.name: setup.installed_distributions()[r.name] for r in requirements}
    assert setup.plan_setup(requirements, quick, set(sys.modules)).nothing_to_do


def _setup_cell() -> str:
    cells = (ROOT / "solutions" / "binary_mnist.py").read_text().split("# %%")
    cell = next(c for c in cells if c.startswith(' tags=["setup"]'))
    return cell.split("\nimport functools")[0].split("\n", 1)[1]


def test_the_setup_cell_is_short_and_its_pip_installs_the_kit_alone(monkeypatch, capsys):
    code = [line for line in _setup_cell().splitlines() if line.strip() and not line.startswith("#")]
    # What runs before the kit exists (its install, and the two lines when that fails) must be in the
    # cell; everything after it lives in bmnist_helpers.setup.
    assert len(code) <= 18, "the install logic lives in bmnist_helpers.setup, not in the notebook"
    assert "from bmnist_helpers.setup import ensure_kit" in code[3] and code[-1] == "ensure_kit(KIT)"
    assert "constraint" not in _setup_cell()

    # the fallback, as on Colab: no kit yet, so pip installs it alone (from the wheelhouse too), then ensure_kit runs
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        monkeypatch.delitem(sys.modules, "bmnist_helpers.setup")  # "installed": importable again
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bmnist_helpers, "setup", setup)  # the cell's import rebinds it; put it back after
    monkeypatch.setitem(sys.modules, "bmnist_helpers.setup", None)  # import raises ModuleNotFoundError
    monkeypatch.setattr(subprocess, "run", fake_pip)
    monkeypatch.setenv("BMNIST_WHEELHOUSE", "/wheels")
    exec(compile(_setup_cell(), "setup-cell", "exec"), {})
    [command] = calls
    kit = f"bmnist-kit=={setup.__version__}"
    assert command[:4] == [sys.executable, "-m", "pip", "install"] and command[-1] == kit
    assert "--no-deps" in command and command[command.index("--find-links") + 1] == "/wheels"
    assert capsys.readouterr().out == f"installed the kit alone: pip install --no-deps --find-links /wheels {kit}\n"


def test_the_setup_cell_says_in_two_lines_when_the_kit_cannot_be_installed(monkeypatch, capsys):
    """A wrong URL or no network: what was tried and what to do, as IPython shows an error whose
    ``_render_traceback_`` gives its lines; no pip output, no traceback."""
    url = "https://course.example.org/kit/bmnist_kit-0.1.0-py3-none-any.whl"
    cell = _setup_cell().replace("KIT_URL = None", f"KIT_URL = {url!r}")

    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", f"Collecting x\nERROR: HTTP error 404 while getting {url}\n")

    monkeypatch.setitem(sys.modules, "bmnist_helpers.setup", None)
    monkeypatch.setattr(subprocess, "run", failing_pip)
    monkeypatch.delenv("BMNIST_WHEELHOUSE", raising=False)
    with pytest.raises(Exception) as raised:
        exec(compile(cell, "setup-cell", "exec"), {})
    lines = raised.value._render_traceback_()
    assert len(lines) == 2 and f"pip install --no-deps {url}" in lines[0] and "HTTP error 404" in lines[0]
    assert "ask your instructor" in lines[1] and raised.value.__suppress_context__
    assert capsys.readouterr().out == ""
