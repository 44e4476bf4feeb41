"""The notebooks in a real browser: JupyterLab on loopback, headless Chromium via Playwright.

The threshold slider of the solution responds; after Run All on the untouched exercise, which
stops at task 1, the instructor's expected figures are still there below the error. JupyterLab
started as ``make lab`` starts it opens the student's own copy from the URL it prints, hides the
build artefacts, and saving the kit's exercise and solution with the keyboard changes no tracked
file.

Skipped (with the reason) when no Chromium is found, unless ``BMNIST_REQUIRE_BROWSER=1``, which
turns the skip into a failure; ``.ci/run`` sets it and installs Debian's ``chromium``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import nbformat
import numpy as np
import pytest
from bmnist_helpers.lab import lab_options, student_copy
from bmnist_helpers.widgets import threshold_metrics
from bmnist_lesson.exercise import EXERCISE_IPYNB, SOLUTION_IPYNB

from tests.conftest import ROOT
from tests.jupyter_server import jupyter

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]

pytestmark = pytest.mark.browser


def _chromium() -> str | None:
    for candidate in (os.environ.get("BMNIST_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate)):
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = _chromium()
    if path is None:
        reason = "no Chromium found (install Debian's chromium, or set BMNIST_CHROMIUM)"
        if os.environ.get("BMNIST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BMNIST_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return path


def _lab_copy(root, source):
    """A copy of a notebook for Lab: the stock kernel, and no pairing (no .py written beside it)."""
    nb = nbformat.read(source, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)  # no paired .py written beside the copy, no reload under our clicks
    nbformat.write(nb, root / "binary_mnist.ipynb")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a random token, over a copy of the solution notebook."""
    root = tmp_path_factory.mktemp("lab")
    _lab_copy(root, SOLUTION_IPYNB)
    with jupyter(root, lab=True) as server:
        yield server.url, server.token


@pytest.fixture(scope="module")
def exercise_lab(tmp_path_factory):
    """JupyterLab over a copy of the untouched exercise."""
    root = tmp_path_factory.mktemp("exercise")
    _lab_copy(root, EXERCISE_IPYNB)
    with jupyter(root, lab=True) as server:
        yield server.url, server.token


def _shown_accuracy(page) -> float:
    text = page.locator(".bmnist-metrics").first.inner_text()
    return float(re.search(r"accuracy\s+([0-9.]+)", text).group(1))


def _accept_kernel_dialog(page) -> None:
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.get_by_role("button", name="Select").click()


def _run_all_cells(page, started=None) -> None:
    """Run > Run All Cells once Lab has settled; again if nothing started within 30 s.

    The stored outputs carry execution counts, so a start shows as a ``[*]`` prompt (or the
    widget itself), not as a number.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_load_state("networkidle")
    page.locator("#jp-main-statusbar", has_text="Idle").wait_for()
    if started is None:
        started = page.locator(".jp-InputPrompt", has_text="[*]").or_(page.locator(".bmnist-metrics")).first
    for _ in range(3):
        _accept_kernel_dialog(page)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        try:
            started.wait_for(timeout=30_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError("JupyterLab did not start running the cells")


def test_threshold_slider_in_jupyterlab(chromium, lab, solution):
    from playwright.sync_api import expect, sync_playwright

    url, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)
        try:
            page.goto(f"{url}/lab/tree/binary_mnist.ipynb?token={token}")
            page.locator(".jp-Notebook").first.wait_for()
            _run_all_cells(page)
            page.locator(".bmnist-metrics").first.wait_for()
            slider = page.locator(".jupyter-widgets .noUi-handle").first
            slider.scroll_into_view_if_needed()
            start = _shown_accuracy(page)

            slider.focus()
            for _ in range(5):
                slider.press("ArrowRight")
            readout = page.locator(".widget-readout").first
            expect(readout).to_have_text("0.55")
            history = list(solution.run_training(solution.SEED))
            probabilities = np.asarray(solution.predict_proba(history[-1]["params"], solution.bmnist["x_test"]))
            want = threshold_metrics(probabilities, solution.bmnist["y_test"], threshold=0.55)["accuracy"]
            expect(page.locator(".bmnist-metrics").first).to_contain_text(f"accuracy {want:.4f}")

            slider.press("End")
            expect(readout).to_have_text("1.00")
            y = solution.bmnist["y_test"]
            only_negatives = float(np.mean(y == 0))  # at threshold 1 nothing is called positive
            expect(page.locator(".bmnist-metrics").first).to_contain_text(f"accuracy {only_negatives:.4f}")
            assert _shown_accuracy(page) != start
            page.screenshot(path=str(ARTIFACTS / "threshold-slider.png"), full_page=False)
            slider.screenshot(path=str(ARTIFACTS / "threshold-slider-handle.png"))
            page.locator(".bmnist-metrics").first.screenshot(path=str(ARTIFACTS / "threshold-metrics.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "threshold-slider-failure.png"))
            raise
        finally:
            browser.close()
    assert (ARTIFACTS / "threshold-slider.png").stat().st_size > 10_000


def test_expected_figures_stay_below_the_failed_task_after_run_all(chromium, exercise_lab):
    from playwright.sync_api import sync_playwright

    url, token = exercise_lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        # Tall enough that the error of task 1 and the expected figure of task 2 are on screen together.
        page = browser.new_page(viewport={"width": 1400, "height": 5200})
        page.set_default_timeout(180_000)
        try:
            page.goto(f"{url}/lab/tree/binary_mnist.ipynb?token={token}")
            page.locator(".jp-Notebook").first.wait_for()
            error = page.locator(".jp-OutputArea-output", has_text="TODO: task 1, train_dataloader").first
            _run_all_cells(page, started=error)
            page.locator("#jp-main-statusbar", has_text="Idle").wait_for()
            copy = page.locator(".jp-MarkdownCell", has_text="mean accuracy near 50 %: True").first
            copy.scroll_into_view_if_needed()
            figures = copy.locator("img")
            assert figures.count() == 2  # the untrained logits and the histogram of 100 accuracies
            for i in range(2):
                figures.nth(i).wait_for()
                assert figures.nth(i).evaluate("img => img.complete && img.naturalWidth > 100")
            error.evaluate("node => node.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(500)
            error_box, figure_box = error.bounding_box(), figures.last.bounding_box()
            assert error_box and figure_box and error_box["y"] < figure_box["y"] < 5200 - figure_box["height"]
            assert "NotImplementedError" in error.inner_text()
            page.screenshot(path=str(ARTIFACTS / "exercise-run-all.png"), full_page=False)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "exercise-run-all-failure.png"))
            raise
        finally:
            browser.close()
    assert (ARTIFACTS / "exercise-run-all.png").stat().st_size > 50_000


# The files of the lesson as a clone of the repository has them, for a git repository of its own.
LESSON_FILES = ["jupytext.toml", ".gitignore", "notebooks/binary_mnist.ipynb", "notebooks/binary_mnist.py",
                "solutions/binary_mnist.ipynb", "solutions/binary_mnist.py"]


def _git(repo, *args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)


@pytest.fixture
def kit_clone(tmp_path):
    """A git repository holding this working tree's lesson files, committed, and the build artefact
    that ``make setup`` leaves in a clone (``bmnist_kit.egg-info``, ignored by git)."""
    repo = tmp_path / "kit"
    for name in LESSON_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / "bmnist_kit.egg-info").mkdir()
    (repo / "bmnist_kit.egg-info" / "PKG-INFO").write_text("Name: bmnist-kit\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    committed = _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "the kit")
    assert committed.returncode == 0, committed.stderr
    return repo


def _open_in_current_tab(page, path: str) -> None:
    """Wait until ``path`` is the notebook in JupyterLab's current tab, its cells drawn, the kernel idle."""
    page.locator(f".lm-TabBar-tab.jp-mod-current[title*='Path: {path}']").wait_for()
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for()
    page.wait_for_load_state("networkidle")
    _accept_kernel_dialog(page)
    page.locator("#jp-main-statusbar", has_text="Idle").wait_for()


