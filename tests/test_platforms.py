"""Intake of platform exports (issue 20): Moodle, Canvas, Gradescope, nbgrader, as folders and as zips."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from nbjudge.intake import Submission, collect
from nbjudge.platforms import identify

from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "submissions"
FULL = (FIXTURES / "full-marks.ipynb").read_bytes()
UNTOUCHED = (FIXTURES / "untouched.ipynb").read_bytes()
WRONG = (FIXTURES / "wrong-subset-indices.ipynb").read_bytes()

GRADESCOPE_METADATA = """\
submission_101:
  :submitters:
  - :name: Alice Smith
    :sid: '2001'
    :email: alice@example.edu
  :created_at: 2024-06-11 10:00:00.000000000 -07:00
  :score: 0.0
submission_102:
  :submitters:
  - :name: Bob Jones
    :sid: '2002'
    :email: bob@example.edu
  - :name: Carol White
    :sid: '2003'
    :email: carol@example.edu
  :created_at: 2024-06-11 11:00:00.000000000 -07:00
"""

EXPORTS: dict[str, dict[str, bytes]] = {
    # The Moodle class: three folders with the same file name, and a file named like another's row.
    "moodle": {
        "Student One_10001_assignsubmission_file_/binary_mnist.ipynb": FULL,
        "Student Two_10002_assignsubmission_file_/binary_mnist.ipynb": UNTOUCHED,
        "Student Three_10003_assignsubmission_file_/binary_mnist.ipynb": WRONG,
    },
    "canvas": {
        "smithalice_LATE_123_456_binary_mnist-1.ipynb": FULL,
        "jonesbob_124_457_binary_mnist.ipynb": UNTOUCHED,
    },
    "gradescope": {
        "assignment_77_export/submission_metadata.yml": GRADESCOPE_METADATA.encode(),
        "assignment_77_export/submission_101/binary_mnist.ipynb": FULL,
        "assignment_77_export/submission_102/binary_mnist.ipynb": UNTOUCHED,
    },
    "nbgrader": {
        "submitted/alice/ps1/binary_mnist.ipynb": FULL,
        "submitted/bob/ps1/binary_mnist.ipynb": UNTOUCHED,
        "submitted/bob/ps1/timestamp.txt": b"2024-06-11 10:00:00 UTC",
    },
}
EXPECTED = {  # platform: [(name, student, source, ids)] in row order
    "moodle": [
        ("Student_One_10001", "Student One", "Student One_10001_assignsubmission_file_/binary_mnist.ipynb",
         {"participant": "10001", "full_name": "Student One"}),
        ("Student_Three_10003", "Student Three", "Student Three_10003_assignsubmission_file_/binary_mnist.ipynb",
         {"participant": "10003", "full_name": "Student Three"}),
        ("Student_Two_10002", "Student Two", "Student Two_10002_assignsubmission_file_/binary_mnist.ipynb",
         {"participant": "10002", "full_name": "Student Two"}),
    ],
    "canvas": [
        ("jonesbob_124", "jonesbob", "jonesbob_124_457_binary_mnist.ipynb",
         {"login": "jonesbob", "user_id": "124", "attachment_id": "457", "late": "0"}),
        ("smithalice_123", "smithalice", "smithalice_LATE_123_456_binary_mnist-1.ipynb",
         {"login": "smithalice", "user_id": "123", "attachment_id": "456", "late": "1"}),
    ],
    "gradescope": [
        ("Alice_Smith_2001", "Alice Smith", "assignment_77_export/submission_101/binary_mnist.ipynb",
         {"submission_id": "101", "sid": "2001", "email": "alice@example.edu"}),
        ("Bob_Jones_2002", "Bob Jones", "assignment_77_export/submission_102/binary_mnist.ipynb",
         {"submission_id": "102", "sid": "2002", "email": "bob@example.edu"}),
    ],
    "nbgrader": [
        ("alice", "alice", "submitted/alice/ps1/binary_mnist.ipynb", {"student_id": "alice", "assignment_id": "ps1"}),
        ("bob", "bob", "submitted/bob/ps1/binary_mnist.ipynb", {"student_id": "bob", "assignment_id": "ps1"}),
    ],
}


def write_export(root: Path, files: dict[str, bytes], *, as_zip: bool) -> Path:
    """The export as a folder ``root``, or as ``root.zip``."""
    if as_zip:
        path = root.with_suffix(".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return path
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _collect(*paths: Path) -> tuple[list[Submission], list[str]]:
    warnings: list[str] = []
    return collect(list(paths), warn=warnings.append), warnings


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("platform", sorted(EXPORTS))
def test_each_platform_export_gives_each_row_its_student(tmp_path, platform, as_zip):
    export = write_export(tmp_path / f"{platform}-export", EXPORTS[platform], as_zip=as_zip)
    rows, warnings = _collect(export)
    assert warnings == []
    got = sorted(rows, key=lambda r: r.name)
    assert [(r.name, r.student, r.source, r.ids) for r in got] == EXPECTED[platform]
    assert {r.platform for r in rows} == {platform}
    by_source = {r.source: r.data for r in rows}
    assert all(by_source[source] == EXPORTS[platform][source] for source in by_source)  # each keeps its own file
    notes = {r.name: r.note for r in rows}
    if platform == "gradescope":
        assert notes["Bob_Jones_2002"] == "a group submission; also by Carol White"
    else:
        assert set(notes.values()) == {None}


def test_a_file_named_like_another_students_row_cannot_take_it(tmp_path):
    """The issue's case: a file named like Student Two's folder-qualified row, next to that folder."""
    files = {**EXPORTS["moodle"], "Student_Two_10002_assignsubmission_file__binary_mnist.ipynb": b"HERS"}
    rows, _ = _collect(write_export(tmp_path / "export", files, as_zip=False))
    by_source = {r.source: r for r in rows}
    folder = by_source["Student Two_10002_assignsubmission_file_/binary_mnist.ipynb"]
    flat = by_source["Student_Two_10002_assignsubmission_file__binary_mnist.ipynb"]
    assert folder.data == UNTOUCHED and flat.data == b"HERS"
    # Moodle's flat layout names the same participant: two submissions of one student, one row each, both noted.
    assert folder.ids["participant"] == flat.ids["participant"] == "10002" and folder.name != flat.name
    assert folder.student == "Student Two" and folder.name == "Student_Two_10002__binary_mnist"
    for row in (folder, flat):
        assert "has 2 submissions in this export" in row.note and "none was picked" in row.note
    others = {r.name for r in rows} - {folder.name, flat.name}
    assert others == {"Student_One_10001", "Student_Three_10003"}  # the others keep their rows


def test_a_plain_file_cannot_spell_a_qualified_or_numbered_name(tmp_path):
    for name in ("a/x.ipynb", "b/x.ipynb", "a__x.ipynb", "x--2.ipynb", "x.ipynb"):
        (tmp_path / "subs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "subs" / name).write_bytes(name.encode())
    rows, _ = _collect(tmp_path / "subs")
    names = {r.source: r.name for r in rows}
    assert len(set(names.values())) == 5
    assert names["a/x.ipynb"] == "x" and names["b/x.ipynb"] == "b__x" and names["x.ipynb"] == "subs__x"
    assert "__" not in names["a__x.ipynb"] and "--" not in names["x--2.ipynb"]


def test_an_unknown_layout_keeps_todays_naming_and_a_student(tmp_path):
    rows, _ = _collect(write_export(tmp_path / "subs", {"alice.ipynb": FULL, "late/alice.ipynb": WRONG}, as_zip=False))
    assert [(r.name, r.student, r.source, r.platform, r.note) for r in rows] == [
        ("alice", "alice", "alice.ipynb", "", None), ("late__alice", "late__alice", "late/alice.ipynb", "", None)]


@pytest.mark.parametrize("path, platform", [
    ("Alice_assignsubmission_file_/binary_mnist.ipynb", "Moodle"),
    ("smith_LATE_x_binary_mnist.ipynb", "Canvas"),
    ("submission_abc/binary_mnist.ipynb", "Gradescope"),
])
def test_a_platform_like_name_that_does_not_parse_keeps_todays_naming_with_a_note(tmp_path, path, platform):
    (row,), _ = _collect(write_export(tmp_path / "subs", {path: FULL}, as_zip=False))
    file_stem = path.rsplit("/", 1)[-1].removesuffix(".ipynb")  # named after its file, as any file is
    # no platform, so no platform identifiers: the name is not read as a login, user id or participant
    assert (row.platform, row.student, row.name, row.source, row.ids) == ("", file_stem, file_stem, path, {})
    assert row.note == f"the name looks like a {platform} export's but does not parse; named as a file"


def test_nbgrader_student_with_two_notebooks_gets_two_rows(tmp_path):
    files = {"submitted/alice/ps1/binary_mnist.ipynb": FULL, "submitted/alice/ps1/extra.ipynb": WRONG}
    rows, _ = _collect(write_export(tmp_path / "course", files, as_zip=False))
    assert sorted(r.name for r in rows) == ["alice__binary_mnist", "alice__extra"]
    assert all("alice has 2 submissions" in r.note for r in rows)


def test_gradescope_folder_without_metadata_is_a_folder():
    assert identify(("export", "submission_5", "x.ipynb")).platform == ""


def test_folders_inside_a_submission_cannot_claim_another_student(tmp_path):
    """Moodle keeps a student's own subfolders: a subfolder named like another student's is still hers."""
    files = {"Ann Lee_7_assignsubmission_file_/Bob Ray_8_assignsubmission_file_/binary_mnist.ipynb": FULL,
             "Ann Lee_7_assignsubmission_file_/submitted/bob/ps1/x.ipynb": WRONG}
    rows, _ = _collect(write_export(tmp_path / "export", files, as_zip=True))
    assert {(r.student, r.ids["participant"]) for r in rows} == {("Ann Lee", "7")}
    course = {"submitted/ann/ps1/submitted/bob/ps1/binary_mnist.ipynb": FULL}
    (row,), _ = _collect(write_export(tmp_path / "course", course, as_zip=False))
    assert row.student == "ann"


# --- names as the platforms write them (issue 26) -------------------------------------------------
# Canvas: lib/content_zipper.rb keeps [[:word:]] (letters and marks of any script, digits, "_") of the
# lower-cased sortable name; Moodle: mod/assign/classes/downloader.php keeps the full name in any script.


@pytest.mark.parametrize("file_name, login, late", [
    ("müllerjürgen_125_791_binary_mnist.ipynb", "müllerjürgen", "0"),
    ("mu\u0308llerju\u0308rgen_LATE_125_791_binary_mnist.ipynb", "müllerjürgen", "1"),  # unzipped as NFD (macOS)
    ("王小明_125_791_binary_mnist.ipynb", "王小明", "0"),
    ("ओमप्रकाश_125_791_binary_mnist.ipynb", "ओमप्रकाश", "0"),  # vowel signs are marks, which Canvas keeps
    ("o_brien_125_791_binary_mnist_2.ipynb", "o_brien", "0"),  # "_" is a word character too
])
def test_canvas_names_in_any_script(file_name, login, late):
    found = identify(("export", file_name))
    assert (found.platform, found.student, found.label, found.note) == ("canvas", login, f"{login}_125", None)
    assert found.ids == {"login": login, "user_id": "125", "attachment_id": "791", "late": late}


def test_canvas_anonymous_download_has_a_student_but_no_user_id():
    found = identify(("export", "LATE_anon_x1Y2z_791_binary_mnist.ipynb"))
    assert (found.platform, found.student) == ("canvas", "anon_x1Y2z")
    assert found.ids == {"anonymous_id": "x1Y2z", "attachment_id": "791", "late": "1"}


@pytest.mark.parametrize("file_name", [
    "Müllerjürgen_125_791_binary_mnist.ipynb",  # Canvas lower-cases the name
    "müller-jürgen_125_791_binary_mnist.ipynb",  # and keeps no "-"
    "müllerjürgen_LATE_١٢٥_791_binary_mnist.ipynb",  # ids are ASCII digits
])
def test_canvas_like_names_that_canvas_cannot_write_get_a_note(file_name):
    found = identify(("export", file_name))
    assert found.platform == ""
    assert found.note == "the name looks like a Canvas export's but does not parse; named as a file"


@pytest.mark.parametrize("folder", ["Jürgen Müller_12_assignsubmission_file",
                                    "Jürgen Müller_12_assignsubmission_file_"])
def test_moodle_folders_of_every_version_in_any_script(folder):
    """Moodle 4.1 and later name the folder without the trailing "_" of earlier versions."""
    found = identify(("export", folder, "binary_mnist.ipynb"))
    assert (found.platform, found.student, found.ids) == (
        "moodle", "Jürgen Müller", {"participant": "12", "full_name": "Jürgen Müller"})
