"""The lesson's shared cache (the JAX compilation cache a warm-up job fills, issue 27): which folder
each job gets, what the grader copies, that it holds nothing compiled from an answer, and that no
job can write anything shared between jobs, that cache included."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import stat
import zlib
from pathlib import Path

import nbformat
import pytest
from bmnist_helpers.lesson import lesson_path
from nbjudge import batch
from nbjudge.bwrap import CACHE_INSIDE, PRIVATE_CACHE, kernel_env
from nbjudge.kernel_path import kernel_path, site_view
from nbjudge.kernelspec import SandboxConfig, readable_paths
from nbjudge.lessons import SharedCache
from nbjudge.notebook import build_grading_copy, only_stubs, read_submission
from nbjudge.plan import build_plan
from nbjudge.run import RunResult
from nbjudge.shared_cache import cache_use, publish

from tests.test_isolation import _launch, _output, needs_bwrap

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "submissions"
CACHE = SharedCache(writer_env={"CACHE_DIR": "{cache}", "WRITE": "1"},
                    reader_env={"CACHE_DIR": "{cache}", "WRITE": "0"})


def test_only_the_warm_up_job_writes_the_folder_that_is_shared(tmp_path):
    (tmp_path / "ref").mkdir()
    ref = cache_use(CACHE, fills=True, workdir=tmp_path / "ref", published=None, bwrap=True)
    assert ref.writable and ref.folder == str(tmp_path / "ref" / "cache") and ref.env["WRITE"] == "1"
    assert stat.S_IMODE(os.stat(ref.folder).st_mode) == 0o700
    reader = cache_use(CACHE, fills=False, workdir=tmp_path, published="/shared", bwrap=True)
    assert (reader.folder, reader.writable, reader.env["WRITE"]) == ("/shared", False, "0")
    for early in (cache_use(CACHE, fills=False, workdir=tmp_path, published=None, bwrap=True),  # before it exists
                  cache_use(CACHE, fills=False, workdir=tmp_path, published="/shared", bwrap=False)):  # no sandbox
        assert (early.folder, early.writable, early.env["WRITE"]) == (None, False, "1")  # a private folder
    assert cache_use(None, fills=True, workdir=tmp_path, published=None, bwrap=True).env == {}


def test_the_cache_variable_names_the_folder_the_kernel_sees():
    config = SandboxConfig(home="/job/home", env={"CACHE_DIR": "{cache}", "H": "{home}/x"})
    assert kernel_env(config, "/tmp")["CACHE_DIR"] == f"/tmp/{PRIVATE_CACHE}"
    assert kernel_env(config, "/tmp", cache=CACHE_INSIDE)["CACHE_DIR"] == CACHE_INSIDE
    assert kernel_env(config, "/tmp")["H"] == "/tmp/x"


def test_the_grader_copies_plain_files_only_and_publishes_them_whole(tmp_path):
    source = tmp_path / "ref" / "cache"
    source.mkdir(parents=True)
    (source / "entry-cache").write_bytes(b"compiled")
    (source / "big-cache").write_bytes(b"x" * 100)
    (tmp_path / "secret").write_text("not for the jobs")
    (source / "link").symlink_to(tmp_path / "secret")
    (source / "folder").mkdir()
    target = tmp_path / "shared"
    assert publish(tmp_path / "ref", target, max_bytes=50) == target
    assert sorted(p.name for p in target.iterdir()) == ["entry-cache"]  # no link, no folder, nothing past the cap
    assert stat.S_IMODE(target.stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "entry-cache").stat().st_mode) == 0o644
    assert not (tmp_path / "shared.partial").exists()
    assert publish(tmp_path / "nothing", tmp_path / "none") is None and not (tmp_path / "none").exists()


def _run(tmp_path: Path, exercise: Path) -> batch._Run:
    from bmnist_lesson import LESSON

    plan = build_plan(dataclasses.replace(LESSON, exercise=exercise), seed=1, params={})
    return batch._Run(plan=plan, plan_file=tmp_path / "plan.json", options=batch.RunOptions(), tmp=tmp_path)


def test_the_warm_up_runs_only_an_exercise_that_answers_nothing(tmp_path, monkeypatch):
    """An exercise with one task filled in (an instructor's working copy, say) would put compiled
    answers into the shared cache: no warm-up job runs on it, and nothing is published."""
    ran: list[object] = []
    monkeypatch.setattr(batch, "run_sandboxed_job", lambda *a, **k: ran.append(a) or pytest.fail("ran"))
    logged: list[str] = []
    batch._warm_up(_run(tmp_path, FIXTURES / "full-marks.ipynb"), slot=0, log=logged.append)
    answered = nbformat.read(lesson_path("exercise"), as_version=4)
    solved = nbformat.read(FIXTURES / "full-marks.ipynb", as_version=4)
    loss = next(c for c in solved.cells if c.cell_type == "code" and "def loss_fn" in c.source)
    answered.cells.append(nbformat.v4.new_code_cell(loss.source))  # task 3 answered, below its stub
    nbformat.write(answered, tmp_path / "one-answer.ipynb")
    batch._warm_up(_run(tmp_path, tmp_path / "one-answer.ipynb"), slot=0, log=logged.append)
    assert not ran and not (tmp_path / "shared-cache").exists()
    assert len(logged) == 2 and all("answers a task" in line for line in logged)
    exercise = read_submission(lesson_path("exercise").read_bytes())
    plan = _run(tmp_path, lesson_path("exercise")).plan
    copy = build_grading_copy(exercise, list(plan.cells), list(plan.probes), functions=plan.lesson.function_tasks(),
                              instructor=set(plan.instructor))
    assert only_stubs(copy, plan.lesson.function_tasks())  # the published exercise does warm up


def test_a_warm_up_that_did_not_end_cleanly_publishes_nothing(tmp_path, monkeypatch):
    """A kernel that died in the warm-up may have cut a cache entry short: nothing is shared."""
    def died(submission, *, workdir, **kwargs):
        (workdir / "cache").mkdir()
        (workdir / "cache" / "entry-cache").write_bytes(b"cut sh")
        return RunResult(events=[{"event": "cell", "index": 0, "status": "dead"}], exitcode=0, timed_out=False,
                         seconds=1.0, log="")

    monkeypatch.setattr(batch, "run_sandboxed_job", died)
    logged: list[str] = []
    batch._warm_up(_run(tmp_path, lesson_path("exercise")), slot=0, log=logged.append)
    assert not (tmp_path / "shared-cache").exists() and not (tmp_path / "warm-up").exists()
    assert logged == ["warning: the warm-up job did not end cleanly; every job compiles on its own"]


_WRITES = """
import os, sys
for folder in sys.argv[1].split(","):
    files = sorted(e.path for e in os.scandir(folder) if e.is_file(follow_symlinks=False))[:1]
    outcomes = []
    for attempt, target in (("create", os.path.join(folder, "planted")), *(("change", f) for f in files),
                            *(("remove", f) for f in files)):
        try:
            with open(target, "ab") as handle:
                handle.write(b"poison")
            if attempt == "remove":
                os.unlink(target)
            outcomes.append(attempt)
        except OSError:
            pass
    print(folder, outcomes)
"""


@needs_bwrap
def test_a_job_can_write_nothing_that_jobs_share_the_compilation_cache_included(tmp_path):
    """Every folder a job sees besides its own tmpfs home: Python, site-packages, the kernels' import
    folder, the lesson's data, and the published cache. A control job that is given the cache
    writable (as the warm-up job is) does write it, so the test can fail."""
    from bmnist_lesson import LESSON

    shared = tmp_path / "shared-cache"
    shared.mkdir(mode=0o755)
    (shared / "entry-cache").write_bytes(b"compiled")
    os.chmod(shared / "entry-cache", 0o644)
    imports = kernel_path(tmp_path / "kernel-path", LESSON.kernel_modules)
    view = site_view()
    readable = sorted({*readable_paths(), str(imports), *map(str, LESSON.readable())})
    folders = [*readable, *view.folders, CACHE_INSIDE]
    config = {"readable": readable, "site_folders": list(view.folders), "site_entries": list(view.entries)}
    before = hashlib.sha256((shared / "entry-cache").read_bytes()).hexdigest()
    seen = _output(_launch(tmp_path, "student", _WRITES, ",".join(folders), cache=str(shared), **config))
    assert seen.count("[]") == len(folders), seen  # not one create, change or remove anywhere
    assert sorted(p.name for p in shared.iterdir()) == ["entry-cache"]
    assert hashlib.sha256((shared / "entry-cache").read_bytes()).hexdigest() == before
    os.chmod(shared, 0o777)
    os.chmod(shared / "entry-cache", 0o666)
    control = _output(_launch(tmp_path, "reference", _WRITES, CACHE_INSIDE, cache=str(shared), cache_writable=True,
                              **config))
    assert "'create', 'change', 'remove'" in control, control


_ATTACK = """
import os, pathlib
folder = pathlib.Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
entries = sorted(folder.iterdir())
outcomes = []
for attempt, target in (("create", folder / "planted-cache"), ("change", entries[0] if entries else folder / "x")):
    try:
        target.write_bytes(b"poisoned")
        outcomes.append(attempt)
    except OSError as exc:
        outcomes.append(type(exc).__name__)
print("cache", folder, len(entries), outcomes)
"""


def _programs(folder: Path) -> set[str]:
    """The names of the compiled programs in a JAX cache folder (its entries are zlib-compressed)."""
    names: set[str] = set()
    for entry in folder.iterdir():
        names |= {m.decode() for m in re.findall(rb"jit_([A-Za-z_0-9]+?)J?\b", zlib.decompress(entry.read_bytes()))}
    return names


@pytest.mark.batch
@needs_bwrap
def test_jobs_read_the_warm_up_cache_which_holds_no_answer_and_cannot_be_poisoned(tmp_path, monkeypatch):
    """A class graded one job at a time: the warm-up job (the exercise, stubs as answers) fills the
    cache; it holds programs, none named after a task's function; the reference run, the attacker's
    job and the honest job after it all read it, at the sandbox's path; the attacker can neither
    add nor change an entry; the honest job reads the same, unchanged cache and gets full marks."""
    from bmnist_lesson import TASK_FUNCTIONS

    attacker = nbformat.read(FIXTURES / "full-marks.ipynb", as_version=4)
    attacker.cells.append(nbformat.v4.new_code_cell(_ATTACK))
    (tmp_path / "class").mkdir()
    nbformat.write(attacker, tmp_path / "class" / "a-attacker.ipynb")
    (tmp_path / "class" / "b-honest.ipynb").write_bytes((FIXTURES / "full-marks.ipynb").read_bytes())
    seen: list[tuple[bool, str | None, dict[str, str], str]] = []
    real = batch.run_sandboxed_job
    programs: set[str] = set()

    def recording(submission, **kwargs):
        result = real(submission, **kwargs)
        options = kwargs["options"]
        folder = options.published_cache
        digests = {} if folder is None else {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                                             for p in Path(folder).iterdir()}
        if folder is not None and not programs:
            programs.update(_programs(Path(folder)))
        texts = "".join(str(e.get("text", "")) for e in result.events)
        seen.append((options.fills_cache, folder, digests, texts))
        return result

    monkeypatch.setattr(batch, "run_sandboxed_job", recording)
    monkeypatch.setattr(batch, "_WARM_UP_AFTER", 1)  # a warm-up for one notebook after it
    grades = batch.grade([tmp_path / "class"], out=tmp_path / "out", jobs=1, seed=1, log=lambda line: None)
    assert [(g.submission, g.status, g.total) for g in grades] == [("a-attacker", "ok", 15), ("b-honest", "ok", 15)]
    (warm_fills, warm_folder, _, _), *readers = seen
    assert warm_fills and warm_folder is None and len(readers) == 3  # the reference, the attacker, the honest job
    assert not any(fills for fills, *_ in readers)
    folder, digests = readers[0][1], readers[0][2]
    assert folder is not None and all(r[1] == folder and r[2] == digests for r in readers)  # unchanged for all
    assert digests and "planted-cache" not in digests
    answers = {name for names in TASK_FUNCTIONS.values() for name in names}
    assert programs and not programs & answers, programs  # instructor programs only, no answer compiled
    line = next(line for line in readers[1][3].splitlines() if line.startswith("cache "))
    assert line.startswith(f"cache {CACHE_INSIDE} {len(digests)} ")
    assert "'create'" not in line and "'change'" not in line
