"""The sandbox's launcher: one kernel as one *job*, started, limited, isolated and torn down.

The grader (outside the sandbox) holds the notebook, the expected outputs and the hidden-check
references. Its kernel manager starts each kernel through this module, named in the kernel spec
(:mod:`.kernelspec`)::

    python -m <package>.launcher CONFIG.json CONNECTION_FILE

The launcher stays the job's parent for its whole life and sets up, for the job only, exactly
what the run's :class:`.capabilities.Capabilities` (in the config) promise, probing nothing again:

* **resource limits** (:func:`.limits.set_rlimits`);
* **a seccomp filter** (:mod:`.seccomp`): no kernel keyrings, no System V IPC; a pool uid's
  keyrings are cleared when the job gives it back;
* **a cgroup** (:mod:`.cgroups`), inside the grader's cgroup of the whole job
  (:attr:`.kernelspec.SandboxConfig.cgroup`) so that the CPU share, the process limit and the
  memory of a job hold for its worker and its kernel together. Without one, job slot *s* is pinned
  to its own CPUs (:func:`.limits.slot_cpus`; against careless code, not hostile code);
* **bubblewrap** (:mod:`.bwrap`); as root the kernel runs under a pool uid of its own (:mod:`.uids`).

A job that cannot get a promised protection is not run: the launcher writes what failed to the
config's report (:class:`JobSandbox`) and exits with status 1
(:class:`.protections.ProtectionUnavailable`).

The kernel talks to the grader over Unix sockets in the job's socket folder. As root, that folder
belongs to the kernel's uid only until the kernel has bound its sockets, before any student code
runs (the kernel waits on a handshake with the launcher); then it is root's again (0700). The
connection file reaches the kernel as a read-only file inside the sandbox.

**Teardown.** When the kernel exits or dies, the launcher kills what is left in the job's cgroup,
removes the cgroup folders and releases the uid lock. If the launcher itself is killed, a small
reaper process, started in a session of its own before anything else is set up, notices (a pipe
closes) and does the same.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from . import seccomp
from ._atomic import write_atomic
from .bwrap import CONNECTION_INSIDE, bwrap_argv, kernel_env
from .capabilities import bwrap_path
from .cgroups import JobCgroup
from .kernelspec import LAUNCHER_MODULE, SandboxConfig
from .limits import PROCESS_LIMIT_MARK, set_rlimits, slot_cpus
from .parent_death import die_with_parent
from .protections import BWRAP, CGROUP, OWN_UID, SECCOMP, ProtectionUnavailable
from .uids import allocate_uid

__all__ = ["PROCESS_LIMIT_MARK", "Job", "JobSandbox", "exit_with", "launch", "main", "write_report"]

_KERNEL_MODULE = f"{__package__}.kernel_start"  # the kernel's start, inside the sandbox (on the kernel path)
_FAILED = 1  # the launcher's exit status when the job could not get a promised protection


@dataclass(frozen=True)
class JobSandbox:
    """What one job got from the sandbox, as its launcher recorded it (the config's report).

    :param bwrap: It runs in bubblewrap.
    :param cgroup: Its kernel's cgroup (:attr:`.cgroups.JobCgroup.name`); ``None``: none.
    :param uid: Its pool uid; ``None``: the grader's own.
    :param seccomp: The seccomp filter is installed.
    :param missing: The promised protection it could not get (then it did not run); ``None``: all.
    :param reason: Why, for :attr:`missing`.
    """

    bwrap: bool = False
    cgroup: str | None = None
    uid: int | None = None
    seccomp: bool = False
    missing: str | None = None
    reason: str = ""

    @classmethod
    def read(cls, path: Path) -> JobSandbox | None:
        """The record at ``path``; ``None`` where there is none (the launcher never ran)."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(**raw) if isinstance(raw, dict) and set(raw) == set(cls.__dataclass_fields__) else None


class Job:
    """One sandboxed job: its uid, its cgroup, its reaper. Use as a context manager.

    :raises ProtectionUnavailable: On entering (:meth:`open`): the job cannot get what its
        capabilities promise.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.bwrap: str | None = None
        self.uid: int | None = None
        self.cgroup: JobCgroup | None = None
        self.filter: bytes | None = None
        self._lock_fd: int | None = None
        self._reaper_fd: int | None = None

    def __enter__(self) -> Job:
        return self.open()

    def open(self) -> Job:
        """Take the job's uid, make its cgroup, start its reaper (:meth:`close` undoes it)."""
        caps = self.config.capabilities
        try:
            if caps.bwrap:
                self.bwrap = bwrap_path()
                if self.bwrap is None:
                    raise ProtectionUnavailable(BWRAP, "bwrap is no longer on PATH")
            if caps.seccomp:
                self.filter = seccomp.program()
                if self.filter is None:
                    raise ProtectionUnavailable(SECCOMP, "no filter for this machine")
            if caps.own_uid:
                try:
                    self.uid, self._lock_fd = allocate_uid()
                except (OSError, RuntimeError) as exc:
                    raise ProtectionUnavailable(OWN_UID, f"no pool uid: {exc}") from exc
            if caps.cgroups is not None:  # inside the grader's cgroup of the whole job, or one of its own
                name = f"{os.getpid()}-{secrets.token_hex(4)}"
                name = f"{self.config.cgroup}/kernel-{name}" if self.config.cgroup else f"job-{name}"
                self.cgroup = JobCgroup.name_for(caps.cgroups, name)
            self._reaper_fd = self._start_reaper()
            if self.cgroup is not None:
                try:
                    self.cgroup.create(self.config.limits)
                except OSError as exc:
                    raise ProtectionUnavailable(CGROUP, f"the kernel's cgroup could not be made: {exc}") from exc
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def record(self) -> JobSandbox:
        """What this job got."""
        return JobSandbox(bwrap=self.bwrap is not None, cgroup=None if self.cgroup is None else self.cgroup.name,
                          uid=self.uid, seccomp=self.filter is not None)

    def close(self) -> None:
        """Kill what is left of the job, remove its cgroup, release its uid (idempotent)."""
        if self.cgroup is not None:
            self.cgroup.destroy()
        if self.uid is not None and self._lock_fd is not None:  # before the uid goes back to the pool
            with contextlib.suppress(OSError):
                seccomp.purge_keys(self.uid)
        for fd in (self._lock_fd, self._reaper_fd):
            if fd is not None:
                os.close(fd)
        self._lock_fd = self._reaper_fd = None

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
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` as the job: in its cgroup, under its limits, in bubblewrap where promised.

        :param command: What to run (inside the sandbox).
        :param data: The connection file's bytes, made readable inside the sandbox (bubblewrap only).
        :param pass_fds: File descriptors the command inherits.
        :returns: The started process (bubblewrap, or the command itself).
        """
        cpus = slot_cpus(self.config.slot, self.config.jobs) if self.cgroup is None else None
        filter_program, cgroup, limits = self.filter, self.cgroup, self.config.limits

        def prepare() -> None:  # in the child, between fork and exec
            if cgroup is not None:
                cgroup.join()
            if cpus is not None:
                os.sched_setaffinity(0, cpus)
            set_rlimits(limits, cgroup=cgroup is not None)
            if filter_program is not None and self.bwrap is None:  # bubblewrap installs it itself
                seccomp.install(filter_program)

        fds = list(pass_fds)
        data_fd = seccomp_fd = None
        if self.bwrap is not None and data is not None:
            data_fd = _pipe_with(data)  # a connection file (< 1 kB) fits in the pipe's buffer
            fds.append(data_fd)
        if self.bwrap is not None and filter_program is not None:
            seccomp_fd = _pipe_with(filter_program)  # a few hundred bytes
            fds.append(seccomp_fd)
        try:
            if self.bwrap is not None:
                argv = bwrap_argv(self.config, command, bwrap=self.bwrap, uid=self.uid, data_fd=data_fd,
                                  seccomp_fd=seccomp_fd)
                return subprocess.Popen(argv, env={}, pass_fds=fds, preexec_fn=prepare)  # noqa: PLW1509
            home = self.config.home
            env = kernel_env(self.config, home, cache=self.config.cache)
            return subprocess.Popen(command, env=env, cwd=home, pass_fds=fds, preexec_fn=prepare)  # noqa: PLW1509
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


def _forward_termination(proc: subprocess.Popen[bytes]) -> None:
    def handler(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            proc.kill()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, handler)


def _wait_for_gate(gate: socket.socket, proc: subprocess.Popen[bytes], on_ready: Callable[[], None]) -> None:
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


def write_report(config: SandboxConfig, record: JobSandbox) -> None:
    """Write ``record`` to the config's report path (nothing without one)."""
    if config.report is not None:
        write_atomic(Path(config.report), json.dumps(asdict(record)), mode=0o600)


def launch(config: SandboxConfig, connection_file: str) -> int:
    """Run one sandboxed kernel as a job and tear the job down when it ends.

    :param config: Sandbox settings.
    :param connection_file: The kernel connection file written by the grader's kernel manager.
    :returns: The kernel's exit status (negative: killed by that signal); 1 where the job could not
        get a promised protection (the report names it, and so does stderr).
    """
    die_with_parent()
    home = Path(config.home)
    try:
        job = Job(config).open()
    except ProtectionUnavailable as exc:
        write_report(config, JobSandbox(missing=exc.protection, reason=exc.reason))
        print(f"error: {exc}", file=sys.stderr)
        return _FAILED
    with contextlib.closing(job):
        write_report(config, job.record())
        inside, kernel_end = socket.socketpair()
        if job.bwrap is not None:
            connection, data = CONNECTION_INSIDE, Path(connection_file).read_bytes()
        else:
            connection, data = connection_file, None
        if job.uid is not None:  # the kernel binds its sockets here, then the folder is root's again
            os.chown(home, job.uid, job.uid)
            os.chmod(home, 0o700)
            if config.cache is not None and config.cache_writable:  # the warm-up job's, to fill
                os.chown(config.cache, job.uid, job.uid)
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


def _wait_within_process_limit(job: Job, proc: subprocess.Popen[bytes], home: Path) -> int:
    """Wait for the kernel; stop the whole job as soon as it reaches its process limit.

    A fork bomb that fills ``pids.max`` could leave its kernel alive but starved, or dead, as the
    scheduler decides, and one that forks slowly (a large kernel's page tables) might not fill it
    before the cell's limit; stopping the job at the first refused fork or past
    :attr:`.limits.Limits.children` processes makes the outcome the same on every machine. The mark
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


def exit_with(status: int) -> None:
    """Exit as a job's process did: its status, or ``128 + N`` when killed by signal N."""
    sys.exit(128 - status if status < 0 else status)


def main(argv: list[str] | None = None) -> None:
    """Launcher entry point: ``python -m <package>.launcher CONFIG.json CONNECTION_FILE``."""
    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # the worker ignores it; the job gets the default
    if len(args) != 2:
        sys.exit(f"usage: python -m {LAUNCHER_MODULE} CONFIG.json CONNECTION_FILE")
    exit_with(launch(SandboxConfig.from_json(Path(args[0]).read_text()), args[1]))


if __name__ == "__main__":
    main()
