"""``make lab``: the student's own copy of the exercise, made once, never overwritten, ignored by git;
JupyterLab's options open it and hide the build artefacts. (The browser side: tests/test_browser.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from bmnist_helpers import lab
from bmnist_lesson.exercise import EXERCISE_IPYNB

from tests.conftest import ROOT


def test_the_copy_is_made_once_from_the_exercise_and_never_overwritten(tmp_path):
    copy, made = lab.student_copy(tmp_path)
    assert made and copy == tmp_path / "work" / "binary_mnist.ipynb"
    assert copy.read_bytes() == EXERCISE_IPYNB.read_bytes()
    copy.write_text('{"the student": "work"}')
    again, made_again = lab.student_copy(tmp_path)
    assert again == copy and not made_again
    assert copy.read_text() == '{"the student": "work"}'
    assert sorted(p.name for p in copy.parent.iterdir()) == ["binary_mnist.ipynb"]  # no backup, no second copy


def test_the_options_open_the_copy_and_hide_build_artefacts(tmp_path):
    copy = tmp_path / "work" / "binary_mnist.ipynb"
    options = dict(o.split("=", 1) for o in lab.lab_options(tmp_path, copy))
    assert options["--ServerApp.root_dir"] == str(tmp_path)
    assert options["--LabApp.default_url"] == "/lab/tree/work/binary_mnist.ipynb"
    hidden = json.loads(options["--ContentsManager.hide_globs"])
    assert {"*.egg-info", "__pycache__", "build", "dist"} <= set(hidden)
    with pytest.raises(ValueError):
        lab.lab_options(tmp_path, tmp_path.parent / "elsewhere.ipynb")  # the notebook must be served


def test_git_ignores_the_students_work_and_make_lab_runs_this_module():
    ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "work/binary_mnist.ipynb"], check=False)
    assert ignored.returncode == 0, "work/ must be git-ignored"
    recipe = re.search(r"^lab:.*?(?=^\S)", (ROOT / "Makefile").read_text() + "\nend", re.M | re.S).group(0)
    assert "-m bmnist_helpers.lab" in recipe and "jupyter lab " not in recipe


def test_outside_a_checkout_the_command_says_what_to_do_instead(monkeypatch, capsys):
    monkeypatch.setattr(lab, "in_checkout", lambda: False)
    assert lab.main([]) == 2
    assert "python -m bmnist_helpers lesson DIR" in capsys.readouterr().err


def test_the_command_starts_jupyterlab_on_the_copy(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(lab, "CHECKOUT", tmp_path)
    started = []
    monkeypatch.setattr(lab.os, "execv", lambda exe, argv: started.append(argv))
    assert lab.main(["--no-browser"]) == 0
    argv = started[0]
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"] and "--no-browser" in argv
    assert "--LabApp.default_url=/lab/tree/work/binary_mnist.ipynb" in argv
    assert "fresh copy of the exercise" in capsys.readouterr().out
    assert lab.main([]) == 0
    assert "your own work, as you left it" in capsys.readouterr().out