def _save_with_keyboard(page, files) -> None:
    """Ctrl+S in the current notebook; wait until every file of ``files`` was written again."""
    before = {f: f.stat().st_mtime_ns if f.exists() else None for f in files}
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.click()
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 60
    while any(f.exists() is False or f.stat().st_mtime_ns == before[f] for f in files):
        assert time.monotonic() < deadline, f"Ctrl+S did not write {[f.name for f in files]}"
        time.sleep(0.2)
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first.wait_for()
    time.sleep(0.5)  # Jupytext writes the pair right after the notebook


def test_make_lab_opens_the_students_copy_and_keyboard_saves_leave_git_clean(chromium, kit_clone):
    from playwright.sync_api import sync_playwright

    copy, made = student_copy(kit_clone)
    assert made and copy == kit_clone / "work" / "binary_mnist.ipynb"
    assert copy.read_bytes() == (kit_clone / "notebooks" / "binary_mnist.ipynb").read_bytes()
    assert _git(kit_clone, "status", "--porcelain").stdout == ""  # the copy is ignored by git
    ARTIFACTS.mkdir(exist_ok=True)
    with jupyter(kit_clone, lab=True, args=lab_options(kit_clone, copy)) as server:
        printed = re.findall(r"http://127\.0\.0\.1:\d+/\S+", server.log.read_text())
        assert printed and printed[0].startswith(f"{server.url}/lab/tree/work/binary_mnist.ipynb?token="), printed
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            try:
                # The URL JupyterLab prints (its token shown as "..." when the token is given) opens the copy.
                page.goto(printed[0].replace("token=...", f"token={server.token}"))
                _open_in_current_tab(page, "work/binary_mnist.ipynb")
                page.screenshot(path=str(ARTIFACTS / "make-lab-opens-the-copy.png"))
                page.locator(".jp-BreadCrumbs-home").click()
                listing = page.locator(".jp-DirListing-itemName")
                listing.filter(has_text="solutions").wait_for()
                names = listing.all_inner_texts()
                assert {"notebooks", "solutions", "work"} <= set(names) and "bmnist_kit.egg-info" not in names, names
                _save_with_keyboard(page, [copy])
                for tracked in ("notebooks/binary_mnist.ipynb", "solutions/binary_mnist.ipynb"):
                    page.goto(f"{server.url}/lab/tree/{tracked}?token={server.token}")
                    _open_in_current_tab(page, tracked)
                    notebook = kit_clone / tracked
                    _save_with_keyboard(page, [notebook, notebook.with_suffix(".py")])
            except Exception:
                page.screenshot(path=str(ARTIFACTS / "make-lab-failure.png"))
                raise
            finally:
                browser.close()
        log = server.log.read_text()
    for tracked in ("/notebooks/binary_mnist.ipynb", "/solutions/binary_mnist.ipynb", "/work/binary_mnist.ipynb"):
        assert f"Saving file at {tracked}" in log
    diff = _git(kit_clone, "diff")
    assert diff.stdout == "", f"saving in JupyterLab changed tracked files:\n{diff.stdout[:3000]}"
    assert _git(kit_clone, "status", "--porcelain").stdout == ""
    assert copy.is_file()
