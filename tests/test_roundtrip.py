"""Opening and saving the notebooks through Jupyter changes nothing.

A real Jupyter server with Jupytext's contents manager (as in ``make lab``) serves a git repository
holding the committed-to-be notebook files and ``jupytext.toml``. Each notebook is fetched through
the contents API and saved back unchanged, which is what JupyterLab's autosave does. Jupytext then
rewrites both files of the pair; the repository must show no change.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from bmnist_lesson import exercise

from tests.conftest import ROOT
from tests.jupyter_server import jupyter

PAIRS = [exercise.SOLUTION_IPYNB, exercise.EXERCISE_IPYNB]


def _git(repo, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


@pytest.fixture
def repo(tmp_path):
    """A fresh git repository with the notebooks of this working tree, committed."""
    repo = tmp_path / "repo"
    files = [ROOT / "jupytext.toml", ROOT / ".gitignore", *PAIRS, *(p.with_suffix(".py") for p in PAIRS)]
    for path in files:
        target = repo / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    committed = _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "notebooks")
    assert committed.returncode == 0, committed.stderr
    return repo


def test_open_and_save_in_jupyter_changes_nothing(repo):
    paths = [p.relative_to(ROOT).as_posix() for p in PAIRS]
    before = {p: (repo / p).stat().st_mtime_ns for p in [*paths, *(x[: -len(".ipynb")] + ".py" for x in paths)]}
    with jupyter(repo) as server:
        for path in paths:
            model = server.contents("GET", path)
            assert model["type"] == "notebook"
            # Jupytext's contents manager is active: the notebook knows its pair.
            assert model["content"]["metadata"]["jupytext"]["formats"] == "ipynb,py:percent"
            server.contents("PUT", path, {"type": "notebook", "format": "json", "content": model["content"]})
        log = server.log.read_text()
    for path, mtime in before.items():  # both files of each pair were really written again
        assert (repo / path).stat().st_mtime_ns != mtime, f"{path} was not saved; is Jupytext's contents manager on?"
    assert "Saving binary_mnist.py in format py:percent" in log
    diff = _git(repo, "diff", "--stat")
    assert _git(repo, "diff", "--quiet").returncode == 0, f"saving through Jupyter changed files:\n{diff.stdout}"
    assert _git(repo, "status", "--porcelain").stdout == ""



@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_stored_numbers_are_written_as_the_browser_writes_them(path):
    """JupyterLab saves the JSON that JavaScript wrote, where ``1.0`` is ``1``: a whole number stored
    as a float (a slider's ``"max": 1.0`` in the widget state) would change on the first save."""
    floats: list[str] = []
    json.loads(path.read_text(encoding="utf-8"), parse_float=lambda text: floats.append(text) or float(text))
    assert [text for text in floats if float(text).is_integer()] == []
