"""A job's resource limits, and the per-process part of them (rlimits, CPU pinning of a slot).

The cgroup part of the same limits (a job's CPU share, ``pids.max``, memory) is :mod:`.cgroups`.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

__all__ = ["PROCESS_LIMIT_MARK", "Limits", "set_rlimits", "slot_cpus"]

# Written into the job's folder by its launcher when the job reached its process limit and was stopped for it.
PROCESS_LIMIT_MARK = "process-limit-reached"

_NPROC_SLACK = 64  # RLIMIT_NPROC above pids.max, so that the cgroup's limit is always the one reached


@dataclass(frozen=True)
class Limits:
    """Resource limits for one job (a kernel and everything it starts).

    :param memory_mb: Address space per process (``RLIMIT_AS``).
    :param cpu_s: CPU seconds per process (``RLIMIT_CPU``).
    :param file_mb: Largest file a process may write (``RLIMIT_FSIZE``).
    :param processes: Processes and threads of the whole job (cgroup ``pids.max``; ``RLIMIT_NPROC``).
    :param disk_mb: Size of the tmpfs that holds the kernel's HOME, cwd and TMPDIR (bubblewrap).
    :param files: Open files per process (``RLIMIT_NOFILE``).
    :param children: Processes (not threads) of a kernel's job; past it, or at ``processes``, the
        job is stopped (cgroup only): a fork bomb is stopped however slowly it forks.
    """

    memory_mb: int = 4096
    cpu_s: int = 1200
    file_mb: int = 64
    processes: int = 512
    disk_mb: int = 512
    files: int = 1024
    children: int = 128

    @property
    def job_memory_mb(self) -> int:
        """Memory of the whole job (cgroup): one process's limit and the tmpfs, whose pages it is charged."""
        return self.memory_mb + self.disk_mb


def set_rlimits(limits: Limits, *, cgroup: bool = False) -> None:
    """Set the job's rlimits on the calling process (soft = hard, within the hard limits it has).

    :param cgroup: The job has a cgroup: its ``pids.max`` is the process limit, and ``RLIMIT_NPROC``
        (per uid) is set a little above it, so that the cgroup's limit is always the one reached,
        counted in ``pids.events`` and reported the same way on every machine.
    """
    mb = 1024 * 1024
    for name, value in (
        (resource.RLIMIT_AS, limits.memory_mb * mb),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_FSIZE, limits.file_mb * mb),
        (resource.RLIMIT_NPROC, limits.processes + (_NPROC_SLACK if cgroup else 0)),
        (resource.RLIMIT_NOFILE, limits.files),
        (resource.RLIMIT_CORE, 0),
    ):
        hard = resource.getrlimit(name)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(name, (value, value))


def slot_cpus(slot: int, jobs: int) -> set[int]:
    """The CPUs of one job slot when no cgroup is available (every CPU with one slot), of those
    this process may use.

    :param slot: The slot, ``0 .. jobs - 1``.
    :param jobs: How many slots run side by side.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if jobs <= 1 or len(cpus) < 2:
        return set(cpus)
    return {cpu for i, cpu in enumerate(cpus) if i % jobs == slot % jobs} or set(cpus)
