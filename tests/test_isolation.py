"""Jobs are isolated from each other: CPU share, process limit, disk, teardown (issue 9, item 5).

Each test launches small jobs through the grader's own launcher
(``python tests/sandboxed.py CONFIG -- COMMAND``: the launcher's own job, with the same bubblewrap,
cgroup, uid and limits as a kernel), or a real kernel through a kernel spec with IPC transport.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from nbjudge import uids
from nbjudge.capabilities import probe_capabilities
from nbjudge.cgroups import cgroups_available
from nbjudge.kernel_path import kernel_path, site_view
from nbjudge.kernelspec import KERNEL_NAME, SandboxConfig, readable_paths, write_kernel_spec
from nbjudge.limits import Limits
from nbjudge.protections import protections

from tests.sandboxed import SCRIPT

BWRAP = protections()["file system hidden (bubblewrap)"] and subprocess.run(
    ["bwrap", "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true"],
    capture_output=True,
).returncode == 0
ROOT = os.geteuid() == 0
CGROUPS = cgroups_available()

needs_bwrap = pytest.mark.skipif(not BWRAP, reason="bubblewrap is not installed or cannot create a sandbox here")
needs_root = pytest.mark.skipif(not (ROOT and BWRAP), reason="sandbox uids need root and bubblewrap")
needs_cgroups = pytest.mark.skipif(not CGROUPS, reason="this process cannot create cgroups (not root, or none here)")


def _job_dir(tmp_path: Path, name: str) -> Path:
    home = tmp_path / name / "home"
    home.mkdir(parents=True)
    os.chmod(home.parent, 0o711)
    return home


def _launch(tmp_path: Path, name: str, code: str, *args: object, **config: object) -> subprocess.Popen:
    """Start ``python -c code args...`` as a sandboxed job; its stdout is piped."""
    home = _job_dir(tmp_path, name)
    switches = {key: bool(config.pop(key)) for key in ("use_bwrap", "use_cgroups") if key in config}
    config.setdefault("capabilities", probe_capabilities(**switches))
    config.setdefault("readable", readable_paths())
    cfg = SandboxConfig(home=str(home), **config)
    path = home.parent / "sandbox.json"
    path.write_text(cfg.to_json())
    command = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    return subprocess.Popen([sys.executable, "-P", str(SCRIPT), str(path), "--", *command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _output(proc: subprocess.Popen, timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


SPIN = 2.0  # seconds of contention
# Every job script starts with this: the jobs start spinning at the same wall-clock time, argv[1].
_PRELUDE = """
import os, sys, threading, time
start = float(sys.argv[1])
def wait():
    while time.time() < start:
        time.sleep(0.005)
"""

ATTACKER = _PRELUDE + """
end = start + float(sys.argv[2])
r, w = os.pipe()
for _ in range(16):
    if os.fork() == 0:
        os.setsid()
        os.close(r)
        wait()
        while time.time() < end:
            pass
        os.write(w, f"{time.process_time()}\\n".encode())
        os._exit(0)
os.close(w)
data = b""
while chunk := os.read(r, 4096):
    data += chunk
print(sum(map(float, data.split())), sorted(os.sched_getaffinity(0)))
"""

VICTIM = _PRELUDE + """
end = start + float(sys.argv[2])
wait()
t0 = time.process_time()
while time.time() < end:
    pass
