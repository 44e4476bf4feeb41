"""Cache load time: a fresh process loading MNIST from a warm cache (goal <= 0.3 s).

Runs ``load_mnist()`` in new processes, each timed from inside (import of the kit included), and
prints the best and median. Run: ``python benchmarks/data.py`` (after ``make data``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys

_CHILD = (
    "import time; t = time.perf_counter(); from bmnist_helpers.data import load_mnist; m = load_mnist(); "
    "print(time.perf_counter() - t)"
)


def main(runs: int = 7) -> None:
    subprocess.run([sys.executable, "-c", _CHILD], check=True, capture_output=True)  # warm the cache
    times = [float(subprocess.run([sys.executable, "-c", _CHILD], check=True, capture_output=True, text=True).stdout)
             for _ in range(runs)]
    print(f"load_mnist() from the cache in a fresh process: best {min(times):.3f} s, "
          f"median {statistics.median(times):.3f} s over {runs} runs (goal <= 0.3 s)")


if __name__ == "__main__":
    main()
