"""The grading engine on its own: a toy lesson (tests/lessons/toy_lesson, numpy only) graded
through the real command line in seconds: statuses, shards and merge, a killed run resumed, a
mistyped folder, an output folder in use; and the engine's folder free of any lesson."""

from __future__ import annotations

import ast
import csv
import glob
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from bmnist_lesson import TASK_FUNCTIONS
from nbjudge import cli
from nbjudge.status import STATUSES

from tests.conftest import ROOT
from tests.lessons import make_toy

pytestmark = pytest.mark.grading

ENGINE = ROOT / "engine" / "nbjudge"
TOY = ROOT / "tests" / "lessons" / "toy_lesson"
SEED = 11
COMMON = ["--lesson", str(TOY), "--seed", str(SEED), "--cell-timeout", "5", "--timeout", "60"]
CLASS = make_toy.submissions()


def _grade(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "nbjudge"), *args], capture_output=True, text=True,
                          timeout=300, **kwargs)


def _rows(folder: Path) -> dict[str, dict]:
    return {r["submission"]: r for r in csv.DictReader(io.StringIO((folder / "grades.csv").read_text()))}


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _feedback_files(names) -> list[str]:
    """The files of a feedback folder: a Markdown and an HTML page per submission."""
    return sorted(f"{n}.{kind}" for n in names for kind in ("html", "md"))


def _write_class(folder: Path, names=None) -> Path:
    folder.mkdir()
    for name in names or CLASS:
        (folder / f"{name}.ipynb").write_text(CLASS[name][0])
    return folder


@pytest.fixture(scope="module")
def toy_class(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("toy")
    klass = _write_class(root / "class")
    out = root / "out"
    done = _grade(str(klass), "--out", str(out), "--jobs", "2", *COMMON)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"class": klass, "out": out, "log": done.stdout}


# --- the engine knows no lesson ------------------------------------------------------------------


