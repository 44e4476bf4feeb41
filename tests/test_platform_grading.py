"""``bmnist-grade`` on the exports of every platform at once (issue 20), as zips and as folders:
each row has its student and source, and the platforms' gradebook files come out beside grades.csv."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from nbjudge.gradebook import CANVAS_FEEDBACK, CANVAS_GRADEBOOK, MOODLE_FEEDBACK, MOODLE_WORKSHEET

from tests.test_platforms import EXPORTS, UNTOUCHED, write_export

pytestmark = [pytest.mark.grading, pytest.mark.batch]


def _one_each(platform: str) -> dict[str, bytes]:
    """The platform's export with one notebook (untouched: quick to grade), and its metadata."""
    files = EXPORTS[platform]
    first = next(name for name in files if name.endswith(".ipynb"))
    return {name: (UNTOUCHED if name == first else data) for name, data in files.items()
            if not name.endswith(".ipynb") or name == first}


def test_every_platform_export_is_graded_with_its_students(tmp_path):
    exports = [write_export(tmp_path / platform, _one_each(platform), as_zip=as_zip)
               for platform, as_zip in (("moodle", True), ("canvas", False), ("gradescope", True), ("nbgrader", False))]
    out = tmp_path / "grades"
    done = subprocess.run([str(Path(sys.executable).parent / "bmnist-grade"), *map(str, exports), "--out", str(out),
                           "--seed", "7", "--jobs", "2"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    expected = [
        ("Student_One_10001", "Student One", "Student One_10001_assignsubmission_file_/binary_mnist.ipynb"),
        ("alice", "alice", "submitted/alice/ps1/binary_mnist.ipynb"),
        ("Alice_Smith_2001", "Alice Smith", "assignment_77_export/submission_101/binary_mnist.ipynb"),
        ("smithalice_123", "smithalice", "smithalice_LATE_123_456_binary_mnist-1.ipynb"),
    ]
    assert [(r["submission"], r["student"], r["source"]) for r in rows] == sorted(expected)
    assert {(r["status"], r["total"]) for r in rows} == {("not-attempted", "0")}  # untouched stubs: graded, no points
    for name in (MOODLE_WORKSHEET, MOODLE_FEEDBACK, CANVAS_GRADEBOOK, CANVAS_FEEDBACK):
        assert (out / name).is_file(), name
    pages = sorted(p.name for p in (out / "feedback").iterdir())
    assert pages == sorted(f"{r['submission']}.{kind}" for r in rows for kind in ("html", "md"))
