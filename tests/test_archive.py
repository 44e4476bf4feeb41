"""Hostile and malformed zip exports (issue 20, "Bad input"): each a clear error, a non-zero exit,
and nothing written."""

from __future__ import annotations

import stat
import warnings
import zipfile
from pathlib import Path

import pytest
from nbjudge import archive, cli

from tests.conftest import ROOT

NOTEBOOK = (ROOT / "tests" / "fixtures" / "submissions" / "untouched.ipynb").read_bytes()
GOOD = "Student One_10001_assignsubmission_file_/binary_mnist.ipynb"


def _zip(path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Duplicate name")  # the "twice" attack
        for info, data in entries:
            zf.writestr(info, data)
    return path


def _link(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _nested() -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as inner:
        inner.writestr("binary_mnist.ipynb", NOTEBOOK)
    return buffer.getvalue()


ATTACKS = {
    "dot-dot": ([("../../outside.ipynb", NOTEBOOK)], "climbs out of the archive with '..'"),
    "dot-dot-in-folder": ([("A_1_assignsubmission_file_/../../x.ipynb", NOTEBOOK)], "climbs out of the archive"),
    "absolute": ([("/etc/cron.d/x.ipynb", NOTEBOOK)], "has an absolute path"),
    "windows-absolute": ([("C:\\Users\\x.ipynb", NOTEBOOK)], "has an absolute path"),
    "symlink": ([(_link("B_2_assignsubmission_file_/binary_mnist.ipynb", "/etc/passwd"), b"/etc/passwd")],
                "is a symbolic link"),
    "bomb": ([("B_2_assignsubmission_file_/binary_mnist.ipynb", b"0" * 50_000_000)],
             "unpacks to more than 100 times its packed size (a zip bomb?)"),
    "nested-zip": ([("B_2_assignsubmission_file_/work.zip", _nested())],
                   "is an archive inside the archive (nested archives are not opened)"),
    "twice": ([(GOOD, NOTEBOOK), (GOOD, NOTEBOOK)], "appears twice"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_archive_attack_is_an_error_and_nothing_is_written(tmp_path, capsys, attack):
    entries, message = ATTACKS[attack]
    export = _zip(tmp_path / "export.zip", [(GOOD, NOTEBOOK), *entries])
    out = tmp_path / "grades"
    code = cli.main([str(export), "--out", str(out), "--seed", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {export}: the entry ") and message in err, err
    assert "nothing was graded" in err and "grade the folder" in err
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.zip"]  # nothing unpacked anywhere


def test_too_many_entries_is_an_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 5)
    export = _zip(tmp_path / "export.zip", [(f"s{i}/x.ipynb", b"{}") for i in range(6)])
    assert cli.main([str(export), "--out", str(tmp_path / "grades"), "--seed", "1"]) == 2
    assert "has 6 entries, more than the grader's cap of 5 (a zip bomb?)" in capsys.readouterr().err
    assert not (tmp_path / "grades").exists()


def test_too_much_in_all_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 3 * len(NOTEBOOK))
    export = _zip(tmp_path / "export.zip", [(f"s{i}/x.ipynb", NOTEBOOK) for i in range(4)])
    with pytest.raises(archive.ArchiveError, match="unpacks to more than"):
        archive.read_zip(export, wanted=lambda name: True, max_bytes=10**7)


def test_an_entry_longer_than_its_header_is_an_error(tmp_path):
    export = _zip(tmp_path / "export.zip", [("s/x.ipynb", NOTEBOOK)])
    raw = bytearray(export.read_bytes())
    small = len(NOTEBOOK) // 2  # the header claims half the size; the data unpacks to all of it
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = raw.index(signature)
        raw[at + offset:at + offset + 4] = small.to_bytes(4, "little")
    export.write_bytes(bytes(raw))
    with pytest.raises(archive.ArchiveError, match="x.ipynb"):
        archive.read_zip(export, wanted=lambda name: True, max_bytes=10**7)


def test_a_link_to_a_zip_and_a_corrupt_zip_are_errors(tmp_path):
    real = _zip(tmp_path / "real.zip", [(GOOD, NOTEBOOK)])
    (tmp_path / "link.zip").symlink_to(real)
    with pytest.raises(archive.ArchiveError, match="symbolic link"):
        archive.read_zip(tmp_path / "link.zip", wanted=lambda name: True, max_bytes=10**7)
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(archive.ArchiveError, match="not a zip file that can be read"):
        archive.read_zip(tmp_path / "broken.zip", wanted=lambda name: True, max_bytes=10**7)


def test_a_clean_zip_reads_notebooks_and_skips_mac_folders(tmp_path):
    export = _zip(tmp_path / "export.zip", [(GOOD, NOTEBOOK), ("__MACOSX/._x.ipynb", b"junk"), ("readme.txt", b"hi")])
    found = archive.read_zip(export, wanted=lambda n: n.endswith(".ipynb"), max_bytes=10**7,
                             skip=lambda part: part == "__MACOSX")
    assert found == [(GOOD, NOTEBOOK, None)]


def test_a_zip_named_twice_is_read_once(tmp_path):
    from nbjudge.intake import collect

    export = _zip(tmp_path / "export.zip", [(GOOD, NOTEBOOK)])
    warnings: list[str] = []
    rows = collect([export, export], warn=warnings.append)
    assert [r.name for r in rows] == ["Student_One_10001"]
    assert warnings == [f"warning: {export}: named twice; graded once"]
