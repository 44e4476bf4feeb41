"""The protections report: which protections a job gets, from the run's sandbox capabilities.

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

import os

from .capabilities import Capabilities, probe_capabilities

__all__ = ["BWRAP", "CGROUP", "CGROUP_MEMORY", "OWN_UID", "SECCOMP", "ProtectionUnavailable", "protections"]

CGROUP = "CPU share per job (cgroup)"
CGROUP_MEMORY = "memory limit per job, shared memory included (cgroup)"
BWRAP = "file system hidden (bubblewrap)"
SECCOMP = "no keyrings or System V IPC (seccomp)"
OWN_UID = "process limit per job, unique across graders"
PINNED = "CPUs pinned per job slot (no cgroup)"


class ProtectionUnavailable(RuntimeError):
    """A job could not get a protection that its grading run promised (and reported in its results header).

    :param protection: The protection's name in :func:`protections`.
    :param reason: What failed.
    """

    def __init__(self, protection: str, reason: str) -> None:
        self.protection, self.reason = protection, reason
        super().__init__(f"the sandbox could not give this notebook the protection the run promised, "
                         f"'{protection}' ({reason}); nothing of it ran without that protection: grade it again, "
                         f"and if it recurs check the grading machine")


def protections(capabilities: Capabilities | None = None, *, jobs: int = 1) -> dict[str, bool]:
    """Which protections a kernel gets, from what the sandbox can give.

    :param capabilities: The run's capabilities (default: :func:`.capabilities.probe_capabilities`).
    :param jobs: How many jobs run in parallel (CPU pinning needs more than one slot).
    :returns: Name of each protection and whether it is active.
    """
    caps = probe_capabilities() if capabilities is None else capabilities
    bwrap, root, cgroups = caps.bwrap, caps.root, caps.cgroups is not None
    active = {
        "fresh kernel per submission": True,
        "own temp dir as cwd and HOME": True,
        "minimal environment": True,
        "wall-clock limits per cell and notebook": True,
        "memory, CPU time and file-size limits": True,
        # root ignores RLIMIT_NPROC; without a cgroup only a uid of the job's own makes it hold
        "process limit": cgroups or caps.own_uid or not root,
        OWN_UID: cgroups or caps.own_uid,
        CGROUP: cgroups,
        CGROUP_MEMORY: caps.cgroups is not None and caps.cgroups.memory,
        SECCOMP: caps.seccomp,
        "disk limit on HOME and /tmp (tmpfs)": bwrap,
        "job's processes all killed at its end": cgroups or bwrap,
        "no network": bwrap,
        BWRAP: bwrap,
    }
    if not cgroups:  # the fallback, named apart: it holds against careless code, not hostile code
        active[PINNED] = jobs > 1 and (os.cpu_count() or 1) > 1
    return active
