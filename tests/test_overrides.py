"""Points set by hand in ``OUT/overrides.csv`` (issue 28, item 4): they survive ``rebuild``,
``--resume``, ``--force`` and ``merge``; grades.csv shows the grader's points beside the final ones
with the reason, and so do the feedback and the Moodle gradebook; a bad overrides file is an error
naming its line, with every output byte-identical. The toy lesson grades a class in seconds."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from nbjudge.gradebook import MOODLE_FEEDBACK, MOODLE_WORKSHEET
from nbjudge.overrides import FROM_SHARDS, check, read

from tests.test_engine import CLASS, COMMON, _grade

pytestmark = pytest.mark.grading

# Moodle's layout, so that the run writes its grading worksheet and feedback zip too.
STUDENTS = {"full": "Ann Lee_10001", "wrong-2": "Bo Chan_10002", "untouched": "Cy Dorn_10003"}
ROWS = {name: folder.replace(" ", "_") for name, folder in STUDENTS.items()}  # the rows' names in grades.csv
REASON = "regrade request: the spread is right, the check was too strict"
HEAD = "submission,task,points,reason\n"
GOOD = f'{HEAD}{ROWS["wrong-2"]},2,2,"{REASON}"\n'


def _write_class(folder: Path) -> Path:
    for name, student in STUDENTS.items():
        (folder / f"{student}_assignsubmission_file").mkdir(parents=True)
        (folder / f"{student}_assignsubmission_file" / f"{name}.ipynb").write_text(CLASS[name][0])
    return folder


def _rows(out: Path) -> dict[str, dict]:
    return {r["submission"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}


def _tree(folder: Path) -> dict[str, str]:
    """Every path under ``folder``: a file's SHA-256, or ``dir``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _ok(done) -> None:
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("overrides")
    klass = _write_class(root / "class")
    out = root / "out"
    _ok(_grade(str(klass), "--out", str(out), "--jobs", "2", *COMMON))
    return {"class": klass, "out": out}


def _copy(graded: dict, tmp_path: Path, overrides: str | None = GOOD) -> Path:
    out = tmp_path / "out"
    shutil.copytree(graded["out"], out)
    if overrides is not None:
        (out / "overrides.csv").write_text(overrides)
    return out


def _assert_overridden(out: Path) -> None:
    """wrong-2's task 2 is worth 2 by hand (the grader gave 0), everywhere the points are shown."""
    rows = _rows(out)
    row = rows[ROWS["wrong-2"]]
    assert (row["task1"], row["task2"], row["total"], row["max"]) == ("3", "2", "5", "6")
    assert (row["grader_task1"], row["grader_task2"], row["grader_total"]) == ("3", "0", "3")
    assert row["override"] == f"task 2: 2 points by hand, the grader gave 0 ({REASON})"
    assert row["status"] == "partial"  # the grader's verdict stays
    full = rows[ROWS["full"]]
    assert (full["total"], full["grader_total"], full["override"]) == ("6", "6", "")
    feedback = (out / "feedback" / f"{ROWS['wrong-2']}.md").read_text()
    assert "Points: 5 of 6" in feedback and "| 2 | 2 of 3 (set by your instructor) |" in feedback
    assert f"- Task 2: 2 of 3: {REASON}" in feedback
    page = (out / "feedback" / f"{ROWS['wrong-2']}.html").read_text()
    assert "2 of 3 (set by your instructor)" in page and f"Set by your instructor</strong>: {REASON}" in page
    with open(out / MOODLE_WORKSHEET, newline="") as handle:
        sheet = {line["Identifier"]: line for line in csv.DictReader(handle)}
    assert sheet["Participant 10002"]["Grade"] == "5"
    assert REASON in sheet["Participant 10002"]["Feedback comments"]
    with zipfile.ZipFile(out / MOODLE_FEEDBACK) as zf:
        assert REASON in zf.read(f"{STUDENTS['wrong-2']}_assignsubmission_file_/feedback.md").decode()


# --- the format, on its own -------------------------------------------------------------------------


def test_the_file_reads_quoted_commas_decimals_a_bom_and_blank_lines(tmp_path):
    path = tmp_path / "overrides.csv"
    path.write_bytes(b'\xef\xbb\xbf' + HEAD.replace("\n", "\r\n").encode()
                     + b'alice,1,1.5,"half, by hand"\r\n\r\nbob,2,3.0,ok\r\n')
    found = read(path)
    assert [(o.submission, o.task, o.points, o.reason) for o in found] == [
        ("alice", 1, 1.5, "half, by hand"), ("bob", 2, 3, "ok")]
    assert found[1].where == f"{path}, line 4"
    assert check(found, submissions={"alice", "bob"}, tasks=(1, 2), most=3) == found
    assert read(tmp_path / "missing.csv") == ()


# --- corrections that survive -----------------------------------------------------------------------


@pytest.mark.batch
def test_rebuild_applies_the_overrides_and_keeps_the_graders_points(graded, tmp_path):
    out = _copy(graded, tmp_path)
    results, overrides = (out / "results.jsonl").read_bytes(), (out / "overrides.csv").read_bytes()
    done = _grade("rebuild", str(out))
    _ok(done)
    _assert_overridden(out)
    assert (out / "results.jsonl").read_bytes() == results  # the grader's own points, untouched
    assert (out / "overrides.csv").read_bytes() == overrides
    assert "grading" not in done.stdout and "5/6" in done.stdout  # no notebook ran; the summary's final points
    (out / "overrides.csv").unlink()  # a correction withdrawn: the grader's points again
    _ok(subprocess.run([str(Path(sys.executable).parent / "bmnist-grade"), "rebuild", str(out)], capture_output=True,
                       text=True, timeout=120))  # the lesson's own command has it too
    assert (out / "grades.csv").read_bytes() == (graded["out"] / "grades.csv").read_bytes()


