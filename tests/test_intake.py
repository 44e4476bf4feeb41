"""Safe intake of submissions (issue 8 "Bad input", issue 9 item 6): what is read, and the names."""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import threading
import time
from pathlib import Path

import pytest
from nbjudge.intake import MAX_BYTES, RESERVED_NAMES, Submission, collect, safe_name

NOTEBOOK = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'


def _write(path: Path, data: bytes = NOTEBOOK) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _collect(*paths: Path, **options) -> tuple[list[Submission], list[str]]:
    warnings: list[str] = []
    return collect(list(paths), warn=warnings.append, **options), warnings


def _by_path(rows: list[Submission]) -> dict[str, Submission]:
    return {str(row.path): row for row in rows}


def test_same_names_in_two_folders_each_keep_their_own_file(tmp_path):
    subs, late = tmp_path / "subs", tmp_path / "late"
    files = [_write(subs / "alice.ipynb", b"1"), _write(subs / "late-alice.ipynb", b"2"),
             _write(late / "alice.ipynb", b"3")]
    rows, warnings = _collect(subs, late)
    assert warnings == []
    assert [(row.name, row.path, row.data) for row in rows] == [
        ("alice", files[0], b"1"), ("late-alice", files[1], b"2"), ("late__alice", files[2], b"3"),
    ]


def test_names_are_the_same_in_every_shard_and_unique_ignoring_case(tmp_path):
    subs = tmp_path / "subs"
    for name in ("Bob.ipynb", "bob.ipynb", "x/bob.ipynb", "x/Bob.IPYNB", "y/x/bob.ipynb"):
        _write(subs / name)
    first, _ = _collect(subs)
    second, _ = _collect(subs)
    assert [(r.name, r.path) for r in first] == [(r.name, r.path) for r in second]
    names = [row.name for row in first]
    assert len({name.casefold() for name in names}) == len(names) == 5
    assert names == ["Bob", "subs__bob", "x__Bob", "subs__x__bob", "y__x__bob"]


def test_reserved_and_odd_names_become_safe_and_distinct(tmp_path):
    subs = tmp_path / "subs"
    odd = ["reference.ipynb", "...ipynb", "..ipynb", ".ipynb", "-rf.ipynb", "--help.ipynb", "Ünïcødé Námé.ipynb",
           "=1+2.ipynb", "a b\tc.ipynb", "CON.ipynb", "line\nbreak.ipynb", "a|b*`c`<x>.ipynb"]
    for name in odd:
        _write(subs / name)
    rows, warnings = _collect(subs)
    assert warnings == []
    names = {row.path.name: row.name for row in rows}
    assert set(names) == set(odd)
    assert len(set(names.values())) == len(odd)
    for name in names.values():
        assert name not in {"", ".", ".."} and name.casefold() not in RESERVED_NAMES
        assert re.fullmatch(r"[^\W_][\w.\-]*", name), name  # starts with a letter or digit: no '-', '.', '=', '+'
        assert not name.endswith(".")
    assert names["reference.ipynb"] == "subs__reference"
    assert names["Ünïcødé Námé.ipynb"] == "Ünïcødé_Námé"
    assert names["-rf.ipynb"] == "rf"
    assert names["=1+2.ipynb"] == "1_2"
    assert names["CON.ipynb"] == "subs__CON"
    assert {names[n] for n in ("...ipynb", "..ipynb", ".ipynb")} == {"notebook", "subs__notebook", "notebook--2"}


def test_a_long_name_is_shortened(tmp_path):
    path = _write(tmp_path / ("Lastname_Firstname_1234567_" * 5 + ".ipynb"))
    (row,), _ = _collect(path)
    assert row.data == NOTEBOOK
    assert len(row.name.encode()) <= 100


def test_safe_name_keeps_letters_and_drops_separators():
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("..\\..\\x") == "x"
    assert safe_name("日本語 ノート") == "日本語_ノート"
    assert safe_name("...") == ""


