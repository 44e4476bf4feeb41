"""Small HTML and SVG snippets for the widgets: cheap to rebuild on every slider move.

Matplotlib takes about 100 ms to render a figure to PNG; these strings take well under 1 ms, which
is what keeps a slider move below the 50 ms goal.
"""

from __future__ import annotations

import base64
import functools
import html
import io
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_AXIS = "#37414a"
_COLOURS = ("#8d2d39", "#0069aa")  # tueplots' MoML red and blue
_MAX_DOTS = 30  # series up to this long get a dot on every point


def _points(xs: np.ndarray, ys: np.ndarray, *, box: tuple[float, float, float, float], xlim: tuple[float, float],
            ylim: tuple[float, float]) -> str:
    x0, y0, width, height = box
    span_x = (xlim[1] - xlim[0]) or 1.0
    span_y = (ylim[1] - ylim[0]) or 1.0
    px = x0 + (xs - xlim[0]) / span_x * width
    py = y0 + height - (ys - ylim[0]) / span_y * height
    return " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px, py, strict=True))


def _downsample(xs: np.ndarray, ys: np.ndarray, *, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points that look like the whole series when drawn as a line.

    The first and the last point are kept; in between, each bucket of consecutive points gives its
    minimum and its maximum, in their order, so spikes and the y range survive.
    """
    n = len(xs)
    if n <= max_points:
        return xs, ys
    buckets = max((max_points - 2) // 2, 1)
    edges = np.linspace(1, n - 1, buckets + 1).astype(int)
    keep = [0]
    for start, stop in zip(edges[:-1], edges[1:], strict=True):
        if stop > start:
            low, high = start + int(np.argmin(ys[start:stop])), start + int(np.argmax(ys[start:stop]))
            keep += sorted({low, high})
    keep.append(n - 1)
    index = np.asarray(keep)
    return xs[index], ys[index]


def line_chart(
    xs: npt.ArrayLike,
    ys: npt.ArrayLike,
    *,
    title: str,
    xlim: tuple[float, float],
    ylim: tuple[float, float] | None = None,
    width: int = 320,
    height: int = 160,
) -> str:
    """An SVG line chart; long series are thinned to at most 400 points for drawing (first and last
    point kept, minimum and maximum of every bucket in between); short ones get a dot per point, so
    that a single point shows too.

    :param xs: x values. :param ys: y values, as many as ``xs``.
    :param title: Caption above the plot.
    :param xlim: x range of the axes. :param ylim: y range; the data's range if omitted.
    :returns: An ``<svg>`` string.
    """
    x, y = _downsample(np.asarray(xs, float), np.asarray(ys, float), max_points=400)
    if ylim is None:
        ylim = (float(y.min()), float(y.max())) if len(y) else (0.0, 1.0)
    if ylim[1] <= ylim[0]:  # one value so far: a band around it, with the value at mid-height
        pad = max(abs(ylim[0]) * 0.01, 1e-3)
        ylim = (ylim[0] - pad, ylim[0] + pad)
    box = (40.0, 20.0, width - 50.0, height - 40.0)
    line = _points(x, y, box=box, xlim=xlim, ylim=ylim) if len(x) else ""
    # A line needs two points; a few points (a single one included) are drawn as dots as well.
    dots = "".join(
        f'<circle cx="{point.split(",")[0]}" cy="{point.split(",")[1]}" r="2.5" fill="{_COLOURS[0]}"/>'
        for point in line.split()
    ) if len(x) <= _MAX_DOTS else ""
    x0, y0, w, h = box
    return (
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="10">'
        f'<text x="{width / 2}" y="12" text-anchor="middle">{html.escape(title)}</text>'
        f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="{_AXIS}" stroke-width="0.5"/>'
        f'<text x="{x0 - 3}" y="{y0 + 8}" text-anchor="end">{ylim[1]:.3g}</text>'
        f'<text x="{x0 - 3}" y="{y0 + h}" text-anchor="end">{ylim[0]:.3g}</text>'
        f'<text x="{x0}" y="{y0 + h + 12}">{xlim[0]:.0f}</text>'
        f'<text x="{x0 + w}" y="{y0 + h + 12}" text-anchor="end">{xlim[1]:.0f}</text>'
        f'<polyline points="{line}" fill="none" stroke="{_COLOURS[0]}" stroke-width="1"/>'
        f"{dots}</svg>"
    )


def histogram_chart(
    counts: Sequence[np.ndarray],
    edges: np.ndarray,
    *,
    labels: Sequence[str],
    marker: float,
    width: int = 360,
    height: int = 170,
) -> str:
    """Overlaid histograms on a log scale, with a vertical marker line.

    :param counts: One array of bin counts per series. :param edges: Bin edges, shared.
    :param labels: Legend entry per series. :param marker: x position of the vertical line.
    :returns: An ``<svg>`` string.
    """
    box = (30.0, 20.0, width - 40.0, height - 45.0)
    x0, y0, w, h = box
    top = max(float(np.log1p(c).max()) for c in counts) or 1.0
    xlim = (float(edges[0]), float(edges[-1]))
    parts = [
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" font-size="10">',
        f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="{_AXIS}" stroke-width="0.5"/>',
    ]
    bin_width = w / (len(edges) - 1)
    for series, (c, label, colour) in enumerate(zip(counts, labels, _COLOURS, strict=False)):
        for i, value in enumerate(np.log1p(c)):
            bar = value / top * h
            parts.append(
                f'<rect x="{x0 + i * bin_width:.1f}" y="{y0 + h - bar:.1f}" width="{bin_width:.1f}" '
                f'height="{bar:.1f}" fill="{colour}" fill-opacity="0.45"/>'
            )
        parts.append(
            f'<text x="{x0 + 5 + series * 120}" y="12" fill="{colour}">&#9632; {html.escape(label)}</text>'
        )
    mx = x0 + (marker - xlim[0]) / ((xlim[1] - xlim[0]) or 1.0) * w
    parts += [
        f'<line x1="{mx:.1f}" x2="{mx:.1f}" y1="{y0}" y2="{y0 + h}" stroke="black" stroke-width="1.5"/>',
        f'<text x="{x0}" y="{y0 + h + 12}">{xlim[0]:g}</text>',
        f'<text x="{x0 + w}" y="{y0 + h + 12}" text-anchor="end">{xlim[1]:g}</text>',
        f'<text x="{x0 + w / 2}" y="{y0 + h + 24}" text-anchor="middle">predicted probability '
        "(counts on a log scale)</text>",
        "</svg>",
    ]
    return "".join(parts)


@functools.cache
def _colormap() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps["cividis"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)


def image_png(image: np.ndarray, *, scale: int = 2) -> str:
    """A grey image as a ``data:`` URI of a cividis-coloured PNG.

    :param image: 2-d array (or 784 values), any range.
    :param scale: Pixel repetition factor.
    :returns: The URI.
    """
    from PIL import Image

    pixels = np.asarray(image, dtype=float).reshape(28, 28)
    low, high = pixels.min(), pixels.max()
    levels = ((pixels - low) / ((high - low) or 1.0) * 255).astype(np.uint8)
    rgb = _colormap()[levels].repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def image_strip(uris: Sequence[str], captions: Sequence[str]) -> str:
    """A row of images, each with its caption right under it (wrapping onto more rows if narrow).

    :param uris: Image sources. :param captions: One caption per image.
    :returns: An HTML string.
    """
    cells = "".join(
        '<div class="bmnist-tile" style="display:inline-flex;flex-direction:column;align-items:center;'
        'width:76px;margin:2px;vertical-align:top">'
        f'<img src="{u}" style="display:block;width:56px;height:56px" alt=""/>'
        '<div class="bmnist-caption" style="display:block;font-size:11px;line-height:1.25;white-space:normal;'
        f'text-align:center;overflow-wrap:anywhere">{html.escape(c)}</div></div>'
        for u, c in zip(uris, captions, strict=True)
    )
    return f'<div class="bmnist-strip" style="display:flex;flex-wrap:wrap;line-height:normal">{cells}</div>'
