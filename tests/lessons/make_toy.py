"""Write the toy lesson's solution notebook (``python tests/lessons/make_toy.py``) and, for the
tests, its submissions: :func:`submissions` gives each one's notebook text and expected result."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

SOLUTION = Path(__file__).resolve().parent / "toy_lesson" / "solution.ipynb"
_MEAN = "def mean(xs):\n    \"\"\"The mean of a vector.\"\"\"\n    return sum(xs) / len(xs)"
_STANDARDISE = ("def standardise(xs):\n    \"\"\"The vector with mean 0 and standard deviation 1.\"\"\"\n"
                "    import numpy as np\n    xs = np.asarray(xs, float)\n    centred = xs - mean(xs)\n"
                "    return centred / np.sqrt(mean(centred**2))")
_STUB = 'def {name}(xs):\n    raise NotImplementedError("TODO: task {task}, {name}")'


def _cell(source: str, *tags: str, cell_id: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(source, id=cell_id, metadata={"tags": list(tags)} if tags else {})


def notebook(mean: str = _MEAN, standardise: str = _STANDARDISE, *, extra: dict | None = None) -> str:
    """A toy notebook with the given answer cells; ``extra`` adds a cell after a cell id."""
    cells = [
        _cell("SCALE = 3", "parameters", cell_id="params"),
        _cell(mean, "task-1", cell_id="answer-1"),
        _cell("print(round(float(mean([1.0, 2.0, 3.0 * SCALE])), 3))", "task-1", "expected-result",
              cell_id="expected-1"),
        _cell(standardise, "task-2", cell_id="answer-2"),
        _cell("import numpy as np\nz = standardise(np.arange(5.0) * SCALE)\nprint(np.round(z, 3).tolist())",
              "task-2", "expected-result", cell_id="expected-2"),
    ]
    for after, source in (extra or {}).items():
        index = next(i for i, c in enumerate(cells) if c.id == after)
        cells.insert(index + 1, _cell(source, cell_id=f"extra-{after}"))
    nb = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                         "display_name": "Python 3"}})
    return nbformat.writes(nb)


def submissions() -> dict[str, tuple[str, str, dict[int, int]]]:
    """``{name: (notebook text, status, points by task)}`` of a small class."""
    full = {1: 3, 2: 3}
    return {
        "full": (notebook(), "ok", full),
        "untouched": (notebook(_STUB.format(name="mean", task=1), _STUB.format(name="standardise", task=2)),
                      "not-attempted", {1: 0, 2: 0}),
        "wrong-2": (notebook(standardise=_STANDARDISE.replace(" / np.sqrt(mean(centred**2))", "")),
                    "partial", {1: 3, 2: 0}),
        "wrong-mean": (notebook(mean="def mean(xs):\n    return max(xs)"), "partial", {1: 0, 2: 0}),
        "loop": (notebook(extra={"answer-1": "while True:\n    pass"}), "timeout", full),
        # a cell that ends the kernel costs only what depends on it: the copy runs again without it
        "exits": (notebook(extra={"answer-2": "import os\nos._exit(1)"}), "crashed", full),
        "answer-exits": (notebook(standardise=_STANDARDISE + "\n\n\nimport os\nos._exit(1)"), "crashed",
                         {1: 3, 2: 0}),
        "kills-every-kernel": (notebook(mean="def mean(xs):\n    import os\n    os._exit(1)"), "crashed",
                               {1: 0, 2: 0}),
        "invalid": ("{not json", "invalid-notebook", {1: 0, 2: 0}),
    }


def executed_solution() -> str:
    """The solution notebook run in a fresh kernel, with its outputs (the engine takes only an
    executed solution)."""
    from nbclient import NotebookClient

    nb = nbformat.reads(notebook(), as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=60).execute()
    return nbformat.writes(nb)


if __name__ == "__main__":
    SOLUTION.write_text(executed_solution())
    print(f"wrote {SOLUTION}")
    json.loads(SOLUTION.read_text())
