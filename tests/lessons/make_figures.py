"""Write the figure lesson's solution notebook (``python tests/lessons/make_figures.py``): the toy
lesson with one more expected-result cell of task 2 that shows a PNG figure, made with the
standard library alone (no plotting library in the kernel, so grading stays fast)."""

from __future__ import annotations

import nbformat

from tests.lessons import make_toy

SOLUTION = make_toy.SOLUTION.parent.parent / "figure_lesson" / "solution.ipynb"
_HELPER = '''import base64, struct, zlib
from IPython.display import display


def show_bars(heights, size=40):
    """Show bars of the given heights (0 to 1) as a PNG figure."""
    rows = []
    for r in range(size):
        row = b"".join(bytes([40 if size - r <= min(1, max(0, h)) * size else 255]) * 8 for h in heights)
        rows.append(b"\\x00" + row)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8 * len(heights), size, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"".join(rows))) + chunk(b"IEND", b""))
    display({"image/png": base64.b64encode(png).decode()}, raw=True)'''
_FIGURE = ("z = standardise(np.arange(5.0) * SCALE)\nshow_bars([(float(v) + 2) / 4 for v in z])\n"
           "print('bars of the standardised values')")


def with_figure(text: str) -> str:
    """A toy notebook with the figure lesson's two cells: the helper after the parameters, the figure
    cell at the end (text that is no notebook stays as it is)."""
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception:  # noqa: BLE001 - the class's invalid notebook
        return text
    at = next(i for i, c in enumerate(nb.cells) if c.get("id") == "params") + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(_HELPER, id="figure-helper"))
    nb.cells.append(nbformat.v4.new_code_cell(_FIGURE, id="expected-figure",
                                              metadata={"tags": ["task-2", "expected-result"]}))
    return nbformat.writes(nb)


def executed_solution() -> str:
    """The solution notebook run in a fresh kernel, with its outputs."""
    from nbclient import NotebookClient

    nb = nbformat.reads(with_figure(make_toy.notebook()), as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    return nbformat.writes(nb)


if __name__ == "__main__":
    SOLUTION.write_text(executed_solution())
    print(f"wrote {SOLUTION}")
