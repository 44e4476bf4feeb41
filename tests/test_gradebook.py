"""Grades and feedback back to the platform (issue 20): the files read back with their documented columns."""

from __future__ import annotations

import csv
import io
import zipfile

from nbjudge.gradebook import (
    CANVAS_COLUMNS,
    CANVAS_FEEDBACK,
    CANVAS_GRADEBOOK,
    MOODLE_COLUMNS,
    MOODLE_FEEDBACK,
    MOODLE_WORKSHEET,
    GradebookRow,
    write_gradebooks,
)
from nbjudge.grades import Grade, Marking
from nbjudge.intake import collect, student_record
from nbjudge.report import write_reports
from nbjudge.spreadsheet import csv_cell, csv_text
from nbjudge.store import merge, open_results, read_results

from tests.test_platforms import EXPORTS, write_export

MARKING = Marking(tasks=(1, 2, 3, 4, 5), hidden=2, expected=1)


def _write(grades, out, students) -> None:
    write_reports(grades, out, marking=MARKING, students=students, assignment="binary_mnist")


def _table(path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))


def _class(tmp_path, platform: str, points: list[int]):
    """A platform's export as intake reads it, and a grade for each of its rows."""
    rows = collect([write_export(tmp_path / platform, EXPORTS[platform], as_zip=True)], warn=print)
    grades = [Grade(r.name, "ok" if p == 15 else "partial", dict(zip((1, 2, 3, 4, 5), [p // 5] * 5, strict=True)))
              for r, p in zip(sorted(rows, key=lambda r: r.name), points, strict=True)]
    return rows, grades


def test_moodle_worksheet_and_feedback_zip_read_back(tmp_path):
    rows, grades = _class(tmp_path, "moodle", [15, 10, 5])
    out = tmp_path / "grades"
    _write(grades, out, {r.name: student_record(r) for r in rows})
    table = _table(out / MOODLE_WORKSHEET)
    assert tuple(table[0]) == MOODLE_COLUMNS
    by_id = {line[0]: dict(zip(MOODLE_COLUMNS, line, strict=True)) for line in table[1:]}
    totals = {g.submission: g.total for g in grades}
    assert set(by_id) == {"Participant 10001", "Participant 10002", "Participant 10003"}
    for row in rows:
        line = by_id[f"Participant {row.ids['participant']}"]
        assert line["Full name"] == row.student
        assert float(line["Grade"]) == totals[row.name] and line["Maximum Grade"] == "15"
    with zipfile.ZipFile(out / MOODLE_FEEDBACK) as zf:
        names = sorted(zf.namelist())
        # The feedback file sits in the folder the download gave that submission.
        assert names == sorted(f"{r.source.split('/')[0]}/feedback.md" for r in rows)
        for row in rows:
            folder = row.source.split("/")[0]
            assert zf.read(f"{folder}/feedback.md") == (out / "feedback" / f"{row.name}.md").read_bytes()
    assert not (out / CANVAS_GRADEBOOK).exists()
    grades_csv = list(csv.DictReader(io.StringIO((out / "grades.csv").read_text())))
    assert {(r["submission"], r["student"], r["source"]) for r in grades_csv} == {(r.name, r.student, r.source)
                                                                                 for r in rows}


def test_canvas_gradebook_and_feedback_zip_read_back(tmp_path):
    rows, grades = _class(tmp_path, "canvas", [15, 5])
    out = tmp_path / "grades"
    _write(grades, out, {r.name: student_record(r) for r in rows})
    table = _table(out / CANVAS_GRADEBOOK)
    assert tuple(table[0][:5]) == CANVAS_COLUMNS and table[0][5] == "binary_mnist"
    assert table[1][0].strip() == "Points Possible" and table[1][5] == "15"
    by_id = {line[1]: line for line in table[2:]}
    totals = {g.submission: g.total for g in grades}
    assert {row.ids["user_id"]: float(by_id[row.ids["user_id"]][5]) for row in rows} == {
        row.ids["user_id"]: totals[row.name] for row in rows}
    with zipfile.ZipFile(out / CANVAS_FEEDBACK) as zf:
        # Named with the download's prefix (login, LATE, user id, attachment id), as Canvas matches them.
        assert sorted(zf.namelist()) == ["jonesbob_124_457_feedback.md", "smithalice_LATE_123_456_feedback.md"]


def test_canvas_assignment_id_in_the_column_header(tmp_path):
    row = GradebookRow("a", "smithalice", "canvas", {"user_id": "123", "login": "smithalice"}, 12, 15, "partial")
    written, warnings = write_gradebooks([row], tmp_path, assignment="Binary MNIST", canvas_assignment_id="98765")
    assert written == [tmp_path / CANVAS_GRADEBOOK] and warnings == []
    assert _table(tmp_path / CANVAS_GRADEBOOK)[0][5] == "Binary MNIST (98765)"


def test_a_student_with_two_rows_is_left_out_and_named(tmp_path):
    rows = [GradebookRow("a", "Ann", "moodle", {"participant": "7", "full_name": "Ann"}, 15, 15, "ok"),
            GradebookRow("b", "Ann", "moodle", {"participant": "7", "full_name": "Ann"}, 3, 15, "partial"),
            GradebookRow("c", "Bo", "moodle", {"participant": "8", "full_name": "Bo"}, 9, 15, "partial"),
            GradebookRow("d", "d", "", {}, 1, 15, "partial")]
    written, warnings = write_gradebooks(rows, tmp_path)
    assert written == [tmp_path / MOODLE_WORKSHEET]
    assert [line[0] for line in _table(tmp_path / MOODLE_WORKSHEET)[1:]] == ["Participant 8"]
    assert warnings == ["warning: moodle participant 7 has 2 graded rows (a, b); left out of the moodle files: "
                        "enter that student's grade by hand"]


def test_merge_keeps_who_each_row_is(tmp_path):
    rows, grades = _class(tmp_path, "moodle", [15, 10, 5])
    students = {r.name: student_record(r) for r in rows}
    parts = []
    meta = {"lesson": "binary_mnist", "seed": 1, "marking": {"tasks": [1, 2, 3, 4, 5], "hidden": 2, "expected": 1}}
    for k, grade in enumerate(grades):
        part = tmp_path / f"shard-{k}"
        open_results(part, meta, resume=False, force=False).append(grade, "", students[grade.submission])
        parts.append(part)
    _write(grades, tmp_path / "single", students)
    merge(parts, tmp_path / "merged")
    for name in ("grades.csv", MOODLE_WORKSHEET):
        assert (tmp_path / "merged" / name).read_text() == (tmp_path / "single" / name).read_text()
    assert read_results(tmp_path / "merged")[2] == students


# --- issue 26: every student in the gradebook, none left out silently, nothing overwritten ------------

CANVAS_CLASS = {  # as Canvas names its downloads: lib/content_zipper.rb keeps letters of every script
    "müllerjürgen_125_791_binary_mnist.ipynb": b"1",
    "ørstedhans_LATE_126_792_binary_mnist.ipynb": b"2",
    "gu\u0308nterana_129_796_binary_mnist.ipynb": b"9",  # unzipped on macOS: decomposed (NFD)
    "王小明_127_793_binary_mnist.ipynb": b"3",
    "smithalice_LATE_123_456_binary_mnist-1.ipynb": b"4",
}


def _graded(tmp_path, files: dict[str, bytes], points: dict[str, int] | None = None):
    rows = collect([write_export(tmp_path / "canvas", files, as_zip=True)], warn=print)
    grades = [Grade(r.name, "partial", dict.fromkeys((1, 2, 3, 4, 5), (points or {}).get(r.name, 2)))
              for r in sorted(rows, key=lambda r: r.name)]
    return rows, grades


def test_canvas_gradebook_holds_every_student_unicode_names_included(tmp_path):
    rows, grades = _graded(tmp_path, CANVAS_CLASS)
    out = tmp_path / "grades"
    warnings = write_reports(grades, out, marking=MARKING, students={r.name: student_record(r) for r in rows},
                             assignment="binary_mnist")
    assert warnings == []
    table = _table(out / CANVAS_GRADEBOOK)
    students = {line[1]: line[0] for line in table[2:]}
    assert students == {"123": "smithalice", "125": "müllerjürgen", "126": "ørstedhans", "127": "王小明",
                        "129": "günterana"}
    assert {line[1]: line[5] for line in table[2:]} == dict.fromkeys(students, "10")
    with zipfile.ZipFile(out / CANVAS_FEEDBACK) as zf:
        # Canvas reads the user and attachment ids back from the first two all-digit pieces of each name.
        assert sorted(zf.namelist()) == sorted([
            "müllerjürgen_125_791_feedback.md", "ørstedhans_LATE_126_792_feedback.md", "王小明_127_793_feedback.md",
            "smithalice_LATE_123_456_feedback.md", "günterana_129_796_feedback.md"])
    notes = {r["submission"]: r["note"] for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    assert set(notes.values()) == {""}


def test_a_row_no_gradebook_can_place_is_named_in_a_warning_and_its_note(tmp_path):
    files = {**CANVAS_CLASS,
             "Müllerjürgen_128_794_binary_mnist.ipynb": b"5",  # not as Canvas writes it: no student
             "anon_x1Y2z_795_binary_mnist.ipynb": b"6",  # anonymous grading: no user id
             "jonesbob_124_457_binary_mnist.ipynb": b"7", "jonesbob_124_458_binary_mnist.ipynb": b"8"}  # twice
    rows, grades = _graded(tmp_path, files)
    by_source = {r.source: r.name for r in rows}
    out = tmp_path / "grades"
    warnings = write_reports(grades, out, marking=MARKING, students={r.name: student_record(r) for r in rows},
                             assignment="binary_mnist")
    stray = by_source["Müllerjürgen_128_794_binary_mnist.ipynb"]
    anonymous = by_source["anon_x1Y2z_795_binary_mnist.ipynb"]
    twice = sorted(by_source[f"jonesbob_124_{a}_binary_mnist.ipynb"] for a in (457, 458))
    left_out = {stray, anonymous, *twice}
    for name in left_out:  # each named in a warning of the run
        assert any(name in w and "by hand" in w for w in warnings), (name, warnings)
    notes = {r["submission"]: r["note"] for r in csv.DictReader(io.StringIO((out / "grades.csv").read_text()))}
    assert all("by hand" in notes[name] for name in left_out), notes
    assert "matched no platform's layout" in notes[stray] and "canvas files" in notes[stray]
    assert "no canvas user_id" in notes[anonymous] and "has 2 graded rows" in notes[twice[0]]
    assert all(notes[name] == "" for name in set(notes) - left_out)
    placed = {line[1] for line in _table(out / CANVAS_GRADEBOOK)[2:]}
    assert placed == {"123", "125", "126", "127", "129"}  # every student with one placeable row, and only those


def test_force_keeps_every_earlier_output_byte_identical(tmp_path):
    moodle_rows, moodle_grades = _class(tmp_path, "moodle", [15, 10, 5])
    canvas_rows, canvas_grades = _graded(tmp_path, CANVAS_CLASS)
    students = {r.name: student_record(r) for r in [*moodle_rows, *canvas_rows]}
    out = tmp_path / "grades"
    meta = {"lesson": "binary_mnist", "seed": 1, "marking": {"tasks": [1, 2, 3, 4, 5], "hidden": 2, "expected": 1}}
    snapshots = []
    for run in range(3):
        results = open_results(out, meta, resume=False, force=run > 0, log=lambda _: None)
        for grade in [*moodle_grades, *canvas_grades]:
            changed = Grade(grade.submission, grade.status, {t: (p + run) % 4 for t, p in grade.points.items()})
            results.append(changed, "", students[grade.submission])
        results.rebuild()
        snapshots.append({p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                          if p.is_file() and not p.relative_to(out).as_posix().startswith("previous-")})
    for name in (MOODLE_WORKSHEET, MOODLE_FEEDBACK, CANVAS_GRADEBOOK, CANVAS_FEEDBACK, "grades.csv", "results.jsonl"):
        assert snapshots[0][name] != snapshots[1][name] != snapshots[2][name], name  # each run wrote its own
    for number, snapshot in enumerate(snapshots[:2], start=1):  # and every earlier one is kept as it was
        kept = {p.relative_to(out / f"previous-{number}").as_posix(): p.read_bytes()
                for p in (out / f"previous-{number}").rglob("*") if p.is_file()}
        assert kept == snapshot


def test_csv_cell_defuses_formulas_and_nothing_else():
    """Every CSV the engine writes (grades.csv, the platforms' sheets) goes through one function."""
    for text in ("=1+2", "+1", "-Ünï", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell(-3) == "'-3" and csv_cell(15) == "15" and csv_cell("a=b") == "a=b" and csv_cell("") == ""
    assert csv_text([["=x", 1], ["ok", "a,b"]]) == "'=x,1\nok,\"a,b\"\n"