print(time.process_time() - t0, sorted(os.sched_getaffinity(0)))
"""


def _cpu_seconds(tmp_path: Path, **config: object) -> tuple[tuple[float, str], tuple[float, str]]:
    """CPU seconds (and allowed CPUs) of a job of 16 spinning setsid children and of a
    one-process neighbour job during the same SPIN seconds."""
    start = time.time() + 1.5  # both jobs are up by then
    attacker = _launch(tmp_path, "attacker", ATTACKER, start, SPIN, slot=0, **config)
    victim = _launch(tmp_path, "victim", VICTIM, start, SPIN, slot=1, **config)
    results = []
    for proc in (attacker, victim):
        seconds, cpus = _output(proc).split(" ", 1)
        results.append((float(seconds), cpus.strip()))
    return results[0], results[1]


@needs_bwrap
@needs_cgroups
def test_spinning_setsid_children_do_not_starve_a_neighbour_job(tmp_path):
    (attacker, _), (victim, _) = _cpu_seconds(tmp_path, use_cgroups=True, jobs=2)
    # Fair: the neighbour gets as much CPU as the whole 16-process job (about 1:1); unfair: 1:16.
    # (The rest of the machine's load weighs on both jobs alike.)
    assert victim >= 0.5 * attacker, (attacker, victim)


@needs_bwrap
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning needs two CPUs")
def test_without_cgroups_each_job_slot_keeps_to_its_own_cpus(tmp_path):
    (attacker, attacker_cpus), (victim, victim_cpus) = _cpu_seconds(tmp_path, use_cgroups=False, jobs=2)
    attacker_cpus, victim_cpus = set(json.loads(attacker_cpus)), set(json.loads(victim_cpus))
    assert attacker_cpus and victim_cpus and not attacker_cpus & victim_cpus
    # The 16 spinners never used more than their slot's CPUs (the neighbour's CPU is left to it; how
    # much of it the neighbour gets depends on the rest of the machine, not on this job).
    assert attacker <= SPIN * len(attacker_cpus) * 1.1 + 0.2, (attacker, attacker_cpus)


@needs_bwrap
def test_control_without_isolation_the_neighbour_is_starved(tmp_path):
    """The measurement above can fail: with neither cgroups nor pinning the neighbour gets ~1/16."""
    (attacker, _), (victim, _) = _cpu_seconds(tmp_path, use_cgroups=False, jobs=1)
    assert victim < 0.5 * attacker, (attacker, victim)


THREADS = _PRELUDE + """
wanted = int(sys.argv[2]); end = start + 2.0
wait()
done = threading.Event()
started = 0
for _ in range(wanted):
    try:
        threading.Thread(target=done.wait, daemon=True).start()
        started += 1
    except RuntimeError:
        break
print(os.getuid(), started, flush=True)
time.sleep(max(0.0, end - time.time()))
done.set()
"""


@needs_bwrap
@pytest.mark.parametrize("use_cgroups", [
    pytest.param(True, id="cgroup-pids", marks=needs_cgroups),
    pytest.param(False, id="uid-rlimit", marks=needs_root),
])
def test_process_limit_holds_per_job_and_jobs_never_share_it(tmp_path, use_cgroups):
    limits = Limits(processes=40)
    start = time.time() + 1.5
    greedy = _launch(tmp_path, "greedy", THREADS, start, 500, limits=limits, use_cgroups=use_cgroups)
    # The neighbour starts its threads while the greedy job is at its limit.
    modest = _launch(tmp_path, "modest", THREADS, start + 0.5, 20, limits=limits, use_cgroups=use_cgroups)
    greedy_uid, greedy_started = map(int, _output(greedy).split())
    modest_uid, modest_started = map(int, _output(modest).split())
    assert greedy_started < limits.processes
    assert modest_started == 20
    if ROOT:
        assert greedy_uid != modest_uid
        assert {greedy_uid, modest_uid} <= set(range(uids.BASE_UID, uids.BASE_UID + uids.UID_COUNT))


@needs_root
def test_uids_are_allocated_under_a_lock_and_released(tmp_path):
    first, first_fd = uids.allocate_uid(tmp_path)
    second, second_fd = uids.allocate_uid(tmp_path)  # another open file: as another grader would
    assert first != second
    os.close(first_fd)
    again, again_fd = uids.allocate_uid(tmp_path)
    assert again == first
    os.close(again_fd)
    os.close(second_fd)


DISK = """
import errno, os, sys
written = 0
try:
    with open("fill", "wb") as handle:
        for _ in range(64):
            handle.write(b"x" * 2**20)
            handle.flush()
            written += 2**20
except OSError as exc:
    print("home", exc.errno == errno.ENOSPC, written)
for path in ("/fill", "/dev/shm/fill", "/usr/fill", os.path.join(sys.argv[1], "fill")):
    try:
        open(path, "w").close()
        print("wrote", path)
    except OSError:
        pass