def _words(tree: ast.AST) -> list[tuple[int, str]]:
    """Names, attributes, imports and string constants of a module, docstrings left out."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant) and isinstance(node.body[0].value.value, str)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.arg):
            found.append((node.lineno, getattr(node, "name", None) or node.arg))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found += [(node.lineno, f"{getattr(node, 'module', '') or ''} {a.name} {a.asname or ''}")
                      for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append((node.lineno, node.value))
    return found


def test_the_engine_folder_holds_no_lesson():
    functions = sorted({f for names in TASK_FUNCTIONS.values() for f in names})
    forbidden = re.compile(r"mnist|jax|optax|xla|\b(" + "|".join(functions) + r")\b", re.I)
    assert Path(cli.__file__).parent == ENGINE  # the module behind the command is in this folder
    hits = []
    for path in sorted(ENGINE.glob("*.py")):
        for line, word in _words(ast.parse(path.read_text())):
            if forbidden.search(word):
                hits.append(f"{path.name}:{line}: {word[:80]!r}")
    assert not hits, "\n".join(hits)


def test_the_scan_finds_lesson_words():
    """The scan above can fail: it flags a name, an import and a string, and skips docstrings."""
    code = 'def f():\n    """About MNIST."""\n    import jax\n    return loss_fn, "xla"\n'
    words = [w for _, w in _words(ast.parse(code))]
    assert any("jax" in w for w in words) and "loss_fn" in words and "xla" in words
    assert not any("MNIST" in w for w in words)


# --- grading the toy lesson ----------------------------------------------------------------------


@pytest.mark.batch
@pytest.mark.parametrize("name", sorted(CLASS))
def test_each_toy_submission_gets_its_status_and_points(toy_class, name):
    row = _rows(toy_class["out"])[name]
    _, status, points = CLASS[name]
    assert (row["status"], {t: int(row[f"task{t}"]) for t in points}) == (status, points), row["note"]


def _numbers(note: str) -> list[int]:
    """The numbers a note gives, in order (a cell's number, a task, a limit, an exit status, a line);
    the names of given cells (in backticks, e.g. ``expected-1``) left out."""
    return [int(n) for n in re.findall(r"\d+", re.sub(r"`[^`]*`", "", note))]


@pytest.mark.batch
def test_statuses_carry_the_graders_own_notes(toy_class):
    """Which rows get a note, and the facts each carries (the cell, the task, the numbers), whatever
    the sentences around them. The toy's grading copy keeps the submission's cells in order, so a
    cell of the student's own has its number in the submission."""
    rows = _rows(toy_class["out"])
    assert {row["status"] for row in rows.values()} <= set(STATUSES)
    notes = {name: row["note"] for name, row in rows.items() if row["note"]}
    assert set(notes) == {"loop", "exits", "answer-exits", "kills-every-kernel", "invalid", "untouched"}
    assert _numbers(notes["loop"]) == [3, 5]  # its third cell loops; the cell limit is 5 s (COMMON)
    assert _numbers(notes["exits"]) == [5, 1]  # its fifth cell exits, with status 1 ...
    assert "again" in notes["exits"] and "gave up" not in notes["exits"]  # ... and the rest ran again
    assert _numbers(notes["answer-exits"]) == [4, 1]  # task 2's answer, the fourth cell, exits with status 1
    # each kernel ended in turn, in a given cell (named by its id) or task 1's hidden check, until given up
    killer = notes["kills-every-kernel"]
    assert re.findall(r"`([^`]+)`", killer) == ["expected-1", "expected-2"]
    assert re.findall(r"task (\d+)", killer) == ["1"] and _numbers(killer) == [1, 1, 1, 1]
    assert "gave up" in killer and "again" not in killer
    assert "JSON" in notes["invalid"] and _numbers(notes["invalid"]) == [1]  # where the JSON breaks: line 1
    feedback = (toy_class["out"] / "feedback" / "untouched.md").read_text()
    assert "needs task" not in feedback and "raised NotImplementedError: TODO: task 1" in feedback


@pytest.mark.batch
def test_shards_merge_to_the_same_report_as_one_run(toy_class, tmp_path):
    shards = [tmp_path / f"shard-{k}" for k in (1, 2)]
    procs = [subprocess.Popen([str(Path(sys.executable).parent / "nbjudge"), str(toy_class["class"]),
                               "--out", str(out), "--shard", f"{k}/2", "--jobs", "1", *COMMON],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, out in enumerate(shards, 1)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n\n".join(logs)
    assert sorted(sum(([*_rows(out)] for out in shards), [])) == sorted(CLASS)
    merged = tmp_path / "merged"
    done = _grade("merge", *map(str, shards), "--out", str(merged))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (merged / "grades.csv").read_text() == (toy_class["out"] / "grades.csv").read_text()
    assert sorted(p.name for p in (merged / "feedback").iterdir()) == _feedback_files(CLASS)
    assert _grade("merge", str(shards[0]), str(shards[0]), "--out", str(tmp_path / "twice")).returncode == 2


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.batch
def test_a_killed_run_resumes_to_the_grades_of_an_uninterrupted_one(toy_class, tmp_path):
    out = tmp_path / "out"
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "grading-*")))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "nbjudge"), str(toy_class["class"]),
                             "--out", str(out), "--jobs", "1", *COMMON],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not results.exists() or len(results.read_text().splitlines()) < 3):
        time.sleep(0.2)
    temp = set(glob.glob(os.path.join(tempfile.gettempdir(), "grading-*"))) - before
    proc.send_signal(signal.SIGKILL)  # as a Slurm time limit or the OOM killer would
    proc.wait()
    finished = len(results.read_text().splitlines()) - 1
    assert 2 <= finished < len(CLASS)
    assert len(temp) == 1
    (folder,) = temp
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (os.path.exists(folder) or _processes_mentioning(folder)):
        time.sleep(0.2)
    assert not os.path.exists(folder) and not _processes_mentioning(folder)  # no job folder, no process left
    assert not (out / "grades.csv").exists()

    refused = _grade(str(toy_class["class"]), "--out", str(out), *COMMON)
    assert refused.returncode == 2 and "--resume" in refused.stderr and "--force" in refused.stderr
    resumed = _grade(str(toy_class["class"]), "--out", str(out), "--resume", *COMMON)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"grading {len(CLASS) - finished} notebook(s) of {len(CLASS)}" in resumed.stdout
    assert (out / "grades.csv").read_text() == (toy_class["out"] / "grades.csv").read_text()
    assert sorted(p.name for p in (out / "feedback").iterdir()) == _feedback_files(CLASS)
    other_seed = _grade(str(toy_class["class"]), "--out", str(out), "--resume", *COMMON, "--seed", "12")
    assert other_seed.returncode == 2 and "seed" in other_seed.stderr


