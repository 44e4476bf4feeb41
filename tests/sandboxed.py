"""Run a command (not a kernel) as a job under the grading sandbox: for tests of the isolation.

``run_command`` uses the launcher's own :class:`nbjudge.launcher.Job` (the same bubblewrap, limits,
cgroup, uid and seccomp filter as a kernel). As a script, ``python tests/sandboxed.py CONFIG.json --
COMMAND...`` runs ``COMMAND`` so, and exits with its status (``128 + N``: killed by signal N).
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from nbjudge.kernelspec import SandboxConfig
from nbjudge.launcher import Job, exit_with
from nbjudge.parent_death import die_with_parent

__all__ = ["SCRIPT", "run_command"]

SCRIPT = Path(__file__).resolve()


def run_command(config: SandboxConfig, command: list[str], *, timeout_s: float | None = None) -> int:
    """Run ``command`` as a job under the same sandbox, limits, cgroup and uid as a kernel.

    The job's folder (:attr:`SandboxConfig.home`) is mounted, but as root it is not writable for the command.

    :param config: Sandbox settings.
    :param command: The command and its arguments, as seen inside the sandbox.
    :param timeout_s: Kill the job after this many seconds.
    :returns: The command's exit status (negative: killed by that signal).
    :raises nbjudge.protections.ProtectionUnavailable: The job cannot get what ``config`` promises.
    """
    with Job(config) as job:
        proc = job.start(command)
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()


def main(argv: list[str]) -> None:
    """``sandboxed.py CONFIG.json -- COMMAND...``."""
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(f"usage: python {SCRIPT} CONFIG.json -- COMMAND...")
    signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # the job gets the default, as a kernel does
    die_with_parent()
    exit_with(run_command(SandboxConfig.from_json(Path(argv[0]).read_text()), argv[2:]))


if __name__ == "__main__":
    main(sys.argv[1:])
