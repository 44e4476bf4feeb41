"""What the sandbox can give a job on this machine, probed once per grading run.

The grader probes (:func:`probe_capabilities`) before any job starts: whether bubblewrap creates a
sandbox here, which cgroup hierarchy a job gets (v1 or v2, with or without ``memory``), whether
the seccomp filter exists for this machine, whether the grader is root (a uid per job). The record
goes with each job to its launcher, which uses exactly that and probes nothing again; a job that
cannot get what the record promises fails (:class:`.protections.ProtectionUnavailable`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

from . import seccomp
from .cgroups import Hierarchy, prepare_hierarchy

__all__ = ["Capabilities", "bwrap_path", "bwrap_works", "probe_capabilities"]


@dataclass(frozen=True)
class Capabilities:
    """The sandbox's capabilities that a grading run promises each of its jobs.

    :param bwrap: Bubblewrap creates a sandbox here (and may be used).
    :param cgroups: Where each job's cgroup goes (its version, parents, ``memory``); ``None``: no cgroup.
    :param seccomp: The seccomp filter exists for this machine (:func:`.seccomp.program`).
    :param root: The grader runs as root (with bubblewrap: a pool uid per job).
    """

    bwrap: bool = False
    cgroups: Hierarchy | None = None
    seccomp: bool = False
    root: bool = False

    @property
    def own_uid(self) -> bool:
        """Each job's kernel runs under a pool uid of its own (root and bubblewrap)."""
        return self.bwrap and self.root

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready form (read back by :meth:`from_dict`)."""
        return {"bwrap": self.bwrap, "cgroups": None if self.cgroups is None else self.cgroups.to_dict(),
                "seccomp": self.seccomp, "root": self.root}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> Capabilities:
        """Read what :meth:`to_dict` wrote.

        :raises ValueError: ``raw`` is not such a record.
        """
        cgroups = raw.get("cgroups")
        flags = {name: raw.get(name) for name in ("bwrap", "seccomp", "root")}
        if not all(isinstance(value, bool) for value in flags.values()) or not isinstance(cgroups, dict | None):
            raise ValueError(f"not a record of sandbox capabilities: {raw!r}")
        return cls(bwrap=flags["bwrap"] is True, seccomp=flags["seccomp"] is True, root=flags["root"] is True,
                   cgroups=None if cgroups is None else Hierarchy.from_dict(cgroups))


def bwrap_path() -> str | None:
    """The bubblewrap executable on ``PATH``; ``None`` where there is none."""
    path = shutil.which("bwrap")
    return path if path and os.access(path, os.X_OK) else None


@functools.cache
def bwrap_works() -> bool:
    """Whether bubblewrap is installed and can create a sandbox here (run once per process)."""
    bwrap = bwrap_path()
    if bwrap is None:
        return False
    probe = [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


@functools.cache
def probe_capabilities(*, use_bwrap: bool = True, use_cgroups: bool = True) -> Capabilities:
    """Probe what a job can get here (once per process and pair of switches).

    :param use_bwrap: Whether bubblewrap may be used.
    :param use_cgroups: Whether a cgroup per job may be used.
    """
    return Capabilities(bwrap=use_bwrap and bwrap_works(), cgroups=prepare_hierarchy() if use_cgroups else None,
                        seccomp=seccomp.program() is not None, root=os.geteuid() == 0)