@pytest.mark.batch
def test_a_mistyped_folder_after_a_graded_class_changes_nothing(toy_class, tmp_path):
    before = _hashes(toy_class["out"])
    done = _grade(str(tmp_path / "submisions"), "--out", str(toy_class["out"]), *COMMON)
    assert done.returncode == 2 and "no notebook to grade" in done.stderr, done.stderr
    assert _hashes(toy_class["out"]) == before


@pytest.mark.batch
def test_force_sets_the_earlier_results_aside(toy_class, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("results.jsonl", "grades.csv"):
        (out / name).write_bytes((toy_class["out"] / name).read_bytes())
    before = _hashes(out)
    klass = _write_class(tmp_path / "class", ["full"])
    done = _grade(str(klass), "--out", str(out), "--force", *COMMON)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [*_rows(out)] == ["full"]
    assert {f"previous-1/{name}": digest for name, digest in before.items()} == {
        name: digest for name, digest in _hashes(out).items() if name.startswith("previous-1/")}


def test_help_reads_cleanly():
    done = _grade("--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "(default: None)" not in text and ") (default:" not in text
    assert "(default: 1/1)" in text and "(default: 600)" in text and "nbjudge merge" in text
    assert text.startswith("usage: nbjudge ") and "--lesson LESSON" in text and "(default: the one installed;" in text


def test_a_lessons_own_command_names_its_lesson():
    done = subprocess.run([str(Path(sys.executable).parent / "bmnist-grade"), "--help"], capture_output=True,
                          text=True, timeout=60)
    text = " ".join(done.stdout.split())
    assert done.returncode == 0 and text.startswith("usage: bmnist-grade ") and "bmnist-grade merge" in text
    assert "(default: binary-mnist;" in text


# --- issue 26: what the command line says and passes on ----------------------------------------------


@pytest.mark.batch
def test_resume_says_why_each_notebook_is_graded_again(tmp_path):
    klass = _write_class(tmp_path / "class", ["full", "untouched", "wrong-2"])
    out = tmp_path / "out"
    first = _grade(str(klass), "--out", str(out), "--jobs", "2", *COMMON)
    assert first.returncode == 0, first.stdout + first.stderr
    (klass / "untouched.ipynb").write_text(CLASS["wrong-mean"][0])  # the student submitted again
    (klass / "wrong-mean.ipynb").write_text(CLASS["wrong-mean"][0])  # a late submission
    resumed = _grade(str(klass), "--out", str(out), "--resume", *COMMON)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "grading 2 notebook(s) of 4" in resumed.stdout
    assert "  untouched: graded again: its file changed since its line in results.jsonl was written" in resumed.stdout
    assert "  wrong-mean: graded again: it has no line in results.jsonl yet" in resumed.stdout
    assert "full: graded again" not in resumed.stdout and "wrong-2: graded again" not in resumed.stdout
    assert _rows(out)["untouched"]["status"] == "partial" and _rows(out)["wrong-mean"]["status"] == "partial"


def test_help_names_zips_and_every_default():
    text = " ".join(cli._parser(None).format_help().split())
    assert "or zip files: a platform's export as downloaded (Moodle, Canvas, Gradescope, nbgrader)" in text
    assert "gradebooks and zips" in text  # what --force sets aside
    done = _grade("similarity", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "zip files: a platform's export" in text and "0 to 1 (default: 0.6)" in text


def test_make_grade_passes_options_on():
    done = subprocess.run(["make", "-n", "grade", "ARGS=--resume --jobs 3", "SUBMISSIONS=subs", "GRADES=out"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if "bmnist-grade" in line]
    assert line.split()[1:] == ["subs", "--out", "out", "--resume", "--jobs", "3"]


def test_probe_values_travel_once_as_data_within_their_bounds():
    """The worker records a probe's values as JSON data in its cell record (no JSON text inside the
    record); values past the bounds are dropped there, and the grader reads them as malformed."""
    from nbjudge.scoring import probe_values
    from nbjudge.values import VALUES_BYTES, bounded_values, encode_value

    sent = {"d": {"w": encode_value(np.arange(3.0)), "e": {"e": "ValueError: no"}}}
    assert bounded_values(sent) is sent
    assert bounded_values({"l": [[]] * 200_000}) is None  # too many elements
    assert bounded_values({"e": "x" * (VALUES_BYTES + 1)}) is None  # too long
    assert bounded_values({"e": object()}) is None  # not JSON
    record = json.loads(json.dumps({"event": "cell", "index": 0, "status": "ok", "values": sent, "values_count": 1}))
    got = probe_values(record)
    assert isinstance(got, dict) and got["e"] == {"error": "ValueError: no"}
    assert np.array_equal(got["w"], np.arange(3.0))
    assert probe_values({**record, "values": None}) == "malformed"  # dropped by the worker
    assert probe_values({**record, "values_count": 2}) == "malformed"  # sent more than once
    assert probe_values({**record, "values_count": 0}) is None  # none came


def test_a_jobs_records_are_read_once_the_latest_record_of_a_cell_counting():
    from nbjudge.events import run_of

    cells = [{"role": "student", "name": "", "task": None, "expected": False},
             {"role": "probe", "name": "task-1", "task": 1, "expected": False}]
    first = {"event": "cell", "index": 0, "status": "dead", "text": "", "seconds": 1.0, "error": None,
             "values": None, "values_count": 0}
    events = [{"event": "copy", "cells": cells, "stubbed": [2]}, first, {"event": "restart", "after": 0},
              {**first, "status": "ok"}, {"event": "cell", "index": "1"}, {"event": "done"}]
    run = run_of(events)
    assert run.cells == cells and run.stubbed == frozenset({2})
    assert list(run.records) == [0] and run.records[0]["status"] == "ok"  # a later record replaces an earlier one
    assert run_of([{"event": "invalid", "note": "not JSON"}]).cells == []


def test_a_run_that_graded_nothing_gets_its_status_first_and_no_point_nor_failure():
    """The status is decided before the points: a kernel that never started (sandbox-error) leaves
    the checks unrun, and that is not the student's failure."""
    from bmnist_lesson import LESSON
    from nbjudge.grades import Reference
    from nbjudge.plan import build_plan
    from nbjudge.run import RunResult
    from nbjudge.scoring import score

    plan = build_plan(LESSON, seed=1, params={})
    copy = [{"role": "given", "name": "er-1", "task": 1, "expected": True},
            {"role": "probe", "name": "task-1", "task": 1, "expected": False}]
    events = [{"event": "copy", "cells": copy, "stubbed": []}, {"event": "kernel-failed", "note": "no bwrap"}]
    reference = Reference(texts={"er-1": "x"}, tasks={"er-1": 1}, values={1: {}})
    grade = score("s", RunResult(events, 0, False, 1.0, ""), reference, plan, timeout_s=60, cell_timeout_s=10)
    assert (grade.status, grade.failures, grade.errors, grade.ignored) == ("sandbox-error", [], [], [])
    assert grade.points == plan.marking.zeros() and "no bwrap" in grade.note
