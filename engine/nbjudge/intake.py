"""Safe intake of submissions: which files are graded, under which names, and reading them.

:func:`collect` turns the paths an instructor names on the command line into a deterministic list
of :class:`Submission` rows. It reads only **regular files**: never through a symbolic link (a
link to ``/dev/zero`` or to the instructor's solution is reported, not followed), never a FIFO,
socket or device (their names are reported; they are never opened, and a file is opened with
``O_NOFOLLOW | O_NONBLOCK`` and checked again with ``fstat``, so a swap between listing and opening
cannot make it block), and never more than ``max_bytes`` (:data:`MAX_BYTES`, 128 MiB). What is
kept of a file is its code: a large file is stripped of its saved outputs, which the grader never
uses, in a child process under memory and time limits (:func:`.strip.code_only`), so that a notebook
that printed a large array grades like any other and a hostile file costs the grader little. A
file above the cap is refused from its size without being read; the code the grader runs is
capped in :func:`.notebook.read_submission`.

**Exports.** A named ``.zip`` is read as a folder would be, after :func:`.archive.read_zip` has
checked every entry (no ``..`` or absolute paths, links, nested archives or zip bombs: any of
these refuses the whole archive with :class:`ArchiveError`, before anything is graded). Each
notebook's path inside the export gives the student behind it where a platform's layout is
recognised (:func:`.platforms.identify`: Moodle, Canvas, Gradescope, nbgrader); such rows are
named after the student first, and a student with several files gets one row per file, each with
a note.

Folders are searched recursively (LMS exports put each student in a folder of their own);
``.ipynb`` is matched case-insensitively; hidden folders (``.ipynb_checkpoints``, ``.git``) and
``__MACOSX`` are skipped; symbolic links to folders are not followed (a warning says so).

**Names.** Each row gets a name that is unique (also ignoring case, for case-insensitive file
systems), the same in every shard (it depends only on the paths given, in their order, and the
files found), safe as a file name and in CSV or Markdown (letters of any script, digits, ``_``,
``-`` and ``.``, never starting with ``-``, ``.`` or ``_``, at most 100 bytes of UTF-8), and never
one of :data:`RESERVED_NAMES`. A name is the student's (platform rows, named first) or the
file's stem; where two files share it, it is qualified with their folders (``late__alice``), and
as a last resort numbered (``alice--2``). A piece taken from a file or folder name never contains
``__`` or ``--``, so no file name can spell another row's qualified or numbered name.

**Problems.** A path that exists but cannot be graded (a link, a FIFO, too large, unreadable, not
``.ipynb`` when named directly) becomes a row with ``data=None`` and a one-line ``problem``, so
that it shows up in the grades beside everyone else. A missing path that names a notebook
(``*.ipynb``) is such a row too: the instructor named that student's file and expects a row for it.
A missing folder, an empty folder, or one without notebooks is a warning, and intake goes on:
there is no student to put in a row.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .archive import ArchiveError, read_zip
from .platforms import GRADESCOPE_METADATA, GradescopeTables, Identity, identify, parse_gradescope_metadata
from .strip import code_only

__all__ = ["MAX_BYTES", "RESERVED_NAMES", "ArchiveError", "Submission", "collect", "safe_name", "student_record"]

MAX_BYTES = 128 * 1024 * 1024
RESERVED_NAMES = frozenset({"reference", "solution", "grades", "results", "feedback", "summary"})
_WINDOWS_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)),
                              *(f"lpt{i}" for i in range(10))})
_SUFFIX = ".ipynb"
_MAX_DEPTH = 16
_MAX_NAME_BYTES = 100
_SEPARATOR = "__"  # between folder and file in a qualified name
_UNSAFE = re.compile(r"[^\w.\-]+")
_SKIPPED_DIRS = ("__MACOSX",)


@dataclass(frozen=True)
class Submission:
    """One file to grade (or that should have been graded).

    :param name: Unique, deterministic, safe report name.
    :param path: Where it was found (for messages).
    :param data: The file's bytes, or ``None`` when it could not be read.
    :param problem: One-line reason for the instructor when ``data`` is ``None``.
    :param student: Who submitted it, as the platform names them (:mod:`.platforms`); the row
        name where no platform layout matched.
    :param source: The file's path inside the export (the named folder or zip), with ``/``.
    :param platform: ``moodle``, ``canvas``, ``gradescope``, ``nbgrader`` or ``""``.
    :param ids: The platform's identifiers of the student (for the gradebooks, :mod:`.gradebook`).
    :param note: What the instructor should know about this row's identity (a second submission
        of the same student, a platform-like name that did not parse), or ``None``.
    """

    name: str
    path: Path
    data: bytes | None = field(repr=False)
    problem: str | None = None
    student: str = ""
    source: str = ""
    platform: str = ""
    ids: dict[str, str] = field(default_factory=dict)
    note: str | None = None


@dataclass(frozen=True)
class _Found:
    path: Path  # for messages
    parts: tuple[str, ...]  # folders (from the named folder down) and the file name, for the name
    data: bytes | None
    problem: str | None
    source: str = ""  # the path inside the export
    identity: Identity = field(default_factory=Identity)
    metadata: bool = False  # a Gradescope submission_metadata.yml, not a submission


def _clip(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` within ``max_bytes`` of UTF-8."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def safe_name(text: str, *, max_bytes: int = _MAX_NAME_BYTES) -> str:
    """A version of ``text`` that is safe as a file name and in CSV or Markdown ('' if nothing is left).

    :param text: Any text, e.g. a file's stem.
    :param max_bytes: Longest result, in bytes of UTF-8.
    :returns: Letters, digits, ``_``, ``-`` and ``.``; no leading ``-``, ``.`` or ``_``, no trailing ``.``.
    """
    text = unicodedata.normalize("NFC", text)
    text = "".join(c if unicodedata.category(c)[0] not in "CZ" else " " for c in text)  # controls, spaces
    text = _UNSAFE.sub("_", text)
    text = _clip(text, max_bytes)
    return text.lstrip("-._").rstrip("._")


def _stem(file_name: str) -> str:
    return file_name[: -len(_SUFFIX)] if file_name.lower().endswith(_SUFFIX) else file_name


def _taken(name: str, used: set[str]) -> bool:
    key = name.casefold()
    return not name or key in used or key in RESERVED_NAMES or key.split(".")[0] in _WINDOWS_DEVICES


_RUNS = re.compile(r"__+|--+")


def _piece(text: str) -> str:
    """One folder's or file's part of a name: safe, and never containing ``__`` or ``--``.

    Qualified names join pieces with ``__`` and numbered ones end in ``--N``, so no file name can
    spell another row's qualified or numbered name.
    """
    return _RUNS.sub(lambda run: run.group(0)[0], safe_name(text, max_bytes=60)).rstrip("-")


def _numbered(base: str, used: set[str]) -> str:
    number = 2
    while True:
        name = f"{_clip(base, _MAX_NAME_BYTES - 8)}--{number}"
        if not _taken(name, used):
            return name
        number += 1


def _platform_names(found: list[_Found], used: set[str]) -> dict[int, str]:
    """Rows with a platform identity are named after the student, before any file is named.

    Where several rows share a candidate, none of them gets it: all go on to the next (the
    student and the file, then the student and the path), so no row is picked silently.
    """
    candidates = {}
    for index, item in enumerate(found):
        if not item.identity.label:
            continue
        label = _piece(item.identity.label) or "student"
        inner = [_piece(p) for p in item.source.split("/")]
        inner[-1] = _piece(_stem(item.source.split("/")[-1])) or "notebook"
        options = [label, safe_name(_SEPARATOR.join([label, inner[-1]])),
                   safe_name(_SEPARATOR.join([label, *[p for p in inner if p]]))]
        candidates[index] = list(dict.fromkeys(options))
    names: dict[int, str] = {}
    level = dict.fromkeys(candidates, 0)
    while len(names) < len(candidates):
        groups: dict[str, list[int]] = defaultdict(list)
        for index in candidates.keys() - names.keys():
            if level[index] < len(candidates[index]):
                groups[candidates[index][level[index]].casefold()].append(index)
            else:
                names[index] = _numbered(candidates[index][0], used)
                used.add(names[index].casefold())
        for _, members in sorted(groups.items()):
            name = candidates[members[0]][level[members[0]]]
            if len(members) == 1 and not _taken(name, used):
                names[members[0]] = name
                used.add(name.casefold())
            else:
                for index in members:
                    level[index] += 1
    return names


def _names(found: list[_Found]) -> list[str]:
    """Unique names: platform identities first, then files first come first served in the
    (deterministic) order of ``found``."""
    used: set[str] = set()
    named = _platform_names(found, used)
    names = []
    for index, item in enumerate(found):
        if index in named:
            names.append(named[index])
            continue
        *folders, file_name = item.parts
        pieces = [_piece(_stem(file_name)) or "notebook"]
        candidates = [pieces[0]]
        for folder in reversed(folders):
            piece = _piece(folder)
            if piece:
                pieces.insert(0, piece)
                candidates.append(safe_name(_SEPARATOR.join(pieces)))
        name = next((c for c in candidates if not _taken(c, used)), None) or _numbered(candidates[0], used)
        used.add(name.casefold())
        names.append(name)
    return names


def _describe(mode: int) -> str:
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))
    return next((text for test, text in kinds if test(mode)), "not a regular file")


def _refusal(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return ("is a symbolic link, which the grader never follows; put the notebook file itself "
                "in the folder")
    return f"is {_describe(mode)}, not a regular file; put the notebook file itself in the folder"


def _too_large(size: int, max_bytes: int) -> str:
    return (f"is {size / 2**20:.1f} MiB, above the grader's {max_bytes / 2**20:g} MiB cap; clear the "
            "notebook's outputs (Edit > Clear Outputs of All Cells), save, and submit again")


def _read(name: str, *, dir_fd: int | None, max_bytes: int) -> tuple[bytes | None, str | None]:
    """Read a regular file without following a link, blocking, or reading more than ``max_bytes``."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode):  # never opened: opening a device can have effects
            return None, _refusal(info.st_mode)
        if info.st_size > max_bytes:
            return None, _too_large(info.st_size, max_bytes)
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, _refusal(stat.S_IFLNK)
        return None, f"cannot be read: {exc.strerror}"
    try:
        info = os.fstat(fd)  # what was opened, in case the entry was swapped after the check
        if not stat.S_ISREG(info.st_mode):
            return None, _refusal(info.st_mode)
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            return None, _too_large(max(size, info.st_size), max_bytes)
        return b"".join(chunks), None
    except OSError as exc:
        return None, f"cannot be read: {exc.strerror}"
    finally:
        os.close(fd)


