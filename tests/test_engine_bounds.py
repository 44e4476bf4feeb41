"""One submission cannot harm the class (issue 19), on the toy lesson: the grader's memory and time
stay bounded whatever a notebook sends, malformed traffic is the submission's own status, no channel
joins two jobs (keyrings, System V IPC), a hook earns no point for a task left as the stub, and a
flood of output messages is read at its own job's cost (issue 26): the worker runs in the job's cgroup."""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from bmnist_lesson import LESSON
from nbjudge import batch, cli, report, run, scoring, values
from nbjudge.capabilities import probe_capabilities
from nbjudge.cgroups import cgroups_available, job_cgroup, memory_cgroup_available, prepare_hierarchy
from nbjudge.kernelspec import SandboxConfig, write_kernel_spec
from nbjudge.limits import Limits
from nbjudge.notebook import InvalidNotebook, read_submission
from nbjudge.seccomp import program, purge_keys

from tests.lessons import make_toy
from tests.sandboxed import run_command
from tests.test_engine import COMMON

pytestmark = pytest.mark.grading

_STUB_MEAN = make_toy._STUB.format(name="mean", task=1)
_STANDARDISE_ALONE = make_toy._STANDARDISE.replace("mean(xs)", "np.mean(xs)").replace(
    "mean(centred**2)", "np.mean(centred**2)")
_FLOOD = f"display({{{values.VALUES_MIME!r}: [[]] * 7_000_000}}, raw=True)"
_FORGED_SIGNATURE = (
    "import hashlib, hmac, sys\nkernel = get_ipython().kernel\nhonest = kernel.session.auth\n"
    "kernel.session.auth = hmac.new(b'forged', digestmod=hashlib.sha256)\n"
    "print('Points: 6 of 6 <script>alert(1)</script>')\nsys.stdout.flush()\nkernel.session.auth = honest\n")
_DIGITS = "get_ipython().events.register('post_run_cell', lambda result: print('7' * 20_000))"
# A generic hook: the hidden check of task 1 gets a working mean while the notebook keeps the stub.
_PROBE_HOOK = (
    "import nbjudge.probe as engine_probe\nimport toy_lesson.probes as lesson_probes\n"
    "honest = engine_probe.student\n"
    "def hooked(namespace, name):\n"
    "    return (lambda xs: sum(xs) / len(xs)) if name == 'mean' else honest(namespace, name)\n"
    "engine_probe.student = lesson_probes.student = hooked\n")
# Issue 26: a wrong standardise (no division), made right by what the notebook does elsewhere: a
# profile hook that divides the returned array in place, or a library function patched.
_UNSCALED = make_toy._STANDARDISE.replace(" / np.sqrt(mean(centred**2))", "")
_PROFILE_HOOK = (
    "import sys\nimport numpy as np\n"
    "def _rescale(frame, event, arg):\n"
    "    if event == 'return' and frame.f_code.co_name == 'standardise' and isinstance(arg, np.ndarray):\n"
    "        arg /= np.sqrt(np.mean(arg**2))\n"
    "sys.setprofile(_rescale)\n")
_PATCHED_PTP = (
    "import numpy as np\n"
    "np.ptp = lambda a, *args, **kwargs: np.sqrt(np.mean(np.square(a)))\n")
