"""bmnist-grade on the fixture class: statuses, points, isolation, reproducibility, shards."""

from __future__ import annotations

import csv
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import jupytext
import pytest

from bmnist_helpers.exercise import SOLUTION_PY, cell_tags
from bmnist_helpers.grading import cli
from bmnist_helpers.grading.sandbox import protections
from tests.conftest import ROOT
from tests.fixtures import make_submissions

FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
PARAMS = {"NUM_STEPS": "600", "TARGET_ACCURACY": "0.95"}
SEED = 20231107

pytestmark = pytest.mark.grading


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _tree_hash() -> str:
    """Hash of every tracked and untracked-but-not-ignored file of the instructor's tree."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    digest = hashlib.sha256()
    for name in sorted(files):
        path = ROOT / name
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.is_file() else b"<missing>")
    return digest.hexdigest()


@pytest.fixture(scope="module")
def require_sandbox():
    if not protections()["file system hidden (bubblewrap)"] or not cli._bwrap_works():
        reason = "bubblewrap is not installed or cannot create a sandbox here"
        if os.environ.get("BMNIST_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"BMNIST_REQUIRE_SANDBOX=1 but {reason}")
        pytest.skip(reason + " (the fork bomb fixture needs its process limit)")


@pytest.fixture(scope="module")
def answers_server(tmp_path_factory):
    """Serve the solution's answers on loopback, where the network fixture tries to fetch them."""
    folder = tmp_path_factory.mktemp("answers")
    nb = jupytext.read(SOLUTION_PY)
    answers = [c.source for c in nb.cells if c.cell_type == "code" and any(t.startswith("task-") for t in cell_tags(c))
               and "expected-result" not in cell_tags(c)]
    (folder / "answers.py").write_text("import jax, jax.numpy as jnp, numpy as np, optax, functools, itertools\n"
                                       + "\n\n".join(answers))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", make_submissions.NETWORK_PORT), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{make_submissions.NETWORK_PORT}/answers.py"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def graded(require_sandbox, answers_server, tmp_path_factory):
    out = tmp_path_factory.mktemp("grades")
    before = _tree_hash()
    lines: list[str] = []
    grades = cli.grade([FIXTURES], out=out, jobs=2, timeout_s=240, cell_timeout_s=45, seed=SEED, params=PARAMS,
                       log=lines.append)
    return {"grades": {g.submission: g for g in grades}, "out": out, "before": before, "after": _tree_hash(),
            "log": lines}


def test_fixtures_are_current():
    on_disk = {p.name: p.read_text() for p in FIXTURES.iterdir()}
    assert on_disk == make_submissions.rendered(), "run: python tests/fixtures/make_submissions.py"
    assert len(EXPECTED) >= 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_status_and_points(graded, name):
    grade = graded["grades"][name]
    want = EXPECTED[name]
    assert (grade.status, {str(t): p for t, p in grade.points.items()}) == (want["status"], want["points"]), grade.note


def test_nothing_outside_the_temp_dirs_changed(graded):
    assert graded["after"] == graded["before"]


def test_reports(graded):
    out = graded["out"]
    rows = _rows(out / "grades.csv")
    assert [r["submission"] for r in rows] == sorted(EXPECTED)
    by_name = {r["submission"]: r for r in rows}
    assert by_name["full-marks"]["total"] == "15" and by_name["full-marks"]["status"] == "ok"
    assert by_name["fake-planted-files"]["total"] == "0"  # the planted grades.csv row was not read
    feedback = (out / "feedback" / "wrong-no-weight-decay.md").read_text()
    assert "Task 4: hidden check `hidden-4`" in feedback and "Expected:" in feedback and "Got:" in feedback
    assert "### Task 1" not in feedback
    memory = (out / "feedback" / "runaway-memory-bomb.md").read_text()
    assert "MemoryError" in memory
    assert len((out / "feedback" / "runaway-print-flood.md").read_text()) < 50_000  # truncated
    assert "no network: yes" in graded["log"][0] and "file system hidden (bubblewrap): yes" in graded["log"][0]
    assert graded["log"][-1].splitlines()[0].startswith("submission")


def test_one_bad_submission_stays_within_its_own_limits(graded):
    seconds = {name: g.seconds for name, g in graded["grades"].items()}
    assert max(seconds.values()) <= 240 + 30
    assert seconds["full-marks"] < 120 and seconds["wrong-no-weight-decay"] < 120


def test_same_seed_same_scores_and_shards_merge_to_one_run(graded, tmp_path):
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in ("full-marks", "untouched", "wrong-subset-indices"):
        shutil.copy(FIXTURES / f"{name}.ipynb", subset)
    parts = []
    for k in (1, 2):
        part = tmp_path / f"part{k}"
        args = [str(subset), "--out", str(part), "--seed", str(SEED), "--shard", f"{k}/2", "--jobs", "2",
                "--timeout", "240", "--cell-timeout", "45"]
        args += [a for n, v in PARAMS.items() for a in ("--param", f"{n}={v}")]
        assert cli.main(args) == 0
        parts.append(part)
    assert cli.main(["merge", *map(str, parts), "--out", str(tmp_path / "merged")]) == 0
    merged = _rows(tmp_path / "merged" / "grades.csv")
    full = {r["submission"]: r for r in _rows(graded["out"] / "grades.csv")}
    assert merged == [full[r["submission"]] for r in merged] and len(merged) == 3


def test_cli_errors_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main([str(FIXTURES), "--out", str(tmp_path), "--shard", "1/2"])
    assert "--shard needs --seed" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(FIXTURES), "--out", str(tmp_path), "--param", "NUM_STEPS"])
    assert "NAME=VALUE" in capsys.readouterr().err
    assert cli.main([str(FIXTURES / "full-marks.ipynb"), "--out", str(tmp_path), "--param", "NOPE=1"]) == 2
    assert "not in the parameters cell" in capsys.readouterr().err
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text(json.dumps({"meta": {"seed": 1}, "grades": []}))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "results.json").write_text(json.dumps({"meta": {"seed": 2}, "grades": []}))
    assert cli.main(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]) == 2
    assert "different seeds" in capsys.readouterr().err


def test_grade_command_is_installed():
    exe = Path(sys.executable).parent / "bmnist-grade"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "--shard" in proc.stdout and "--jobs" in proc.stdout
