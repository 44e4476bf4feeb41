"""bmnist-grade on a whole class in one batch: the fixture submissions (tests/fixtures) plus files
that cannot live in git (symlinks, a FIFO, odd names, name collisions, oversize files), each with
its exact status and points, every attack beside its control, and the grader's own hygiene."""

from __future__ import annotations

import base64
import csv
import functools
import glob
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import jupytext
import pytest
from bmnist_lesson.exercise import SOLUTION_IPYNB, SOLUTION_PY, cell_tags, load_solution, solution_regions
from nbjudge import cli
from nbjudge.capabilities import bwrap_works
from nbjudge.protections import protections

from tests.conftest import ROOT
from tests.fixtures import make_submissions

FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
SEED = 20231107  # the lesson's shipped grading parameters throughout
FULL = {str(t): 3 for t in range(1, 6)}
NONE = {str(t): 0 for t in range(1, 6)}
LONG_NAME = "Lastname_Firstname_1234567_submission_binary_mnist_final"
# attack -> its control; both are graded in the same run
CONTROLS = {
    "attack-forward-globals": "control-stubs-2-3",
    "attack-rewrite-expected": "control-stubs-2-3",
    "attack-swap-hook": "control-stubs-2-3",
    "attack-print-true": "wrong-same-permutation",
    "attack-leak-source": "untouched",
    "attack-forged-values": "untouched",
    "attack-forged-messages": "full-marks",
    "attack-cpu-hog": "untouched",
    "attack-fill-home": "full-marks",
    "odd__solution": "untouched",
    # issue 19: one submission cannot harm the class
    "attack-values-flood": "full-marks",
    "attack-shared-memory": "full-marks",
    "attack-digits-flood": "full-marks",
    "attack-probe-hook": "control-stub-1",
    "attack-profile-hook": "wrong-same-permutation",
    "attack-patched-permutation": "wrong-same-permutation",
    "attack-lower-attribute": "wrong-update-not-jitted",
    "attack-forged-signature": "full-marks",
    "bad-lone-surrogate": "full-marks",
    # issue 26: a function that prints the line a wrong answer fails
    "attack-print-expected-line": "wrong-update-not-jitted",
}
# issue 26: a correct notebook with an exit, or whose functions print, beside what it must equal
EXITS = {"exit-last-cell": "full-marks", "exit-quit-scratch": "full-marks", "exit-ask-exit-answer": "control-stub-5"}
# issue 26: how a cell is read, or how a later task reaches an earlier one, changes no point
READINGS = {"wrong-shape-mlp-forward-loss": "control-wrong-shape-mlp",
            "magic-time-answer-below-stub": "control-answer-below-stub",
            "copied-id-helper-cell": "control-helper-cell"}

pytestmark = [pytest.mark.grading, pytest.mark.batch]


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