_PTP_STANDARDISE = make_toy._STANDARDISE.replace("np.sqrt(mean(centred**2))", "np.ptp(centred)")
_NUMBERS = {"x86_64": (248, 250), "aarch64": (217, 219)}  # add_key, keyctl
_DONOR = f"""
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
add_key, keyctl = {_NUMBERS}[platform.machine()]
source = b'def mean(xs):\\n    return sum(xs) / len(xs)\\n'
key = libc.syscall(add_key, b'user', b'toy-answers', source, len(source), -4)  # the user keyring
if key > 0:
    libc.syscall(keyctl, 5, key, 0x3f3f3f3f)  # KEYCTL_SETPERM: anyone may read it
print('stored' if key > 0 else 'refused')
"""
_TAKER = f"""
import ctypes, platform
libc = ctypes.CDLL(None, use_errno=True)
add_key, keyctl = {_NUMBERS}[platform.machine()]
buffer, taken = ctypes.create_string_buffer(4096), {{}}
for ring in (-4, -5, -3):  # user, user session, session keyrings
    key = libc.syscall(keyctl, 10, ring, b'user', b'toy-answers', 0)  # KEYCTL_SEARCH
    size = libc.syscall(keyctl, 11, key, buffer, 4096) if key > 0 else -1  # KEYCTL_READ
    if size > 0:
        exec(buffer.raw[:size].decode(), taken)
def _borrowed(xs):
    return taken['mean'](xs)
print('taken' if taken.get('mean') else 'nothing to take')
"""
_BORROWING_MEAN = "def mean(xs):\n    return _borrowed(xs)"

# name -> (notebook, status, points); each attack beside its control
CLASS = {
    "full": (make_toy.notebook(), "ok", {1: 3, 2: 3}),
    "values-flood": (make_toy.notebook(extra={"answer-1": _FLOOD, "answer-2": _FLOOD}), "ok", {1: 3, 2: 3}),
    "forged-signature": (make_toy.notebook(extra={"answer-2": _FORGED_SIGNATURE}), "crashed", {1: 0, 2: 0}),
    "digits-flood": (make_toy.notebook(extra={"params": _DIGITS}), "partial", {1: 2, 2: 2}),
    "lone-surrogate": (json.dumps(json.loads(make_toy.notebook(make_toy._MEAN + "  # \ud83d")), ensure_ascii=True),
                       "invalid-notebook", {1: 0, 2: 0}),
    "control-stub-1": (make_toy.notebook(_STUB_MEAN, _STANDARDISE_ALONE), "partial", {1: 0, 2: 2}),
    "probe-hook": (make_toy.notebook(_STUB_MEAN, _STANDARDISE_ALONE, extra={"params": _PROBE_HOOK}), "partial",
                   {1: 0, 2: 2}),
    "wrong-2": (make_toy.notebook(standardise=_UNSCALED), "partial", {1: 3, 2: 0}),
    "profile-hook": (make_toy.notebook(standardise=_UNSCALED, extra={"params": _PROFILE_HOOK}), "partial",
                     {1: 3, 2: 0}),
    "patched-library": (make_toy.notebook(standardise=_PTP_STANDARDISE, extra={"params": _PATCHED_PTP}), "partial",
                        {1: 3, 2: 0}),
}
CONTROLS = {"values-flood": "full", "forged-signature": "full", "digits-flood": "full", "lone-surrogate": "full",
            "probe-hook": "control-stub-1", "profile-hook": "wrong-2", "patched-library": "wrong-2"}
# The grader process itself, measured from inside: cli.main, then its own peak memory (VmHWM: Linux
# keeps ru_maxrss across exec, so that would be the larger of this and the forking test process) and
# its CPU time.
_MEASURED = ("import json, resource, sys\nfrom nbjudge.cli import main\ncode = main(sys.argv[1:])\n"
             "usage = resource.getrusage(resource.RUSAGE_SELF)\n"
             "peak = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
             "print('MEASURED', json.dumps({'code': code, 'peak_mb': peak / 1024, "
             "'cpu_s': usage.ru_utime + usage.ru_stime}))\n")


def _grade_measured(folder: Path, out: Path, *extra: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _MEASURED, str(folder), "--out", str(out), *COMMON, *extra],
                          capture_output=True, text=True, timeout=600)
    line = next((line for line in done.stdout.splitlines() if line.startswith("MEASURED ")), None)
    assert line is not None, done.stdout + done.stderr
    measured = json.loads(line.split(" ", 1)[1])
    assert measured["code"] == 0, done.stdout + done.stderr
    return measured


