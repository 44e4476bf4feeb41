"""The sandbox's capabilities: probed once per run, recorded in the results header, given to each
job, and a job that cannot get what the run promised fails loudly, naming the protection."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from nbjudge import batch, kernelspec
from nbjudge.capabilities import Capabilities, probe_capabilities
from nbjudge.cgroups import Hierarchy, JobCgroup, cgroups_available
from nbjudge.kernelspec import SandboxConfig
from nbjudge.launcher import JobSandbox
from nbjudge.protections import CGROUP, CGROUP_MEMORY, protections
from nbjudge.store import read_results

from tests.lessons import make_toy

TOY = Path(__file__).resolve().parent / "lessons" / "toy_lesson"
needs_cgroups = pytest.mark.skipif(not cgroups_available(), reason="this process cannot create cgroups (not root)")


def test_capabilities_travel_to_the_launcher_unchanged():
    caps = Capabilities(bwrap=True, cgroups=Hierarchy(1, (Path("/sys/fs/cgroup/cpu/x"),), memory=True),
                        seccomp=True, root=True)
    assert Capabilities.from_dict(json.loads(json.dumps(caps.to_dict()))) == caps
    config = SandboxConfig(home="/tmp/h", capabilities=caps, report="/tmp/r.json")
    assert SandboxConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="capabilities"):
        Capabilities.from_dict({"bwrap": "yes", "cgroups": None, "seccomp": True, "root": False})


def test_the_report_follows_the_capabilities_not_the_machine():
    bare = protections(Capabilities(), jobs=2)
    assert not bare[CGROUP] and not bare["file system hidden (bubblewrap)"] and not bare["no network"]
    full = protections(Capabilities(bwrap=True, cgroups=Hierarchy(2, (Path("/x"),), memory=True), seccomp=True))
    assert full[CGROUP] and full[CGROUP_MEMORY] and full["no keyrings or System V IPC (seccomp)"]
    assert "CPUs pinned per job slot (no cgroup)" not in full


def test_the_capabilities_are_probed_once_per_process():
    assert probe_capabilities() is probe_capabilities()


@needs_cgroups
def test_a_launcher_without_its_promised_cgroup_refuses_to_start_the_kernel(tmp_path):
    home = tmp_path / "job" / "home"
    home.mkdir(parents=True)
    os.chmod(home.parent, 0o711)
    report = tmp_path / "job" / "sandbox-report.json"
    # The grader's cgroup of the whole job is gone: the kernel's, inside it, cannot be made.
    config = SandboxConfig(home=str(home), cgroup=f"job-{os.getpid()}-gone", report=str(report))
    spec = kernelspec.write_kernel_spec(tmp_path / "spec", config)
    connection = tmp_path / "kernel.json"
    connection.write_text("{}")
    proc = subprocess.run([sys.executable, "-m", kernelspec.LAUNCHER_MODULE, str(spec / "sandbox.json"),
                           str(connection)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"'{CGROUP}'" in proc.stderr and "could not be made" in proc.stderr
    got = JobSandbox.read(report)
    assert got is not None and got.missing == CGROUP and got.cgroup is None


@needs_cgroups
def test_a_job_that_cannot_get_its_cgroup_fails_and_names_it(tmp_path, monkeypatch):
    """The run promised cgroups (its header says so); one submission's job cannot make its cgroup:
    that submission gets an error naming the protection, and nothing of it runs without it."""
    folder = tmp_path / "class"
    folder.mkdir()
    for name in ("alice", "broken"):
        (folder / f"{name}.ipynb").write_text(make_toy.notebook())
    failing = threading.local()
    real_run_one, real_create = batch._run_one, JobCgroup.create

    def run_one(sub, run, **kwargs):
        failing.on = sub.name == "broken"
        try:
            return real_run_one(sub, run, **kwargs)
        finally:
            failing.on = False

    def create(self, limits, *, parent=False):
        if getattr(failing, "on", False):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_create(self, limits, parent=parent)

    monkeypatch.setattr(batch, "_run_one", run_one)
    monkeypatch.setattr(JobCgroup, "create", create)
    ran = []
    real_job = batch.run_sandboxed_job

    def recorded(submission, **kwargs):
        result = real_job(submission, **kwargs)
        ran.append(result.sandbox)
        return result

    monkeypatch.setattr(batch, "run_sandboxed_job", recorded)
    grades = {g.submission: g for g in batch.grade([folder], out=tmp_path / "out", lesson=str(TOY), jobs=2, seed=11,
                                                    timeout_s=60, cell_timeout_s=5, log=lambda line: None)}
    meta = read_results(tmp_path / "out")[0]
    assert meta["protections"][CGROUP] is True  # what the run promised, in its header
    assert (grades["broken"].status, grades["broken"].total) == ("grader-error", 0)
    assert f"'{CGROUP}'" in grades["broken"].note and "No space left on device" in grades["broken"].note
    assert (grades["alice"].status, grades["alice"].total) == ("ok", 6)
    # The jobs that ran (the reference and alice's) record the kernel cgroup they got.
    assert len(ran) == 2 and all(got is not None and got.cgroup and got.missing is None for got in ran)
