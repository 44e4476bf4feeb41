"""The lesson's shared cache (:class:`.lessons.SharedCache`): which folder and variables a job's
kernel gets, and the read-only copy the grader makes of what the warm-up job wrote.

The folder that is shared is filled by one warm-up job per run: the grading copy of the lesson's
*exercise*, whose answers are the stubs. It runs the instructor's cells and the hidden checks with
no student code and no solution code, so it compiles exactly the programs that instructor code
compiles without any answer; each stub raises before a program that needs an answer is traced.
(A cache filled by the reference run would hold the solution's own compiled functions: a kernel
could load and call them, or test whether its program is the solution's by looking its key up.)

The grader copies the warm-up's plain files (no links, nothing else) into a folder of its own,
owned by the grader and read-only to every job, and publishes it with one rename once it is
complete; a job shows it to its kernel with a read-only bind mount, so no job can add or change an
entry that another job reads. Jobs that start before it exists, and every job of a run without
bubblewrap, get a private writable folder in the kernel's home instead.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .lessons import SharedCache

__all__ = ["MAX_BYTES", "CacheUse", "cache_use", "publish"]

MAX_BYTES = 512 * 1024 * 1024  # what the grader copies of the warm-up's cache, at most
_WRITER_FOLDER = "cache"  # in the warm-up job's folder


@dataclass(frozen=True)
class CacheUse:
    """One job's part of the shared cache.

    :param env: The kernel variables it adds (``{cache}`` still to fill in).
    :param folder: The folder shown to the kernel; ``None``: a private one in its home.
    :param writable: The kernel may write ``folder`` (the warm-up job only).
    """

    env: dict[str, str]
    folder: str | None = None
    writable: bool = False


def cache_use(cache: SharedCache | None, *, fills: bool, workdir: Path, published: str | None,
              bwrap: bool) -> CacheUse:
    """What one job gets of the lesson's shared cache.

    :param cache: The lesson's, or ``None``.
    :param fills: The job is the warm-up, which fills the folder that is shared.
    :param workdir: The job's private folder (the warm-up's cache goes in it).
    :param published: The shared read-only copy, where it exists yet.
    :param bwrap: The job runs in bubblewrap (without it no folder can be shown read-only).
    """
    if cache is None:
        return CacheUse({})
    if not bwrap:
        return CacheUse(dict(cache.writer_env))
    if fills:
        folder = workdir / _WRITER_FOLDER
        folder.mkdir(mode=0o700)
        return CacheUse(dict(cache.writer_env), str(folder), writable=True)
    if published is not None:
        return CacheUse(dict(cache.reader_env), published)
    return CacheUse(dict(cache.writer_env))


def publish(workdir: Path, target: Path, *, max_bytes: int = MAX_BYTES) -> Path | None:
    """Copy what the warm-up job wrote into ``target``, read-only to every job.

    :param workdir: The warm-up job's folder.
    :param target: A path that does not exist yet; it appears complete or not at all.
    :param max_bytes: The copy stops at this many bytes (the rest is compiled again by each job).
    :returns: ``target``, or ``None`` where the warm-up wrote nothing.
    """
    source = workdir / _WRITER_FOLDER
    if not source.is_dir():
        return None
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o755)
    left = max_bytes
    for entry in sorted(os.scandir(source), key=lambda e: e.name):  # the JAX cache is one flat folder
        info = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or info.st_size > left:
            continue
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as src, open(staging / entry.name, "xb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(staging / entry.name, 0o644)
        left -= info.st_size
    os.chmod(staging, 0o755)
    staging.rename(target)
    return target