def _rows(out: Path) -> dict[str, dict]:
    return {r["submission"]: r for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}


def _write(folder: Path, notebooks: dict[str, str]) -> Path:
    folder.mkdir()
    for name, text in notebooks.items():
        (folder / f"{name}.ipynb").write_text(text)
    return folder


@pytest.fixture(scope="module")
def attacked(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bounds")
    folder = _write(root / "class", {name: nb for name, (nb, _, _) in CLASS.items()})
    measured = _grade_measured(folder, root / "out", "--jobs", "2", "--cell-timeout", "20")
    return {"rows": _rows(root / "out"), **measured}


@pytest.mark.batch
@pytest.mark.parametrize("name", sorted(CLASS))
def test_each_attack_gets_its_status_and_points(attacked, name):
    row = attacked["rows"][name]
    _, status, points = CLASS[name]
    assert (row["status"], {t: int(row[f"task{t}"]) for t in points}) == (status, points), row["note"]


@pytest.mark.batch
def test_no_attack_scores_above_its_control(attacked):
    rows = attacked["rows"]
    for attack, control in CONTROLS.items():
        assert int(rows[attack]["total"]) <= int(rows[control]["total"]), (attack, control)
    assert rows["full"]["total"] == "6"


@pytest.mark.batch
def test_the_grader_stays_small_and_quick_whatever_the_notebooks_send(attacked):
    # Before: 7 million empty lists took the grader's memory to gigabytes; 20,000 digits after
    # every cell took tens of seconds of its CPU.
    assert attacked["peak_mb"] < 400, attacked
    assert attacked["cpu_s"] < 30, attacked


@pytest.mark.batch
def test_notes_are_the_graders_own_words(attacked):
    rows = attacked["rows"]
    assert "could not read" in rows["forged-signature"]["note"] and "Points" not in rows["forged-signature"]["note"]
    assert "surrogate" in rows["lone-surrogate"]["note"] and "ud83d" not in rows["lone-surrogate"]["note"]


def test_sanitizing_takes_linear_time_on_adversarial_text():
    texts = ["7" * 20_000, "1." + "2" * 20_000, "1 " * 10_000, "1" + " " * 20_000, "1.1." * 5_000,
             "at 0x" * 4_000, "9" * 1_000_000]
    rules = report.sanitizers(LESSON.sanitize)
    for text in texts:
        start = time.process_time()
        report.sanitize(text, rules)
        scoring.marked_diff("expected\n" * 5, text.replace("1", "1\n"))
        assert time.process_time() - start < 0.5, text[:20]
    assert report.sanitize("took 12.5 s, then 3ms at 0x7f3a", rules) == "took TIME, then TIME at ADDRESS"


def test_records_are_read_within_a_budget(tmp_path):
    path = tmp_path / "results.jsonl"
    with open(path, "w") as f:
        f.write(json.dumps({"event": "copy", "cells": []}) + "\n")
        f.write(json.dumps({"event": "cell", "text": "x" * (run._MAX_RECORD + 10)}) + "\n")  # one line too long
        f.write(json.dumps({"event": "done"}) + "\n")
    tracemalloc.start()
    events = run._read_events(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert events == [{"event": "copy", "cells": []}]  # it stops at the line past its limit
    assert peak < 3 * run._MAX_RECORD  # the one line read, cut at its limit
    line = json.dumps({"event": "cell", "text": "y" * 1_000_000}) + "\n"
    with open(path, "w") as f:
        for _ in range(values.RESULTS_BUDGET // len(line) + 20):
            f.write(line)
    assert len(run._read_events(path)) <= values.RESULTS_BUDGET // len(line)


def test_values_that_would_grow_in_the_graders_memory_are_dropped_by_the_worker():
    assert values.bounded_values([[]] * 1_000_000) is None  # too many elements, though under the size
    assert values.bounded_values({"d": "x" * values.VALUES_BYTES}) is None  # too large
    assert values.bounded_values({"d": {}}) == {"d": {}}


def test_a_lone_surrogate_is_an_invalid_notebook_with_the_graders_note():
    text = json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "source": "x = 1  # \ud83d STUDENT", "metadata": {}, "outputs": []}]})
    with pytest.raises(InvalidNotebook, match="surrogate") as caught:
        read_submission(text.encode())
    assert "STUDENT" not in str(caught.value)