@pytest.mark.batch
def test_an_override_survives_resume(graded, tmp_path):
    out = _copy(graded, tmp_path)
    lines = (out / "results.jsonl").read_bytes().splitlines(keepends=True)
    (out / "results.jsonl").write_bytes(b"".join(lines[:-1]))  # as if killed before the last one finished
    _ok(_grade(str(graded["class"]), "--out", str(out), "--resume", *COMMON))
    _assert_overridden(out)


@pytest.mark.batch
def test_an_override_survives_force(graded, tmp_path):
    out = _copy(graded, tmp_path)
    overrides = (out / "overrides.csv").read_bytes()
    _ok(_grade(str(graded["class"]), "--out", str(out), "--force", "--jobs", "2", *COMMON))
    assert (out / "overrides.csv").read_bytes() == overrides  # carried into the new run, not set aside
    assert not (out / "previous-1" / "overrides.csv").exists() and (out / "previous-1" / "grades.csv").exists()
    _assert_overridden(out)


@pytest.mark.batch
def test_overrides_of_shards_and_of_the_merged_folder_survive_merge_and_rebuild(graded, tmp_path):
    shards = [tmp_path / f"shard-{k}" for k in (1, 2)]
    for k, shard in enumerate(shards, 1):
        _ok(_grade(str(graded["class"]), "--out", str(shard), "--shard", f"{k}/2", "--jobs", "1", *COMMON))
    owner = next(s for s in shards if ROWS["wrong-2"] in _rows(s))
    (owner / "overrides.csv").write_text(GOOD)
    merged = tmp_path / "merged"
    merged.mkdir()
    someone = ROWS["untouched"]  # a row of either shard
    (merged / "overrides.csv").write_text(f"submission,task,points,reason\n{someone},1,1,late by a week\n")
    _ok(_grade("merge", *map(str, shards), "--out", str(merged)))
    _assert_overridden(merged)
    assert _rows(merged)[someone]["task1"] == "1" and "late by a week" in _rows(merged)[someone]["override"]
    _ok(_grade("rebuild", str(merged)))  # the shard's line is kept in shard-overrides.csv
    _assert_overridden(merged)
    assert (merged / FROM_SHARDS).read_text() == GOOD
    # a line of the merged folder replaces the shard's for the same submission and task
    (merged / "overrides.csv").write_text(f"{HEAD}{ROWS['wrong-2']},2,3,full marks after all\n")
    _ok(_grade("rebuild", str(merged)))
    row = _rows(merged)[ROWS["wrong-2"]]
    assert row["task2"] == "3" and "full marks" in row["override"]


# --- a bad file changes nothing ---------------------------------------------------------------------

BAD = {
    "unknown submission": (HEAD + "nobody_99,1,1,why\n", 2, "no submission 'nobody_99'"),
    "unknown task": (HEAD + f"{ROWS['full']},7,1,why\n", 2, "no task 7"),
    "too many points": (HEAD + f"{ROWS['full']},1,4,why\n", 2, "give 0 to 3"),
    "negative points": (HEAD + f"{ROWS['full']},1,-1,why\n", 2, "give 0 to 3"),
    "not a number": (HEAD + f"{ROWS['full']},2,3,ok\n{ROWS['full']},1,three,why\n", 3, "'three' is not a number"),
    "not a task number": (HEAD + f"{ROWS['full']},one,1,why\n", 2, "task 'one' is not a whole number"),
    "wrong header": ("name,task,points,reason\n", 1, "the first line must be submission,task,points,reason"),
    "duplicate": (HEAD + f"{ROWS['full']},1,1,a\n\n{ROWS['full']},1,2,b\n", 4, "already set on line 2"),
    "a comma unquoted": (HEAD + f"{ROWS['full']},1,1,late, by a week\n", 2, "5 fields where 4 belong"),
    "no reason": (HEAD + f"{ROWS['full']},1,1,\n", 2, "no reason"),
    "empty file": ("", 1, "the file is empty"),
}


def _refused(done, out: Path, line: int, words: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{out / 'overrides.csv'}, line {line}: " in done.stderr and words in done.stderr, done.stderr


@pytest.mark.batch
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_overrides_file_stops_rebuild_and_changes_nothing(graded, tmp_path, case):
    text, line, words = BAD[case]
    out = _copy(graded, tmp_path, text)
    before = _tree(out)
    _refused(_grade("rebuild", str(out)), out, line, words)
    assert _tree(out) == before


@pytest.mark.batch
def test_a_bad_overrides_file_stops_resume_force_and_merge_before_any_write(graded, tmp_path):
    text, line, words = BAD["too many points"]
    out = _copy(graded, tmp_path, text)
    (out / "results.jsonl").write_bytes(b"".join((out / "results.jsonl").read_bytes().splitlines(True)[:-1]))
    before = _tree(out)
    _refused(_grade(str(graded["class"]), "--out", str(out), "--resume", *COMMON), out, line, words)
    assert _tree(out) == before
    _refused(_grade(str(graded["class"]), "--out", str(out), "--force", *COMMON), out, line, words)
    assert _tree(out) == before  # nothing set aside into previous-1/
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "overrides.csv").write_text(text)
    before = _tree(merged)
    _refused(_grade("merge", str(graded["out"]), "--out", str(merged)), merged, line, words)
    assert _tree(merged) == before
