"""The student release (``make release``): what students get holds no answer, and it works alone."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import nbformat
import pytest
from bmnist_lesson.release import ReleaseError, answer_lines, leaks, write_release

from tests.conftest import ROOT
from tests.venvs import PIP_QUICK, RUN_CELLS, cell_stdout, new_venv, run, user_env

KIT_URL = "https://course.example.org/kit/bmnist_kit-0.1.0-py3-none-any.whl"
REPO_URL = "https://github.com/course/bmnist-exercise"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """``make release`` as an instructor runs it."""
    out = tmp_path_factory.mktemp("release") / "out"
    proc = subprocess.run(["make", "-s", "release", f"OUT={out}", f"KIT_URL={KIT_URL}", f"REPO_URL={REPO_URL}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_the_release_holds_the_exercise_the_kits_wheel_and_a_readme(release):
    files = sorted(str(p.relative_to(release)) for p in release.rglob("*") if p.is_file())
    assert files == ["README.md", "binary_mnist.ipynb", "postBuild", "requirements.txt",
                     "wheels/bmnist_kit-0.1.0-py3-none-any.whl"]
    readme = (release / "README.md").read_text()
    assert KIT_URL in readme and "colab.research.google.com/github/course/bmnist-exercise/blob/main" in readme
    setup = next(c for c in nbformat.read(release / "binary_mnist.ipynb", as_version=4).cells
                 if "setup" in c.metadata.get("tags", []))
    assert f"KIT_URL = {KIT_URL!r}" in setup.source
    texts = [p.read_bytes() for p in release.rglob("*") if p.is_file() and p.suffix != ".whl"]
    assert not [t for t in texts if b"bmnist-kit/bmnist-kit" in t], "no placeholder URL is left"


def test_no_file_of_the_release_holds_an_answer(release):
    lines = answer_lines()
    assert len(lines) > 30 and "cross_entropy = jnp.mean(jnp.logaddexp(0.0, logits) - targets * logits)" in lines
    assert leaks(release, lines) == []
    with zipfile.ZipFile(release / "wheels" / "bmnist_kit-0.1.0-py3-none-any.whl") as whl:
        names = whl.namelist()
    assert not [n for n in names if "solution" in n or "verdict" in n or n.startswith(("nbjudge", "bmnist_lesson"))]


def test_the_leak_search_opens_wheels_zips_and_notebooks(tmp_path):
    """The search above can fail: an answer inside a zip inside a wheel, or in a notebook's JSON."""
    lines = answer_lines()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        answer = "    return cross_entropy + 0.5 * l2_reg * squared_norm\n"
        archive.writestr("notes/answers.py", "def loss(params):\n" + answer)
    with zipfile.ZipFile(tmp_path / "extra-0.1-py3-none-any.whl", "w") as whl:
        whl.writestr("extra/bundle.zip", inner.getvalue())
    (tmp_path / "copy.ipynb").write_bytes((ROOT / "solutions" / "binary_mnist.ipynb").read_bytes())
    found = leaks(tmp_path, lines)
    nested = "extra-0.1-py3-none-any.whl!extra/bundle.zip!notes/answers.py"
    assert {leak.path for leak in found} == {"copy.ipynb", nested}
    assert len({leak.line for leak in found if leak.path == "copy.ipynb"}) == len(lines)


def test_a_release_is_refused_rather_than_overwritten_or_misaddressed(tmp_path):
    (tmp_path / "work.txt").write_text("mine")
    with pytest.raises(ReleaseError, match="not an empty folder"):
        write_release(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["work.txt"]
    with pytest.raises(ReleaseError, match="not an http"):
        write_release(tmp_path / "new", kit_url="course.example.org/kit.whl")
    assert not (tmp_path / "new").exists()


@pytest.mark.venv
def test_the_releases_wheel_installs_and_runs_the_exercise(release, tmp_path):
    """In a fresh venv, the release's wheel alone: Binder's postBuild, the exercise's setup,
    parameters and data cells; and ``lesson --solution`` writes no solution."""
    env = user_env(tmp_path)
    venv = new_venv(tmp_path / "venv", env)
    env = user_env(tmp_path, venv, BMNIST_WHEELHOUSE=str(release / "wheels"))
    py = venv / "bin" / "python"
    run([py, "-m", "pip", "install", *PIP_QUICK, "-c", ROOT / "constraints.txt",
         "-r", release / "requirements.txt"], env=env, cwd=release)
    run(["bash", release / "postBuild"], env=env, cwd=release)
    home = tmp_path / "home"
    home.mkdir()
    run([py, "-c", RUN_CELLS, release / "binary_mnist.ipynb", home / "ran.ipynb"], env=env, cwd=home)
    ran = nbformat.read(home / "ran.ipynb", as_version=4)
    solution = nbformat.read(ROOT / "solutions" / "binary_mnist.ipynb", as_version=4)
    data = next(c for c in solution.cells if "data" in c.metadata.get("tags", []))
    assert cell_stdout(ran.cells[2]) == cell_stdout(data) != ""
    refused = run([py, "-m", "bmnist_helpers", "lesson", home, "--solution"], env=env, check=False)
    assert refused.returncode == 1 and "the solution is not part of bmnist-kit" in refused.stderr
    assert sorted(p.name for p in home.iterdir()) == ["ran.ipynb"]
