"""End-to-end time of the solution notebook in a fresh kernel, with the MNIST cache warm.

Prints the wall time of the whole run, of the training cell and of the histogram cell, and the
final test accuracy; the first run starts with an empty JAX compilation cache, later runs reuse it
(the ``bmnist`` kernel that ``make lab`` installs keeps such a cache).
Run: ``python benchmarks/notebook.py [--runs N]`` (after ``make data``).
Goals on the 2-core CI machine: end to end <= 16 s, final test accuracy >= 0.99.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from datetime import datetime

from nbclient import NotebookClient

from bmnist_helpers.exercise import ROOT, load_solution


def _cell_seconds(cell) -> float:
    stamps = cell.metadata.get("execution", {})
    start, end = stamps.get("iopub.execute_input"), stamps.get("shell.execute_reply")
    if not (start and end):
        return float("nan")
    return (datetime.fromisoformat(end.rstrip("Z")) - datetime.fromisoformat(start.rstrip("Z"))).total_seconds()


def run_once() -> dict[str, float]:
    """Execute the solution once in a fresh kernel; return timings and the final accuracy."""
    nb = load_solution()
    start = time.perf_counter()
    resources = {"metadata": {"path": str(ROOT / "solutions")}}
    NotebookClient(nb, timeout=600, kernel_name="python3", resources=resources).execute()
    total = time.perf_counter() - start
    cells = {c["id"]: c for c in nb.cells}
    first_solution_only = next(c for c in nb.cells if "solution-only" in c.metadata.get("tags", []))
    trajectory = "".join(o.get("text", "") for o in first_solution_only.outputs)
    final = float(re.findall(r"test accuracy ([0-9.]+)", trajectory)[-1])
    return {
        "end_to_end_s": total,
        "training_cell_s": _cell_seconds(cells["er-training"]),
        "histogram_cell_s": _cell_seconds(cells["er-untrained"]),
        "final_test_accuracy": final,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs; the first with an empty compilation cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = cache  # the kernel inherits it, as with the bmnist kernel
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.05"
        results = [run_once() for _ in range(args.runs)]
    for i, r in enumerate(results, 1):
        state = "cold" if i == 1 else "warm"
        print(f"run {i} ({state} compilation cache): " + ", ".join(f"{k}={v:.3f}" for k, v in r.items()))
    best = min(results, key=lambda r: r["end_to_end_s"])
    print(f"best end-to-end: {best['end_to_end_s']:.1f} s (goal <= 16 s; seed notebook: 66 s on CI), "
          f"training cell {best['training_cell_s']:.1f} s (seed: 18 s), "
          f"histogram cell {best['histogram_cell_s']:.1f} s (seed: 26 s), "
          f"final test accuracy {best['final_test_accuracy']:.3f} (goal >= 0.99)")


if __name__ == "__main__":
    main()
