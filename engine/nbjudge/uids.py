"""The pool of sandbox uids: as root, each job's kernel runs under a uid of its own.

A uid is taken under a lock file (``flock``), so that two concurrent grader processes never share
one, and ``RLIMIT_NPROC`` counts that job only. Closing the lock's file descriptor gives it back.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

__all__ = ["BASE_UID", "LOCK_DIR", "UID_COUNT", "allocate_uid"]

BASE_UID = 61000  # sandbox uids are taken from 61000 ... 61000 + UID_COUNT - 1
UID_COUNT = 4000
LOCK_DIR = Path("/run/lock/grading-sandbox") if Path("/run/lock").is_dir() else Path("/var/lock/grading-sandbox")


def _uids_in_use() -> set[int]:
    """The uids of every running process."""
    uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                uids.add(entry.stat(follow_symlinks=False).st_uid)
    return uids


def allocate_uid(lock_dir: Path = LOCK_DIR) -> tuple[int, int]:
    """Take a sandbox uid that no other job (of any grader process) holds and no process runs as.

    :param lock_dir: The folder of lock files, shared by all grader processes on the machine.
    :returns: The uid and the file descriptor that holds its lock (closing it releases the uid).
    :raises RuntimeError: ``lock_dir`` is not a folder of the grader's user, or every uid is taken.
    """
    lock_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(lock_dir)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise RuntimeError(f"{lock_dir} must be a folder owned by the grader's user")
    busy = _uids_in_use()
    for uid in range(BASE_UID, BASE_UID + UID_COUNT):
        if uid in busy:
            continue
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(lock_dir / f"uid-{uid}.lock", flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    raise RuntimeError(f"all {UID_COUNT} sandbox uids from {BASE_UID} are in use")
