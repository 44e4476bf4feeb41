"""Job cgroups (v1 or v2): a CPU share, a process limit and a memory limit per job, and teardown.

A job's cgroup (cgroup v2 ``cpu``/``pids`` delegated at the hierarchy's root, or the v1 ``cpu`` and
``pids`` controllers; in practice: the grader runs as root) gives it an equal CPU weight
(``cpu.weight``/``cpu.shares``), ``pids.max`` = :attr:`.limits.Limits.processes` and, where the
``memory`` controller is there, a memory limit of the job as a whole
(:attr:`.limits.Limits.job_memory_mb`: tmpfs and shared memory pages are charged to it too). Group
scheduling makes the share a property of the job, not of its processes: 64 spinning children
(``setsid`` or not) get together what one neighbour job gets.

The grader probes the hierarchy once per run (:func:`prepare_hierarchy`, which also makes the
parent of all jobs and removes the empty cgroups of graders killed earlier) and hands the
:class:`Hierarchy` to each job.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from .limits import Limits

__all__ = ["CGROUP_FS", "CGROUP_PARENT", "Hierarchy", "JobCgroup", "cgroups_available", "job_cgroup",
           "memory_cgroup_available", "prepare_hierarchy"]

CGROUP_FS = Path("/sys/fs/cgroup")
CGROUP_PARENT = "grading-sandbox"  # job cgroups are grading-sandbox/job-<pid>-<random>
_PERIOD_US = 100_000


@dataclass(frozen=True)
class Hierarchy:
    """Where job cgroups go: one parent folder (v2), or one per v1 controller (cpu, pids[, memory]
    [, cpuacct where it is mounted apart from cpu]).

    :param version: 1 or 2.
    :param parents: The parent folder(s) of all jobs.
    :param memory: Whether the ``memory`` controller limits each job.
    """

    version: int
    parents: tuple[Path, ...]
    memory: bool = False

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (read back by :meth:`from_dict`)."""
        return {"version": self.version, "parents": [str(p) for p in self.parents], "memory": self.memory}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Hierarchy:
        """Read what :meth:`to_dict` wrote.

        :raises ValueError: ``raw`` is not such a record.
        """
        version, parents, memory = raw.get("version"), raw.get("parents"), raw.get("memory")
        if version not in (1, 2) or not isinstance(parents, list) or not isinstance(memory, bool):
            raise ValueError(f"not a cgroup hierarchy record: {raw!r}")
        return cls(int(str(version)), tuple(Path(str(p)) for p in parents), memory)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _v2_controllers(memory: bool) -> str:
    """What a v2 cgroup of jobs hands to its children (``cgroup.subtree_control``)."""
    return "+cpu +pids" + (" +memory" if memory else "")


def _v2_root() -> Path | None:
    for root in (CGROUP_FS, CGROUP_FS / "unified"):
        controllers = root / "cgroup.controllers"
        if controllers.exists() and {"cpu", "pids"} <= set(controllers.read_text().split()):
            return root
    return None


def _prepare_parents() -> Hierarchy | None:
    """Create (once) the parent cgroup(s) of all jobs; ``None`` when this process cannot."""
    try:
        root = _v2_root()
        if root is not None:
            parent = root / CGROUP_PARENT
            memory = "memory" in (root / "cgroup.controllers").read_text().split()
            wanted = _v2_controllers(memory)
            _write(root / "cgroup.subtree_control", wanted)
            parent.mkdir(exist_ok=True)
            _write(parent / "cgroup.subtree_control", wanted)
            _remove_orphans([parent])
            return Hierarchy(2, (parent,), memory)
        cpu, pids, memory_fs = CGROUP_FS / "cpu", CGROUP_FS / "pids", CGROUP_FS / "memory"
        if not ((cpu / "cpu.shares").exists() and (pids / "cgroup.procs").exists()):
            return None
        parents = [cpu / CGROUP_PARENT, pids / CGROUP_PARENT]
        has_memory = (memory_fs / "memory.limit_in_bytes").exists()
        if has_memory:
            parents.append(memory_fs / CGROUP_PARENT)
        accounting = CGROUP_FS / "cpuacct"  # CPU time used, where not mounted with cpu (cpu,cpuacct)
        if (accounting / "cpuacct.usage").exists() and not (cpu / "cpuacct.usage").exists():
            parents.append(accounting / CGROUP_PARENT)
        for path in parents:
            path.mkdir(exist_ok=True)
        # All jobs together weigh like one busy process per CPU against the rest of the machine.
        _write(cpu / CGROUP_PARENT / "cpu.shares", str(1024 * (os.cpu_count() or 1)))
        _remove_orphans(parents)
        return Hierarchy(1, tuple(parents), has_memory)
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
def prepare_hierarchy() -> Hierarchy | None:
    """The cgroup hierarchy for jobs, made and probed once per process (a cgroup made and removed).

    :returns: ``None`` where this process cannot give a job a cgroup with ``cpu`` and ``pids``.
    """
    hierarchy = _prepare_parents()
    if hierarchy is None:
        return None
    probe = f"probe-{os.getpid()}-{secrets.token_hex(4)}"
    made = []
    try:
        for parent in hierarchy.parents:
            (parent / probe).mkdir()
            made.append(parent / probe)
        if not any((path / "pids.max").exists() for path in made):
            return None
        return hierarchy
    except OSError:
        return None
    finally:
        for path in made:
            with contextlib.suppress(OSError):
                path.rmdir()


