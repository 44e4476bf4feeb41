"""Running one grading job: a worker process per notebook, its kernel in the sandbox.

The grader process starts :mod:`.worker` with a memory cap and its own wall-clock timer, and
reads back what the worker recorded. How a job ended comes from this process's own knowledge:
its timer (``timed_out``), the worker's exit status, and the worker's records of the kernel
(cell timeouts, kernel death), never from text that student code printed.

Each job gets a cgroup of its own (:func:`.cgroups.job_cgroup`), the worker in one cgroup inside
it and the kernel, started through the worker, in another: the worker's reading of its kernel's
messages counts against the job's CPU share, process limit and memory, so that a flood of
output costs its own job only. Without a cgroup the worker is pinned to its slot's CPUs, and its
kernel with it.

A job gets what the run's :class:`.capabilities.Capabilities` promise, or does not count: where its
cgroup cannot be made, or its launcher reports a protection it could not get, the job raises
:class:`.protections.ProtectionUnavailable` naming it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .capabilities import Capabilities
from .cgroups import JobCgroup, job_cgroup
from .kernel_path import SiteView
from .kernelspec import KERNEL_NAME, SandboxConfig, write_kernel_spec
from .launcher import JobSandbox
from .lessons import SharedCache
from .limits import Limits, slot_cpus
from .protections import CGROUP, ProtectionUnavailable
from .shared_cache import cache_use
from .values import RESULTS_BUDGET, TEXT_CHARS, VALUES_BYTES

__all__ = ["JobCpu", "RunOptions", "RunResult", "remove_tree", "run_sandboxed_job", "write_private"]

_WORKER_MEMORY_MB = 3072  # the worker itself: a huge notebook or a flood of output must not take the machine
_WORKER_PROCESSES = 64  # the worker's threads, its launcher and the launcher's reaper, besides the kernel's
_FILE_SLACK = 1024 * 1024  # the worker's RLIMIT_FSIZE: its own budget (values.RESULTS_BUDGET) and this
# Starts the worker once its stdin ends: the grader closes it when the worker is in its cgroup (or
# pinned), so that nothing of it, its imports included, runs elsewhere.
_START_WHEN_PLACED = ("import os, runpy, sys\nwhile os.read(0, 4096):\n    pass\nsys.argv = sys.argv[1:]\n"
                      "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")
# One results line: a cell's text (escaped: 6 bytes a character at most) and its values, with room to spare.
_MAX_RECORD = VALUES_BYTES + 6 * TEXT_CHARS + 64 * 1024
_SANDBOX_REPORT = "sandbox-report.json"  # what the job's launcher got (launcher.JobSandbox), in the job's folder


@dataclass(frozen=True)
class RunOptions:
    """Limits and switches for running grading copies.

    :param capabilities: What the sandbox gives each job, probed once for the run
        (:func:`.capabilities.probe_capabilities`); default: nothing promised.
    :param shared_cache: The lesson's shared cache (:mod:`.shared_cache`), or ``None``.
    :param published_cache: Its read-only copy from the warm-up job, once there is one.
    :param fills_cache: This job is the warm-up, which fills the folder that is shared.
    """

    cell_timeout_s: int = 120
    notebook_timeout_s: int = 600
    limits: Limits = field(default_factory=Limits)
    capabilities: Capabilities = Capabilities()
    jobs: int = 1
    kernel_env: dict[str, str] = field(default_factory=dict)  # the lesson's, ``{home}`` for the kernel's home
    readable: tuple[str, ...] = ()  # folders the kernel may read besides Python (the kernel path, a data cache)
    site: SiteView = SiteView(folders=(), entries=())  # what the kernel sees of site-packages
    shared_cache: SharedCache | None = None
    published_cache: str | None = None
    fills_cache: bool = False


@dataclass(frozen=True)
class JobCpu:
    """CPU seconds of one job, as the grader measured them.

    :param worker_s: Of the worker and of what it waited for (its launcher), from the worker's exit
        (``wait4``); ``None`` past the notebook's time limit.
    :param worker_charged_s: Charged to the worker's cgroup (worker, launcher, nothing of the kernel).
    :param job_charged_s: Charged to the job's cgroup: the worker's and the kernel's together.
    """

    worker_s: float | None = None
    worker_charged_s: float | None = None
    job_charged_s: float | None = None


@dataclass
class RunResult:
    """What one worker recorded, and how it ended (``cpu``: what it cost, where a cgroup counted it;
    ``sandbox``: what its kernel got, ``None`` where no kernel was launched)."""

    events: list[dict[str, Any]]
    exitcode: int | None
    timed_out: bool
    seconds: float
    log: str
    cpu: JobCpu = JobCpu()
    sandbox: JobSandbox | None = None


def _cap_worker(pid: int) -> None:
    """Cap the worker's address space and the files it writes (soft limits, within this process's
    hard ones: Slurm, ``ulimit``); the sandbox sets the kernel's own limits below them."""
    for limit, size in ((resource.RLIMIT_AS, _WORKER_MEMORY_MB * 1024 * 1024),
                        (resource.RLIMIT_FSIZE, RESULTS_BUDGET + _FILE_SLACK)):
        hard = resource.getrlimit(limit)[1]
        size = size if hard == resource.RLIM_INFINITY else min(size, hard)
        try:
            resource.prlimit(pid, limit, (size, hard))
        except (OSError, ValueError):
            pass  # the process may have exited already; the limits below still hold for the kernel