"""


@needs_bwrap
def test_writing_past_the_home_size_limit_is_an_oserror_inside(tmp_path):
    home = tmp_path / "disk" / "home"
    out = _output(_launch(tmp_path, "disk", DISK, home, limits=Limits(disk_mb=8, file_mb=64)))
    lines = out.splitlines()
    assert lines[0].startswith("home True ")
    assert int(lines[0].split()[2]) <= 8 * 2**20
    # Nothing else is writable: bubblewrap's root and /dev are read-only; as root the job's socket
    # folder belongs to root.
    wrote = [line for line in lines[1:] if line.startswith("wrote")]
    assert wrote == ([] if ROOT else [f"wrote {home / 'fill'}"])
    assert not (home / "fill").exists() or not ROOT


SLEEPERS = """
import os, time
for _ in range(3):
    if os.fork() == 0:
        os.setsid()
        time.sleep(600)
        os._exit(0)
print(os.getuid(), flush=True)
time.sleep(600)
"""


def _job_cgroups(launcher_pid: int) -> list[Path]:
    return [p for c in ("pids", "cpu", "") for p in Path("/sys/fs/cgroup", c).glob(f"**/job-{launcher_pid}-*")]


def _lock_is_free(uid: int) -> bool:
    fd = os.open(uids.LOCK_DIR / f"uid-{uid}.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _processes_of(uid: int) -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _owner(p) == uid]


def _owner(path: Path) -> int | None:
    try:
        return path.stat().st_uid
    except OSError:
        return None


@needs_root
def test_a_killed_launcher_still_tears_its_job_down(tmp_path):
    """jupyter_client kills a kernel's process group with SIGKILL; the reaper cleans up after it."""
    proc = _launch(tmp_path, "killed", SLEEPERS)
    uid = int(proc.stdout.readline())
    assert _processes_of(uid)
    assert not _lock_is_free(uid)
    assert not CGROUPS or _job_cgroups(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_processes_of(uid) or _job_cgroups(proc.pid) or not _lock_is_free(uid)):
        time.sleep(0.05)
    assert _processes_of(uid) == []
    assert _job_cgroups(proc.pid) == []
    assert _lock_is_free(uid)


KERNEL_CODE = """
import os, subprocess
try:
    with open("fill", "wb") as handle:
        for _ in range(64):
            handle.write(b"x" * 2**20)
except OSError as exc:
    print("disk", exc.errno)
try:
    open(os.path.join({home!r}, "planted"), "w").close()
except OSError as exc:
    print("sockets", type(exc).__name__)
subprocess.Popen(["sleep", "600"], start_new_session=True)
print("uid", os.getuid())
"""


@needs_bwrap
def test_a_real_kernel_runs_limited_and_leaves_nothing_behind(tmp_path, monkeypatch):
    jupyter_client = pytest.importorskip("jupyter_client")
    home = _job_dir(tmp_path, "kernel")
    imports = kernel_path(tmp_path / "kernel-path", ())  # the engine's kernel side: the kernel's start
    config = SandboxConfig(home=str(home), limits=Limits(disk_mb=8), env={"PYTHONPATH": str(imports)},
                           readable=[str(imports)])
    monkeypatch.setenv("JUPYTER_PATH", str(write_kernel_spec(tmp_path / "jupyter", config)))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    manager = jupyter_client.KernelManager(kernel_name=KERNEL_NAME, transport="ipc", ip=str(home / "ipc"))
    manager.start_kernel()
    launcher = manager.provisioner.pid
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        texts: list[str] = []
        reply = client.execute_interactive(
            KERNEL_CODE.format(home=str(home)), timeout=60,
            output_hook=lambda msg: texts.append(msg["content"].get("text", "")),
        )
        assert reply["content"]["status"] == "ok"
        lines = "".join(texts).splitlines()
        assert "disk 28" in lines  # ENOSPC in the student's own cell
        uid = int(next(line for line in lines if line.startswith("uid")).split()[1])
        if ROOT:
            assert "sockets PermissionError" in lines
            assert uid != 0 and _processes_of(uid)
        assert not CGROUPS or _job_cgroups(launcher)
    finally:
        client.stop_channels()
        manager.shutdown_kernel()
    assert _job_cgroups(launcher) == []
    if ROOT:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_processes_of(uid) or not _lock_is_free(uid)):
            time.sleep(0.05)
        assert _processes_of(uid) == []
        assert _lock_is_free(uid)
    if ROOT:  # the socket folder holds the kernel's sockets, nothing the student wrote
        assert not (home / "planted").exists()


