"""Interactive explorers: a classification-threshold slider and a random-seed slider.

Neither holds a model. ``threshold_explorer`` works on probabilities computed once;
``seed_explorer`` calls the notebook's own training routine, so the kit never contains the answers.
"""

from __future__ import annotations

import functools
import html
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

import ipywidgets as widgets
import numpy as np

from . import _html

__all__ = ["threshold_metrics", "threshold_explorer", "seed_explorer", "ThresholdExplorer", "SeedExplorer"]


def _validated(probabilities, targets, images) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = np.asarray(probabilities, dtype=float).reshape(-1)
    t = np.asarray(targets, dtype=float).reshape(-1)
    if p.size == 0:
        raise ValueError("probabilities is empty; pass the model's probabilities for the test set.")
    if len(p) != len(t):
        raise ValueError(f"got {len(p)} probabilities but {len(t)} targets; they must match one to one.")
    if np.isnan(p).any():
        raise ValueError("probabilities contains NaN; check the model's output (a diverged training?).")
    if (p < 0).any() or (p > 1).any():
        raise ValueError(
            "probabilities must lie in [0, 1]; pass sigmoid(logits), not the logits themselves."
        )
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("targets must be 0 or 1.")
    if images is not None:
        images = np.asarray(images)
        if len(images) != len(p):
            raise ValueError(f"got {len(images)} images but {len(p)} probabilities; they must match.")
    return p, t, images


def threshold_metrics(probabilities, targets, *, threshold: float) -> dict[str, float]:
    """Classification metrics when ``probability > threshold`` means class 1.

    :param probabilities: Predicted probabilities of class 1, in [0, 1].
    :param targets: True labels, 0 or 1.
    :param threshold: Decision threshold in [0, 1].
    :returns: ``tp``, ``fp``, ``tn``, ``fn`` counts and ``accuracy``, ``precision``, ``recall``;
        precision (recall) is NaN when nothing is predicted (present) positive.
    :raises ValueError: Mismatched lengths, values outside [0, 1], NaN or empty input.
    """
    p, t, _ = _validated(probabilities, targets, None)
    predicted = p > threshold
    actual = t == 1
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    tn = int(np.sum(~predicted & ~actual))
    return {
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "accuracy": (tp + tn) / len(p),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }


def _fmt(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:.4f}"


class ThresholdExplorer(widgets.VBox):
    """Slider for the decision threshold with metrics, histograms and misclassified examples."""

    def __init__(self, probabilities, targets, images, *, max_examples: int = 10, bins: int = 20) -> None:
        self.probabilities, self.targets, self.images = _validated(probabilities, targets, images)
        self.max_examples = max_examples
        edges = np.linspace(0.0, 1.0, bins + 1)
        self._edges = edges
        self._counts = [np.histogram(self.probabilities[self.targets == c], bins=edges)[0] for c in (1.0, 0.0)]
        self._png = functools.lru_cache(maxsize=512)(self._encode)
        self.slider = widgets.FloatSlider(
            value=0.5, min=0.0, max=1.0, step=0.01, description="threshold", readout_format=".2f",
            continuous_update=True, layout=widgets.Layout(width="420px"),
        )
        self.metrics = widgets.HTML()
        self.histogram = widgets.HTML()
        self.examples = widgets.HTML()
        super().__init__([self.slider, self.metrics, self.histogram, self.examples])
        self.slider.observe(self._on_change, names="value")
        self.update(self.slider.value)

    def _encode(self, index: int) -> str:
        return _html.image_png(self.images[index])

    def _on_change(self, change: Mapping) -> None:
        self.update(change["new"])

    def update(self, threshold: float) -> None:
        """Redraw everything for ``threshold``; the model is never called.

        :param threshold: Decision threshold in [0, 1].
        """
        m = threshold_metrics(self.probabilities, self.targets, threshold=threshold)
        self.metrics.value = (
            f'<div class="bmnist-metrics" data-accuracy="{m["accuracy"]:.4f}">'
            f"<b>accuracy</b> {m['accuracy']:.4f} &nbsp; <b>precision</b> {_fmt(m['precision'])} &nbsp; "
            f"<b>recall</b> {_fmt(m['recall'])}<br>"
            f"<table><tr><td></td><th>predicted 1</th><th>predicted 0</th></tr>"
            f"<tr><th>true 1</th><td>{m['tp']}</td><td>{m['fn']}</td></tr>"
            f"<tr><th>true 0</th><td>{m['fp']}</td><td>{m['tn']}</td></tr></table></div>"
        )
        self.histogram.value = _html.histogram_chart(
            self._counts, self._edges, labels=("true 1", "true 0"), marker=threshold
        )
        wrong, confidence = _mistakes(self.probabilities, self.targets, threshold=threshold)
        worst = wrong[np.argsort(-confidence, kind="stable")][: self.max_examples]
        if self.images is None or not len(worst):
            self.examples.value = f"<i>{len(wrong)} misclassified</i>"
            return
        captions = [f"#{i}: y={self.targets[i]:.0f} p={self.probabilities[i]:.3f}" for i in worst]
        self.examples.value = (
            f"<b>{len(wrong)} misclassified</b>, the most confident mistakes first (confidence: the "
            "probability the model gives to the class it predicts, p for 1 and 1 - p for 0):"
            + _html.image_strip([self._png(int(i)) for i in worst], captions)
        )


