"""The kernel spec of the grading sandbox, and the launcher's configuration written beside it.

The grader's kernel manager starts each kernel through the launcher (:mod:`.launcher`) named in
the spec: ``python -m <package>.launcher CONFIG.json CONNECTION_FILE``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .capabilities import Capabilities, probe_capabilities
from .limits import Limits

__all__ = ["KERNEL_NAME", "LAUNCHER_MODULE", "SandboxConfig", "readable_paths", "write_kernel_spec"]

KERNEL_NAME = "grading-sandbox"
LAUNCHER_MODULE = f"{__package__}.launcher"  # the launcher, as the kernel spec starts it


@dataclass
class SandboxConfig:
    """Everything the launcher needs; written as JSON next to the kernel spec.

    :param home: The job's own folder, outside the sandbox, shared with the grader: the kernel's
        IPC sockets go there. Without bubblewrap it is also the kernel's HOME and working directory.
    :param limits: Resource limits of the job.
    :param slot: This job's parallel slot (``0 .. jobs - 1``): its CPUs when it has no cgroup.
    :param jobs: How many jobs run in parallel; with more than one and no cgroup, each slot gets
        its own CPUs.
    :param capabilities: What the run promises the job (default: what this process probes, once):
        the launcher uses exactly that, and fails where it cannot get it.
    :param cgroup: The grader's cgroup of the whole job (:attr:`.cgroups.JobCgroup.name`, made by
        :func:`.cgroups.job_cgroup`): the kernel's cgroup, with :attr:`limits`, is made inside it.
        ``None``: the kernel's cgroup is a job of its own.
    :param readable: Extra folders the kernel may read.
    :param env: Extra environment variables for the kernel; ``{home}`` in a value is the kernel's home.
    :param site_folders: Python's site-packages folders, shown empty (bubblewrap) except for...
    :param site_entries: ...these entries of them (see :func:`.kernel_path.site_view`).
    :param report: Where the launcher writes what the job got (:class:`.launcher.JobSandbox`), a
        path outside the sandbox; ``None``: nowhere.
    :param cache: The lesson's cache folder (:class:`.lessons.SharedCache`) outside the sandbox, shown
        to the kernel at :data:`.bwrap.CACHE_INSIDE`: read-only, or writable with
        :attr:`cache_writable` (the warm-up job's). ``None``: a private folder in the kernel's home.
    """

    home: str
    limits: Limits = field(default_factory=Limits)
    slot: int = 0
    jobs: int = 1
    capabilities: Capabilities = field(default_factory=probe_capabilities)
    cgroup: str | None = None
    readable: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    site_folders: list[str] = field(default_factory=list)
    site_entries: list[str] = field(default_factory=list)
    report: str | None = None
    cache: str | None = None
    cache_writable: bool = False

    def to_json(self) -> str:
        """Serialise for the launcher."""
        raw = {name: getattr(self, name) for name in self.__dataclass_fields__}
        raw["limits"] = asdict(self.limits)
        raw["capabilities"] = self.capabilities.to_dict()
        return json.dumps(raw)

    @classmethod
    def from_json(cls, text: str) -> SandboxConfig:
        """Read what :meth:`to_json` wrote.

        :raises ValueError: ``text`` is not such a configuration.
        """
        raw = json.loads(text)
        raw["limits"] = Limits(**raw["limits"])
        raw["capabilities"] = Capabilities.from_dict(raw["capabilities"])
        return cls(**raw)


def readable_paths() -> list[str]:
    """What a kernel must be able to read: Python and the venv (of their site-packages, only the
    :attr:`SandboxConfig.site_entries`)."""
    paths = {sys.prefix, sys.base_prefix}
    return sorted(p for p in paths if Path(p).exists())


def write_kernel_spec(spec_dir: Path, config: SandboxConfig) -> Path:
    """Write a kernel spec named :data:`KERNEL_NAME` that starts kernels through the launcher.

    :param spec_dir: A folder to use as ``JUPYTER_PATH``; the spec goes to ``kernels/`` in it.
    :param config: The sandbox settings for this kernel (its :attr:`~SandboxConfig.readable` gains
        :func:`readable_paths`).
    :returns: The folder to put on ``JUPYTER_PATH``.
    """
    config.readable = sorted({*config.readable, *readable_paths()})
    kernel_dir = spec_dir / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    config_path = spec_dir / "sandbox.json"
    config_path.write_text(config.to_json())
    spec = {
        "argv": [sys.executable, "-m", LAUNCHER_MODULE, str(config_path), "{connection_file}"],
        "display_name": "grading sandbox",
        "language": "python",
        "interrupt_mode": "message",  # a signal would reach the launcher, not the kernel
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    return spec_dir