def test_a_worker_stops_its_job_at_its_results_budget(tmp_path):
    from nbjudge.worker import _Results

    with open(tmp_path / "r.jsonl", "w") as handle:
        results = _Results(handle)
        record = {"event": "cell", "text": "z" * 1_000_000}
        written = 0
        while results.write(record):
            written += 1
        assert results.write({"event": "done"}, final=True)  # the reserve holds the job's last record
    assert (tmp_path / "r.jsonl").stat().st_size <= values.RESULTS_BUDGET
    assert written == (values.RESULTS_BUDGET - 64 * 1024) // (len(json.dumps(record)) + 1)


# --- no channel between jobs --------------------------------------------------------------------


@pytest.mark.skipif(program() is None, reason="no system call table for this machine")
@pytest.mark.parametrize("bwrap", [True, False])
def test_a_job_can_make_no_key_and_no_system_v_ipc(tmp_path, capfd, bwrap):
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    config = SandboxConfig(home=str(home), capabilities=probe_capabilities(use_bwrap=bwrap),
                           limits=Limits(memory_mb=2048))
    write_kernel_spec(tmp_path / "spec", config)
    code = (_DONOR + "import resource\nlibc.shmget.restype = ctypes.c_int\n"
            "print('shm', libc.shmget(0, ctypes.c_size_t(2**20), 0o1666), ctypes.get_errno())\n"
            "print('sem', libc.semget(0, 1, 0o1666), ctypes.get_errno())\n"
            "print('files', resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n")
    assert run_command(config, [sys.executable, "-c", code], timeout_s=60) == 0
    lines = capfd.readouterr().out.splitlines()
    assert lines == ["refused", "shm -1 1", "sem -1 1", "files 1024"]  # EPERM for each


@pytest.mark.batch
def test_a_donor_and_a_taker_in_two_batches_share_nothing(tmp_path):
    first = _write(tmp_path / "first", {"donor": make_toy.notebook(extra={"answer-1": _DONOR})})
    second = _write(tmp_path / "second", {  # the control looks for a key nobody stored
        "taker": make_toy.notebook(_BORROWING_MEAN, _STANDARDISE_ALONE, extra={"params": _TAKER}),
        "control": make_toy.notebook(_BORROWING_MEAN, _STANDARDISE_ALONE,
                                     extra={"params": _TAKER.replace("toy-answers", "nobody-stored")})})
    for folder in (first, second):  # one job at a time: the second batch likely gets the first's pool uid
        _grade_measured(folder, tmp_path / f"out-{folder.name}", "--jobs", "1")
    donor, batch = _rows(tmp_path / "out-first")["donor"], _rows(tmp_path / "out-second")
    assert donor["total"] == "6"
    assert batch["taker"]["total"] == batch["control"]["total"] == "2", batch


def _as_uid(uid: int, code: str) -> str:
    """Run Python code as ``uid`` (outside any sandbox, as root) and return what it printed; it holds
    the uid's user keyring (a fresh session keyring, the user keyring linked in), as a login would."""
    session = (f"import ctypes as _c, platform as _p\n_k = _c.CDLL(None).syscall\n_n = {_NUMBERS}[_p.machine()][1]\n"
               "_k(_n, 1, None)\n_k(_n, 8, -4, -3)\n")  # join a session, link -4 into it
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", sys.executable, "-c",
                           session + code],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()