def _mistakes(probabilities: np.ndarray, targets: np.ndarray, *, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The misclassified examples and the model's confidence in each of its wrong predictions.

    :returns: ``(indices, confidence)``: positions of the mistakes, and the probability the model
        gives to the class it predicts there (``p`` where it predicts 1, ``1 - p`` where it predicts 0).
    """
    predicted = probabilities > threshold
    wrong = np.flatnonzero(predicted != (targets == 1))
    confidence = np.where(predicted[wrong], probabilities[wrong], 1.0 - probabilities[wrong])
    return wrong, confidence


def threshold_explorer(probabilities, targets, images, *, max_examples: int = 10) -> ThresholdExplorer:
    """A widget with a threshold slider from 0 to 1 (step 0.01) over precomputed probabilities.

    :param probabilities: Predicted probabilities of class 1 for the test set.
    :param targets: True 0/1 labels.
    :param images: The test images, ``(n, 28, 28)`` or ``(n, 784)``.
    :param max_examples: Misclassified examples shown at most.
    :returns: The widget; display it as the last expression of a cell.
    :raises ValueError: Mismatched lengths, probabilities outside [0, 1], NaN or empty input.
    """
    return ThresholdExplorer(probabilities, targets, images, max_examples=max_examples)


TrainFn = Callable[[int], Iterator[dict]]


class SeedExplorer(widgets.VBox):
    """Slider for the random seed; trains each seed once, in the background, and caches the run.

    ``train_fn(seed)`` must yield a preview record first (``images``, ``labels``, ``probabilities``
    of the first training batch under the untrained model), then one record per chunk of steps
    with ``step``, ``losses`` and ``test_accuracy``.
    """

    def __init__(self, train_fn: TrainFn, *, seeds: Iterable[int], cache: Mapping[int, list] | None = None) -> None:
        options = [int(s) for s in seeds]
        if not options:
            raise ValueError("seeds is empty; pass for example range(10).")
        self.train_fn = train_fn
        self.cache: dict[int, list[dict]] = {int(k): list(v) for k, v in (cache or {}).items()}
        empty = [k for k, v in self.cache.items() if not v or "images" not in v[0]]
        if empty:
            raise ValueError(
                f"cache entries {empty} lack the preview record; pass full runs, e.g. list(train_fn(seed))."
            )
        self.slider = widgets.SelectionSlider(options=options, value=options[0], description="seed")
        self.status = widgets.HTML()
        self.preview = widgets.HTML()
        self.curves = widgets.HTML()
        super().__init__([self.slider, self.status, self.preview, self.curves])
        self._lock = threading.Lock()
        self._generation = 0
        self._worker: threading.Thread | None = None
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        self.show(options[0])

    def show(self, seed: int) -> None:
        """Show ``seed``: at once from the cache, or start training it in the background.

        :param seed: The seed to show.
        """
        with self._lock:
            self._generation += 1
            generation = self._generation
            if seed in self.cache:
                self._render(seed, self.cache[seed], done=True)
                return
            self.status.value = f"seed {seed}: starting"
        self._worker = threading.Thread(target=self._train, args=(seed, generation), daemon=True)
        self._worker.start()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current background training is finished (for scripts and tests).

        :param timeout: Seconds to wait at most.
        """
        if self._worker is not None:
            self._worker.join(timeout)

    def _publish(self, generation: int, draw: Callable[[], None]) -> bool:
        """Run ``draw`` only while ``generation`` is still the slider's current one.

        The check and the drawing happen under the lock that :meth:`show` takes to move on, so a
        run that the slider has left can never draw over the seed now shown.

        :returns: Whether the run is still current.
        """
        with self._lock:
            if generation != self._generation:
                return False
            draw()
            return True

    def _train(self, seed: int, generation: int) -> None:
        records: list[dict] = []
        try:
            for record in self.train_fn(seed):
                records.append({k: v for k, v in record.items() if k != "params"})
                draw = functools.partial(self._render, seed, list(records), done=False)
                if not self._publish(generation, draw):
                    return  # the slider moved on; drop this run
        except Exception as exc:  # noqa: BLE001 - shown in the widget, where the student looks
            message = f'<span style="color:#8d2d39">seed {seed}: {html.escape(repr(exc))}</span>'
            self._publish(generation, lambda: setattr(self.status, "value", message))
            return
        self.cache[seed] = records
        self._publish(generation, lambda: self._render(seed, records, done=True))

    def _render(self, seed: int, records: list[dict], *, done: bool) -> None:
        preview, progress = records[0], records[1:]
        if len(records) == 1 or done:
            pairs = zip(preview["labels"], preview["probabilities"], strict=True)
            captions = [f"y={y:.0f} p={p:.2f}" for y, p in pairs]
            self.preview.value = "<b>first training batch, untrained model</b>" + _html.image_strip(
                [_html.image_png(x) for x in preview["images"]], captions
            )
        if not progress:
            self.curves.value = ""
            return
        losses = np.concatenate([r["losses"] for r in progress])
        steps = [r["step"] for r in progress]
        accuracies = [r["test_accuracy"] for r in progress]
        state = "done" if done else "training"
        self.status.value = (
            f'<span class="bmnist-status">seed {seed}: {state}, step {steps[-1]}, '
            f"test accuracy {accuracies[-1]:.4f}</span>"
        )
        total = max(steps[-1], 1)
        self.curves.value = '<div style="display:flex">' + "".join(
            [
                _html.line_chart(np.arange(1, len(losses) + 1), losses, title="training loss", xlim=(0, total)),
                _html.line_chart(steps, accuracies, title="test accuracy", xlim=(0, total)),
            ]
        ) + "</div>"


def seed_explorer(train_fn: TrainFn, *, seeds: Iterable[int], cache: Mapping[int, list] | None = None) -> SeedExplorer:
    """A widget with a seed slider that retrains the model for each seed and plots its progress.

    :param train_fn: The notebook's training routine: ``train_fn(seed)`` yields a preview record,
        then progress records (see :class:`SeedExplorer`).
    :param seeds: The seeds the slider offers; the first is shown first.
    :param cache: Runs already done, ``{seed: list of records}``, to show without retraining.
    :returns: The widget.
    """
    return SeedExplorer(train_fn, seeds=seeds, cache=cache)

