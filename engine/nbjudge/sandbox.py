"""The grading sandbox: how a student's kernel is started, limited, isolated and torn down.

The grader (outside the sandbox) holds the notebook, the expected outputs and the hidden-check
references. It starts the kernel through this module's launcher, named in a kernel spec::

    python -m <package>.sandbox CONFIG.json CONNECTION_FILE

One launcher runs one *job* (one kernel, with everything it starts). The launcher stays the
job's parent for its whole life and sets up, for the job only:

* **resource limits** (``RLIMIT_AS``, ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``,
  ``RLIMIT_NOFILE``, no core);
* **a seccomp filter** (:mod:`.seccomp`): no kernel keyrings, no System V IPC, which would outlive
  the job or cross uids; a pool uid's keyrings are cleared when the job gives it back;
* **a cgroup** where the kernel can create one (cgroup v2 ``cpu``/``pids`` delegated at the
  hierarchy's root, or the v1 ``cpu`` and ``pids`` controllers; in practice: the grader runs as
  root): an equal CPU weight per job (``cpu.weight``/``cpu.shares``), optionally a quota
  (:attr:`Limits.cpus`), ``pids.max`` = :attr:`Limits.processes`, and, where the ``memory``
  controller is there, a memory limit of the job as a whole (:attr:`Limits.job_memory_mb`: tmpfs
  and shared memory pages are charged to it too). Group scheduling makes the
  share a property of the job, not of its processes: 64 spinning children (``setsid`` or not) get
  together what one neighbour job gets. Without a cgroup, job slot *s* of :attr:`SandboxConfig.jobs`
  parallel jobs is pinned to its own CPUs with ``sched_setaffinity`` (inherited by children, but a
  process may widen its own affinity again, so this holds against careless code, not hostile code).
  The grader (:mod:`.run`) makes a cgroup for the whole job (:func:`job_cgroup`) and starts the
  job's worker, which reads every message of the kernel, in a cgroup inside it; the launcher then
  makes the kernel's cgroup inside it too (:attr:`SandboxConfig.cgroup`), so that the CPU quota and
  share, the process limit and the memory of a job hold for its worker and its kernel together: a
  flood of output costs its own job only. Without a cgroup the worker is pinned to its slot's CPUs;
* **bubblewrap** where installed: only Python, the kit's helper package, the folders the lesson
  names (a data cache, say) and the job's socket folder are visible (read-only, except the
  sockets); no network; a pid namespace (all of the job dies with it); ``HOME``, the working
  directory and ``TMPDIR`` are ``/tmp``, a tmpfs of :attr:`Limits.disk_mb` (a write past it is
  ``OSError: [Errno 28] No space left on device`` in the student's own cell); every other file
  system in the sandbox is read-only.
  When the grader runs as root, the kernel runs under a uid of its own, taken from a pool with a
  lock file per uid (``flock``), so that two concurrent grader processes never share one and
  ``RLIMIT_NPROC`` counts this job only.

The kernel talks to the grader over Unix sockets in :attr:`SandboxConfig.home` (the job's socket
folder, shared with the grader). As root, that folder belongs
to the kernel's uid only until the kernel has bound its sockets, before any student code runs
(the kernel waits on a handshake with the launcher); then it is root's again (0700), so that the
kernel can write nothing there. The connection file (with the HMAC key) reaches the kernel as a
read-only file inside the sandbox and is never written to disk in its folder.

**Teardown.** When the kernel exits or dies, the launcher kills what is left in the job's cgroup,
removes the cgroup folders and releases the uid lock. If the launcher itself is killed (the
grader kills a kernel's process group with ``SIGKILL``), a small reaper process, started in a
session of its own before anything else is set up, notices (a pipe closes) and does the same.
When the worker ends, the grader kills what is left of the whole job and removes its cgroup; the
empty cgroups of a grader killed with ``SIGKILL`` (its workers and kernels die with it) are
removed by the next one.

What holds where (the guarantee table of docs/security.md repeats this):

============================================  ==================  ===================================
protection                                    needs               without it
============================================  ==================  ===================================
CPU share per job, children and the worker    cgroup (root)       CPUs pinned per slot, the worker's
reading the kernel's output included                              too (not against hostile code);
                                                                  none with 1 job slot
process limit per job, unique per job         cgroup ``pids``     root + bwrap: uid from the locked
                                                                  pool with ``RLIMIT_NPROC``;
                                                                  non-root: ``RLIMIT_NPROC`` of the
                                                                  grader's uid, shared by all jobs
disk: HOME and /tmp limited to ``disk_mb``    bubblewrap          only ``RLIMIT_FSIZE`` per file
socket folder not writable by student code    bwrap + root        non-root bwrap: writable by the
                                                                  kernel (``RLIMIT_FSIZE`` per file)
stray processes killed at the end             cgroup or bwrap     children that ``setsid`` survive
memory of the whole job, shared memory too    cgroup ``memory``   ``RLIMIT_AS`` per process; System V
                                                                  shm refused (seccomp)
no keyrings, no System V IPC                  seccomp (x86-64,    open
                                              AArch64)
============================================  ==================  ===================================
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import seccomp

__all__ = [
    "KERNEL_NAME", "PROCESS_LIMIT_MARK", "JobCgroup", "Limits", "SandboxConfig", "cgroups_available", "job_cgroup",
    "protections", "run_command", "slot_cpus", "write_kernel_spec",
]

KERNEL_NAME = "grading-sandbox"
SANDBOX_HOME = "/tmp"  # HOME, cwd and TMPDIR inside bubblewrap: the size-limited tmpfs
_BASE_UID = 61000  # sandbox uids are taken from 61000 ... 61000 + _UID_COUNT - 1
_UID_COUNT = 4000
_LOCK_DIR = Path("/run/lock/grading-sandbox") if Path("/run/lock").is_dir() else Path("/var/lock/grading-sandbox")
_CGROUP_FS = Path("/sys/fs/cgroup")
_CGROUP_PARENT = "grading-sandbox"  # job cgroups are grading-sandbox/job-<launcher pid>-<random>
_CONNECTION_INSIDE = "/run/grading/kernel.json"
_MODULE = f"{__package__}.sandbox"  # this module, as the launcher is started
_KERNEL_MODULE = f"{__package__}.kernel_start"  # the kernel's start, inside the sandbox (on the kernel path)
# Written into the job's folder when the job reached its process limit and was stopped for it.
PROCESS_LIMIT_MARK = "process-limit-reached"
_MINIMAL_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one job (a kernel and everything it starts).

    :param memory_mb: Address space per process (``RLIMIT_AS``).
    :param cpu_s: CPU seconds per process (``RLIMIT_CPU``).
    :param file_mb: Largest file a process may write (``RLIMIT_FSIZE``).
    :param processes: Processes and threads of the whole job (cgroup ``pids.max``; ``RLIMIT_NPROC``).
    :param disk_mb: Size of the tmpfs that holds the kernel's HOME, cwd and TMPDIR (bubblewrap).
    :param files: Open files per process (``RLIMIT_NOFILE``).
    :param cpus: At most this many CPUs for the whole job (cgroup quota); ``None``: no cap, only an
        equal share with the other jobs when CPUs are contended.
    :param children: Processes (not threads) of a kernel's job; past it, or at ``processes``, the
        job is stopped (cgroup only): a fork bomb is stopped however slowly it forks.
    """

    memory_mb: int = 4096
    cpu_s: int = 1200
    file_mb: int = 64
    processes: int = 512
    disk_mb: int = 512
    files: int = 1024
    cpus: float | None = None
    children: int = 128

    @property
    def job_memory_mb(self) -> int:
        """Memory of the whole job (cgroup): one process's limit and the tmpfs, whose pages it is charged."""
        return self.memory_mb + self.disk_mb