def _in_a_job_cgroup(marker: str) -> bool:
    """Whether a process whose command line holds ``marker`` (the job, not its launcher) sits in a
    job's cgroup, as seen from outside the sandbox."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append("grading-sandbox/job-" in (entry / "cgroup").read_text())
        except OSError:
            continue
    assert found, f"no process with {marker}"
    return any(found)


def test_protections_report_what_a_job_gets(tmp_path):
    """Each claim of ``protections()`` against what a job observes, from inside and from outside."""
    outside = Path(__file__).resolve()  # a file the sandbox does not mount
    observe = """
    import os, socket, sys, time
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=2).close()
        network = True
    except OSError:
        network = False
    print(os.path.exists(sys.argv[1]), network, flush=True)
    time.sleep(4)  # long enough to be seen from outside
    """
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        for name, options in (("full", {}), ("bare", {"use_bwrap": False, "use_cgroups": False})):
            claimed = protections(probe_capabilities(**options))
            marker = f"job-marker-{name}-{os.getpid()}"
            proc = _launch(tmp_path, name, observe, outside, port, marker, **options)
            try:
                sees_files, reaches = proc.stdout.readline().split()
                in_cgroup = _in_a_job_cgroup(marker)
            finally:
                proc.kill()
                proc.communicate()
            assert (sees_files == "False") is claimed["file system hidden (bubblewrap)"], name
            assert (reaches == "False") is claimed["no network"], name
            assert in_cgroup is claimed["CPU share per job (cgroup)"], name
    assert protections(probe_capabilities(use_cgroups=False), jobs=1)["CPUs pinned per job slot (no cgroup)"] is False
    bare = probe_capabilities(use_cgroups=False, use_bwrap=False)
    pinned = protections(bare, jobs=2)["CPUs pinned per job slot (no cgroup)"]
    assert pinned is (len(os.sched_getaffinity(0)) > 1)


_SEES = """
import importlib, os, sys
seen = []
for name in sys.argv[1].split(","):
    try:
        importlib.import_module(name)
        seen.append(name)
    except ImportError:
        pass
for path in sys.argv[2].split(","):
    try:
        open(path, "rb").close()
        seen.append(path)
    except OSError:
        pass
for folder in sys.argv[3].split(","):
    for root, dirs, files in os.walk(folder):
        seen += [os.path.join(root, f) for f in files if "verdicts" in f or "binary_mnist" in f]
print(";".join(seen))
"""


@needs_bwrap
def test_a_kernel_sees_the_probes_and_no_verdict_or_solution(tmp_path):
    """By construction: the kernels' import folder holds the lesson's kernel modules, the kit and the
    engine's kernel side; site-packages shows nothing of the instructor's distributions; the
    checkout is not mounted. Without that construction the same kernel reads the verdicts."""
    from bmnist_lesson import LESSON, verdicts
    from bmnist_lesson.files import solution_notebook

    imports = kernel_path(tmp_path / "kernel-path", LESSON.kernel_modules)
    view = site_view()
    wanted = "bmnist_lesson.kernel.probes,bmnist_helpers.data,nbjudge.probe"
    unwanted = "bmnist_lesson.verdicts,bmnist_lesson.draws,nbjudge.cli,nbjudge.report"
    secret = f"{verdicts.__file__},{solution_notebook()}"
    args = (f"{wanted},{unwanted}", secret, ",".join([*view.folders, str(imports)]))
    env = {"PYTHONPATH": str(imports), "PYTHONDONTWRITEBYTECODE": "1"}
    seen = _output(_launch(tmp_path, "constructed", _SEES, *args, env=env, site_folders=list(view.folders),
                           site_entries=list(view.entries), readable=[*readable_paths(), str(imports)]))
    assert seen.strip().split(";") == wanted.split(","), seen
    assert not list(imports.rglob("*.pyc")) and not (imports / "bmnist_lesson" / "verdicts.py").exists()
    lesson_folder = str(Path(verdicts.__file__).parent)
    control = _output(_launch(tmp_path, "control", "import sys; print(len(open(sys.argv[1]).read()))",
                              verdicts.__file__, readable=[*readable_paths(), lesson_folder]))
    assert int(control) > 1000  # the same sandbox, with the lesson's folder mounted, reads them
