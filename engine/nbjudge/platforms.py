"""Who submitted a file: the identity a learning platform's export gives it.

:func:`identify` reads the folders and the file name of one notebook inside an export and returns
the student as the platform knows them, with the identifiers its grade import needs back. It
knows these layouts (sources in docs/platforms.md, section *Intake from a platform*):

* **Moodle**, *Download all submissions*: a folder per submission,
  ``Full Name_12345_assignsubmission_file/notebook.ipynb`` (Moodle 4.1 and later; earlier versions
  end the folder's name with ``_``), or (without *Download submissions in folders*) flat files
  ``Full Name_12345_assignsubmission_file_notebook.ipynb``. ``12345`` is the participant number that
  the grading worksheet calls ``Participant 12345``. The name is the student's full name in any
  script, with ``_`` turned into spaces (so it never holds ``_``); with blind marking it is
  ``Participant``.
* **Canvas**, *Download Submissions*: flat files ``lastnamefirstname_LATE_123_456_name-1.ipynb``:
  the student's sortable name in lower case with every character but letters (of any script),
  marks, digits and ``_`` removed, ``LATE`` for a late submission, the Canvas user id (the
  gradebook's ``ID`` column), the attachment id, the file's own name (Canvas appends ``-N`` to a
  resubmitted file). An anonymously graded assignment writes ``anon_ANONYMOUSID`` (after ``LATE``)
  in place of the name and the user id: such a row has a student but no user id, so no gradebook
  line.
* **Gradescope**, *Export Submissions*: ``submission_123/`` folders beside a
  ``submission_metadata.yml`` that names each submission's submitters (``:name:``, ``:sid:``,
  ``:email:``).
* **nbgrader**: ``submitted/STUDENT/ASSIGNMENT/notebook.ipynb`` (the course directory's layout).

Where marks of several layouts are on one path, the outermost wins: Moodle and Gradescope keep a
student's own subfolders, so a subfolder named like another student's folder is still the
student's own.

A name that looks like a platform's (``_assignsubmission_``, ``_LATE_``, ``submission_N``) but does
not parse gets no identity and a note; the grader then names the row as it does any file.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["PLATFORMS", "Identity", "canvas_word", "identify", "parse_gradescope_metadata"]

PLATFORMS = ("moodle", "canvas", "gradescope", "nbgrader")
GRADESCOPE_METADATA = "submission_metadata.yml"
# Moodle: mod/assign/classes/downloader.php, downloader::get_student_prefix and
# load_submissionplugin_filelist: clean_filename(str_replace('_', ' ', fullname) . '_' . uniqueid), then
# '_assignsubmission_file' (Moodle >= 4.1; '_assignsubmission_file_' before) as the folder, or
# '_assignsubmission_file_' . filename flat. clean_filename (PARAM_FILE) drops only controls and
# &<>"`|':\/, so the name keeps every script. What Moodle reads back is
# mod/assign/feedback/file/importziplib.php, is_valid_filename_for_import: explode('_', part, 5), a
# numeric participant id second, both folder forms accepted. Ids are ASCII digits ([0-9], not \d).
_MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>[0-9]+)_assignsubmission_(?P<plugin>[a-z][a-z0-9]*)_?$")
_MOODLE_FILE = re.compile(r"^(?P<name>.+?)_(?P<id>[0-9]+)_assignsubmission_(?P<plugin>[a-z][a-z0-9]*)_(?P<file>.+)$")
_MOODLE_LIKE = re.compile(r"_assignsubmission_", re.IGNORECASE)
# Canvas: lib/content_zipper.rb, ContentZipper#get_filename and #add_upload_submission write
# sanitize_file_name([sanitize_user_name(sortable_name), "LATE"?, user_id].join("_")) + "_#{attachment.id}_" +
# display name, where sanitize_file_name keeps only [[:word:]] (Onigmo: Letter | Mark | Decimal_Number |
# Connector_Punctuation, any script) and sanitize_user_name lower-cases (and drops "_" around digits); an
# anonymous assignment writes "anon_#{anonymous_id}" in place of name and user id. What Canvas reads back
# (app/models/assignment.rb, infer_comment_context_from_filename) are the first two pieces between "_" that
# are all ASCII digits: user id, attachment id. _canvas_parts follows both.
_CANVAS_ID = re.compile(r"^[0-9]+$")
_CANVAS_LIKE = re.compile(r"_[0-9]+_[0-9]+_")
_CANVAS_ANONYMOUS_ID = re.compile(r"^[A-Za-z0-9]+$")
_WORD_CATEGORIES = ("Nd", "Pc")
_GRADESCOPE_FOLDER = re.compile(r"^submission_(?P<id>\d+)$")
_GRADESCOPE_LIKE = re.compile(r"^submission_", re.IGNORECASE)


@dataclass(frozen=True)
class Identity:
    """The student behind one file, as a platform names them.

    :param platform: One of :data:`PLATFORMS`, or ``""`` when no layout matched.
    :param student: The student as the platform shows them (full name, login or id).
    :param label: The row name to try first (before it is made safe and unique).
    :param ids: The platform's identifiers, for its grade import: Moodle ``participant``; Canvas
        ``user_id``, ``attachment_id``, ``login`` and ``late``; Gradescope ``submission_id``,
        ``sid``, ``email``; nbgrader ``student_id`` and ``assignment_id``.
    :param note: Something the instructor should know (a name that did not parse, a group).
    """

    platform: str = ""
    student: str = ""
    label: str = ""
    ids: dict[str, str] = field(default_factory=dict)
    note: str | None = None


GradescopeTables = dict[tuple[str, ...], dict[str, dict[str, str]]]
"""Parsed ``submission_metadata.yml`` files (:func:`parse_gradescope_metadata`), by the pieces of the
folder that holds each."""


def parse_gradescope_metadata(text: str) -> dict[str, dict[str, str]]:
    """The submitters of each submission in a Gradescope ``submission_metadata.yml``.

    :param text: The file's text.
    :returns: ``{"submission_123": {"name": ..., "sid": ..., "email": ..., "others": "..."}}``.
    :raises ValueError: Not YAML, or not the mapping Gradescope writes.
    """
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{GRADESCOPE_METADATA} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{GRADESCOPE_METADATA} is not a mapping of submissions")
    found = {}
    for key, record in data.items():
        submitters = record.get(":submitters") if isinstance(record, dict) else None
        if not isinstance(key, str) or not isinstance(submitters, list) or not submitters:
            continue
        people = [s for s in submitters if isinstance(s, dict)]
        if not people:
            continue
        first = {k: str(people[0].get(f":{k}") or "") for k in ("name", "sid", "email")}
        first["others"] = "; ".join(str(p.get(":name") or p.get(":sid") or "") for p in people[1:])
        found[key] = first
    return found


def _moodle(parts: tuple[str, ...]) -> tuple[int, Identity] | None:
    *folders, file_name = parts
    for depth, folder in enumerate(folders):  # the outermost: Moodle's; folders below it are the student's
        match = _MOODLE_FOLDER.match(folder)
        if match:
            return depth, _moodle_identity(match)
    match = _MOODLE_FILE.match(file_name)
    return (len(folders), _moodle_identity(match)) if match else None


def _moodle_identity(match: re.Match[str]) -> Identity:
    name, number = unicodedata.normalize("NFC", match["name"].strip()), match["id"]
    return Identity("moodle", name, f"{name}_{number}", {"participant": number, "full_name": name})


def canvas_word(text: str) -> bool:
    """Whether every character of ``text`` is one that canvas-lms's ``sanitize_file_name`` keeps
    (Onigmo's ``[[:word:]]``: letters and marks of any script, decimal digits, ``_``)."""
    return all(unicodedata.category(c)[0] in "LM" or unicodedata.category(c) in _WORD_CATEGORIES for c in text)


def _canvas_parts(file_name: str) -> dict[str, str] | None:
    """A Canvas download's file name as its pieces: ``login`` (or ``anonymous_id``), ``late``,
    ``user_id`` (not for anonymous), ``attachment_id``, ``file``; ``None`` when it is not one."""
    pieces = file_name.split("_")
    skip = 1 if pieces[:2] == ["LATE", "anon"] else 0
    if pieces[skip:skip + 1] == ["anon"]:  # anonymous grading: [LATE_]anon_ANONYMOUSID_ATTACHMENTID_file
        rest = pieces[skip + 1:]
        if len(rest) < 3 or not _CANVAS_ANONYMOUS_ID.match(rest[0]) or not _CANVAS_ID.match(rest[1]):
            return None
        return {"anonymous_id": rest[0], "attachment_id": rest[1], "late": "1" if skip else "0",
                "file": "_".join(rest[2:])}
    first = next((i for i, piece in enumerate(pieces) if _CANVAS_ID.match(piece)), None)
    if first is None or first + 2 >= len(pieces) or not _CANVAS_ID.match(pieces[first + 1]):
        return None  # the download writes the user id and the attachment id side by side, then the file
    name = pieces[:first]
    late = name[-1:] == ["LATE"]
    login = unicodedata.normalize("NFC", "_".join(name[:-1] if late else name))
    if not login or not canvas_word(login) or login != login.lower():
        return None
    return {"login": login, "user_id": pieces[first], "attachment_id": pieces[first + 1], "late": "1" if late else "0",
            "file": "_".join(pieces[first + 2:])}


def _canvas(parts: tuple[str, ...]) -> tuple[int, Identity] | None:
    found = _canvas_parts(parts[-1])
    if found is None:
        return None
    found.pop("file")
    if "anonymous_id" in found:  # no user id: the gradebook cannot place it (gradebook.unplaced says so)
        student = f"anon_{found['anonymous_id']}"
        return len(parts) - 1, Identity("canvas", student, student, found)
    return len(parts) - 1, Identity("canvas", found["login"], f"{found['login']}_{found['user_id']}", found)


def _gradescope(parts: tuple[str, ...], metadata: GradescopeTables) -> tuple[int, Identity] | None:
    *folders, _ = parts
    for depth in range(len(folders)):  # the outermost, beside the metadata; deeper ones are the student's
        match = _GRADESCOPE_FOLDER.match(folders[depth])
        if not match:
            continue
        table = metadata.get(tuple(folders[:depth]))
        if table is None:
            continue  # without the metadata beside it, a folder named submission_N is nobody in particular
        record = table.get(folders[depth])
        if record is None:
            return depth, Identity(note=f"{folders[depth]} is not in the {GRADESCOPE_METADATA} beside it; "
                                   "named as a folder")
        ids = {"submission_id": match["id"], "sid": record["sid"], "email": record["email"]}
        student = record["name"] or record["sid"] or folders[depth]
        note = f"a group submission; also by {record['others']}" if record["others"] else None
        label = f"{student}_{record['sid']}" if record["sid"] else f"{student}_{match['id']}"
        return depth, Identity("gradescope", student, label, ids, note)
    return None


def _nbgrader(parts: tuple[str, ...]) -> tuple[int, Identity] | None:
    *folders, _ = parts
    for index in range(len(folders) - 2):  # the outermost: the course directory's own
        if folders[index] == "submitted":
            student, assignment = folders[index + 1], folders[index + 2]
            return index, Identity("nbgrader", student, student, {"student_id": student, "assignment_id": assignment})
    return None


def _looks_like(parts: tuple[str, ...]) -> str | None:
    *folders, file_name = parts
    if any(_MOODLE_LIKE.search(p) for p in parts):
        return "Moodle"
    if "_LATE_" in file_name or _CANVAS_LIKE.search(file_name):  # Canvas marks late work so; its two ids
        return "Canvas"
    if any(_GRADESCOPE_LIKE.match(p) for p in folders) and not any(_GRADESCOPE_FOLDER.match(p) for p in folders):
        return "Gradescope"
    return None


def identify(parts: tuple[str, ...], *, metadata: GradescopeTables | None = None) -> Identity:
    """The student behind the file at ``parts`` (folders from the export's root down, then the file name).

    :param parts: The file's path inside the export, as its pieces.
    :param metadata: Parsed Gradescope metadata files by the pieces of the folder that holds them.
    :returns: The identity; ``Identity()`` (no platform) when no layout matched, with a ``note``
        when the name looked like a platform's but did not parse.
    """
    found = [f for f in (_gradescope(parts, metadata or {}), _nbgrader(parts), _moodle(parts), _canvas(parts))
             if f is not None]
    if found:  # the layout whose mark is outermost: marks below it are in the student's own folders
        return min(found, key=lambda f: f[0])[1]
    platform = _looks_like(parts)
    if platform:
        return Identity(note=f"the name looks like a {platform} export's but does not parse; named as a file")
    return Identity()
