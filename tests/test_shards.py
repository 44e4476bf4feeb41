"""``bmnist-grade --shard K/3`` in three parallel processes, then ``bmnist-grade merge``: the same
grades.csv as one run over the whole class (the README's Slurm array and CI matrix recipe)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
NAMES = ("full-marks", "untouched", "wrong-subset-indices")
SEED = 20231107
# Three graders share the CI machine's cores, so the limits are loose: this test is about merging.
COMMON = ["--seed", str(SEED), "--timeout", "600", "--param", "NUM_STEPS=600", "--param", "TARGET_ACCURACY=0.95"]

pytestmark = pytest.mark.grading


def _grade(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "bmnist-grade"), *args]


def _rows(folder: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((folder / "grades.csv").read_text())))


def test_three_parallel_shards_merge_to_one_run(tmp_path):
    klass = tmp_path / "class"
    klass.mkdir()
    for name in NAMES:
        shutil.copy(FIXTURES / f"{name}.ipynb", klass)
    shards = [tmp_path / f"shard-{k}" for k in (1, 2, 3)]
    procs = [subprocess.Popen(_grade(str(klass), "--out", str(out), "--shard", f"{k}/3", *COMMON),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for k, out in enumerate(shards, 1)]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n\n".join(logs)
    # Every shard graded exactly one notebook, and together they graded the class once.
    per_shard = [[r["submission"] for r in _rows(out)] for out in shards]
    assert sorted(sum(per_shard, [])) == sorted(NAMES) and all(len(s) == 1 for s in per_shard), per_shard

    merged = tmp_path / "merged"
    done = subprocess.run(_grade("merge", *map(str, shards), "--out", str(merged)), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

    single = tmp_path / "single"
    done = subprocess.run(_grade(str(klass), "--out", str(single), "--jobs", "2", *COMMON),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr

    assert (merged / "grades.csv").read_text() == (single / "grades.csv").read_text()
    feedback = [sorted(p.name for p in (out / "feedback").iterdir()) for out in (merged, single)]
    assert feedback[0] == feedback[1]
    expected = json.loads((FIXTURES / "expected.json").read_text())
    totals = {r["submission"]: (r["status"], int(r["total"])) for r in _rows(merged)}
    assert totals == {n: (expected[n]["status"], sum(expected[n]["points"].values())) for n in NAMES}