def test_links_fifos_and_devices_are_never_followed_or_opened(tmp_path):
    subs = tmp_path / "subs"
    outside = _write(tmp_path / "instructor" / "solution.ipynb", b"SECRET")
    _write(subs / "ok.ipynb")
    (subs / "zero.ipynb").symlink_to("/dev/zero")
    (subs / "solution.ipynb").symlink_to(outside)
    (subs / "dangling.ipynb").symlink_to(tmp_path / "nowhere.ipynb")
    os.mkfifo(subs / "fifo.ipynb")
    (subs / "linked-folder").symlink_to(outside.parent, target_is_directory=True)
    done: list[tuple[list[Submission], list[str]]] = []
    reader = threading.Thread(target=lambda: done.append(_collect(subs)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert done, "collect blocked"  # a FIFO with no writer would block an ordinary open()
    rows, warnings = done[0]
    by_name = {row.path.name: row for row in rows}
    assert by_name["ok.ipynb"].data == NOTEBOOK and by_name["ok.ipynb"].problem is None
    for name in ("zero.ipynb", "solution.ipynb", "dangling.ipynb"):
        assert by_name[name].data is None
        assert "symbolic link" in by_name[name].problem
    assert by_name["fifo.ipynb"].data is None and "a FIFO, not a regular file" in by_name["fifo.ipynb"].problem
    assert all(row.data != b"SECRET" for row in rows)
    assert warnings == [f"warning: {subs / 'linked-folder'}: a symbolic link to a folder; not followed"]


def test_a_link_named_directly_is_not_followed_either(tmp_path):
    link = tmp_path / "student.ipynb"
    link.symlink_to("/dev/zero")
    (row,), _ = _collect(link)
    assert row.data is None and "symbolic link" in row.problem


def test_a_device_is_never_opened(tmp_path):
    device = tmp_path / "subs" / "device.ipynb"
    device.parent.mkdir()
    try:
        os.mknod(device, 0o600 | stat.S_IFCHR, os.stat("/dev/null").st_rdev)
    except PermissionError:
        pytest.skip("creating a device node needs root")
    (row,), _ = _collect(device.parent)
    assert row.data is None and row.problem.startswith("is a character device, not a regular file")


def test_oversize_files_are_refused_quickly_without_reading_them(tmp_path):
    subs = tmp_path / "subs"
    big = subs / "big.ipynb"
    big.parent.mkdir()
    with open(big, "wb") as handle:  # 200 MB, sparse: its size alone refuses it
        handle.truncate(200 * 10**6)
    _write(subs / "fits.ipynb", b"x" * 1000)
    started = time.perf_counter()
    rows, _ = _collect(subs, max_bytes=1 << 20)
    assert time.perf_counter() - started < 2
    by_name = {row.name: row for row in rows}
    assert by_name["big"].data is None
    assert "190.7 MiB, above the grader's 1 MiB cap" in by_name["big"].problem
    assert "Clear Outputs" in by_name["big"].problem
    assert by_name["fits"].data == b"x" * 1000
    assert MAX_BYTES == 128 * 2**20


def test_a_notebook_large_for_its_outputs_is_kept_as_its_code(tmp_path):
    """A correct notebook that printed a large array: 17 MB saved, the grader keeps its code only."""
    code = {"cell_type": "code", "source": "def mlp(params, inputs):\n    return inputs",
            "metadata": {"tags": ["task-2"]}, "execution_count": 1, "id": "a",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": "0.123456789 " * 1_500_000}]}
    path = _write(tmp_path / "printed.ipynb", json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                                          "cells": [code]}).encode())
    assert path.stat().st_size > 15 * 10**6
    (row,), _ = _collect(path)
    assert row.problem is None and len(row.data) < 1000
    kept = json.loads(row.data)["cells"][0]
    assert (kept["source"], kept["metadata"], "outputs" in kept) == (code["source"], {"tags": ["task-2"]}, False)


def test_a_file_growing_past_the_cap_while_read_is_refused(tmp_path, monkeypatch):
    path = _write(tmp_path / "growing.ipynb", b"x" * 100)
    real_read = os.read

    def endless(fd, size):  # a file that keeps growing after fstat: reads never end on their own
        return real_read(fd, size) or b"y" * size

    monkeypatch.setattr(os, "read", endless)
    (row,), _ = _collect(path, max_bytes=4096)
    assert row.data is None and "cap" in row.problem


def test_nested_folders_uppercase_suffix_and_checkpoints(tmp_path):
    root = tmp_path / "export"
    _write(root / "Alice Smith_123_assignsubmission_file_" / "binary_mnist.ipynb", b"a")
    _write(root / "Bob Jones_456_assignsubmission_file_" / "Notebook.IPYNB", b"b")
    _write(root / "Bob Jones_456_assignsubmission_file_" / ".ipynb_checkpoints" / "Notebook-checkpoint.ipynb")
    _write(root / "__MACOSX" / "._binary_mnist.ipynb")
    _write(root / "notes.txt", b"not a notebook")
    rows, warnings = _collect(root)
    assert warnings == []
    # Moodle folders: each row is named after its student, never a bare file name.
    assert [(row.name, row.student, row.data) for row in rows] == [
        ("Alice_Smith_123", "Alice Smith", b"a"), ("Bob_Jones_456", "Bob Jones", b"b")]


def test_empty_folders_and_missing_paths_warn_and_intake_goes_on(tmp_path):
    empty, texts, subs = tmp_path / "empty", tmp_path / "texts", tmp_path / "subs"
    empty.mkdir()
    _write(texts / "readme.md", b"#")
    _write(subs / "alice.ipynb")
    rows, warnings = _collect(empty, texts, tmp_path / "gone", tmp_path / "bob.ipynb", subs)
    assert warnings == [
        f"warning: {empty}: no .ipynb files in this folder; nothing graded from it",
        f"warning: {texts}: no .ipynb files in this folder; nothing graded from it",
        f"warning: {tmp_path / 'gone'} does not exist; nothing graded from it",
    ]
    # A notebook the instructor named that is not there is a row: the student is not forgotten.
    assert [(row.name, row.data, row.problem) for row in rows] == [
        ("bob", None, "does not exist"), ("alice", NOTEBOOK, None),
    ]


def test_a_file_named_twice_is_graded_once(tmp_path):
    path = _write(tmp_path / "subs" / "alice.ipynb")
    rows, warnings = _collect(tmp_path / "subs", path)
    assert [row.name for row in rows] == ["alice"]
    assert warnings == [f"warning: {path}: named twice; graded once"]


def test_a_named_file_that_is_not_a_notebook_is_a_row_with_a_problem(tmp_path):
    (row,), _ = _collect(_write(tmp_path / "alice.py", b"print(1)"))
    assert row.name == "alice.py" and row.data is None and ".ipynb" in row.problem


def test_an_unreadable_file_is_a_row_with_a_problem(tmp_path, monkeypatch):
    path = _write(tmp_path / "locked.ipynb")
    real_open = os.open

    def denied(name, flags, *args, **kwargs):  # as for a non-root grader and a file of mode 000
        if str(name).endswith("locked.ipynb"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    (row,), _ = _collect(path)
    assert row.data is None and row.problem == "cannot be read: Permission denied"
