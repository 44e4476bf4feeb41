"""The HTML feedback (``feedback/NAME.html``) and the class report (``report.html``).

Unit tests of the pages on hand-made grades; then a small class of the figure lesson
(tests/lessons/figure_lesson: the toy lesson with a PNG figure, graded in seconds), whose pages are
opened in headless Chromium: no console error, no network request, every figure rendered, a
student's ``<script>`` shown as text. One MNIST fixture is graded once, to see its real figures
beside the instructor's.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbjudge.class_report import class_report_html, reason
from nbjudge.feedback_html import feedback_html
from nbjudge.feedback_md import feedback_markdown as _feedback
from nbjudge.figures import Shown, figures_of, png_base64, read_shown
from nbjudge.grades import Grade, Marking
from nbjudge.scoring import mark_follows
from nbjudge.store import RESULTS, ResultsFile, merge, read_results

from tests.conftest import ROOT, local_mirror
from tests.lessons import make_figures, make_toy

FIGURE_LESSON = ROOT / "tests" / "lessons" / "figure_lesson"
MARKING = Marking(tasks=(1, 2, 3, 4, 5), hidden=2, expected=1)
SCRIPT = "<script>document.title='pwned'</script><img src=http://127.0.0.1:9/x.png>"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def _png() -> str:
    """A real PNG (matplotlib's Agg), base64."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1, 1), dpi=20)
    axes.plot([0, 1], [1, 0])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


# --- the pages, on hand-made grades --------------------------------------------------------------


def test_a_difference_that_follows_from_an_earlier_task_says_so():
    """Only task 3 is wrong (a sum for a mean): the lines of tasks 4 and 5 that differ follow from it."""
    failures = [{"task": 3, "kind": "hidden", "cell": "probe-3", "message": "the loss differs by up to 41 %"},
                {"task": 3, "kind": "expected", "cell": "er-3", "message": "the output differs", "diff": "- a\n+ b"},
                {"task": 4, "kind": "expected", "cell": "er-4", "message": "the output differs", "diff": "- c\n+ d"},
                {"task": 5, "kind": "expected", "cell": "er-5", "message": "the output differs", "diff": "- e\n+ f"},
                {"task": 5, "kind": "expected", "cell": "er-5b", "message": "the output differs"}]
    needs = {"er-3": {1, 2, 3}, "er-4": {1, 2, 3, 4}, "er-5": {1, 2, 3, 4, 5}, "er-5b": {5}}
    cell_tasks = {"er-3": 3, "er-4": 4, "er-5": 5, "er-5b": 5}
    marked = mark_follows(failures, needs, cell_tasks)
    assert [f.get("follows") for f in marked] == [None, None, [3], [3], None]
    grade = Grade("sum-for-mean", "partial", {1: 3, 2: 3, 3: 0, 4: 2, 5: 2}, marked)
    markdown = _feedback(grade, MARKING)
    assert markdown.count("This follows from task 3: fix that first.") == 2
    page = feedback_html(grade, MARKING, Shown(cell_tasks, {}))
    assert page.count("follows from task 3: fix that first") == 2
    assert mark_follows([{"task": 4, "kind": "expected", "cell": "", "message": "x"}, *failures[:1]],
                        needs, cell_tasks)[0]["follows"] == [3]  # a task's point stands for its cells


def test_student_text_is_text_never_markup():
    grade = Grade(f"a&b{SCRIPT}", "partial", {1: 0}, [
        {"task": 1, "kind": "hidden", "cell": "p", "message": f"mean raised ValueError: {SCRIPT}"},
        {"task": 1, "kind": "expected", "cell": "e<b>", "message": "the output differs", "diff": f"- 1\n+ {SCRIPT}"}],
        note="", errors=[{"cell": 3, "error": f"ValueError: {SCRIPT}"}])
    page = feedback_html(grade, Marking((1,), 2, 1), Shown({"e<b>": 1}, {}))
    assert "<script" not in page.lower() and "<img" not in page and "<b>" not in page
    shown = "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;"
    assert page.count(shown) == 5  # the title, the heading, the check, the diff, the error


def test_figures_are_kept_only_as_png_and_shown_side_by_side():
    png = _png()
    assert png_base64(png) == png and png_base64(png[:40] + "\n" + png[40:]) == png
    for bad in (base64.b64encode(b"<svg onload=alert(1)>").decode(), png + '"><script>', "", None, 3):
        assert png_base64(bad) is None
    events = [{"event": "copy", "cells": [{"role": "given", "name": "er", "task": 1, "expected": True},
                                          {"role": "student", "name": "", "task": None, "expected": False}]},
              {"event": "cell", "index": 0, "figures": [png, "bm90IGEgcG5n"]},
              {"event": "cell", "index": 1, "figures": [png]}]
    assert figures_of(events) == {"er": (png,)}  # a non-PNG and a student cell's figure are not kept
    grade = Grade("s", "ok", {1: 3}, figures={"er": [png, 'x" onerror="alert(1)']})
    page = feedback_html(grade, Marking((1,), 2, 1), Shown({"er": 1}, {"er": (png, png)}))
    assert page.count(f'src="data:image/png;base64,{png}"') == 3 and "onerror" not in page
    assert "<figcaption>Yours</figcaption>" in page and "<figcaption>The instructor's</figcaption>" in page


def test_the_class_report_summarises_before_it_lists():
    def grade(name, status, points, seconds, failures=()):
        return Grade(name, status, dict(zip(MARKING.tasks, points, strict=True)), list(failures), seconds=seconds)

    hidden = {"task": 1, "kind": "hidden", "cell": "p"}
    grades = [grade(f"s{i}", "partial", (0, 3, 3, 3, 3), 10.0 + i,
                    [{**hidden, "message": f"an epoch repeats the order, {i}.5 % of batches"}]) for i in range(6)]
    grades += [grade("slow<one>", "timeout", (3, 3, 3, 0, 0), 99.5,
                     [{**hidden, "message": "it raised ValueError: <script>x</script>"}]),
               grade("fine", "ok", (3,) * 5, 5.0)]
    page = class_report_html(grades, MARKING, assignment="demo",
                             pairs=[{"first": "s1", "second": "s2", "similarity": 0.93, "shares": [0.9, 0.93]}])
    assert reason("differs by up to 41 % at 1e-3") == "differs by up to # % at #"
    assert "6 &times; an epoch repeats the order, # % of batches" in page and "7 of 8" in page
    assert "slowest 99.5 s (slow&lt;one&gt;)" in page and "<script" not in page
    assert page.index("Statuses") < page.index("Hidden checks") < page.index("Similar answers") \
        < page.index("<h2>Submissions")
    assert "93%" in page and page.count("<svg") == 1 + len(MARKING.tasks)
    assert 'href="feedback/slow%3Cone%3E.html"' in page


# --- a class graded ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def figure_class(tmp_path_factory) -> Path:
    """The figure lesson's class: correct, one task wrong, the mean wrong (task 2's lines follow from
    it), untouched, not a notebook, and a cell that raises with a ``<script>`` in its message."""
    root = tmp_path_factory.mktemp("figures")
    (root / "class").mkdir()
    toy = make_toy.submissions()
    for name in ("full", "wrong-2", "wrong-mean", "untouched", "invalid"):
        (root / "class" / f"{name}.ipynb").write_text(make_figures.with_figure(toy[name][0]))
    raising = make_toy.notebook(extra={"answer-1": f"raise ValueError({SCRIPT!r})"})
    (root / "class" / "script.ipynb").write_text(make_figures.with_figure(raising))
    exe = str(Path(sys.executable).parent / "nbjudge")
    done = subprocess.run([exe, str(root / "class"), "--out", str(root / "out"), "--lesson", str(FIGURE_LESSON),
                           "--seed", "11", "--cell-timeout", "10", "--timeout", "60", "--jobs", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return root / "out"


@pytest.mark.batch
@pytest.mark.grading
def test_grading_writes_a_page_per_row_and_the_class_report(figure_class):
    rows = list(csv.DictReader(io.StringIO((figure_class / "grades.csv").read_text())))
    pages = sorted(p.stem for p in (figure_class / "feedback").glob("*.html"))
    assert pages == sorted(r["submission"] for r in rows) and len(pages) == 6
    report = (figure_class / "report.html").read_text()
    assert all(f"feedback/{name}.html" in report for name in pages)
    full = (figure_class / "feedback" / "full.html").read_text()
    assert full.count('<img src="data:image/png;base64,') == 2  # the student's figure and the instructor's
    assert "This follows from task 1: fix that first." in (figure_class / "feedback" / "wrong-mean.md").read_text()
    assert "follows from task 1: fix that first" in (figure_class / "feedback" / "wrong-mean.html").read_text()
    shown = read_shown(figure_class / RESULTS)
    assert list(shown.tasks) == ["expected-1", "expected-2", "expected-figure"] and list(shown.figures) == [
        "expected-figure"]


@pytest.mark.batch
@pytest.mark.grading
def test_merge_and_a_similarity_report_keep_the_pages(figure_class, tmp_path):
    merged = tmp_path / "merged"
    merge([figure_class], merged)
    assert (merged / "feedback" / "full.html").read_text() == (figure_class / "feedback" / "full.html").read_text()
    (merged / "similarity.json").write_text(json.dumps([{"first": "full", "second": "script", "similarity": 1.0}]))
    ResultsFile(merged, *read_results(merged)).rebuild(log=lambda _: None)
    assert "<td>full</td><td>script</td><td>100%</td>" in (merged / "report.html").read_text()


def _chromium() -> str:
    for candidate in (os.environ.get("BMNIST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    if os.environ.get("BMNIST_REQUIRE_BROWSER") == "1":
        pytest.fail("BMNIST_REQUIRE_BROWSER=1 but no Chromium found")
    pytest.skip("no Chromium found (install Debian's chromium, or set BMNIST_CHROMIUM)")


def _open_each(pages: list[Path]) -> dict[str, dict]:
    """Open each page in headless Chromium: its console errors, requests, images and text."""
    from playwright.sync_api import sync_playwright

    seen = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_FLAGS)
        for path in pages:
            page, errors, requests = browser.new_page(), [], []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.on("request", lambda r, requests=requests: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            widths = page.evaluate("[...document.images].map(i => i.complete ? i.naturalWidth : 0)")
            seen[path.name] = {"errors": errors, "requests": [u for u in requests if u != path.as_uri()],
                               "widths": widths, "text": page.inner_text("body"), "title": page.title(),
                               "scripts": page.evaluate("document.scripts.length")}
            page.close()
        browser.close()
    return seen


@pytest.mark.batch
@pytest.mark.browser
@pytest.mark.grading
def test_the_pages_render_in_chromium_offline(figure_class):
    pages = [figure_class / "report.html", *sorted((figure_class / "feedback").glob("*.html"))]
    seen = _open_each(pages)
    for name, page in seen.items():
        assert not page["errors"] and not page["requests"] and page["scripts"] == 0, (name, page)
        assert all(w > 0 for w in page["widths"]), (name, page["widths"])
    assert len(seen["full.html"]["widths"]) == 2
    script = seen["script.html"]
    assert "document.title='pwned'" in script["text"] and script["title"] == "Feedback: script"


@pytest.mark.browser
@pytest.mark.grading
def test_an_mnist_submission_shows_its_figures_beside_the_instructors(tmp_path):
    """One MNIST fixture, graded once: each of its figures and the instructor's render."""
    full = ROOT / "tests" / "fixtures" / "submissions" / "full-marks.ipynb"
    done = subprocess.run([str(Path(sys.executable).parent / "bmnist-grade"), str(full), "--out", str(tmp_path),
                           "--seed", "4242"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "BMNIST_MIRRORS": local_mirror()})
    assert done.returncode == 0, done.stdout + done.stderr
    shown = read_shown(tmp_path / RESULTS)
    assert len(shown.figures) >= 5, list(shown.figures)
    grade = read_results(tmp_path)[1]["full-marks"][1]
    assert set(grade.figures) == set(shown.figures)
    page = _open_each([tmp_path / "feedback" / "full-marks.html"])["full-marks.html"]
    expected = sum(len(v) for v in shown.figures.values()) + sum(len(v) for v in grade.figures.values())
    assert len(page["widths"]) == expected and all(w > 0 for w in page["widths"])
    assert not page["errors"] and not page["requests"]