def run_sandboxed_job(submission: Path | None, *, plan: Path, workdir: Path, slot: int,
                      options: RunOptions) -> RunResult:
    """Run one notebook's grading copy as a sandboxed job (or, with ``submission=None``, the
    solution's reference copy).

    :param submission: A private copy of the submitted file.
    :param plan: The run's plan for workers (:meth:`.plan.Plan.for_workers`, as JSON).
    :param workdir: An empty private folder for this job; removed by the caller.
    :param slot: The parallel job slot.
    :param options: Limits and switches.
    :returns: The worker's records and how it ended.
    :raises ProtectionUnavailable: The job could not get a protection the run promised.
    """
    home = workdir / "home"
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o711)  # the sandbox uid may pass through to its home, but not list the folder
    limits = options.limits
    whole = replace(limits, memory_mb=limits.memory_mb + _WORKER_MEMORY_MB,
                    processes=limits.processes + _WORKER_PROCESSES)
    try:
        cgroup = job_cgroup(whole, options.capabilities.cgroups)
    except OSError as exc:
        raise ProtectionUnavailable(CGROUP, f"the job's cgroup could not be made: {exc}") from exc
    try:
        return _run_worker(submission, plan=plan, workdir=workdir, slot=slot, options=options, cgroup=cgroup)
    finally:
        if cgroup is not None:
            cgroup.destroy()


