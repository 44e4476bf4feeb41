"""The solution notebook against the baseline, measured side by side in one run.

Runs, each in a fresh kernel with the MNIST cache warm, in ``--repeats`` interleaved rounds (default
2; the fastest run of each kind counts, as the host's load varies from minute to minute):

1. the baseline (``benchmarks/baseline.py``: the lesson as the 2023 sheet does it), no JAX
   compilation cache;
2. the solution notebook with an empty JAX compilation cache (``cold``);
3. the solution notebook again with the cache the first run filled (``warm``; the ``bmnist``
   kernel that ``make lab`` installs keeps such a cache).

The kit's runs get the ``XLA_FLAGS`` of that kernel (:data:`bmnist_helpers.kernel.FAST_COMPILE_FLAGS`).

Prints the end-to-end ratios (goals: cold <= 0.25x, warm <= 0.2x the baseline), the time of each
part of the lesson for all three runs, the kit's per-cell times and the final test accuracies
(goal >= 0.99). Run: ``python benchmarks/notebook.py [--repeats N] [--record FILE]`` (after
``make data``); ``--record`` appends the figures as one JSON line (``benchmarks/summary.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _nbtime import OTHER, cell_table, execute, role_seconds  # noqa: E402
from baseline import ROLES, baseline_notebook  # noqa: E402
from bmnist_helpers.kernel import xla_flags  # noqa: E402
from bmnist_lesson.exercise import ROOT, load_solution  # noqa: E402

GOAL_COLD, GOAL_WARM, GOAL_ACCURACY = 0.25, 0.2, 0.99


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def _ratio(x: float, base: float) -> str:
    return f"{x / base:9.2f}x" if base > 0.05 else f"{'-':>10s}"


def _outputs(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _kit_accuracy(nb) -> float:
    return float(re.findall(r"test accuracy ([0-9.]+)", _outputs(nb))[-1])


def _baseline_accuracy(nb) -> float:
    return float(re.findall(r"final test accuracy ([0-9.]+)", _outputs(nb))[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds of baseline, cold and warm runs, side by side; each one's fastest counts")
    parser.add_argument("--record", type=Path, help="append the figures to this file as a JSON line")
    args = parser.parse_args()

    flags = xla_flags()  # as in the bmnist kernel that `make lab` registers
    runs: dict[str, list] = {"baseline": [], "cold": [], "warm": []}
    for _ in range(max(1, args.repeats)):  # interleaved, so that a slow minute of the host hits all three
        runs["baseline"].append(execute(baseline_notebook(), cwd=ROOT, cache_dir=None))
        with tempfile.TemporaryDirectory() as cache:
            for kind in ("cold", "warm"):
                runs[kind].append(execute(load_solution(), cwd=ROOT / "solutions", cache_dir=Path(cache),
                                          xla_flags=flags))
    (base_nb, base_total), (cold_nb, cold_total), (warm_nb, warm_total) = (
        min(runs[kind], key=lambda run: run[1]) for kind in ("baseline", "cold", "warm"))

    parts = {name: role_seconds(nb, total) for name, nb, total in
             (("baseline", base_nb, base_total), ("cold", cold_nb, cold_total), ("warm", warm_nb, warm_total))}
    print(f"notebook end to end, fresh kernel, MNIST cache warm (measured side by side in this run; the fastest "
          f"of {max(1, args.repeats)} interleaved runs of each)")
    print(f"{'part':30s} {'baseline':>9s} {'kit cold':>9s} {'kit warm':>9s} {'cold/base':>10s} {'warm/base':>10s}")
    for role in (*ROLES, OTHER):
        b, c, w = (parts[name].get(role, 0.0) for name in ("baseline", "cold", "warm"))
        print(f"{role:30s} {b:8.1f}s {c:8.1f}s {w:8.1f}s {_ratio(c, b)} {_ratio(w, b)}")
    print(f"{'total':30s} {base_total:8.1f}s {cold_total:8.1f}s {warm_total:8.1f}s "
          f"{cold_total / base_total:9.2f}x {warm_total / base_total:9.2f}x")
    print()
    print("per cell (s):")
    print("  baseline: " + ", ".join(f"{name} {s:.2f}" for name, s in cell_table(base_nb)))
    cold_cells = dict(cell_table(cold_nb))
    print("  kit (cold / warm): " + ", ".join(f"{name} {cold_cells.get(name, 0):.2f}/{s:.2f}"
                                            for name, s in cell_table(warm_nb)))
    print()
    cold_ratio, warm_ratio = cold_total / base_total, warm_total / base_total
    accuracies = (_baseline_accuracy(base_nb), _kit_accuracy(cold_nb), _kit_accuracy(warm_nb))
    print(f"kit cold: {cold_ratio:.2f}x the baseline (goal <= {GOAL_COLD}x: {_verdict(cold_ratio <= GOAL_COLD)})")
    print(f"kit warm: {warm_ratio:.2f}x the baseline (goal <= {GOAL_WARM}x: {_verdict(warm_ratio <= GOAL_WARM)})")
    print(f"final test accuracy: baseline {accuracies[0]:.4f}, kit {accuracies[1]:.4f} cold, {accuracies[2]:.4f} warm "
          f"(goal for the kit >= {GOAL_ACCURACY}: {_verdict(min(accuracies[1:]) >= GOAL_ACCURACY)})")
    if args.record:
        record = {"benchmark": "notebook", "baseline_s": base_total, "cold_s": cold_total, "warm_s": warm_total,
                  "cold_ratio": cold_ratio, "warm_ratio": warm_ratio}
        with open(args.record, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
