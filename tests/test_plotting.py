"""bmnist_helpers.plotting: figures come back, no warnings, no findfont spam (seed erratum 7)."""

from __future__ import annotations

import logging
import re
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest

from bmnist_helpers import plotting


@pytest.fixture
def quiet(caplog):
    """Fail on any warning or any matplotlib log record (findfont reports through logging)."""
    caplog.set_level(logging.DEBUG + 1, logger="matplotlib")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with plt.rc_context(plotting.lesson_style()):
            yield
            plt.gcf().canvas.draw()  # text is laid out (and fonts looked up) at draw time
    assert [r.getMessage() for r in caplog.records if "findfont" in r.getMessage()] == []
    plt.close("all")


def test_style_is_returned_not_applied():
    before = dict(plt.rcParams)
    style = plotting.lesson_style(rel_width=2.0)
    assert dict(plt.rcParams) == before
    assert style["font.sans-serif"][-1] == "DejaVu Sans"
    assert style["figure.figsize"][0] > plotting.lesson_style()["figure.figsize"][0]


def test_missing_font_is_dropped(monkeypatch):
    plotting._installed_fonts.cache_clear()
    monkeypatch.setattr(plotting, "_installed_fonts", lambda: frozenset({"DejaVu Sans"}))
    assert plotting.lesson_style()["font.sans-serif"] == ["DejaVu Sans"]


def test_inspect_batch_many_and_one(quiet):
    images = np.random.default_rng(0).normal(size=(10, 28, 28))
    fig, axes = plotting.inspect_batch(images, np.linspace(0, 1, 10), title="batch")
    assert len(axes) == 10 and axes[3].get_title() == "0.333"
    fig, axes = plotting.inspect_batch(images[0], [1.0])
    assert len(axes) == 1 and axes[0].get_title() == "1"
    fig, axes = plotting.inspect_batch(images.reshape(10, 784), list("abcdefghij"))
    assert axes[9].get_title() == "j"


def test_inspect_batch_rejects_mismatch():
    with pytest.raises(ValueError, match="10 images but 3 labels"):
        plotting.inspect_batch(np.zeros((10, 28, 28)), [0, 1, 0])
    with pytest.raises(ValueError, match="shape"):
        plotting.inspect_batch(np.zeros((2, 5, 5)), [0, 1])


def test_other_figures(quiet):
    rng = np.random.default_rng(1)
    fig, ax = plotting.plot_accuracy_histogram(rng.uniform(0.4, 0.6, 100))
    assert ax.get_xlabel().startswith("Test accuracy")
    grads = [(rng.normal(size=(784, 256)), None), (rng.normal(size=(256, 64)), None), (rng.normal(size=(64, 1)), None)]
    fig, axes = plotting.plot_gradients(grads, loss=0.7)
    assert len(axes) == 3 and fig._suptitle.get_text() == "loss = 0.7000"
    clim = axes[0].images[0].get_clim()
    assert clim[0] == -clim[1]  # symmetric colour scale
    fig, (ax_loss, ax_acc) = plotting.plot_training_curves(rng.uniform(size=400), [200, 400], [0.9, 0.95])
    assert len(ax_loss.lines[0].get_xdata()) == 400 and list(ax_acc.lines[0].get_xdata()) == [200, 400]
    probs = rng.uniform(size=30)
    rows = {"posmax": [1, 2], "negmin": [3, 4], "posmin": [5, 6], "negmax": [7, 8]}
    fig, axes = plotting.plot_interesting_examples(rng.normal(size=(30, 28, 28)), probs, rows)
    assert axes.shape == (4, 2) and fig.subfigs[2]._suptitle.get_text() == "Confusing positives"
    with pytest.raises(ValueError, match="lacks negmin, posmin, negmax"):
        plotting.plot_interesting_examples(rng.normal(size=(30, 28, 28)), probs, {"posmax": [1]})


def test_row_titles_sit_with_their_rows_and_use_the_class_names(quiet):
    rng = np.random.default_rng(2)
    rows = {"posmax": [1, 2, 3], "negmin": [4, 5, 6], "posmin": [7, 8, 9], "negmax": [10, 11, 12]}
    fig, axes = plotting.plot_interesting_examples(
        rng.normal(size=(30, 28, 28)), rng.uniform(size=30), rows, names=("ones", "sevens")
    )
    titles = [sub._suptitle.get_text() for sub in fig.subfigs]
    assert titles == ["Clear ones", "Clear sevens", "Confusing ones", "Confusing sevens"]
    assert re.fullmatch(r"#1: 0\.\d{3}", axes[0, 0].get_title())  # index and probability
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for r, sub in enumerate(fig.subfigs):
        title = sub._suptitle.get_window_extent(renderer)
        image_titles = [ax.title.get_window_extent(renderer) for ax in axes[r]]
        assert title.y0 >= max(t.y1 for t in image_titles) - 1  # above the captions of its own row
        if r:
            above = min(ax.get_window_extent(renderer).y0 for ax in axes[r - 1])
            assert title.y1 <= above  # below the images of the row before