def _run_worker(submission: Path | None, *, plan: Path, workdir: Path, slot: int, options: RunOptions,
                cgroup: JobCgroup | None) -> RunResult:
    """:func:`run_sandboxed_job` in the job's cgroup (``None``: pinned to the slot's CPUs)."""
    home = workdir / "home"
    # Without a cgroup the worker is pinned to its slot, and the launcher and kernel keep its CPUs
    # (the config's one slot of one).
    report = workdir / _SANDBOX_REPORT
    cache = cache_use(options.shared_cache, fills=options.fills_cache, workdir=workdir,
                      published=options.published_cache, bwrap=options.capabilities.bwrap)
    config = SandboxConfig(home=str(home), limits=options.limits, capabilities=options.capabilities,
                           readable=list(options.readable), env={**options.kernel_env, **cache.env},
                           report=str(report), site_folders=list(options.site.folders),
                           site_entries=list(options.site.entries), cgroup=None if cgroup is None else cgroup.name,
                           cache=cache.folder, cache_writable=cache.writable)
    spec_dir = write_kernel_spec(workdir / "jupyter", config)
    results = workdir / "results.jsonl"
    job = {"submission": None if submission is None else str(submission), "plan": str(plan),
           "cell_timeout": options.cell_timeout_s, "kernel_name": KERNEL_NAME, "ipc": str(home / "ipc"),
           "home": str(home), "results": str(results), "grader_pid": os.getpid()}
    write_private(workdir / "job.json", json.dumps(job).encode())
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
    env.update({
        "HOME": str(workdir), "JUPYTER_PATH": str(spec_dir), "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
        "JUPYTER_CONFIG_DIR": str(workdir / "config"), "JUPYTER_DATA_DIR": str(workdir / "data"),
        "JUPYTER_PLATFORM_DIRS": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONWARNINGS": "ignore",
    })
    command = [sys.executable, "-c", _START_WHEN_PLACED, f"{__package__}.worker", str(workdir / "job.json")]
    start = time.perf_counter()
    worker = None if cgroup is None else cgroup.child("worker")
    with open(workdir / "worker.log", "wb") as log:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.PIPE, start_new_session=True)
        try:
            if worker is not None:
                _place_worker(worker, proc.pid)
            else:
                os.sched_setaffinity(proc.pid, slot_cpus(slot, options.jobs))
            _cap_worker(proc.pid)
            _close_stdin(proc)  # the worker starts
            exitcode, worker_s = _wait(proc, options.notebook_timeout_s)
        finally:
            _close_stdin(proc)
            _kill_group(proc)
    seconds = time.perf_counter() - start
    cpu = JobCpu(worker_s=worker_s, worker_charged_s=None if worker is None else worker.cpu_seconds(),
                 job_charged_s=None if cgroup is None else cgroup.cpu_seconds())
    got = JobSandbox.read(report)
    if got is not None and got.missing is not None:
        raise ProtectionUnavailable(got.missing, got.reason)
    text = (workdir / "worker.log").read_bytes()[-4000:].decode("utf-8", "replace")
    return RunResult(events=_read_events(results), exitcode=exitcode, timed_out=exitcode is None, seconds=seconds,
                     log=text, cpu=cpu, sandbox=got)


def _place_worker(worker: JobCgroup, pid: int) -> None:
    """Make the worker's cgroup inside the job's and move the worker there.

    :raises ProtectionUnavailable: It could not be made, or the worker not moved.
    """
    try:
        worker.create(None)
        worker.join(pid)
    except OSError as exc:
        raise ProtectionUnavailable(CGROUP, f"the worker's cgroup could not be made: {exc}") from exc


def _close_stdin(proc: subprocess.Popen[bytes]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()


def _wait(proc: subprocess.Popen[bytes], timeout_s: float) -> tuple[int | None, float | None]:
    """Wait for the worker: its exit code and the CPU seconds of it and of what it waited for
    (``wait4``); ``(None, None)`` past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() >= deadline:
            return None, None
        time.sleep(0.02)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only the grader's user can read (mode 0600), whatever the umask.

    :param path: A new file.
    :param data: Its content.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _read_events(path: Path) -> list[dict[str, Any]]:
    """The worker's records, read line by line: at most :data:`.values.RESULTS_BUDGET` bytes in all
    and :data:`_MAX_RECORD` per line, whatever the file holds (a job's records cost the grader
    bounded memory)."""
    events: list[dict[str, Any]] = []
    if not path.exists():
        return events
    left = RESULTS_BUDGET
    with open(path, "rb") as f:
        while left > 0:
            line = f.readline(min(_MAX_RECORD, left) + 1)
            if not line.endswith(b"\n") or len(line) > min(_MAX_RECORD, left):
                break  # the end, a line cut short when the worker was stopped, or past the budget
            left -= len(line)
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                break
            if isinstance(event, dict):
                events.append(event)
    return events


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def remove_tree(path: Path) -> None:
    """Remove a job folder, however deep the student nested it (``rm`` does not recurse in Python).

    :param path: The folder.
    """
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], check=False, stdin=subprocess.DEVNULL)
