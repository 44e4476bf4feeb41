"""A grading run's private temp folder, removed however the run ends.

On the way out the run removes it itself; where the grader is killed (``SIGKILL``), a small reaper
process in a session of its own removes it: a pipe from the grader closes when the grader exits or
is killed. Workers and kernels die with the grader (``PR_SET_PDEATHSIG``); the reaper's short
waits let them go before their folders are removed.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .run import remove_tree

__all__ = ["reaped_temp_folder"]

_REAPER = """
import os, subprocess, sys, time
sys.stdin.buffer.read()
for wait in (0, 0.5, 2, 5):
    time.sleep(wait)
    if not os.path.lexists(sys.argv[1]):
        break
    subprocess.run(["rm", "-rf", "--one-file-system", "--", sys.argv[1]], check=False, stderr=subprocess.DEVNULL)
"""


@contextlib.contextmanager
def reaped_temp_folder(prefix: str) -> Iterator[Path]:
    """A new private temp folder (mode 0700), removed on leaving, or by its reaper once this process is gone.

    :param prefix: The start of the folder's name.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    reaper = subprocess.Popen([sys.executable, "-c", _REAPER, str(tmp)], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield tmp
    finally:
        remove_tree(tmp)
        if reaper.stdin is not None:
            reaper.stdin.close()
        reaper.wait()
