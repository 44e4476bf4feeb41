"""The ``lesson`` and ``kernel`` commands of the kit, and ``bmnist-grade --solution``'s checks of a
solution notebook: fast, in this process (tests/test_install.py installs the wheels into fresh venvs)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import bmnist_helpers
import pytest
from bmnist_helpers import kernel, lesson
from bmnist_helpers.__main__ import main as kit_main
from nbjudge import cli

from tests.conftest import ROOT

VERSION = bmnist_helpers.__version__
FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
# Byte-compiling every installed file (jax, scipy, matplotlib...) costs more than compiling, on
# import, the modules a test uses.
PIP_QUICK = ["-q", "--no-compile"]


# --- the lesson command -------------------------------------------------------------------------


def test_lesson_writes_the_exercise_and_then_leaves_it_alone(tmp_path, capsys):
    folder = tmp_path / "new" / "lesson"
    assert kit_main(["lesson", str(folder)]) == 0
    written = folder / "binary_mnist.ipynb"
    assert written.read_bytes() == (ROOT / "notebooks" / "binary_mnist.ipynb").read_bytes()
    assert kit_main(["lesson", str(folder)]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["binary_mnist.ipynb"]


def test_lesson_never_overwrites_a_students_work(tmp_path, capsys):
    target = tmp_path / "binary_mnist.ipynb"
    target.write_text("my work")
    assert kit_main(["lesson", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "already exists and differs" in err and "--force" in err and "nothing was written" in err
    assert target.read_text() == "my work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary_mnist.ipynb"]

    assert kit_main(["lesson", str(tmp_path), "--force"]) == 0
    assert "binary_mnist.backup-1.ipynb" in capsys.readouterr().out
    assert (tmp_path / "binary_mnist.backup-1.ipynb").read_text() == "my work"
    assert target.read_bytes() == (ROOT / "notebooks" / "binary_mnist.ipynb").read_bytes()

    target.write_text("my second try")
    result = lesson.write_lesson(tmp_path, force=True)
    assert result.status == "replaced" and result.backup.name == "binary_mnist.backup-2.ipynb"
    assert (tmp_path / "binary_mnist.backup-1.ipynb").read_text() == "my work"
    assert result.backup.read_text() == "my second try"


def test_lesson_solution_is_the_instructors_and_bad_folders(tmp_path, capsys):
    assert kit_main(["lesson", str(tmp_path), "--solution"]) == 1
    assert "the solution is not part of bmnist-kit" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert kit_main(["lesson", str(afile)]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "sub" / "binary_mnist.ipynb").mkdir(parents=True)
    assert kit_main(["lesson", str(tmp_path / "sub")]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_kernel_command_registers_the_notebooks_kernel_with_its_cache(tmp_path):
    assert kit_main(["kernel", "--prefix", str(tmp_path)]) == 0
    spec = json.loads((tmp_path / "share" / "jupyter" / "kernels" / "bmnist" / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and "ipykernel_launcher" in spec["argv"]
    assert spec["display_name"] == kernel.KERNEL_NAME
    assert spec["env"]["JAX_COMPILATION_CACHE_DIR"].endswith(os.path.join("bmnist-kit", "jax"))
    assert all(flag in spec["env"]["XLA_FLAGS"].split() for flag in kernel.FAST_COMPILE_FLAGS)


def test_xla_flags_this_jaxlib_refuses_are_left_out(monkeypatch):
    # XLA aborts at start-up on a flag it does not know (a jax upgrade may drop one), so the kernel
    # gets only flags a child process started with.
    from bmnist_lesson import GRADING_COMPILE_FLAGS

    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/nonexistent")
    kernel.xla_flags.cache_clear()
    try:
        assert kernel.xla_flags(("--xla_cpu_no_such_flag_in_any_version=true",)) == "--xla_dump_to=/nonexistent"
        # the user's own flags stay; the grader's flags are accepted by the jaxlib this kit pins
        assert kernel.xla_flags(GRADING_COMPILE_FLAGS).split() == ["--xla_dump_to=/nonexistent", *GRADING_COMPILE_FLAGS]
    finally:
        kernel.xla_flags.cache_clear()


def test_generator_refuses_to_run_outside_a_checkout(monkeypatch, capsys):
    from bmnist_lesson import exercise

    monkeypatch.setattr(exercise, "in_checkout", lambda: False)
    assert exercise.main([]) == 2
    assert "needs the instructor's checkout" in capsys.readouterr().err


# --- bmnist-grade --solution --------------------------------------------------------------------


def _solution_variant(tmp_path: Path, change) -> Path:
    nb = json.loads((ROOT / "solutions" / "binary_mnist.ipynb").read_text())
    change(nb)
    path = tmp_path / "variant.ipynb"
    path.write_text(json.dumps(nb))
    return path


def _strip_outputs(nb):
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None


def _drop_expected(nb):
    nb["cells"] = [c for c in nb["cells"] if "expected-result" not in c["metadata"].get("tags", [])]


@pytest.mark.parametrize(("change", "message"), [
    (_strip_outputs, "have no stored outputs"),
    (_drop_expected, "no expected-result cells of task(s) [1, 2, 3, 4, 5]"),
    (lambda nb: nb.update(nbformat=3), "not an nbformat 4 notebook"),
])
def test_grader_refuses_a_solution_that_is_not_executed(tmp_path, capsys, change, message):
    variant = _solution_variant(tmp_path, change)
    out = tmp_path / "grades"
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(out), "--solution", str(variant)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and message in err and "--solution" in err
    assert not out.exists(), "grading must not start"


def test_grader_refuses_the_exercise_as_solution(tmp_path, capsys):
    out = tmp_path / "grades"
    exercise = ROOT / "notebooks" / "binary_mnist.ipynb"
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(out), "--solution", str(exercise)]) == 2
    assert "this is the exercise, not the solution" in capsys.readouterr().err
    assert not out.exists()


def test_the_lessons_solution_passes_the_check():
    from bmnist_lesson import LESSON
    from nbjudge.solution import NotASolution, check_solution

    check_solution(LESSON.solution, LESSON)
    with pytest.raises(NotASolution, match="cannot read it"):
        check_solution(ROOT / "README.md", LESSON)