@pytest.mark.skipif(program() is None or os.geteuid() != 0, reason="needs root and a system call table")
def test_a_pool_uid_goes_back_without_keys():
    uid = 61000 + 3999  # the pool's last uid: no job of a test class reaches it
    name = f"toy-answers-{secrets.token_hex(4)}"  # a key of this run's own
    donor, taker = (code.replace("toy-answers", name) for code in (_DONOR, _TAKER))
    assert _as_uid(uid, donor) == "stored"  # outside the sandbox's filter a key can be made: the pool must purge it
    assert _as_uid(uid, taker) == "taken"
    purge_keys(uid)
    assert _as_uid(uid, taker) == "nothing to take"


@pytest.mark.skipif(not memory_cgroup_available(), reason="no cgroup memory controller here")
def test_the_memory_limit_holds_for_the_job_as_a_whole(tmp_path, capfd):
    # Four processes of 350 MB each, every one under its own 512 MB address-space limit: together
    # they pass the job's 1024 MB (memory_mb + disk_mb), so the job's cgroup stops some of them.
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    config = SandboxConfig(home=str(home), limits=Limits(memory_mb=512, disk_mb=512))
    write_kernel_spec(tmp_path / "spec", config)
    code = ("import subprocess, sys\nkeep = 'import time; b = bytearray(350 * 2**20); time.sleep(3)'\n"
            "kids = [subprocess.Popen([sys.executable, '-c', keep]) for _ in range(4)]\n"
            "print(sorted(kid.wait() for kid in kids))\n")
    assert run_command(config, [sys.executable, "-c", code], timeout_s=120) == 0
    codes = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert codes[0] == -9 and codes[-1] == 0, codes  # some were killed, the job went on


# --- a flood of output costs its own job ---------------------------------------------------------

# 20,000 display messages, each one read, verified and decoded by the job's worker: some 5 CPU-seconds
# of the worker here (a normal job's worker: under one).
_DISPLAY_FLOOD = "for _ in range(20_000):\n    display('x')"
FLOODED = {"display-flood": (make_toy.notebook(extra={"answer-1": _DISPLAY_FLOOD}), "ok", {1: 3, 2: 3}),
           "full": CLASS["full"]}
needs_cgroups = pytest.mark.skipif(not cgroups_available(), reason="this process cannot create cgroups (not root)")


@pytest.fixture(scope="module")
def flooded(tmp_path_factory) -> dict:
    """The flood beside its control, graded in this process: each job's :class:`run.JobCpu` and the
    grader's own CPU seconds."""
    root = tmp_path_factory.mktemp("flood")
    folder = _write(root / "class", {name: nb for name, (nb, _, _) in FLOODED.items()})
    names = {nb: name for name, (nb, _, _) in FLOODED.items()}
    cpu: dict[str, run.JobCpu] = {}

    def measured(submission, **kwargs) -> run.RunResult:
        result = run.run_sandboxed_job(submission, **kwargs)
        cpu[names.get(submission.read_text() if submission else "", "reference")] = result.cpu
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch, "run_sandboxed_job", measured)
        before = time.process_time()
        code = cli.main([str(folder), "--out", str(root / "out"), *COMMON, "--jobs", "2", "--cell-timeout", "60"])
        grader_s = time.process_time() - before
    assert code == 0
    return {"rows": _rows(root / "out"), "cpu": cpu, "grader_s": grader_s}


@pytest.mark.batch
@needs_cgroups
@pytest.mark.parametrize("name", sorted(FLOODED))
def test_a_display_flood_gets_its_status_and_points(flooded, name):
    row = flooded["rows"][name]
    _, status, points = FLOODED[name]
    assert (row["status"], {t: int(row[f"task{t}"]) for t in points}) == (status, points), row["note"]


