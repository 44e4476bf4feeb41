"""Headless tests of the explorers: slider values set programmatically, results checked directly."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
from bmnist_helpers import widgets


@pytest.fixture
def scores():
    rng = np.random.default_rng(0)
    targets = (rng.uniform(size=300) < 0.5).astype(float)
    probabilities = np.clip(targets * 0.7 + rng.normal(0.15, 0.2, size=300), 0, 1)
    images = rng.normal(size=(300, 28, 28))
    return probabilities, targets, images


def _direct(p, t, threshold):
    pred = p > threshold
    tp, fp = np.sum(pred & (t == 1)), np.sum(pred & (t == 0))
    fn, tn = np.sum(~pred & (t == 1)), np.sum(~pred & (t == 0))
    return tp, fp, tn, fn


def _shown_accuracy(explorer):
    return float(re.search(r'data-accuracy="([0-9.]+)"', explorer.metrics.value).group(1))


@pytest.mark.parametrize("threshold", [0.0, 0.01, 0.37, 0.5, 0.99, 1.0])
def test_slider_shows_the_direct_metrics(scores, threshold):
    p, t, images = scores
    explorer = widgets.threshold_explorer(p, t, images)
    explorer.slider.value = threshold
    tp, fp, tn, fn = _direct(p, t, threshold)
    assert _shown_accuracy(explorer) == pytest.approx(round((tp + tn) / len(p), 4))
    m = widgets.threshold_metrics(p, t, threshold=threshold)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)
    if tp + fp:
        assert m["precision"] == pytest.approx(tp / (tp + fp))
    else:
        assert np.isnan(m["precision"]) and "n/a" in explorer.metrics.value
    assert m["recall"] == pytest.approx(tp / (tp + fn))
    for count in (tp, fp, tn, fn):
        assert f"<td>{count}</td>" in explorer.metrics.value
    wrong = fp + fn
    assert f"{wrong} misclassified" in explorer.examples.value
    assert explorer.examples.value.count("<img") == min(wrong, 10)
    assert 'stroke="black"' in explorer.histogram.value  # the threshold line


def test_threshold_extremes_and_one_class_only():
    p = np.array([0.0, 0.2, 0.9, 1.0])
    t = np.ones(4)
    at_zero = widgets.threshold_metrics(p, t, threshold=0.0)
    assert (at_zero["tp"], at_zero["fn"], at_zero["fp"], at_zero["tn"]) == (3, 1, 0, 0)
    at_one = widgets.threshold_metrics(p, t, threshold=1.0)
    assert at_one["tp"] == 0 and np.isnan(at_one["precision"]) and at_one["recall"] == 0.0
    negatives = widgets.threshold_metrics(p, np.zeros(4), threshold=0.5)
    assert np.isnan(negatives["recall"]) and negatives["accuracy"] == 0.5
    explorer = widgets.threshold_explorer(p, np.zeros(4), np.zeros((4, 784)))
    explorer.slider.value = 1.0
    assert _shown_accuracy(explorer) == 1.0 and "0 misclassified" in explorer.examples.value


@pytest.mark.parametrize(
    ("p", "t", "images", "message"),
    [
        ([0.1, 0.2], [1, 0, 1], None, "2 probabilities but 3 targets"),
        ([0.1, 1.2], [1, 0], None, r"in \[0, 1\].*sigmoid"),
        ([-0.1, 0.5], [1, 0], None, r"in \[0, 1\]"),
        ([np.nan, 0.5], [1, 0], None, "NaN"),
        ([], [], None, "empty"),
        ([0.1, 0.5], [1, 2], None, "0 or 1"),
        ([0.1, 0.5], [1, 0], np.zeros((3, 28, 28)), "3 images but 2"),
    ],
)
def test_bad_inputs_are_named(p, t, images, message):
    with pytest.raises(ValueError, match=message):
        widgets.threshold_explorer(p, t, images if images is not None else np.zeros((len(p), 28, 28)))
    if images is None:
        with pytest.raises(ValueError, match=message):
            widgets.threshold_metrics(p, t, threshold=0.5)


def test_slider_never_calls_the_model(scores):
    p, t, images = scores
    explorer = widgets.threshold_explorer(p, t, images)
    before = explorer.probabilities.copy()
    for value in np.linspace(0, 1, 11):
        explorer.slider.value = float(value)
    assert np.array_equal(explorer.probabilities, before)  # the widget only ever saw these numbers


# --- seed explorer ---------------------------------------------------------------------------


class FakeTraining:
    """A training routine that records its calls and can be held between chunks."""

    def __init__(self, chunks=3):
        self.calls: list[int] = []
        self.chunks = chunks
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, seed):
        self.calls.append(seed)
        rng = np.random.default_rng(seed)
        images = rng.normal(size=(10, 28, 28))
        yield {"step": 0, "images": images, "labels": np.ones(10), "probabilities": np.full(10, 0.5)}
        for chunk in range(1, self.chunks + 1):
            self.gate.wait(5)
            yield {"step": chunk * 200, "losses": rng.uniform(size=200), "test_accuracy": 0.5 + seed / 100 + chunk / 10}


def test_seed_explorer_trains_each_seed_once_and_caches():
    train = FakeTraining()
    explorer = widgets.seed_explorer(train, seeds=[1, 2, 3])
    explorer.wait(10)
    assert train.calls == [1] and len(explorer.cache[1]) == 4
    assert "seed 1: done, step 600" in explorer.status.value
    explorer.slider.value = 2
    explorer.wait(10)
    explorer.slider.value = 1
    explorer.wait(10)
    assert train.calls == [1, 2]  # back to seed 1: from the cache, no retraining
    assert "seed 1: done" in explorer.status.value and "test accuracy 0.8100" in explorer.status.value


def test_seed_explorer_shows_preview_first_and_curves_per_chunk():
    train = FakeTraining()
    train.gate.clear()
    explorer = widgets.seed_explorer(train, seeds=[7, 8])
    for _ in range(100):
        if explorer.preview.value:
            break
        threading.Event().wait(0.02)
    assert explorer.preview.value.count("<img") == 10 and explorer.curves.value == ""
    train.gate.set()
    explorer.wait(10)
    assert explorer.curves.value.count("<polyline") == 2
    assert "seed 7: done, step 600" in explorer.status.value


def test_seed_explorer_uses_a_given_cache_and_reports_errors():
    def broken(seed):
        yield {"step": 0, "images": np.zeros((1, 28, 28)), "labels": [1], "probabilities": [0.5]}
        raise NotImplementedError("TODO: task 4, train")

    done = list(FakeTraining()(5))
    explorer = widgets.seed_explorer(broken, seeds=[5, 6], cache={5: done})
    assert "seed 5: done" in explorer.status.value
    explorer.slider.value = 6
    explorer.wait(10)
    assert "NotImplementedError" in explorer.status.value and 6 not in explorer.cache
    with pytest.raises(ValueError, match="seeds is empty"):
        widgets.seed_explorer(broken, seeds=[])
    with pytest.raises(ValueError, match=r"cache entries \[5\] lack the preview"):
        widgets.seed_explorer(broken, seeds=[5], cache={5: []})


def test_moving_on_drops_the_unfinished_run():
    train = FakeTraining(chunks=2)
    train.gate.clear()
    explorer = widgets.seed_explorer(train, seeds=[1, 2])
    explorer.slider.value = 2
    train.gate.set()
    explorer.wait(10)
    assert 2 in explorer.cache and "seed 2" in explorer.status.value


@pytest.mark.parametrize("late_record", [False, True])
def test_an_abandoned_run_never_draws_over_the_current_seed(late_record):
    # Seed 1 is left while it trains; its later record or its error must not reach the status.
    release, moved, busy = threading.Event(), threading.Event(), threading.Event()

    def train(seed):
        yield {"step": 0, "images": np.zeros((1, 28, 28)), "labels": [1], "probabilities": [0.5]}
        if seed == 1:
            busy.set()  # seed 1 is past its preview, computing its next chunk
            release.wait(5)
            if late_record:
                yield {"step": 200, "losses": np.ones(200), "test_accuracy": 0.1}
            raise RuntimeError("seed 1 failed after the slider moved on")
        yield {"step": 200, "losses": np.ones(200), "test_accuracy": 0.9}
        moved.set()

    explorer = widgets.seed_explorer(train, seeds=[1, 2])
    first = explorer._worker
    assert busy.wait(5)
    explorer.slider.value = 2
    explorer.wait(10)
    assert moved.is_set() and "seed 2: done" in explorer.status.value
    release.set()
    first.join(10)
    assert not first.is_alive()
    assert "seed 2: done" in explorer.status.value and "RuntimeError" not in explorer.status.value
    assert 1 not in explorer.cache


def test_drawing_and_moving_on_are_serialised():
    # The generation check and the drawing happen under the lock that show() takes to move on:
    # while the slider is moving, a run cannot draw, and afterwards it finds itself outdated.
    explorer = widgets.seed_explorer(FakeTraining(chunks=1), seeds=[1, 2])
    explorer.wait(10)
    generation = explorer._generation
    drawn = []
    with explorer._lock:
        blocked = threading.Thread(target=lambda: drawn.append(explorer._publish(generation, lambda: None)))
        blocked.start()
        blocked.join(0.2)
        assert blocked.is_alive()  # waiting for the lock
        explorer._generation += 1  # what show() does while it holds the lock
    blocked.join(5)
    assert drawn == [False]


def test_loss_curve_keeps_its_spike_and_its_last_step():
    losses = np.r_[1.46, np.full(4999, 0.05)]
    losses[2500] = 0.9
    svg = widgets._html.line_chart(np.arange(1, 5001), losses, title="training loss", xlim=(0, 5000))
    points = [tuple(map(float, p.split(","))) for p in re.search(r'points="([^"]*)"', svg).group(1).split()]
    assert len(points) <= 400
    assert ">1.46<" in svg and ">0.05<" in svg  # the y axis spans the whole curve
    ys = [y for _, y in points]
    assert min(ys) == pytest.approx(20.0)  # the initial spike reaches the top of the box
    middle = 20.0 + 120.0 - (0.9 - 0.05) / (1.46 - 0.05) * 120.0
    assert any(abs(y - middle) < 0.1 for y in ys)  # the spike in the middle survives too
    assert points[-1][0] == pytest.approx(40.0 + 270.0)  # the last point sits at step 5000, the right edge


def test_seed_explorer_keeps_the_full_loss_curve():
    train = FakeTraining(chunks=25)
    explorer = widgets.seed_explorer(train, seeds=[3])
    explorer.wait(10)
    assert sum(len(r["losses"]) for r in explorer.cache[3][1:]) == 5000
    assert "step 5000" in explorer.status.value and ">5000<" in explorer.curves.value


def test_captions_sit_under_their_images(scores):
    p, t, images = scores
    explorer = widgets.threshold_explorer(p, t, images)
    explorer.slider.value = 0.3  # more mistakes than fit
    tiles = re.findall(r'<div class="bmnist-tile"[^>]*>(.*?)</div></div>', explorer.examples.value)
    assert len(tiles) == 10
    for tile in tiles:  # each tile: the image, then its own caption in a block under it
        caption = r'<div class="bmnist-caption" style="display:block[^"]*">#\d+: y=\d p=[0-9.]+'
        assert re.fullmatch(r"<img [^>]*/>" + caption, tile)


def test_mistakes_come_most_confident_first_confidence_being_the_predicted_class_probability():
    # At threshold 0.9: #1 is called a one with p = 0.993 (confidence 0.993), #3 a seven with
    # p = 0.04 (confidence 0.96), #2 a one with p = 0.95, #0 a seven with p = 0.22 (0.78), #4 a
    # seven with p = 0.6 (0.4). Distance from the threshold would put #0 and #3 first.
    p = np.array([0.22, 0.993, 0.95, 0.04, 0.6])
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    explorer = widgets.threshold_explorer(p, t, np.zeros((5, 28, 28)))
    explorer.slider.value = 0.9
    shown = re.findall(r"#(\d+): y=", explorer.examples.value)
    assert shown == ["1", "3", "2", "0", "4"]
    assert "probability the model gives to the class it predicts" in explorer.examples.value


def test_the_first_progress_update_draws_its_one_accuracy():
    held = threading.Event()

    def one_chunk_then_wait(seed):
        yield {"step": 0, "images": np.zeros((10, 28, 28)), "labels": np.ones(10), "probabilities": np.full(10, 0.5)}
        yield {"step": 100, "losses": np.linspace(0.7, 0.1, 100), "test_accuracy": 0.987}
        held.wait(10)
        yield {"step": 200, "losses": np.full(100, 0.1), "test_accuracy": 0.99}

    explorer = widgets.seed_explorer(one_chunk_then_wait, seeds=[4])
    try:
        for _ in range(250):
            if "step 100" in explorer.status.value:
                break
            threading.Event().wait(0.02)
        assert "training, step 100" in explorer.status.value
        accuracy_chart = re.search(r"<svg[^>]*>(?:(?!</svg>).)*test accuracy.*?</svg>", explorer.curves.value).group(0)
        assert accuracy_chart.count("<circle") == 1  # the one accuracy there is, as a dot
        top, bottom = re.findall(r'text-anchor="end">([0-9.]+)</text>', accuracy_chart)[:2]
        assert float(bottom) < 0.987 < float(top)  # an axis around it, not from 0.987 to 0.987
        cy = float(re.search(r'<circle cx="[0-9.]+" cy="([0-9.]+)"', accuracy_chart).group(1))
        assert cy == pytest.approx(20.0 + 120.0 / 2)  # at mid-height
    finally:
        held.set()
        explorer.wait(10)
    assert "<circle" in explorer.curves.value and "done, step 200" in explorer.status.value