def _special_files(root: Path) -> dict[str, tuple[str, dict]]:
    """Write what cannot be committed; return ``{report name: (status, points)}``."""
    invalid = (FIXTURES / "bad-invalid-json.ipynb").read_bytes()
    odd = root / "odd"
    odd.mkdir()
    (odd / "solution.ipynb").symlink_to(SOLUTION_IPYNB)
    (odd / "zero.ipynb").symlink_to("/dev/zero")
    os.mkfifo(odd / "pipe.ipynb")
    (odd / "deep.ipynb").write_text("[" * 100_000 + "]" * 100_000)
    with open(odd / "huge-cell.ipynb", "wb") as f:  # a 200 MB code cell
        f.write(b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code", "source": "')
        f.write(b"x = 1 # " + b"y" * 200_000_000)
        f.write(b'", "metadata": {}, "outputs": [], "execution_count": null, "id": "a"}]}')
    cells = [{"cell_type": "code", "source": f"x = {i}", "metadata": {}, "outputs": [], "execution_count": None}
             for i in range(100_000)]
    (odd / "many-cells.ipynb").write_text(json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {},
                                                      "cells": cells}, indent=1))  # 15 MB
    shutil.copy(FIXTURES / "full-marks.ipynb", odd / f"{LONG_NAME}.ipynb")
    for name, outputs in (  # correct work saved with large outputs: the grader keeps the code only
            ("big-text-output", [{"output_type": "stream", "name": "stdout", "text": "0.123456789 " * 1_500_000}]),
            ("big-image-outputs", [{"output_type": "display_data", "metadata": {},
                                    "data": {"image/png": base64.b64encode(os.urandom(3_000_000)).decode()}}] * 12)):
        nb = json.loads((FIXTURES / "full-marks.ipynb").read_text())
        nb["cells"].append({"cell_type": "code", "execution_count": 1, "id": "printed", "metadata": {},
                            "source": "print(big_array)", "outputs": outputs})
        (odd / f"{name}.ipynb").write_text(json.dumps(nb))
    shutil.copy(FIXTURES / "untouched.ipynb", odd / "-Ünïcødé name with spaces.ipynb")
    for name in ("=1+2.ipynb", "...ipynb", "..ipynb"):
        (odd / name).write_bytes(invalid)
    (root / "upper").mkdir()
    (root / "upper" / "Notebook.IPYNB").write_bytes(invalid)
    for folder, name, fixture in (("subs", "alice", "bad-nbformat3"), ("subs", "late-alice", "bad-invalid-json"),
                                  ("late", "alice", "untouched")):
        (root / folder).mkdir(exist_ok=True)
        shutil.copy(FIXTURES / f"{fixture}.ipynb", root / folder / f"{name}.ipynb")
    return {
        "odd__solution": ("invalid-notebook", NONE), "zero": ("invalid-notebook", NONE),
        "pipe": ("invalid-notebook", NONE), "deep": ("invalid-notebook", NONE),
        "huge-cell": ("invalid-notebook", NONE), "many-cells": ("invalid-notebook", NONE), LONG_NAME: ("ok", FULL),
        "big-text-output": ("ok", FULL), "big-image-outputs": ("ok", FULL),
        "Ünïcødé_name_with_spaces": ("not-attempted", NONE), "1_2": ("invalid-notebook", NONE),
        "notebook": ("invalid-notebook", NONE), "odd__notebook": ("invalid-notebook", NONE),
        "upper__Notebook": ("invalid-notebook", NONE),
        "alice": ("not-attempted", NONE), "subs__alice": ("partial", NONE), "late-alice": ("invalid-notebook", NONE),
    }


class _PeakMemory:
    """How far the resident memory of this process (the grader, here) grows above what it held
    before the block (the test process holds JAX and earlier tests' data), sampled."""

    def __init__(self) -> None:
        self.mb, self._base, self._stop = 0.0, self._rss(), threading.Event()

    @staticmethod
    def _rss() -> float:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024

    def _sample(self) -> None:
        while True:
            self.mb = max(self.mb, self._rss() - self._base)
            if self._stop.wait(0.05):
                return

    def __enter__(self) -> _PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def require_sandbox():
    if not protections()["file system hidden (bubblewrap)"] or not bwrap_works():
        reason = "bubblewrap is not installed or cannot create a sandbox here"
        if os.environ.get("BMNIST_REQUIRE_SANDBOX") == "1":
            pytest.fail(f"BMNIST_REQUIRE_SANDBOX=1 but {reason}")
        pytest.skip(reason + " (the isolation fixtures need it)")


@pytest.fixture(scope="module")
def answers_server():
    """Serve the solution's answers on loopback, where the network fixture tries to fetch them."""
    folder = Path(tempfile.mkdtemp(prefix="answers-"))
    nb = jupytext.read(SOLUTION_PY)
    answers = [c.source for c in nb.cells if c.cell_type == "code" and any(t.startswith("task-") for t in cell_tags(c))
               and "expected-result" not in cell_tags(c)]
    (folder / "answers.py").write_text("import jax, jax.numpy as jnp, numpy as np, optax, functools, itertools\n"
                                       + "\n\n".join(answers))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", make_submissions.NETWORK_PORT), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield
    server.shutdown()
    server.server_close()
    shutil.rmtree(folder)