@pytest.mark.batch
@needs_cgroups
def test_the_worker_reading_a_flood_is_charged_to_its_job(flooded):
    # Before: the worker ran outside the job's cgroup; a million messages cost 77 CPU-seconds there.
    cpu, control = flooded["cpu"]["display-flood"], flooded["cpu"]["full"]
    assert cpu.worker_s > 2.0 and cpu.worker_s > 3 * control.worker_s, (cpu, control)  # the flood is real
    for job in (cpu, control, flooded["cpu"]["reference"]):
        # What the worker spent (wait4) is what its cgroup inside the job's counted (but the
        # interpreter's own start, before the grader placed it), and the job's holds it and the kernel's.
        assert job.worker_charged_s >= 0.9 * job.worker_s - 0.1, job
        assert job.job_charged_s > job.worker_charged_s, job
    assert flooded["grader_s"] < max(3.0, 0.5 * cpu.worker_s), (flooded["grader_s"], cpu)


@needs_cgroups
def test_the_kernels_cgroup_is_made_inside_the_jobs(tmp_path, capfd):
    limits = Limits(memory_mb=2048, processes=100)
    job = job_cgroup(Limits(memory_mb=4096, processes=200), prepare_hierarchy())
    assert job is not None
    try:
        home = tmp_path / "home"
        home.mkdir()
        config = SandboxConfig(home=str(home), capabilities=probe_capabilities(use_bwrap=False), limits=limits,
                               cgroup=job.name)
        write_kernel_spec(tmp_path / "spec", config)
        code = ("import pathlib\ntext = pathlib.Path('/proc/self/cgroup').read_text()\n"
                "lines = dict(line.split(':', 2)[1:] for line in text.splitlines())\n"
                f"path = lines['pids' if {job.version} == 1 else ''].strip()\n"
                f"root = '/sys/fs/cgroup' + ('/pids' if {job.version} == 1 else '')\n"
                "print(path, pathlib.Path(root + path, 'pids.max').read_text().strip())\n")
        assert run_command(config, [sys.executable, "-c", code], timeout_s=60) == 0
        path, most = capfd.readouterr().out.split()
        parent, _, kernel = path.rpartition("/")
        assert parent == f"/grading-sandbox/{job.name}" and kernel.startswith("kernel-"), path
        assert int(most) == limits.processes  # the kernel's own limit, inside the job's larger one
        assert [p.name for d in job.dirs for p in d.iterdir() if p.is_dir()] == []  # the launcher removed its own
    finally:
        job.destroy()
    assert not any(path.exists() for path in job.dirs)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs")
def test_without_a_job_cgroup_the_worker_keeps_to_its_slots_cpus(tmp_path, monkeypatch):
    # The kernel inherits its CPUs from the worker that started it (its launcher may still make it a
    # cgroup of its own here, and then pins nothing itself).
    shown = "import os\nprint('cpus', sorted(os.sched_getaffinity(0)))"
    folder = _write(tmp_path / "class", {f"n{i}": make_toy.notebook(extra={"params": shown}) for i in range(2)})
    seen: list[tuple[str, run.JobCpu]] = []

    def measured(submission, **kwargs) -> run.RunResult:
        result = run.run_sandboxed_job(submission, **kwargs)
        texts = [e.get("text", "") for e in result.events if "cpus" in str(e.get("text", ""))]
        seen.append((texts[0] if texts else "", result.cpu))
        return result

    monkeypatch.setattr(batch, "probe_capabilities", lambda **switches: probe_capabilities(use_cgroups=False))
    monkeypatch.setattr(batch, "run_sandboxed_job", measured)
    assert cli.main([str(folder), "--out", str(tmp_path / "out"), *COMMON, "--jobs", "2"]) == 0
    assert {row["total"] for row in _rows(tmp_path / "out").values()} == {"6"}
    students = [(text, cpu) for text, cpu in seen if text]
    assert len(students) == 2
    allowed = sorted(os.sched_getaffinity(0))
    for text, cpu in students:
        cpus = json.loads(text.split("cpus", 1)[1])
        assert set(cpus) < set(allowed) and cpus, text  # one slot's share, not every CPU
        assert cpu.worker_charged_s is None and cpu.job_charged_s is None
