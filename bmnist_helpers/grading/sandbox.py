"""The grading sandbox: how a student's kernel is started.

nbval (outside the sandbox) holds the notebook, the expected outputs and the hidden-check
references. It starts the kernel through this module's launcher, named in a kernel spec::

    python -m bmnist_helpers.grading.sandbox CONFIG.json CONNECTION_FILE

The launcher applies resource limits, then runs ``ipykernel`` in a fresh temp dir (working
directory and ``HOME``) with a minimal environment. Where bubblewrap exists it also hides the
file system (only Python, the kit's helper package, the MNIST cache and the temp dir are visible),
cuts the network, and, when the grader runs as root, runs the kernel as an unprivileged uid of its
own so that the process limit holds. The kernel talks to nbval over IPC (Unix sockets in the temp
dir), which needs no network.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Limits", "SandboxConfig", "protections", "write_kernel_spec", "KERNEL_NAME"]

KERNEL_NAME = "bmnist-sandbox"
_BASE_UID = 61000  # kernels of parallel jobs get uids 61000, 61001, ...
_MINIMAL_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one kernel."""

    memory_mb: int = 4096
    cpu_s: int = 1200
    file_mb: int = 64
    processes: int = 512


@dataclass
class SandboxConfig:
    """Everything the launcher needs; written as JSON next to the kernel spec."""

    home: str
    limits: Limits = field(default_factory=Limits)
    slot: int = 0
    use_bwrap: bool = True
    readable: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

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


def protections(*, use_bwrap: bool = True) -> dict[str, bool]:
    """Which protections a kernel gets on this machine.

    :param use_bwrap: Whether bubblewrap may be used.
    :returns: Name of each protection and whether it is active.
    """
    bwrap = use_bwrap and _bwrap() is not None
    return {
        "fresh kernel per submission": True,
        "own temp dir as cwd and HOME": True,
        "minimal environment": True,
        "wall-clock limits per cell and notebook": True,
        "memory, CPU time and file-size limits": True,
        "process limit": bwrap or os.geteuid() != 0,  # root ignores RLIMIT_NPROC
        "no network": bwrap,
        "file system hidden (bubblewrap)": bwrap,
    }


def _readable_paths() -> list[str]:
    """What a kernel must be able to read: Python, the venv, the kit's helper package."""
    import bmnist_helpers

    paths = {
        sys.prefix,
        sys.base_prefix,
        sysconfig.get_paths()["purelib"],
        str(Path(bmnist_helpers.__file__).resolve().parent),
    }
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
        "argv": [sys.executable, "-m", "bmnist_helpers.grading.sandbox", str(config_path), "{connection_file}"],
        "display_name": "bmnist (grading sandbox)",
        "language": "python",
        "interrupt_mode": "message",  # a signal would reach bubblewrap, not the kernel
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    return spec_dir


def _set_limits(limits: Limits) -> None:
    mb = 1024 * 1024
    for name, value in (
        (resource.RLIMIT_AS, limits.memory_mb * mb),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_FSIZE, limits.file_mb * mb),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_CORE, 0),
    ):
        hard = resource.getrlimit(name)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(name, (value, value))


def _die_with_parent() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: gone when nbval is gone


def _bwrap_argv(config: SandboxConfig, connection_file: str, uid: int | None) -> list[str]:
    argv = [
        _bwrap(), "--die-with-parent", "--new-session", "--clearenv",
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
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
    argv += ["--bind", config.home, config.home, "--chdir", config.home]
    for key, value in _kernel_env(config).items():
        argv += ["--setenv", key, value]
    command = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file]
    if uid is not None:  # root: drop to a uid of this job's own, so RLIMIT_NPROC applies
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", "--", *command]
    return [*argv, "--", *command]


def _kernel_env(config: SandboxConfig) -> dict[str, str]:
    env = {k: os.environ[k] for k in _MINIMAL_ENV if k in os.environ}
    env.update({"HOME": config.home, "TMPDIR": config.home, "MPLBACKEND": "module://matplotlib_inline.backend_inline",
                "PYTHONDONTWRITEBYTECODE": "1", "JAX_PLATFORMS": "cpu"})
    env.update(config.env)
    return env


def launch(config: SandboxConfig, connection_file: str) -> None:
    """Apply the limits and replace this process with the sandboxed kernel (never returns).

    :param config: Sandbox settings.
    :param connection_file: The kernel connection file written by nbval's kernel manager.
    """
    home = Path(config.home)
    uid = _BASE_UID + config.slot if os.geteuid() == 0 and config.use_bwrap and _bwrap() else None
    # The connection file holds the HMAC key; give the kernel its own readable copy in its dir.
    conn = home / ".kernel-connection.json"
    conn.write_text(Path(connection_file).read_text())
    if uid is not None:
        for path in (home, conn):
            os.chown(path, uid, uid)
        os.chmod(conn, 0o600)
    os.environ.clear()
    _die_with_parent()
    if config.use_bwrap and _bwrap():
        argv = _bwrap_argv(config, str(conn), uid)
        _set_limits(config.limits)
        os.execv(argv[0], argv)
    env = _kernel_env(config)
    os.chdir(home)
    _set_limits(config.limits)
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", str(conn)], env)


def main(argv: list[str] | None = None) -> None:
    """Launcher entry point: ``python -m bmnist_helpers.grading.sandbox CONFIG CONNECTION_FILE``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.exit("usage: python -m bmnist_helpers.grading.sandbox CONFIG.json CONNECTION_FILE")
    launch(SandboxConfig.from_json(Path(args[0]).read_text()), args[1])


if __name__ == "__main__":
    main()
