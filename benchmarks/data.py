"""MNIST load time against the baseline, measured side by side in one run.

Both load MNIST in new processes, each timed from inside, imports included:

* the kit: ``load_mnist()`` from its warm cache (every file checked against its SHA-256);
* the baseline: the four ``.gz`` files parsed anew (``benchmarks/baseline.py``'s way).

Prints best and median of each and the ratio (goal: kit <= 0.3 s). Run:
``python benchmarks/data.py [--runs 7]`` (after ``make data``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baseline import mnist_folder  # noqa: E402

_KIT = (
    "import time; t = time.perf_counter(); from bmnist_helpers.data import load_mnist; m = load_mnist(); "
    "print(time.perf_counter() - t)"
)
_BASELINE = (
    "import time; t = time.perf_counter(); import gzip, numpy as np; from pathlib import Path; f = Path({folder!r}); "
    "m = {{n: np.frombuffer(gzip.decompress((f / (n + '.gz')).read_bytes()) if (f / (n + '.gz')).exists() "
    "else (f / n).read_bytes(), np.uint8) for n in ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', "
    "'t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}}; print(time.perf_counter() - t)"
)
GOAL_S = 0.3


def _times(code: str, runs: int) -> list[float]:
    return [float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
            for _ in range(runs)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    baseline = _BASELINE.format(folder=str(mnist_folder()))
    _times(_KIT, 1)  # fills the cache if it is empty
    kit, base = [], []
    for _ in range(args.runs):  # interleaved, so that a busy moment hits both
        kit += _times(_KIT, 1)
        base += _times(baseline, 1)
    k, b = statistics.median(kit), statistics.median(base)
    print("MNIST in a fresh process, imports included (measured side by side in this run)")
    print(f"  kit load_mnist() from its cache: best {min(kit):.3f} s, median {k:.3f} s (goal <= {GOAL_S} s)")
    print(f"  baseline, .gz parsed anew:       best {min(base):.3f} s, median {b:.3f} s")
    print(f"  kit / baseline (medians): {k / b:.2f}x over {args.runs} runs each")


if __name__ == "__main__":
    main()