@dataclass
class SandboxConfig:
    """Everything the launcher needs; written as JSON next to the kernel spec.

    :param home: The job's own folder, outside the sandbox, shared with the grader: the kernel's
        IPC sockets go there. Without bubblewrap it is also the kernel's HOME and working directory.
    :param limits: Resource limits of the job.
    :param slot: This job's parallel slot (``0 .. jobs - 1``): its CPUs when no cgroup can be made.
    :param jobs: How many jobs run in parallel; with more than one and no cgroup, each slot gets
        its own CPUs.
    :param use_bwrap: Whether bubblewrap may be used.
    :param use_cgroups: Whether a cgroup per job may be used.
    :param cgroup: The grader's cgroup of the whole job (:attr:`JobCgroup.name`, made by
        :func:`job_cgroup`): the kernel's cgroup, with :attr:`limits`, is made inside it. ``None``:
        the kernel's cgroup is a job of its own.
    :param readable: Extra folders the kernel may read.
    :param site_folders: Python's site-packages folders, shown empty (bubblewrap) except for...
    :param site_entries: ...these entries of them (see :func:`.kernel_path.site_view`).
    :param env: Extra environment variables for the kernel; ``{home}`` in a value is the kernel's home.
    """

    home: str
    limits: Limits = field(default_factory=Limits)
    slot: int = 0
    jobs: int = 1
    use_bwrap: bool = True
    use_cgroups: bool = True
    cgroup: str | None = None
    readable: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    site_folders: list[str] = field(default_factory=list)
    site_entries: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        """Serialise for the launcher."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SandboxConfig:
        """Read what :meth:`to_json` wrote."""
        raw = json.loads(text)
        raw["limits"] = Limits(**raw["limits"])
        return cls(**raw)


def _bwrap() -> str | None:
    path = shutil.which("bwrap")
    return path if path and os.access(path, os.X_OK) else None


# --- cgroups -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Hierarchy:
    """Where job cgroups go: one parent folder (v2), or one per v1 controller (cpu, pids[, memory]
    [, cpuacct where it is mounted apart from cpu])."""

    version: int
    parents: tuple[Path, ...]
    memory: bool = False


def _write(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _v2_controllers(memory: bool) -> str:
    """What a v2 cgroup of jobs hands to its children (``cgroup.subtree_control``)."""
    return "+cpu +pids" + (" +memory" if memory else "")


def _v2_root() -> Path | None:
    for root in (_CGROUP_FS, _CGROUP_FS / "unified"):
        controllers = root / "cgroup.controllers"
        if controllers.exists() and {"cpu", "pids"} <= set(controllers.read_text().split()):
            return root
    return None


def _prepare_parents() -> _Hierarchy | None:
    """Create (once) the parent cgroup(s) of all jobs; ``None`` when this process cannot."""
    try:
        root = _v2_root()
        if root is not None:
            parent = root / _CGROUP_PARENT
            memory = "memory" in (root / "cgroup.controllers").read_text().split()
            wanted = _v2_controllers(memory)
            _write(root / "cgroup.subtree_control", wanted)
            parent.mkdir(exist_ok=True)
            _write(parent / "cgroup.subtree_control", wanted)
            _remove_orphans([parent])
            return _Hierarchy(2, (parent,), memory)
        cpu, pids, memory = _CGROUP_FS / "cpu", _CGROUP_FS / "pids", _CGROUP_FS / "memory"
        if not ((cpu / "cpu.shares").exists() and (pids / "cgroup.procs").exists()):
            return None
        parents = [cpu / _CGROUP_PARENT, pids / _CGROUP_PARENT]
        has_memory = (memory / "memory.limit_in_bytes").exists()
        if has_memory:
            parents.append(memory / _CGROUP_PARENT)
        accounting = _CGROUP_FS / "cpuacct"  # CPU time used, where not mounted with cpu (cpu,cpuacct)
        if (accounting / "cpuacct.usage").exists() and not (cpu / "cpuacct.usage").exists():
            parents.append(accounting / _CGROUP_PARENT)
        for path in parents:
            path.mkdir(exist_ok=True)
        # All jobs together weigh like one busy process per CPU against the rest of the machine.
        _write(cpu / _CGROUP_PARENT / "cpu.shares", str(1024 * (os.cpu_count() or 1)))
        _remove_orphans(parents)
        return _Hierarchy(1, tuple(parents), has_memory)
    except OSError:
        return None


def _remove_orphans(parents: list[Path]) -> None:
    """Remove the empty job cgroups of processes that are gone (a grader killed with ``SIGKILL``
    leaves its job's folders: its processes die with it, the folders stay). ``rmdir`` removes only
    a cgroup without processes, so a live job is never touched."""
    for parent in parents:
        for job in parent.glob("job-*-*"):
            owner = job.name.split("-")[1]
            if owner.isdigit() and not Path(f"/proc/{owner}").exists():
                for folder in sorted(_folders(job), key=lambda path: -len(path.parts)):
                    with contextlib.suppress(OSError):
                        folder.rmdir()


def _folders(path: Path) -> list[Path]:
    """A cgroup folder and every cgroup below it."""
    found = [path]
    with contextlib.suppress(OSError):
        for entry in os.scandir(path):
            if entry.is_dir(follow_symlinks=False):
                found += _folders(Path(entry.path))
    return found


@functools.cache
def _hierarchy() -> _Hierarchy | None:
    """The cgroup hierarchy for jobs, probed once per process by making and removing a cgroup."""
    hierarchy = _prepare_parents()
    if hierarchy is None:
        return None
    probe = f"probe-{os.getpid()}-{secrets.token_hex(4)}"
    made = []
    try:
        for parent in hierarchy.parents:
            (parent / probe).mkdir()
            made.append(parent / probe)
        limit = "pids.max"
        if not any((path / limit).exists() for path in made):
            return None
        return hierarchy
    except OSError:
        return None
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()


def memory_cgroup_available() -> bool:
    """Whether each job's cgroup also limits the memory of the job as a whole.

    :returns: ``True`` where the job cgroups have the ``memory`` controller.
    """
    hierarchy = _hierarchy()
    return hierarchy is not None and hierarchy.memory


def cgroups_available() -> bool:
    """Whether this process can give each job a cgroup of its own (CPU share and process limit).

    :returns: ``True`` where a cgroup with the ``cpu`` and ``pids`` controllers can be made.
    """
    return _hierarchy() is not None


@dataclass(frozen=True)
class JobCgroup:
    """The cgroup folders of one job (one per v1 controller; one on v2), or of a part of a job."""

    version: int
    dirs: tuple[Path, ...]
    memory: bool = False

    @classmethod
    def name_for(cls, hierarchy: _Hierarchy, name: str) -> JobCgroup:
        return cls(hierarchy.version, tuple(parent / name for parent in hierarchy.parents), hierarchy.memory)

    @property
    def name(self) -> str:
        """Its path below the parent of all jobs (``job-12-ab34cd56/worker``), for :attr:`SandboxConfig.cgroup`."""
        parts = self.dirs[0].parts
        return "/".join(parts[len(parts) - parts[::-1].index(_CGROUP_PARENT):])

    def child(self, name: str) -> JobCgroup:
        """A cgroup inside this one (not yet made)."""
        return JobCgroup(self.version, tuple(path / name for path in self.dirs), self.memory)

    def _controller(self, name: str) -> Path:
        """The folder of the v1 controller ``name`` (on v2, the only one)."""
        if self.version == 2:
            return self.dirs[0]
        return next(path for path in self.dirs if path.relative_to(_CGROUP_FS).parts[0] == name)

    def create(self, limits: Limits | None, *, parent: bool = False) -> None:
        """Make the folders and set ``limits`` (``None``: only those of the cgroups above it apply).

        :param parent: Its processes go into cgroups inside it (on v2 it hands its controllers on,
            and holds no process of its own).
        """
        for path in self.dirs:
            path.mkdir()
        if parent and self.version == 2:
            _write(self.dirs[0] / "cgroup.subtree_control", _v2_controllers(self.memory))
        if limits is None:
            return
        period = 100_000
        quota = None if limits.cpus is None else max(1000, int(limits.cpus * period))
        memory = limits.job_memory_mb * 1024 * 1024
        if self.version == 2:
            (job,) = self.dirs
            _write(job / "cpu.weight", "100")
            _write(job / "cpu.max", f"{quota or 'max'} {period}")
            _write(job / "pids.max", str(limits.processes))
            if self.memory:  # all of the job's memory, shared memory and tmpfs pages included; no swap
                _write(job / "memory.max", str(memory))
                with contextlib.suppress(OSError):
                    _write(job / "memory.swap.max", "0")
        else:
            cpu = self._controller("cpu")
            _write(cpu / "cpu.shares", "1024")
            _write(cpu / "cpu.cfs_period_us", str(period))
            _write(cpu / "cpu.cfs_quota_us", str(quota or -1))
            _write(self._controller("pids") / "pids.max", str(limits.processes))
            if self.memory:
                mem = self._controller("memory")
                _write(mem / "memory.limit_in_bytes", str(memory))
                with contextlib.suppress(OSError):  # memory and swap together (where swap is accounted)
                    _write(mem / "memory.memsw.limit_in_bytes", str(memory))

    def join(self, pid: int = 0) -> None:
        """Move a process (``0``: the calling one) into this cgroup."""
        for path in self.dirs:
            _write(path / "cgroup.procs", str(pid or os.getpid()))

    def hit_process_limit(self, children: int) -> bool:
        """Whether a fork or clone of the job failed at ``pids.max`` (the ``pids.events`` counter), or
        the job holds more than ``children`` processes."""
        events = self._controller("pids") / "pids.events"
        with contextlib.suppress(OSError, ValueError):
            if int(events.read_text().split()[1]) > 0:
                return True
        return len(self._pids()) > children

    def cpu_seconds(self) -> float | None:
        """CPU time its processes used so far, those of the cgroups inside it included; ``None``
        where no controller accounts it (v1 without ``cpuacct``)."""
        with contextlib.suppress(OSError, ValueError):
            if self.version == 2:
                stat = (self.dirs[0] / "cpu.stat").read_text().split()
                return int(stat[stat.index("usage_usec") + 1]) / 1e6
            for path in self.dirs:
                if (path / "cpuacct.usage").exists():
                    return int((path / "cpuacct.usage").read_text()) / 1e9
        return None

    def _pids(self, folders: list[Path] | None = None) -> set[int]:
        found: set[int] = set()
        for path in self.dirs if folders is None else folders:
            with contextlib.suppress(OSError):
                found.update(int(line) for line in (path / "cgroup.procs").read_text().split())
        return found

    def destroy(self, *, timeout_s: float = 10.0) -> None:
        """Kill every process left in this cgroup and in those inside it, then remove their folders."""
        deadline = time.monotonic() + timeout_s
        if self.version == 2 and (self.dirs[0] / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                _write(self.dirs[0] / "cgroup.kill", "1")  # the cgroups inside it too
        while time.monotonic() < deadline:
            folders = sorted((f for path in self.dirs for f in _folders(path)), key=lambda f: -len(f.parts))
            for pid in self._pids(folders):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            gone = True
            for path in folders:  # the innermost first
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    gone = False
            if gone:
                return
            time.sleep(0.02)


def job_cgroup(limits: Limits, *, use_cgroups: bool = True) -> JobCgroup | None:
    """Make the cgroup of a whole job, whose processes go into cgroups inside it (the grader's
    worker in one, the kernel's, made by the launcher, in another: :attr:`SandboxConfig.cgroup`).

    :param limits: Limits of everything in it together (CPU quota, processes, memory).
    :param use_cgroups: Whether a cgroup may be used.
    :returns: The cgroup, made; ``None`` where none can be made. :meth:`JobCgroup.destroy` ends it.
    """
    hierarchy = _hierarchy() if use_cgroups else None
    if hierarchy is None:
        return None
    job = JobCgroup.name_for(hierarchy, f"job-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        job.create(limits, parent=True)
    except BaseException:
        job.destroy(timeout_s=1.0)
        raise
    return job


# --- sandbox uids --------------------------------------------------------------------------------


def _uids_in_use() -> set[int]:
    uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                uids.add(entry.stat(follow_symlinks=False).st_uid)
    return uids


def _allocate_uid(lock_dir: Path = _LOCK_DIR) -> tuple[int, int]:
    """Take a sandbox uid that no other job (of any grader process) holds and no process runs as.

    :param lock_dir: The folder of lock files, shared by all grader processes on the machine.
    :returns: The uid and the file descriptor that holds its lock (closing it releases the uid).
    """
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(lock_dir)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise RuntimeError(f"{lock_dir} must be a folder owned by the grader's user")
    busy = _uids_in_use()
    for uid in range(_BASE_UID, _BASE_UID + _UID_COUNT):
        if uid in busy:
            continue
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(lock_dir / f"uid-{uid}.lock", flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise RuntimeError(f"all {_UID_COUNT} sandbox uids from {_BASE_UID} are in use")


# --- protections ---------------------------------------------------------------------------------


def protections(*, use_bwrap: bool = True, use_cgroups: bool = True, jobs: int = 1) -> dict[str, bool]:
    """Which protections a kernel gets on this machine.

    :param use_bwrap: Whether bubblewrap may be used.
    :param use_cgroups: Whether a cgroup per job may be used.
    :param jobs: How many jobs run in parallel (CPU pinning needs more than one slot).
    :returns: Name of each protection and whether it is active.
    """
    bwrap = use_bwrap and _bwrap() is not None
    root = os.geteuid() == 0
    cgroups = use_cgroups and cgroups_available()
    cpus = os.cpu_count() or 1
    active = {
        "fresh kernel per submission": True,
        "own temp dir as cwd and HOME": True,
        "minimal environment": True,
        "wall-clock limits per cell and notebook": True,
        "memory, CPU time and file-size limits": True,
        # root ignores RLIMIT_NPROC; without a cgroup only a uid of the job's own makes it hold
        "process limit": cgroups or (bwrap and root) or not root,
        "process limit per job, unique across graders": cgroups or (bwrap and root),
        "CPU share per job (cgroup)": cgroups,
        "memory limit per job, shared memory included (cgroup)": cgroups and memory_cgroup_available(),
        "no keyrings or System V IPC (seccomp)": seccomp.program() is not None,
        "disk limit on HOME and /tmp (tmpfs)": bwrap,
        "job's processes all killed at its end": cgroups or bwrap,
        "no network": bwrap,
        "file system hidden (bubblewrap)": bwrap,
    }
    if not cgroups:  # the fallback, named apart: it holds against careless code, not hostile code
        active["CPUs pinned per job slot (no cgroup)"] = jobs > 1 and cpus > 1
    return active


def _readable_paths() -> list[str]:
    """What a kernel must be able to read: Python and the venv (of their site-packages, only the
    :attr:`SandboxConfig.site_entries`)."""
    paths = {sys.prefix, sys.base_prefix}
    return sorted(p for p in paths if Path(p).exists())


def write_kernel_spec(spec_dir: Path, config: SandboxConfig) -> Path:
    """Write a kernel spec named :data:`KERNEL_NAME` that starts kernels through the launcher.

    :param spec_dir: A folder to use as ``JUPYTER_PATH``; the spec goes to ``kernels/`` in it.
    :param config: The sandbox settings for this kernel.
    :returns: The folder to put on ``JUPYTER_PATH``.
    """
    config.readable = sorted({*config.readable, *_readable_paths()})
    kernel_dir = spec_dir / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    config_path = spec_dir / "sandbox.json"
    config_path.write_text(config.to_json())
    spec = {
        "argv": [sys.executable, "-m", _MODULE, str(config_path), "{connection_file}"],
        "display_name": "grading sandbox",
        "language": "python",
        "interrupt_mode": "message",  # a signal would reach the launcher, not the kernel
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    return spec_dir


# --- the job -------------------------------------------------------------------------------------


def _set_limits(limits: Limits, *, cgroup: bool = False) -> None:
    """Set the job's rlimits on the calling process.

    :param cgroup: The job has a cgroup: its ``pids.max`` is the process limit, and ``RLIMIT_NPROC``
        (per uid) is set a little above it, so that the cgroup's limit is always the one reached,
        counted in ``pids.events`` and reported the same way on every machine.
    """
    mb = 1024 * 1024
    for name, value in (
        (resource.RLIMIT_AS, limits.memory_mb * mb),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_FSIZE, limits.file_mb * mb),
        (resource.RLIMIT_NPROC, limits.processes + (64 if cgroup else 0)),
        (resource.RLIMIT_NOFILE, limits.files),
        (resource.RLIMIT_CORE, 0),
    ):
        hard = resource.getrlimit(name)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(name, (value, value))


def _die_with_parent() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: gone when the grader is gone


def slot_cpus(slot: int, jobs: int) -> set[int]:
    """The CPUs of one job slot when no cgroup is available (every CPU with one slot), of those
    this process may use."""
    cpus = sorted(os.sched_getaffinity(0))
    if jobs <= 1 or len(cpus) < 2:
        return set(cpus)
    return {cpu for i, cpu in enumerate(cpus) if i % jobs == slot % jobs} or set(cpus)


def _kernel_env(config: SandboxConfig, home: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in _MINIMAL_ENV if k in os.environ}
    env.update({"HOME": home, "TMPDIR": home, "PYTHONDONTWRITEBYTECODE": "1"})
    env.update({name: value.replace("{home}", home) for name, value in config.env.items()})
    return env


def _bwrap_argv(config: SandboxConfig, command: list[str], *, uid: int | None, data_fd: int | None,
                seccomp_fd: int | None = None) -> list[str]:
    disk = config.limits.disk_mb * 1024 * 1024
    argv = [
        _bwrap(), "--die-with-parent", "--new-session", "--clearenv",
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(disk), "--tmpfs", SANDBOX_HOME,
    ]
    if uid is None:  # not root: bubblewrap needs a user namespace of its own
        argv.append("--unshare-user")
    for top in ("usr", "lib", "lib64", "bin", "sbin", "lib32", "libx32"):
        path = Path("/") / top
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    for etc in ("/etc/fonts", "/etc/ld.so.cache", "/etc/ssl", "/etc/localtime", "/etc/alternatives"):
        if Path(etc).exists():
            argv += ["--ro-bind", etc, etc]
    mounts = [*config.readable, config.home]
    parents = sorted({str(p) for m in mounts for p in Path(m).parents if str(p) != "/"}, key=len)
    for parent in parents:  # made by bubblewrap; traversable for the kernel's uid
        argv += ["--perms", "0755", "--dir", parent]
    for path in config.readable:
        argv += ["--ro-bind", path, path]
    site = [folder for folder in config.site_folders if Path(folder).is_dir()]
    for folder in site:  # Python's site-packages: only the entries named, nothing of the instructor's
        argv += ["--perms", "0755", "--tmpfs", folder]
    for entry in config.site_entries:
        argv += ["--ro-bind", entry, entry]
    for folder in site:
        argv += ["--remount-ro", folder]
    argv += ["--bind", config.home, config.home]
    if data_fd is not None:
        argv += ["--perms", "0444", "--ro-bind-data", str(data_fd), _CONNECTION_INSIDE]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    # Nothing but the tmpfs and the socket folder is writable (bubblewrap's own root and /dev are
    # unlimited tmpfs, writable in a user namespace).
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_HOME]
    for key, value in _kernel_env(config, SANDBOX_HOME).items():
        argv += ["--setenv", key, value]
    if uid is not None:  # root: drop to this job's own uid, so RLIMIT_NPROC counts this job only
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", "--", *command]
    return [*argv, "--", *command]


class _Job:
    """One sandboxed job: its uid, its cgroup, its reaper. Use as a context manager."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.bwrap = bool(config.use_bwrap and _bwrap())
        self.uid: int | None = None
        self.cgroup: JobCgroup | None = None
        self._lock_fd: int | None = None
        self._reaper_fd: int | None = None

    def __enter__(self) -> _Job:
        try:
            if self.bwrap and os.geteuid() == 0:
                self.uid, self._lock_fd = _allocate_uid()
            hierarchy = _hierarchy() if self.config.use_cgroups else None
            if hierarchy is not None:  # inside the grader's cgroup of the whole job, or one of its own
                name = f"{os.getpid()}-{secrets.token_hex(4)}"
                name = f"{self.config.cgroup}/kernel-{name}" if self.config.cgroup else f"job-{name}"
                self.cgroup = JobCgroup.name_for(hierarchy, name)
            self._reaper_fd = self._start_reaper()
            if self.cgroup is not None:
                self.cgroup.create(self.config.limits)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill what is left of the job, remove its cgroup, release its uid (idempotent)."""
        if self.cgroup is not None:
            self.cgroup.destroy()
        if self.uid is not None and self._lock_fd is not None:  # before the uid goes back to the pool
            with contextlib.suppress(OSError):
                seccomp.purge_keys(self.uid)
        for name in ("_lock_fd", "_reaper_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def _start_reaper(self) -> int:
        """Fork a process, in a session of its own, that tears the job down once this one is gone."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid:
            os.close(read_end)
            return write_end
        try:  # the reaper: holds the uid lock (inherited) until the job's cgroup is gone
            os.close(write_end)
            os.setsid()
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            while os.read(read_end, 1):
                pass
            if self.cgroup is not None:
                self.cgroup.destroy()
        finally:
            os._exit(0)

    def start(
        self, command: list[str], *, data: bytes | None = None, pass_fds: tuple[int, ...] = ()
    ) -> subprocess.Popen:
        """Start ``command`` as the job: in its cgroup, under its limits, in bubblewrap where possible.

        :param command: What to run (inside the sandbox).
        :param data: The connection file's bytes, made readable inside the sandbox (bubblewrap only).
        :param pass_fds: File descriptors the command inherits.
        :returns: The started process (bubblewrap, or the command itself).
        """
        cpus = slot_cpus(self.config.slot, self.config.jobs) if self.cgroup is None else None
        filter_program = seccomp.program()

        def prepare() -> None:  # in the child, between fork and exec
            if self.cgroup is not None:
                self.cgroup.join()
            if cpus is not None:
                os.sched_setaffinity(0, cpus)
            _set_limits(self.config.limits, cgroup=self.cgroup is not None)
            if filter_program is not None and not self.bwrap:  # bubblewrap installs it itself
                seccomp.install(filter_program)

        fds = list(pass_fds)
        data_fd = seccomp_fd = None
        if self.bwrap and data is not None:
            data_fd = _pipe_with(data)  # a connection file (< 1 kB) fits in the pipe's buffer
            fds.append(data_fd)
        if self.bwrap and filter_program is not None:
            seccomp_fd = _pipe_with(filter_program)  # a few hundred bytes
            fds.append(seccomp_fd)
        try:
            if self.bwrap:
                argv = _bwrap_argv(self.config, command, uid=self.uid, data_fd=data_fd, seccomp_fd=seccomp_fd)
                return subprocess.Popen(argv, env={}, pass_fds=fds, preexec_fn=prepare)  # noqa: PLW1509
            home = self.config.home
            return subprocess.Popen(command, env=_kernel_env(self.config, home), cwd=home, pass_fds=fds,
                                    preexec_fn=prepare)  # noqa: PLW1509
        finally:
            for fd in (data_fd, seccomp_fd):
                if fd is not None:
                    os.close(fd)


def _pipe_with(data: bytes) -> int:
    """The read end of a pipe that holds ``data`` (small enough for the pipe's buffer), then its end."""
    read_end, write_end = os.pipe()
    os.write(write_end, data)
    os.close(write_end)
    return read_end


def _forward_termination(proc: subprocess.Popen) -> None:
    def handler(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            proc.kill()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def _wait_for_gate(gate: socket.socket, proc: subprocess.Popen, on_ready: Callable[[], None]) -> None:
    """Wait until the kernel has bound its sockets (or died); then ``on_ready`` and let it go on."""
    gate.settimeout(0.2)
    while proc.poll() is None:
        try:
            if not gate.recv(1):
                return
        except TimeoutError:
            continue
        except OSError:
            return
        on_ready()
        with contextlib.suppress(OSError):
            gate.sendall(b"g")
        return


def launch(config: SandboxConfig, connection_file: str) -> int:
    """Run one sandboxed kernel as a job and tear the job down when it ends.

    :param config: Sandbox settings.
    :param connection_file: The kernel connection file written by the grader's kernel manager.
    :returns: The kernel's exit status (negative: killed by that signal).
    """
    _die_with_parent()
    home = Path(config.home)
    with _Job(config) as job:
        inside, kernel_end = socket.socketpair()
        if job.bwrap:
            connection, data = _CONNECTION_INSIDE, Path(connection_file).read_bytes()
        else:
            connection, data = connection_file, None
        if job.uid is not None:  # the kernel binds its sockets here, then the folder is root's again
            os.chown(home, job.uid, job.uid)
            os.chmod(home, 0o700)
        command = [sys.executable, "-m", _KERNEL_MODULE, str(kernel_end.fileno()), connection]
        try:
            proc = job.start(command, data=data, pass_fds=(kernel_end.fileno(),))
        finally:
            kernel_end.close()
        _forward_termination(proc)

        def revoke() -> None:
            if job.uid is not None:
                os.chown(home, 0, 0)
                os.chmod(home, 0o700)

        _wait_for_gate(inside, proc, revoke)
        revoke()
        status = _wait_within_process_limit(job, proc, home)
        inside.close()
    return status


def _wait_within_process_limit(job: _Job, proc: subprocess.Popen, home: Path) -> int:
    """Wait for the kernel; stop the whole job as soon as it reaches its process limit.

    A fork bomb that fills ``pids.max`` could leave its kernel alive but starved, or dead, as the
    scheduler decides, and one that forks slowly (a large kernel's page tables) might not fill it
    before the cell's limit; stopping the job at the first refused fork or past
    :attr:`Limits.children` processes makes the outcome the same on every machine. The mark
    tells the worker why the kernel died. Without a cgroup there is no counter: the kernel gets
    ``BlockingIOError`` and goes on.
    """
    while True:
        try:
            return proc.wait(0.2)
        except subprocess.TimeoutExpired:
            if job.cgroup is not None and job.cgroup.hit_process_limit(job.config.limits.children):
                with contextlib.suppress(OSError):
                    (home / PROCESS_LIMIT_MARK).touch()
                job.cgroup.destroy()


def run_command(config: SandboxConfig, command: list[str], *, timeout_s: float | None = None) -> int:
    """Run a command (not a kernel) as a job under the same sandbox, limits, cgroup and uid.

    For tests and benchmarks of the isolation. The job's folder (:attr:`SandboxConfig.home`) is
    mounted, but as root it is not writable for the command.

    :param config: Sandbox settings.
    :param command: The command and its arguments, as seen inside the sandbox.
    :param timeout_s: Kill the job after this many seconds.
    :returns: The command's exit status (negative: killed by that signal).
    """
    with _Job(config) as job:
        proc = job.start(command)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def _exit_status(status: int) -> None:
    sys.exit(128 - status if status < 0 else status)


def main(argv: list[str] | None = None) -> None:
    """Launcher entry point.

    ``python -m <package>.sandbox CONFIG CONNECTION_FILE`` starts a kernel;
    ``... --command CONFIG -- COMMAND...`` runs a command under the same sandbox (see :func:`run_command`).
    """
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # the worker ignores it; the job gets the default
    if len(args) >= 4 and args[0] == "--command" and args[2] == "--":
        _die_with_parent()
        _exit_status(run_command(SandboxConfig.from_json(Path(args[1]).read_text()), args[3:]))
    if len(args) != 2:
        sys.exit(f"usage: python -m {_MODULE} CONFIG.json CONNECTION_FILE\n"
                 f"       python -m {_MODULE} --command CONFIG.json -- COMMAND...")
    _exit_status(launch(SandboxConfig.from_json(Path(args[0]).read_text()), args[1]))


if __name__ == "__main__":
    main()