def _walk(
    dir_fd: int, path: Path, parts: tuple[str, ...], depth: int, *, max_bytes: int, warn: Callable[[str], None]
) -> Iterator[_Found]:
    """Every notebook (and Gradescope metadata file) under an open folder, depth first, in name
    order, links never followed."""
    with os.scandir(dir_fd) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        here = path / entry.name
        if entry.is_dir(follow_symlinks=False):
            if entry.name.startswith(".") or entry.name in _SKIPPED_DIRS:
                continue
            if depth >= _MAX_DEPTH:
                warn(f"warning: {here}: folders nested deeper than {_MAX_DEPTH} levels are not searched")
                continue
            try:
                child = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError as exc:
                warn(f"warning: {here}: folder skipped ({exc.strerror})")
                continue
            try:
                yield from _walk(child, here, (*parts, entry.name), depth + 1, max_bytes=max_bytes, warn=warn)
            finally:
                os.close(child)
        elif entry.name.lower().endswith(_SUFFIX) or entry.name == GRADESCOPE_METADATA:
            data, problem = _read(entry.name, dir_fd=dir_fd, max_bytes=max_bytes)
            yield _Found(here, (*parts, entry.name), data, problem, metadata=entry.name == GRADESCOPE_METADATA)
        elif entry.is_symlink() and Path(here).is_dir():
            warn(f"warning: {here}: a symbolic link to a folder; not followed")
        elif entry.name.lower().endswith(".zip"):
            warn(f"warning: {here}: a zip file inside a folder is not opened; name it on the command line "
                 "(give EXPORT.zip itself as a submission path) or unpack it")


