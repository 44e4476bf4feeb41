"""The docs' Slurm recipe (docs/scaling.md), run as written on a single-node cluster (issue 20): the array of
shards, then the dependent merge job; the merged grades equal one local run.

``.ci/run`` installs Debian's slurm-wlm and munge and starts the cluster with
``tests/slurm/start-cluster.sh``. Outside CI, on a machine without Slurm, the test skips; in CI
(``CI=true``) a missing or dead cluster fails it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from bmnist_helpers.data import default_cache_dir
from nbjudge.gradebook import MOODLE_FEEDBACK, MOODLE_WORKSHEET

from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
CLASS = {  # a small Moodle class: folder per student
    "Student One_10001_assignsubmission_file_": "full-marks",
    "Student Two_10002_assignsubmission_file_": "untouched",
    "Student Three_10003_assignsubmission_file_": "wrong-subset-indices",
}
WAIT_S = 1800

pytestmark = [pytest.mark.grading, pytest.mark.cluster]


def _up() -> bool:
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.split()
    return "is UP" in ping.stdout and any(s.rstrip("*") in {"idle", "mixed", "allocated"} for s in states)


@pytest.fixture(scope="module")
def cluster():
    in_ci = os.environ.get("CI") == "true"
    if shutil.which("sbatch") is None:
        if in_ci:
            pytest.fail("CI=true but Slurm is not installed; .ci/run installs slurm-wlm and munge")
        pytest.skip("Slurm is not installed (apt-get install slurm-wlm munge; tests/slurm/start-cluster.sh)")
    if not _up() and os.geteuid() == 0:
        subprocess.run(["bash", str(ROOT / "tests" / "slurm" / "start-cluster.sh")], check=False)
    if not _up():
        pytest.fail("Slurm is installed but no cluster answers; start one with tests/slurm/start-cluster.sh (as root)")


def _readme_recipe() -> tuple[str, str]:
    """The batch script of docs/scaling.md and its two submit lines, as written."""
    page = (ROOT / "docs" / "scaling.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", page, flags=re.DOTALL)
    script = next(b for b in blocks if "# grade.sbatch:" in b)
    submit = next(b for b in blocks if "sbatch --parsable --array" in b)
    return script, submit


def _rows(folder: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((folder / "grades.csv").read_text())))


def _wait(job: str, logs: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-j", job, "-o", "%i %T %r"], capture_output=True, text=True).stdout
        if not queued.strip():
            return
        if "DependencyNeverSatisfied" in queued:
            break
        time.sleep(5)
    subprocess.run(["scancel", job], check=False)
    outputs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("slurm-*.out")))
    pytest.fail(f"the Slurm jobs did not finish:\n{queued}\n{outputs}")


def test_readme_slurm_array_and_merge_equal_one_local_run(cluster, tmp_path):
    script, submit = _readme_recipe()
    home = tmp_path / "home"
    kit = home / "bmnist-kit"  # the recipe's `cd "$HOME/bmnist-kit"`: a checkout where `make setup data` ran
    kit.mkdir(parents=True)
    (kit / ".venv").symlink_to(ROOT / ".venv")
    for folder, fixture in CLASS.items():
        (kit / "submissions" / folder).mkdir(parents=True)
        shutil.copy(FIXTURES / f"{fixture}.ipynb", kit / "submissions" / folder / "binary_mnist.ipynb")
    (kit / "grade.sbatch").write_text(script)
    # The jobs inherit this environment (sbatch --export=ALL): the shared file system is tmp_path,
    # the MNIST cache is the one this checkout uses.
    env = {**os.environ, "HOME": str(home), "BMNIST_CACHE": str(default_cache_dir())}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", submit + 'echo "ARRAY=$array"\n'], cwd=kit, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    array = re.search(r"ARRAY=(\d+)", done.stdout).group(1)
    merge_job = re.search(r"Submitted batch job (\d+)", done.stdout).group(1)
    _wait(array, kit)
    _wait(merge_job, kit)
    merged = kit / "grades" / "all"
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(kit.glob("slurm-*.out")))
    assert (merged / "grades.csv").is_file(), logs
    shards = sorted(p.name for p in (kit / "grades").glob("shard-*"))
    assert shards == sorted(f"shard-{k}" for k in range(1, 9)), shards

    seed = re.search(r"--seed (\d+)", script).group(1)
    single = tmp_path / "single"
    local = subprocess.run([str(kit / ".venv" / "bin" / "bmnist-grade"), "submissions/", "--out", str(single),
                            "--seed", seed, "--jobs", "2"], cwd=kit, env=env, capture_output=True, text=True,
                           timeout=WAIT_S)
    assert local.returncode == 0, local.stdout + local.stderr

    assert (merged / "grades.csv").read_text() == (single / "grades.csv").read_text()
    assert (merged / MOODLE_WORKSHEET).read_text() == (single / MOODLE_WORKSHEET).read_text()
    assert (merged / MOODLE_FEEDBACK).is_file()
    feedback = [sorted(p.name for p in (out / "feedback").iterdir()) for out in (merged, single)]
    assert feedback[0] == feedback[1]
    expected = json.loads((FIXTURES / "expected.json").read_text())
    got = {r["student"]: (r["status"], int(r["total"])) for r in _rows(merged)}
    want = {folder.split("_")[0]: (expected[fixture]["status"], sum(expected[fixture]["points"].values()))
            for folder, fixture in CLASS.items()}
    assert got == want