@pytest.fixture(scope="module")
def graded(require_sandbox, answers_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    for path in FIXTURES.glob("*.ipynb"):
        shutil.copy(path, root)
    special = _special_files(root)
    out = tmp_path_factory.mktemp("grades")
    before, leftovers = _tree_hash(), set(glob.glob(f"{tempfile.gettempdir()}/grading-*"))
    lines: list[str] = []
    empty = tmp_path_factory.mktemp("empty")  # an empty folder among the arguments: a warning, no stop
    with _PeakMemory() as peak:
        grades = cli.grade([root, empty], out=out, jobs=2, timeout_s=240, cell_timeout_s=45, seed=SEED,
                           log=lines.append)
    return {"grades": {g.submission: g for g in grades}, "out": out, "before": before, "after": _tree_hash(),
            "log": lines, "special": special, "peak_mb": peak.mb,
            "leftovers": set(glob.glob(f"{tempfile.gettempdir()}/grading-*")) - leftovers}


def test_fixtures_are_current():
    on_disk = {p.name: p.read_text() for p in FIXTURES.iterdir()}
    assert on_disk == make_submissions.rendered(), "run: python tests/fixtures/make_submissions.py"
    assert len(EXPECTED) >= 40


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_status_and_points(graded, name):
    grade = graded["grades"][name]
    want = EXPECTED[name]
    assert (grade.status, {str(t): p for t, p in grade.points.items()}) == (want["status"], want["points"]), grade.note


def test_files_git_cannot_hold(graded):
    for name, (status, points) in graded["special"].items():
        grade = graded["grades"][name]
        assert (grade.status, {str(t): p for t, p in grade.points.items()}) == (status, points), (name, grade.note)
        if status == "invalid-notebook":
            assert grade.note, name
    assert any("empty" in line and "warning" in line.lower() for line in graded["log"])
    assert set(graded["grades"]) == set(EXPECTED) | set(graded["special"])  # every file its own row


def test_no_attack_scores_above_its_control(graded):
    grades = graded["grades"]
    for attack, control in CONTROLS.items():
        assert grades[attack].total <= grades[control].total, (attack, grades[attack].total, grades[control].total)
    assert grades["full-marks"].total == 15  # the victim graded beside the CPU hog


def test_an_exit_is_blamed_on_its_own_cell(graded):
    grades = graded["grades"]
    for name, control in EXITS.items():
        assert grades[name].points == grades[control].points, (name, grades[name].points, grades[control].points)
        assert "your cell number" in grades[name].note and "asked the kernel to exit" in grades[name].note, name
        assert "hidden check" not in grades[name].note, name


def test_a_cells_reading_or_binding_costs_what_its_control_costs(graded):
    grades = graded["grades"]
    for name, control in READINGS.items():
        assert grades[name].points == grades[control].points, (name, grades[name].points, grades[control].points)
    failed = {f["task"] for f in grades["wrong-shape-mlp-forward-loss"].failures if f["kind"] == "hidden"}
    assert failed == {2}  # the wrong mlp costs task 2's hidden check only


def test_what_a_function_prints_is_ignored_and_forges_nothing(graded):
    grades = graded["grades"]
    assert grades["print-train-progress"].points == grades["full-marks"].points
    assert [(i["task"], i["lines"]) for i in grades["print-train-progress"].ignored] == [(4, 5)]
    feedback = (graded["out"] / "feedback" / "print-train-progress.md").read_text()
    assert "not compared" in feedback and "er-training" in feedback
    forged = grades["attack-print-expected-line"]
    assert [f["cell"] for f in forged.failures if f["kind"] == "expected"] == ["er-update-step"]


def test_the_grader_stays_under_a_gigabyte_whatever_the_class_sends(graded):
    # Before issue 19, four cells of 7 million empty lists took the grader to 2.1 GB.
    print(f"the grader's resident memory grew by at most {graded['peak_mb']:.0f} MB during the class run")
    assert graded["peak_mb"] < 1024, graded["peak_mb"]


def test_a_forged_signature_is_the_submissions_own_crash_in_the_graders_words(graded):
    grades = graded["grades"]
    assert "could not read" in grades["attack-forged-signature"].note
    assert "Points" not in grades["attack-forged-signature"].note and "<script>" not in grades[
        "attack-forged-signature"].note
    assert "surrogate" in grades["bad-lone-surrogate"].note
    assert "not answered" in " ".join(f["message"] for f in grades["attack-probe-hook"].failures)


def test_forged_statuses_are_reported_as_what_happened(graded):
    forged = graded["grades"]["attack-forged-messages"]  # "Timeout of", "Kernel died" raised in its own cells
    assert (forged.status, forged.note) == ("ok", "3 of your own cells raised an error (see the feedback)")
    assert "ran past the 45 s limit and was interrupted" in graded["grades"]["runaway-infinite-loop"].note
    assert "ended the kernel (it exited with status 3)" in graded["grades"]["runaway-os-exit"].note
    assert "started more processes than the job's limit" in graded["grades"]["runaway-fork-bomb"].note


def test_feedback_never_carries_the_solution(graded):
    answers = {line.strip() for cell in load_solution().cells for region in solution_regions(cell.source)
               for line in region.splitlines() if len(line.strip()) > 25}
    assert answers
    for path in (graded["out"] / "feedback").iterdir():
        text = path.read_text()
        assert not [line for line in answers if line in text], path.name


def test_reports_are_safe_to_open(graded):
    out = graded["out"]
    rows = {r["submission"]: r for r in _rows(out / "grades.csv")}
    assert not [name for name in rows if name[:1] in "=+-@"]  # no spreadsheet formula in a name
    feedback = (out / "feedback" / "attack-forged-messages.md").read_text()
    assert re.search(r"^````+text$", feedback, re.M)  # the fence outlasts the backticks in the student's text
    outside_fences = re.sub(r"^(`{3,})text\n.*?^\1$", "", feedback, flags=re.M | re.S)
    assert "<script>" in feedback and "<script>" not in outside_fences
    assert {p.stem for p in (out / "feedback").iterdir()} == set(graded["grades"])


def test_feedback_says_what_failed_without_the_reference(graded):
    out = graded["out"]
    feedback = (out / "feedback" / "wrong-no-weight-decay.md").read_text()
    assert "Task 4:" in feedback and "differs from the correct value by up to" in feedback
    assert "Task 1:" not in feedback
    untouched = (out / "feedback" / "untouched.md").read_text()
    assert "This cell needs task 2, which is not done yet." in untouched  # the task 3 cells call mlp
    assert "<Figure size" not in untouched
    assert re.search(r"^```text\n(?:.*\n)*?- \S", untouched, re.M)  # expected lines marked inside the diffs
    missing = (out / "feedback" / "bad-missing-cells.md").read_text()
    assert re.search(r"needs \\?`loss\\?_fn\\?` from task 3", missing), missing
    assert "MemoryError" in (out / "feedback" / "runaway-memory-bomb.md").read_text()
    assert len((out / "feedback" / "runaway-print-flood.md").read_text()) < 50_000


def test_the_grader_leaves_nothing_behind(graded):
    assert graded["after"] == graded["before"]
    assert not graded["leftovers"]
    head = next(line for line in graded["log"] if line.startswith("grading "))  # after intake's warnings
    assert "no network: yes" in head and "file system hidden (bubblewrap): yes" in head
    assert graded["log"][-1].splitlines()[0].startswith("submission")


def test_one_bad_submission_stays_within_its_own_limits(graded):
    seconds = {name: g.seconds for name, g in graded["grades"].items()}
    assert max(seconds.values()) <= 240 + 30
    assert seconds["full-marks"] < 120 and seconds["wrong-no-weight-decay"] < 120


@pytest.mark.browser
def test_every_page_of_the_class_renders_offline(graded):
    """Issue 28: the class report and a feedback page per row, each opened in headless Chromium: no
    console error, no request, no script, every figure rendered; a student's markup is text."""
    from tests.test_feedback_html import _open_each

    out = graded["out"]
    pages = [out / "report.html", *sorted((out / "feedback").glob("*.html"))]
    assert len(pages) == len(graded["grades"]) + 1
    seen = _open_each(pages)
    for name, page in seen.items():
        assert not page["errors"] and not page["requests"] and page["scripts"] == 0, (name, page["errors"])
        assert all(w > 0 for w in page["widths"]), (name, page["widths"])
    assert "<script>" in seen["attack-forged-messages.html"]["text"]
    assert len(seen["full-marks.html"]["widths"]) >= 10  # the student's figures beside the instructor's
    assert all(name in seen["report.html"]["text"] for name in graded["grades"])


def test_a_task_3_mistake_marks_what_follows_from_it(graded):
    """Issue 28: where only task 3 is wrong, the differing lines of tasks 4 and 5 say that they follow from it."""
    feedback = graded["out"] / "feedback"
    for page in (feedback / "wrong-summed-cross-entropy.md", feedback / "wrong-summed-cross-entropy.html"):
        text = page.read_text()
        assert "follows from task 3: fix that first" in text, page.name
    markdown = (feedback / "wrong-summed-cross-entropy.md").read_text()
    follows = [block for block in markdown.split("### Task ")[1:] if "follows from task 3" in block]
    assert follows and {block[0] for block in follows} <= {"4", "5"}