def _from_folder(path: Path, *, max_bytes: int, warn: Callable[[str], None]) -> list[_Found]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the instructor's own path
    except OSError as exc:
        warn(f"warning: {path}: cannot open the folder ({exc.strerror}); nothing graded from it")
        return []
    try:
        folder = path.resolve().name
        found = list(_walk(fd, path, (folder,) if folder else (), 0, max_bytes=max_bytes, warn=warn))
    finally:
        os.close(fd)
    found = [replace(item, source="/".join(item.parts[1:] if folder else item.parts)) for item in found]
    if all(item.metadata for item in found):
        warn(f"warning: {path}: no .ipynb files in this folder; nothing graded from it")
    return found


def _from_zip(path: Path, *, max_bytes: int, warn: Callable[[str], None]) -> list[_Found]:
    wanted = lambda member: member.lower().endswith(_SUFFIX) or member.rsplit("/", 1)[-1] == GRADESCOPE_METADATA  # noqa: E731
    members = read_zip(path, wanted=wanted, max_bytes=max_bytes, skip=lambda part: part.startswith(".")
                       or part in _SKIPPED_DIRS)
    root = path.name[: -len(".zip")]
    found = [_Found(path / member, (root, *member.split("/")), data, problem, source=member,
                    metadata=member.rsplit("/", 1)[-1] == GRADESCOPE_METADATA)
             for member, data, problem in members]
    if all(item.metadata for item in found):
        warn(f"warning: {path}: no .ipynb files in this zip; nothing graded from it")
    return found


