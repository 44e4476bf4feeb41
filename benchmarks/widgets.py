"""Explorer speed, measured side by side in one run.

* threshold slider: milliseconds per move over the real test set (goal <= 50 ms);
* seed slider: a full retrain with the lesson's hyperparameters through the explorer versus the
  same training run bare (goal: ratio <= 1.2), and the delay until the first curve (goal <= 1 s).

Run: ``python benchmarks/widgets.py`` (after ``make data``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bmnist_helpers.widgets import seed_explorer, threshold_explorer  # noqa: E402

from tests.solution_ns import solution_namespace  # noqa: E402


def slider_latency(s, *, moves: int = 101) -> float:
    """Mean seconds per threshold-slider move, on the trained model's test-set probabilities."""
    history = list(s.run_training(s.SEED, num_steps=1000))
    probabilities = np.asarray(s.predict_proba(history[-1]["params"], s.bmnist["x_test"]))
    explorer = threshold_explorer(probabilities, s.bmnist["y_test"], s.bmnist["x_test"])
    values = np.linspace(0.0, 1.0, moves)
    start = time.perf_counter()
    for value in values:
        explorer.slider.value = float(value)
    return (time.perf_counter() - start) / moves


def retrain(s, seeds: tuple[int, int, int]) -> tuple[float, float, float]:
    """Seconds for a bare run (mean of one before and one after), the same work through the
    explorer, and the delay until the explorer's first curve for the new seed."""
    bare_times = []
    start = time.perf_counter()
    records = list(s.run_training(seeds[0]))
    bare_times.append(time.perf_counter() - start)
    explorer = seed_explorer(s.run_training, seeds=seeds[:2], cache={seeds[0]: records})
    start = time.perf_counter()
    explorer.slider.value = seeds[1]
    first_curve = float("nan")
    while explorer._worker.is_alive():
        if np.isnan(first_curve) and f"seed {seeds[1]}: training" in explorer.status.value:
            first_curve = time.perf_counter() - start
        time.sleep(0.002)
    widget = time.perf_counter() - start
    start = time.perf_counter()
    list(s.run_training(seeds[2]))
    bare_times.append(time.perf_counter() - start)
    return float(np.mean(bare_times)), widget, first_curve


def main() -> None:
    s = solution_namespace()
    for _ in s.run_training(s.SEED, num_steps=400):  # compile once, outside every measurement
        pass
    latency = slider_latency(s)
    print(f"threshold slider: {latency * 1e3:.1f} ms per move (goal <= 50 ms)")
    bare, widget, first = retrain(s, (s.SEED + 1, s.SEED + 2, s.SEED + 3))
    print(f"retrain {s.NUM_STEPS} steps: bare {bare:.2f} s, through seed_explorer {widget:.2f} s, "
          f"ratio {widget / bare:.2f} (goal <= 1.2); first curve after {first:.2f} s (goal <= 1 s)")


if __name__ == "__main__":
    main()
