"""Reading a platform's zip export safely: every entry is checked before anything is read.

A zip is refused as a whole (:class:`ArchiveError`, a clear message and no output) when any entry
has an absolute path or a ``..`` part, is a symbolic link, is itself a zip (nested archives are not
opened: the instructor unpacks them), or when the archive looks like a zip bomb: more than
:data:`MAX_MEMBERS` entries, more than :data:`MAX_TOTAL_BYTES` unpacked, an entry that unpacks to
more than :data:`MAX_RATIO` times its packed size, or an entry that unpacks to more than its
header says. The zip file itself is opened without following a link, and must be a regular file.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

__all__ = ["MAX_MEMBERS", "MAX_RATIO", "MAX_TOTAL_BYTES", "ArchiveError", "read_zip"]

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 4 * 2**30
MAX_RATIO = 100  # notebooks pack 3 to 10 times; zeros pack 1000 times
_RATIO_FLOOR = 2**20  # small entries may pack well (a notebook of blank cells)
_NESTED = (".zip", ".jar", ".7z", ".rar", ".tar", ".tgz", ".gz")


class ArchiveError(ValueError):
    """The archive is malformed or hostile; the message names the entry and what to do."""


def _refuse(path: Path, entry: str, why: str) -> ArchiveError:
    return ArchiveError(f"{path}: the entry {entry!r} {why}; nothing was graded. Download the export again, "
                        "or unpack it yourself, check it, and grade the folder")


def _check_entry(path: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or "\0" in name:
        raise _refuse(path, name, "has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise _refuse(path, name, "climbs out of the archive with '..'")
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        raise _refuse(path, name, "is a symbolic link")
    if not info.is_dir() and name.lower().endswith(_NESTED):
        raise _refuse(path, name, "is an archive inside the archive (nested archives are not opened)")
    if info.file_size > _RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise _refuse(path, name, f"unpacks to more than {MAX_RATIO} times its packed size (a zip bomb?)")


def _open_regular(path: Path) -> io.BufferedReader:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if os.path.islink(path):
            raise ArchiveError(f"{path} is a symbolic link, which the grader never follows; "
                               "name the zip itself") from None
        raise ArchiveError(f"{path}: cannot open the zip ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ArchiveError(f"{path} is not a regular file; name the zip file itself")
    return os.fdopen(fd, "rb")


def _read_entry(
    zf: zipfile.ZipFile, path: Path, info: zipfile.ZipInfo, max_bytes: int
) -> tuple[bytes | None, str | None]:
    if info.file_size > max_bytes:
        return None, (f"is {info.file_size / 2**20:.1f} MiB, above the grader's {max_bytes / 2**20:g} MiB cap; clear "
                      "the notebook's outputs (Edit > Clear Outputs of All Cells), save, and submit again")
    if info.flag_bits & 0x1:
        return None, "is encrypted in the zip; download the export without a password"
    try:
        with zf.open(info) as handle:
            data = handle.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise _refuse(path, info.filename, f"cannot be unpacked ({exc})") from None
    if len(data) > info.file_size:
        raise _refuse(path, info.filename, "unpacks to more than its header says (a zip bomb?)")
    return data, None


def read_zip(
    path: Path, *, wanted: Callable[[str], bool], max_bytes: int, skip: Callable[[str], bool] = lambda part: False
) -> list[tuple[str, bytes | None, str | None]]:
    """The wanted files of a zip, after every entry passed the checks.

    :param path: The zip file.
    :param wanted: Which entry names to read (others are checked, never read).
    :param max_bytes: Largest entry read; a larger one comes back with ``None`` and a problem.
    :param skip: Folders (one path part) whose entries are neither checked for names nor read,
        such as ``__MACOSX``; they are still counted and checked for links, archives and size.
    :returns: ``(entry name, bytes or None, problem or None)`` in name order.
    :raises ArchiveError: A malformed or hostile archive.
    """
    path = Path(path)
    with _open_regular(path) as raw:
        try:
            zf = zipfile.ZipFile(raw)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"{path} is not a zip file that can be read ({exc}); download it again") from None
        with zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise ArchiveError(f"{path} has {len(infos)} entries, more than the grader's cap of {MAX_MEMBERS} "
                                   "(a zip bomb?); nothing was graded. Unpack it yourself and grade the folder")
            seen: set[str] = set()
            total = 0
            for info in infos:
                _check_entry(path, info)
                if info.filename in seen:
                    raise _refuse(path, info.filename, "appears twice")
                seen.add(info.filename)
                total += info.file_size
                if total > MAX_TOTAL_BYTES:
                    raise ArchiveError(f"{path} unpacks to more than {MAX_TOTAL_BYTES / 2**30:g} GiB (a zip bomb?); "
                                       "nothing was graded. Unpack it yourself and grade the folder")
            found = []
            for info in sorted(infos, key=lambda i: i.filename):
                parts = info.filename.split("/")
                if info.is_dir() or any(skip(part) for part in parts[:-1]) or not wanted(info.filename):
                    continue
                data, problem = _read_entry(zf, path, info, max_bytes)
                found.append((info.filename, data, problem))
            return found
