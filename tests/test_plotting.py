"""bmnist_helpers.plotting: figures come back, no warnings, no findfont spam (seed erratum 7)."""

from __future__ import annotations

import logging
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


def _captions(ax) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_fontweight() != "bold"]


def test_inspect_batch_many_and_one(quiet):
    images = np.random.default_rng(0).normal(size=(10, 28, 28))
    fig, ax = plotting.inspect_batch(images, np.linspace(0, 1, 10), title="batch")
    assert len(ax.images) == 10 and _captions(ax)[3] == "0.333" and ax.texts[0].get_text() == "batch"
    fig, ax = plotting.inspect_batch(images[0], [1.0])
    assert len(ax.images) == 1 and _captions(ax) == ["1"]
    fig, ax = plotting.inspect_batch(images.reshape(10, 784), list("abcdefghij"))
    assert _captions(ax)[9] == "j"
    assert [im.get_clim() for im in ax.images[:2]] == [(im.min(), im.max()) for im in images[:2]]  # own scale each


def test_images_keep_their_aspect_and_do_not_overlap(quiet):
    fig, ax = plotting.inspect_batch(np.zeros((10, 28, 28)), list(range(10)), title="batch")
    fig.canvas.draw()
    boxes = [im.get_window_extent() for im in ax.images]
    assert all(abs(b.width - b.height) < 1 for b in boxes)  # square pixels
    assert all(left.x1 < right.x0 for left, right in zip(boxes, boxes[1:], strict=False))
    renderer = fig.canvas.get_renderer()
    captions = [t.get_window_extent(renderer) for t in ax.texts[1:]]
    assert all(c.y0 >= b.y1 - 1 and c.x0 >= b.x0 - 5 and c.x1 <= b.x1 + 5 for c, b in zip(captions, boxes, strict=True))


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
    # Each image is laid out like its matrix, (d_in, d_out): rows are inputs, columns outputs.
    assert [ax.images[0].get_array().shape for ax in axes] == [(784, 256), (256, 64), (64, 1)]
    assert [ax.get_title() for ax in axes] == ["W1: 784 × 256", "W2: 256 × 64", "W3: 64 × 1"]
    assert (axes[0].get_ylabel(), axes[0].get_xlabel()) == ("rows: d_in", "columns: d_out")
    fig, (ax_loss, ax_acc) = plotting.plot_training_curves(rng.uniform(size=400), [200, 400], [0.9, 0.95])
    assert len(ax_loss.lines[0].get_xdata()) == 400 and list(ax_acc.lines[0].get_xdata()) == [200, 400]
    probs = rng.uniform(size=30)
    rows = {"posmax": [1, 2], "negmin": [3, 4], "posmin": [5, 6], "negmax": [7, 8]}
    fig, ax = plotting.plot_interesting_examples(rng.normal(size=(30, 28, 28)), probs, rows)
    assert len(ax.images) == 8 and "Confusing positives" in [t.get_text() for t in ax.texts]
    with pytest.raises(ValueError, match="lacks negmin, posmin, negmax"):
        plotting.plot_interesting_examples(rng.normal(size=(30, 28, 28)), probs, {"posmax": [1]})


def test_row_titles_sit_with_their_rows_and_use_the_class_names(quiet):
    rng = np.random.default_rng(2)
    rows = {"posmax": [1, 2, 3], "negmin": [4, 5, 6], "posmin": [7, 8, 9], "negmax": [10, 11, 12]}
    probabilities = rng.uniform(size=30)
    fig, ax = plotting.plot_interesting_examples(rng.normal(size=(30, 28, 28)), probabilities, rows,
                                                 names=("ones", "sevens"))
    titles = [t for t in ax.texts if t.get_fontweight() == "bold"]
    assert [t.get_text() for t in titles] == ["Clear ones", "Clear sevens", "Confusing ones", "Confusing sevens"]
    assert _captions(ax)[0] == f"#1: {probabilities[1]:.3f}"  # index and probability
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    captions = [t.get_window_extent(renderer) for t in ax.texts if t.get_fontweight() != "bold"]
    images = [im.get_window_extent() for im in ax.images]
    for r, title in enumerate(t.get_window_extent(renderer) for t in titles):
        row = slice(3 * r, 3 * r + 3)
        assert title.y0 >= max(c.y1 for c in captions[row]) - 1  # above the captions of its own row
        assert min(c.y0 for c in captions[row]) >= max(b.y1 for b in images[row]) - 1  # captions above images
        if r:
            assert title.y1 <= min(b.y0 for b in images[3 * r - 3 : 3 * r])  # below the images of the row before