def memory_cgroup_available() -> bool:
    """Whether each job's cgroup also limits the memory of the job as a whole (probed once per process)."""
    hierarchy = prepare_hierarchy()
    return hierarchy is not None and hierarchy.memory


def cgroups_available() -> bool:
    """Whether this process can give each job a cgroup of its own (probed once per process)."""
    return prepare_hierarchy() is not None


@dataclass(frozen=True)
class JobCgroup:
    """The cgroup folders of one job (one per v1 controller; one on v2), or of a part of a job."""

    version: int
    dirs: tuple[Path, ...]
    memory: bool = False

    @classmethod
    def name_for(cls, hierarchy: Hierarchy, name: str) -> JobCgroup:
        """The cgroup ``name`` below the parent(s) of all jobs (not yet made)."""
        return cls(hierarchy.version, tuple(parent / name for parent in hierarchy.parents), hierarchy.memory)

    @property
    def name(self) -> str:
        """Its path below the parent of all jobs (``job-12-ab34cd56/worker``), for the launcher's config."""
        parts = self.dirs[0].parts
        return "/".join(parts[len(parts) - parts[::-1].index(CGROUP_PARENT):])

    def child(self, name: str) -> JobCgroup:
        """A cgroup inside this one (not yet made)."""
        return JobCgroup(self.version, tuple(path / name for path in self.dirs), self.memory)

    def _controller(self, name: str) -> Path:
        """The folder of the v1 controller ``name`` (on v2, the only one)."""
        if self.version == 2:
            return self.dirs[0]
        return next(path for path in self.dirs if path.relative_to(CGROUP_FS).parts[0] == name)

    def create(self, limits: Limits | None, *, parent: bool = False) -> None:
        """Make the folders and set ``limits`` (``None``: only those of the cgroups above it apply).

        :param parent: Its processes go into cgroups inside it (on v2 it hands its controllers on,
            and holds no process of its own).
        :raises OSError: A folder or a limit could not be made.
        """
        for path in self.dirs:
            path.mkdir()
        if parent and self.version == 2:
            _write(self.dirs[0] / "cgroup.subtree_control", _v2_controllers(self.memory))
        if limits is None:
            return
        memory = limits.job_memory_mb * 1024 * 1024
        if self.version == 2:
            (job,) = self.dirs
            _write(job / "cpu.weight", "100")
            _write(job / "cpu.max", f"max {_PERIOD_US}")
            _write(job / "pids.max", str(limits.processes))
            if self.memory:  # all of the job's memory, shared memory and tmpfs pages included; no swap
                _write(job / "memory.max", str(memory))
                with contextlib.suppress(OSError):
                    _write(job / "memory.swap.max", "0")
        else:
            cpu = self._controller("cpu")
            _write(cpu / "cpu.shares", "1024")
            _write(cpu / "cpu.cfs_period_us", str(_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", "-1")
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


def job_cgroup(limits: Limits, hierarchy: Hierarchy | None) -> JobCgroup | None:
    """Make the cgroup of a whole job, whose processes go into cgroups inside it (the grader's
    worker in one, the kernel's, made by the launcher, in another).

    :param limits: Limits of everything in it together (processes, memory).
    :param hierarchy: Where job cgroups go (:func:`prepare_hierarchy`); ``None``: no cgroup.
    :returns: The cgroup, made; ``None`` without a hierarchy. :meth:`JobCgroup.destroy` ends it.
    :raises OSError: The cgroup could not be made (what was made is removed).
    """
    if hierarchy is None:
        return None
    job = JobCgroup.name_for(hierarchy, f"job-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        job.create(limits, parent=True)
    except BaseException:
        job.destroy(timeout_s=1.0)
        raise
    return job
