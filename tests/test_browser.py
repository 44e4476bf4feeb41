"""The threshold slider in a real browser: JupyterLab on loopback, headless Chromium via Playwright.

Skipped (with the reason) when no Chromium is found, unless ``BMNIST_REQUIRE_BROWSER=1``, which
turns the skip into a failure; ``.ci/run`` sets it and installs Debian's ``chromium``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import numpy as np
import pytest

from bmnist_helpers.exercise import SOLUTION_IPYNB
from bmnist_helpers.widgets import threshold_metrics
from tests.conftest import ROOT

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with a random token, over a copy of the solution notebook."""
    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.read(SOLUTION_IPYNB, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)  # no paired .py written beside the copy, no reload under our clicks
    nbformat.write(nb, root / "binary_mnist.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, **{f"JUPYTER_{k}_DIR": str(root / f".{k.lower()}") for k in ("CONFIG", "DATA", "RUNTIME")}}
    env["JUPYTER_PATH"] = str(ROOT / ".venv" / "share" / "jupyter")
    log = (root / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
         f"--LabApp.user_settings_dir={root / '.settings'}", f"--LabApp.workspaces_dir={root / '.workspaces'}",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2).read()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                log.close()
                pytest.fail(f"JupyterLab did not start:\n{(root / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
    yield url, token
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def _shown_accuracy(page) -> float:
    text = page.locator(".bmnist-metrics").first.inner_text()
    return float(re.search(r"accuracy\s+([0-9.]+)", text).group(1))


def _accept_kernel_dialog(page) -> None:
    dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
    if dialog.count():
        dialog.get_by_role("button", name="Select").click()


def _run_all_cells(page) -> None:
    """Run > Run All Cells once Lab has settled; again if nothing started within 30 s.

    The stored outputs carry execution counts, so a start shows as a ``[*]`` prompt (or the
    widget itself), not as a number.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_load_state("networkidle")
    page.locator("#jp-main-statusbar", has_text="Idle").wait_for()
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
