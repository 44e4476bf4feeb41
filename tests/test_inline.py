"""Each figure of a cell is drawn once in a notebook's kernel (issue 27): pyplot's extra drawing
is gone with the inline backend, the notebook still shows every figure, and the PNGs are the
same bytes as with the extra drawing."""

from __future__ import annotations

import os

import nbformat
from nbclient import NotebookClient

_CELLS = (
    "import numpy as np, matplotlib.pyplot as plt\nfrom bmnist_helpers.plotting import *\n"
    "plt.rcParams.update(lesson_style())\nimport matplotlib.backend_bases as bb\ndraws = []\n"
    "real = bb.FigureCanvasBase.draw_idle\n"
    "bb.FigureCanvasBase.draw_idle = lambda self, *a, **k: (draws.append(1), real(self, *a, **k))[1]",
    "rng = np.random.default_rng(0)\ninspect_batch(rng.random((10, 28, 28)), list(range(10)), title='ten')",
    "plot_accuracy_histogram(rng.random(20))",
    "plot_gradients([(rng.normal(size=(784, 16)), rng.normal(size=16)),\n"
    "                (rng.normal(size=(16, 1)), rng.normal(size=1))])",
    "print(len(draws))",
)


def _run(first: str) -> tuple[list[str], str]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in (first, *_CELLS)]
    client = NotebookClient(nb, timeout=120, kernel_name="python3")
    client.execute(env={**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    pngs = [o["data"]["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    return pngs, "".join(o.get("text", "") for o in outputs).strip()


def test_figures_are_drawn_once_and_look_the_same():
    once, drawn_once = _run("from bmnist_helpers.setup import ensure_kit\nensure_kit()")
    twice, drawn_twice = _run("pass")  # matplotlib's own hooks, as without the kit
    assert len(once) == 3 and once == twice  # every figure shown, byte for byte the same PNG
    assert (drawn_once, drawn_twice) == ("0", "3")  # pyplot's extra drawing of each figure is gone
