"""Who submitted a file: the identity a learning platform's export gives it.

:func:`identify` reads the folders and the file name of one notebook inside an export and returns
the student as the platform knows them, with the identifiers its grade import needs back. It
knows these layouts (sources in the README, section *Intake from a platform*):

* **Moodle**, *Download all submissions*: a folder per submission,
  ``Full Name_12345_assignsubmission_file_/notebook.ipynb``, or (without *Download submissions in
  folders*) flat files ``Full Name_12345_assignsubmission_file_notebook.ipynb``. ``12345`` is the
  participant number that the grading worksheet calls ``Participant 12345``.
* **Canvas**, *Download Submissions*: flat files ``lastnamefirstname_LATE_123_456_name-1.ipynb``:
  the student's sortable name in lower case without separators, ``LATE`` for a late submission,
  the Canvas user id (the gradebook's ``ID`` column), the attachment id, the file's own name
  (Canvas appends ``-N`` to a resubmitted file).
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
from dataclasses import dataclass, field

__all__ = ["PLATFORMS", "Identity", "identify", "parse_gradescope_metadata"]

PLATFORMS = ("moodle", "canvas", "gradescope", "nbgrader")
GRADESCOPE_METADATA = "submission_metadata.yml"
_MOODLE_FOLDER = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_$")
_MOODLE_FILE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?P<plugin>[a-z]+)_(?P<file>.+)$")
_MOODLE_LIKE = re.compile(r"_assignsubmission_", re.IGNORECASE)
_CANVAS_FILE = re.compile(r"^(?P<login>[a-z0-9]+)(?P<late>_LATE)?_(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+)$")
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


def _moodle_identity(match: re.Match) -> Identity:
    name, number = match["name"].strip(), match["id"]
    return Identity("moodle", name, f"{name}_{number}", {"participant": number, "full_name": name})


def _canvas(parts: tuple[str, ...]) -> tuple[int, Identity] | None:
    match = _CANVAS_FILE.match(parts[-1])
    if not match:
        return None
    ids = {"login": match["login"], "user_id": match["uid"], "attachment_id": match["aid"],
           "late": "1" if match["late"] else "0"}
    return len(parts) - 1, Identity("canvas", match["login"], f"{match['login']}_{match['uid']}", ids)


def _gradescope(parts: tuple[str, ...], metadata: dict[tuple[str, ...], dict]) -> tuple[int, Identity] | None:
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
    if "_LATE_" in file_name:  # Canvas marks late submissions so
        return "Canvas"
    if any(_GRADESCOPE_LIKE.match(p) for p in folders) and not any(_GRADESCOPE_FOLDER.match(p) for p in folders):
        return "Gradescope"
    return None


def identify(parts: tuple[str, ...], *, metadata: dict[tuple[str, ...], dict] | None = None) -> Identity:
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
