"""The bubblewrap command line of a job, and the kernel's minimal environment.

Only Python, the kit's helper package, the folders the lesson names (a data cache, say), the
lesson's shared cache and the job's socket folder are visible (read-only, except the sockets and
the warm-up job's cache); no network; a pid namespace (all of the job dies with it); ``HOME``, the
working directory and ``TMPDIR`` are ``/tmp``, a tmpfs of :attr:`.limits.Limits.disk_mb` (a write
past it is ``OSError: [Errno 28] No space left on device`` in the student's own cell); every other
file system in the sandbox is read-only.
"""

from __future__ import annotations

import os
from pathlib import Path

from .kernelspec import SandboxConfig

__all__ = ["CACHE_INSIDE", "CONNECTION_INSIDE", "SANDBOX_HOME", "PRIVATE_CACHE", "bwrap_argv", "kernel_env"]

SANDBOX_HOME = "/tmp"  # HOME, cwd and TMPDIR inside bubblewrap: the size-limited tmpfs
CONNECTION_INSIDE = "/run/grading/kernel.json"  # the connection file, as the kernel sees it
CACHE_INSIDE = "/run/grading/cache"  # the lesson's shared cache folder, as the kernel sees it
PRIVATE_CACHE = ".shared-cache"  # in the kernel's home: the cache folder of a job that has no shared one
_MINIMAL_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_TOP_FOLDERS = ("usr", "lib", "lib64", "bin", "sbin", "lib32", "libx32")
_ETC = ("/etc/fonts", "/etc/ld.so.cache", "/etc/ssl", "/etc/localtime", "/etc/alternatives")


def kernel_env(config: SandboxConfig, home: str, *, cache: str | None = None) -> dict[str, str]:
    """The kernel's whole environment: a few of this process's variables, its home, the config's own
    (``{home}`` and ``{cache}`` in a value filled in).

    :param cache: The cache folder as the kernel sees it; ``None``: :data:`PRIVATE_CACHE` in ``home``.
    """
    env = {k: os.environ[k] for k in _MINIMAL_ENV if k in os.environ}
    env.update({"HOME": home, "TMPDIR": home, "PYTHONDONTWRITEBYTECODE": "1"})
    cache = cache or f"{home}/{PRIVATE_CACHE}"
    env.update({name: value.replace("{home}", home).replace("{cache}", cache) for name, value in config.env.items()})
    return env


def bwrap_argv(config: SandboxConfig, command: list[str], *, bwrap: str, uid: int | None, data_fd: int | None,
               seccomp_fd: int | None = None) -> list[str]:
    """The command line that runs ``command`` in bubblewrap.

    :param bwrap: The bubblewrap executable.
    :param uid: The job's pool uid (root only: dropped to with ``setpriv``); ``None``: a user namespace.
    :param data_fd: A pipe holding the connection file, shown read-only at :data:`CONNECTION_INSIDE`.
    :param seccomp_fd: A pipe holding the seccomp filter, which bubblewrap installs.
    """
    disk = config.limits.disk_mb * 1024 * 1024
    argv = [
        bwrap, "--die-with-parent", "--new-session", "--clearenv",
        "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(disk), "--tmpfs", SANDBOX_HOME,
    ]
    if uid is None:  # not root: bubblewrap needs a user namespace of its own
        argv.append("--unshare-user")
    for top in _TOP_FOLDERS:
        path = Path("/") / top
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.exists():
            argv += ["--ro-bind", str(path), str(path)]
    for etc in _ETC:
        if Path(etc).exists():
            argv += ["--ro-bind", etc, etc]
    mounts = [*config.readable, config.home]
    parents = sorted({str(p) for m in mounts for p in Path(m).parents if str(p) != "/"}, key=len)
    for parent in parents:  # made by bubblewrap; traversable for the kernel's uid
        argv += ["--perms", "0755", "--dir", parent]
    for folder in config.readable:
        argv += ["--ro-bind", folder, folder]
    site = [folder for folder in config.site_folders if Path(folder).is_dir()]
    for folder in site:  # Python's site-packages: only the entries named, nothing of the instructor's
        argv += ["--perms", "0755", "--tmpfs", folder]
    for entry in config.site_entries:
        argv += ["--ro-bind", entry, entry]
    for folder in site:
        argv += ["--remount-ro", folder]
    argv += ["--bind", config.home, config.home]
    if data_fd is not None:
        argv += ["--perms", "0444", "--ro-bind-data", str(data_fd), CONNECTION_INSIDE]
    if config.cache is not None:  # the warm-up job's to fill, or every later job's to read
        argv += ["--perms", "0755", "--dir", str(Path(CACHE_INSIDE).parent),
                 "--bind" if config.cache_writable else "--ro-bind", config.cache, CACHE_INSIDE]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    # Nothing but the tmpfs and the socket folder is writable (bubblewrap's own root and /dev are
    # unlimited tmpfs, writable in a user namespace).
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", SANDBOX_HOME]
    inside = None if config.cache is None else CACHE_INSIDE
    for key, value in kernel_env(config, SANDBOX_HOME, cache=inside).items():
        argv += ["--setenv", key, value]
    if uid is not None:  # root: drop to this job's own uid, so RLIMIT_NPROC counts this job only
        command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                   "--bounding-set=-all", "--", *command]
    return [*argv, "--", *command]
