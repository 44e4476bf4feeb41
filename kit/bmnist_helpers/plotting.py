"""The lesson's figures. Every helper returns ``(fig, axes)`` and changes no global state.

Use the style explicitly, either for one block::

    with plt.rc_context(lesson_style()):
        inspect_batch(images, labels)

or for a whole notebook: ``plt.rcParams.update(lesson_style())``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from matplotlib.font_manager import FontProperties
from tueplots import bundles

__all__ = [
    "lesson_style",
    "inspect_batch",
    "plot_accuracy_histogram",
    "plot_gradients",
    "plot_training_curves",
    "plot_interesting_examples",
]

_FALLBACK_FONT = "DejaVu Sans"  # ships with matplotlib, so it is always there


@functools.cache
def _installed_fonts() -> frozenset[str]:
    return frozenset(f.name for f in font_manager.fontManager.ttflist)


def lesson_style(*, rel_width: float = 1.0, rel_height: float = 1.0) -> dict:
    """Return the lesson's rc parameters: tueplots' ``beamer_moml`` bundle with a font fallback.

    Fonts of the bundle that are not installed are dropped from the font list, so matplotlib never
    logs a ``findfont`` warning.

    :param rel_width: Figure width relative to the bundle's default.
    :param rel_height: Figure height relative to the bundle's default.
    :returns: A dict for ``plt.rcParams.update`` or ``plt.rc_context``.
    """
    style = bundles.beamer_moml(rel_width=rel_width, rel_height=rel_height)
    installed = _installed_fonts()
    families = [f for f in style.get("font.sans-serif", []) if f in installed]
    style["font.sans-serif"] = [*families, _FALLBACK_FONT]
    if not families:  # the light weight only looks right in the bundle's own font
        style.update({"font.weight": "normal", "axes.labelweight": "normal", "axes.titleweight": "normal"})
    style["figure.dpi"] = 100
    return style


def _figsize(*, rel_width: float, rel_height: float) -> tuple[float, float]:
    return lesson_style(rel_width=rel_width, rel_height=rel_height)["figure.figsize"]


def inspect_batch(
    images: np.ndarray,
    labels: Sequence | np.ndarray,
    *,
    title: str | None = None,
    cmap: str = "cividis",
    rel_width: float = 1.8,
) -> tuple[plt.Figure, plt.Axes]:
    """Show a row of images, each captioned with its label.

    :param images: Array of shape ``(n, 28, 28)`` or ``(n, 784)``; a single image is accepted too.
    :param labels: ``n`` labels, numbers or strings; floats are printed with at most 3 decimals.
    :param title: Optional title above the row.
    :param cmap: Matplotlib colour map.
    :param rel_width: Figure width relative to the style's default.
    :returns: ``(fig, ax)``: all images lie in the one axes ``ax``; ``ax.texts`` holds the title,
        if any, then one caption per image.
    :raises ValueError: Images and labels differ in number, or an image is not 784 pixels.
    """
    images = np.asarray(images)
    labels = np.atleast_1d(np.asarray(labels))
    if images.ndim in (1, 2) and images.shape[-1] == 784:
        images = images.reshape(-1, 28, 28)
    elif images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images must have shape (n, 28, 28) or (n, 784), got {images.shape}.")
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} labels.")
    captions = [_format_label(label) for label in labels]
    return _image_rows([(title, images, captions)], width=_figsize(rel_width=rel_width, rel_height=1)[0], cmap=cmap)


# Image figures draw every image into one axes (one axes per image makes matplotlib's layout and
# rendering several times slower). Positions are in pixels of a 28-pixel image.
_PITCH = 32  # from one image's left edge to the next one's


def _points(size_key: Literal["axes.titlesize", "xtick.labelsize"]) -> float:
    return FontProperties(size=plt.rcParams[size_key]).get_size_in_points()


def _image_rows(
    rows: Sequence[tuple[str | None, np.ndarray, Sequence[str]]], *, width: float, cmap: str
) -> tuple[plt.Figure, plt.Axes]:
    """Rows of captioned images in one axes, each row under an optional title.

    :param rows: ``(title, images, captions)`` per row; ``images`` is ``(k, 28, 28)``.
    :param width: Figure width in inches; the height follows from the content.
    :param cmap: Matplotlib colour map; each image is scaled to its own range.
    :returns: ``(fig, ax)``.
    """
    columns = max([len(images) for _, images, _ in rows] + [1])
    per_point = columns * _PITCH / width / 72  # pixels per typographic point
    title_size, caption_size = _points("axes.titlesize"), _points("xtick.labelsize") + 1
    placed, y = [], 0.0
    for title, images, captions in rows:
        title_y = y + 1.3 * title_size * per_point if title is not None else None
        y = (title_y or y) + 1.5 * caption_size * per_point
        placed.append((title, title_y, images, captions, y))
        y += 28 + 0.3 * caption_size * per_point
    fig = plt.figure(figsize=(width, width * y / (columns * _PITCH)), layout="none")
    ax = fig.add_axes((0, 0, 1, 1))
    for title, title_y, images, captions, top in placed:
        if title is not None and title_y is not None:  # a row's title and its position come together
            ax.text(0, title_y, title, fontsize=title_size, fontweight="bold", va="baseline")
        for i, (image, caption) in enumerate(zip(images, captions, strict=True)):
            left = i * _PITCH
            ax.imshow(image, cmap=cmap, extent=(left, left + 28, top + 28, top), interpolation="nearest")
            ax.text(left + 14, top - 0.4 * caption_size * per_point, caption, fontsize=caption_size, ha="center",
                    va="baseline")
    ax.set_xlim(-0.5, columns * _PITCH - _PITCH + 28.5)
    ax.set_ylim(y, 0)
    ax.set_axis_off()
    return fig, ax


def _format_label(label: object) -> str:
    if isinstance(label, (float, np.floating)):
        return f"{float(label):.3g}" if abs(label) < 1000 else f"{float(label):.0f}"
    return str(label)


def plot_accuracy_histogram(accuracies: np.ndarray, *, bins: int = 20) -> tuple[plt.Figure, plt.Axes]:
    """Histogram of test accuracies, for example over many random initialisations.

    :param accuracies: 1-d array of accuracies in [0, 1].
    :param bins: Number of histogram bins.
    :returns: ``(fig, ax)``.
    """
    fig, ax = plt.subplots()
    ax.hist(np.asarray(accuracies), bins=bins)
    ax.set_xlabel("Test accuracy under random initialisation")
    ax.set_ylabel("Number of initialisations")
    return fig, ax


def plot_gradients(grads: Sequence, *, loss: float | None = None) -> tuple[plt.Figure, np.ndarray]:
    """One image per weight matrix of an MLP gradient, side by side, on a symmetric colour scale.

    Each image has the matrix's own layout, the lesson's ``(d_in, d_out)``: one row per input unit
    and one column per output unit; its title gives the shape.

    :param grads: Gradient in the parameter layout ``[(dw1, db1), (dw2, db2), ...]``.
    :param loss: Optional loss value shown as the title.
    :returns: ``(fig, axes)``, one axes per layer.
    """
    shapes = [np.shape(dw) for dw, _ in grads]
    # Width by number of columns, within limits, so that a one-column matrix stays a narrow strip.
    ratios = [min(max(cols, 16), 64) for _, cols in shapes]
    fig, axes = plt.subplots(ncols=len(grads), squeeze=False, width_ratios=ratios,
                             figsize=_figsize(rel_width=1.8, rel_height=1.8))
    axes = axes[0]
    for i, (ax, (dw, _)) in enumerate(zip(axes, grads, strict=True), 1):
        image = np.asarray(dw)
        absmax = float(np.abs(image).max()) or 1.0
        ax.imshow(image, cmap="bwr", aspect="auto", vmin=-absmax, vmax=absmax, interpolation="nearest")
        ax.set_title(f"W{i}: {image.shape[0]} × {image.shape[1]}")
        ax.set_xlabel("columns: d_out")
        ax.set_ylabel("rows: d_in")
        ax.set_xticks([])  # ticks would only number the units, and cost most of the drawing time
        ax.set_yticks([])
    if loss is not None:
        fig.suptitle(f"loss = {float(loss):.4f}")
    return fig, axes


def plot_training_curves(
    losses: Sequence[float], accuracy_steps: Sequence[int], accuracies: Sequence[float]
) -> tuple[plt.Figure, np.ndarray]:
    """Training loss per step above test accuracy at the evaluation steps.

    :param losses: Loss of every training step, the first one being step 1.
    :param accuracy_steps: Steps at which the test accuracy was measured.
    :param accuracies: Test accuracy at those steps.
    :returns: ``(fig, (ax_loss, ax_acc))``.
    """
    fig, axes = plt.subplots(nrows=2, sharex=True, figsize=_figsize(rel_width=1.8, rel_height=1.5))
    ax_loss, ax_acc = axes
    ax_loss.plot(np.arange(1, len(losses) + 1), np.asarray(losses))
    ax_loss.set_title("Training loss")
    ax_acc.plot(np.asarray(accuracy_steps), np.asarray(accuracies), marker=".")
    ax_acc.set_title("Test accuracy")
    ax_acc.set_xlabel("Step")
    return fig, axes


_ROWS = (
    ("posmax", "Clear {pos}"),
    ("negmin", "Clear {neg}"),
    ("posmin", "Confusing {pos}"),
    ("negmax", "Confusing {neg}"),
)


def plot_interesting_examples(
    images: np.ndarray,
    probabilities: np.ndarray,
    rows: Mapping[str, Sequence[int]],
    *,
    names: tuple[str, str] = ("positives", "negatives"),
) -> tuple[plt.Figure, plt.Axes]:
    """Four rows of test examples, each row under its own title, each image captioned with its
    index and the model's probability.

    :param images: All test images, ``(n, 28, 28)``.
    :param probabilities: Predicted probability of the positive class for every test image.
    :param rows: Test-set indices under the keys ``posmax``, ``negmin``, ``posmin``, ``negmax``.
    :param names: What to call the positive and the negative class in the row titles, e.g.
        ``("ones", "sevens")``.
    :returns: ``(fig, ax)``; ``ax.texts`` holds each row's title followed by its captions.
    :raises ValueError: A group is missing.
    """
    missing = [k for k, _ in _ROWS if k not in rows]
    if missing:
        raise ValueError(f"rows lacks {', '.join(missing)}.")
    images, probabilities = np.asarray(images).reshape(-1, 28, 28), np.asarray(probabilities)
    content = []
    for key, title in _ROWS:
        indices = np.asarray(rows[key], dtype=int).reshape(-1)
        captions = [f"#{i}: {float(probabilities[i]):.3f}" for i in indices]
        content.append((title.format(pos=names[0], neg=names[1]), images[indices], captions))
    return _image_rows(content, width=_figsize(rel_width=1.2, rel_height=1)[0], cmap="cividis")