def _from_file(path: Path, *, max_bytes: int, warn: Callable[[str], None]) -> list[_Found]:
    parts = (path.absolute().parent.name, path.name)
    if path.name.lower().endswith(".zip") and os.path.lexists(path):
        return _from_zip(path, max_bytes=max_bytes, warn=warn)
    if not path.name.lower().endswith(_SUFFIX):
        if not os.path.lexists(path):
            warn(f"warning: {path} does not exist; nothing graded from it")
            return []
        return [_Found(path, parts, None, "is not a Jupyter notebook (.ipynb); save the notebook as .ipynb",
                       source=path.name)]
    if not os.path.lexists(path):
        return [_Found(path, parts, None, "does not exist", source=path.name)]
    data, problem = _read(str(path), dir_fd=None, max_bytes=max_bytes)
    return [_Found(path, parts, data, problem, source=path.name)]


def _metadata(items: list[_Found], warn: Callable[[str], None]) -> GradescopeTables:
    """Gradescope's submitters, by the folder that holds each ``submission_metadata.yml``."""
    tables: GradescopeTables = {}
    for item in items:
        if item.data is None:
            warn(f"warning: {item.path}: {item.problem}; its submissions are named by their folders")
            continue
        try:
            tables[item.parts[:-1]] = parse_gradescope_metadata(item.data.decode("utf-8", errors="replace"))
        except ValueError as exc:
            warn(f"warning: {item.path}: {exc}; its submissions are named by their folders")
    return tables


def _platform_key(sub: Submission) -> tuple[str, str] | None:
    for key in ("participant", "user_id", "sid", "student_id", "submission_id"):
        if sub.ids.get(key):
            return sub.platform, sub.ids[key]
    return None


def _twice(rows: list[Submission]) -> list[Submission]:
    """A note on every row of a student who has more than one: each is graded, none is picked."""
    by_student: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        key = _platform_key(row)
        if key is not None:
            by_student[key].append(index)
    rows = list(rows)
    for indexes in by_student.values():
        if len(indexes) > 1:
            names = ", ".join(rows[i].name for i in indexes)
            for i in indexes:
                note = (f"{rows[i].student} has {len(indexes)} submissions in this export ({names}); each is "
                        "graded, none was picked")
                rows[i] = replace(rows[i], note="; ".join(filter(None, [rows[i].note, note])))
    return rows


def _identity(path: Path) -> tuple[int, int] | None:
    with contextlib.suppress(OSError):
        info = os.stat(path, follow_symlinks=False)
        return info.st_dev, info.st_ino
    return None


def collect(paths: list[Path], *, max_bytes: int = MAX_BYTES, warn: Callable[[str], None]) -> list[Submission]:
    """The submissions under ``paths``: notebooks given directly and those found in folders.

    :param paths: Notebook files and folders, as the instructor named them.
    :param max_bytes: Largest file that is read; larger ones become rows with a problem.
    :param warn: Called with a one-line warning (missing or empty folder, skipped links and folders).
    :returns: One row per notebook, in a deterministic order (paths in the order given, then by
        name), each with a unique safe name; rows that cannot be graded have ``data=None`` and a
        ``problem``.
    """
    found: list[_Found] = []
    seen: set[tuple[int, int]] = set()
    for path in map(Path, paths):
        is_folder = os.path.isdir(path) and not (path.is_symlink() and path.name.lower().endswith(_SUFFIX))
        if path.name.lower().endswith(".zip") and not is_folder:  # its entries have no identity of their own
            identity = _identity(path)
            if identity is not None and identity in seen:
                warn(f"warning: {path}: named twice; graded once")
                continue
            if identity is not None:
                seen.add(identity)
        items = (_from_folder if is_folder else _from_file)(path, max_bytes=max_bytes, warn=warn)
        for item in items:
            identity = _identity(item.path)
            if identity is not None and identity in seen:
                warn(f"warning: {item.path}: named twice; graded once")
                continue
            if identity is not None:
                seen.add(identity)
            found.append(item)
    notebooks = [item for item in found if not item.metadata]
    tables = _metadata([item for item in found if item.metadata], warn)
    notebooks = [replace(item, identity=identify(item.parts, metadata=tables)) for item in notebooks]
    names = _names(notebooks)
    rows = [Submission(name, item.path, None if item.data is None else code_only(item.data), item.problem,
                       student=item.identity.student or name, source=item.source,
                       platform=item.identity.platform, ids=dict(item.identity.ids),
                       note=item.identity.note)
            for name, item in zip(names, notebooks, strict=True)]
    return _twice(rows)


def student_record(sub: Submission) -> dict[str, Any]:
    """Who a row is, as plain JSON for the report's meta (``student``, ``source``, ``platform``,
    ``ids``, ``note``): what grades.csv and :func:`.gradebook.write_gradebooks` need, also after
    ``merge``."""
    return {"student": sub.student or sub.name, "source": sub.source, "platform": sub.platform, "ids": dict(sub.ids),
            "note": sub.note}
