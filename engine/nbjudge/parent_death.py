"""The parent-death guard: a process of a job dies with the process that started it.

Used by the worker (dies with the grader) and the sandbox's launcher (dies with the worker's
kernel manager), so that no part of a job outlives a grader killed with ``SIGKILL``.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Be killed (``SIGKILL``) when the parent process is gone, however it ended (``PR_SET_PDEATHSIG``).

    Does nothing where ``prctl`` is missing (not Linux).
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
