"""bmnist-grade's command line and its failures, each graded on its own: clear errors for bad
arguments, the installed command, the grader's memory limit, an error in the grader or the
reference run, and the MNIST cache filled before grading (tests/test_grading.py grades a class)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from bmnist_helpers.data import MNIST_FILES
from bmnist_lesson import LESSON
from nbjudge import batch, cli
from nbjudge.plan import build_plan

from tests.conftest import ROOT, local_mirror

FIXTURES = ROOT / "tests" / "fixtures" / "submissions"


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_cli_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main([str(FIXTURES), "--out", str(tmp_path), "--shard", "1/2"])
    assert "--shard needs --seed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(FIXTURES), "--out", str(tmp_path), "--param", "NUM_STEPS"])
    assert "NAME=VALUE" in capsys.readouterr().err
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(tmp_path), "--param", "NOPE=1"]) == 2
    assert "not in the parameters cell" in capsys.readouterr().err
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(tmp_path), "--lesson", "no_such_lesson"]) == 2
    assert "cannot import it" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
    for part, seed in (("a", 1), ("b", 2)):
        (tmp_path / part).mkdir()
        (tmp_path / part / "results.jsonl").write_text(json.dumps({"meta": {"seed": seed}}) + "\n")
    assert cli.main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    assert "different seeds" in capsys.readouterr().err


def test_grade_command_is_installed_and_documents_itself():
    exe = Path(sys.executable).parent / "bmnist-grade"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--shard" in proc.stdout and "bmnist-grade merge" in proc.stdout
    assert "(default: 600)" in proc.stdout and "(default: 120)" in proc.stdout


def test_the_grader_and_its_workers_read_notebooks_without_the_iri_parser():
    """jsonschema imports rfc3987_syntax where it is installed (the constraints pin it, through
    jupyter-events), and that builds a parser for over two seconds, which ``bmnist-grade --help`` and
    every worker would pay at start for a format check that notebooks never use."""
    code = ("import sys, importlib.util\nassert importlib.util.find_spec('rfc3987_syntax'), 'not installed'\n"
            "import bmnist_lesson.cli, nbjudge.worker, nbformat\nprint(sys.modules.get('rfc3987_syntax'))\n"
            "import jsonschema; print(jsonschema.validate({'cells': []}, {'type': 'object'}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["None", "None"]  # not loaded, and validation still works


def test_the_grader_starts_under_a_hard_memory_limit():
    """Slurm and ``ulimit -v`` set a hard RLIMIT_AS; capping a worker must stay within it."""
    code = ("import resource, subprocess\nfrom nbjudge.run import _cap_worker\n"
            "p = subprocess.Popen(['sleep', '5'])\n_cap_worker(p.pid)\n"
            "print(resource.prlimit(p.pid, resource.RLIMIT_AS)[1])\np.kill()\n")
    hard = 16 * 2**30
    proc = subprocess.run(["prlimit", f"--as={hard}:{hard}", sys.executable, "-c", code], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) == hard


def _run(tmp_path: Path) -> batch._Run:
    plan = build_plan(LESSON, seed=1, params={})
    return batch._Run(plan=plan, plan_file=tmp_path / "plan.json", options=batch.RunOptions(), tmp=tmp_path)


def test_an_error_in_the_grader_itself_becomes_that_notebooks_status(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(batch, "run_sandboxed_job", broken)
    monkeypatch.setattr(batch, "score", broken)
    sub = batch.Submission(name="alice", path=tmp_path / "alice.ipynb", data=b"{}", problem=None)
    run = _run(tmp_path)
    ran = batch._run_one(sub, run, workdir=tmp_path / "job", slot=0, options=run.options)  # running the copy fails
    scored = batch._score_one(sub, object(), None, run)  # scoring it fails
    for grade in (ran, scored):
        assert (grade.status, grade.total) == ("grader-error", 0) and "RuntimeError" in grade.note
        assert "disk on fire" not in grade.note  # an exception's text may quote student output
    assert not (tmp_path / "job").exists()


def test_a_failing_reference_run_stops_the_grading_with_its_reason(monkeypatch, tmp_path):
    # When the reference run fails (after its retry), no grades are written.
    def bad_reference(run, *, log, slot=0, options=None):
        raise ValueError("the solution fails its own hidden check of task 3: nan")

    monkeypatch.setattr(batch, "_reference", bad_reference)
    monkeypatch.setattr(batch, "_run_one", lambda sub, run, *, workdir, slot, options: object())
    with pytest.raises(ValueError, match="own hidden check of task 3"):
        cli.grade([FIXTURES / "full-marks.ipynb"], out=tmp_path / "out", jobs=2, seed=1, log=lambda line: None,
                  use_bwrap=False)
    assert not [p.name for p in (tmp_path / "out").iterdir()]  # no grades.csv, no results file
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(tmp_path / "out"), "--seed", "1",
                     "--no-bwrap"]) == 2


def test_an_empty_mnist_cache_is_filled_from_a_mirror_before_grading(monkeypatch, tmp_path, capsys):
    """The kernels have no network: the grader fetches MNIST once, with the kit's own downloader."""
    cache, mirror = tmp_path / "cache", local_mirror()  # the mirror before the variable is set to a bad one
    monkeypatch.setenv("BMNIST_CACHE", str(cache))
    monkeypatch.setenv("BMNIST_MIRRORS", "file:///nonexistent/mirror")
    out = tmp_path / "unreachable"
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(out), "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "MNIST is not in the cache" in err and "python -m bmnist_helpers.data fetch" in err
    assert not out.exists()
    monkeypatch.setenv("BMNIST_MIRRORS", mirror)
    out = tmp_path / "graded"
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(out), "--seed", "1"]) == 0
    assert _rows(out / "grades.csv")[0]["total"] == "15"
    assert sorted(p.name for p in cache.iterdir()) == sorted(spec.name for spec in MNIST_FILES.values())
