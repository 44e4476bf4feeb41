"""What the grader draws for each hidden check of the binary-MNIST lesson (grader side).

Each function takes a numpy ``Generator`` seeded from ``(seed, task)`` by the engine and returns
the check's inputs: numpy arrays, numbers and lists of them. Inputs follow the lesson's docstrings
(images ``(n, 28, 28)``, parameters as a list of ``(weights (d_in, d_out), bias (d_out,))``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LESSON_SIZES", "dataloader", "model", "objective", "training", "examples"]

LESSON_SIZES = (28 * 28, 256, 64, 1)  # LAYER_SIZES of the lesson's parameters cell
_F32 = np.float32


def layers(rng: np.random.Generator, sizes: list[int]) -> list:
    """Random ``[weights, bias]`` pairs, scaled so that every layer's outputs are of order one.

    :param rng: The check's generator.
    :param sizes: Layer widths, input first.
    """
    return [[rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(_F32), rng.normal(0, 0.3, b).astype(_F32)]
            for a, b in zip(sizes[:-1], sizes[1:], strict=False)]


def dataloader(rng: np.random.Generator) -> dict:
    """Task 1: a small training set whose images carry their own position in the first pixel; a
    batch size that does not divide it, and one that does (``batch_size_even``)."""
    batch_size_even = int(rng.integers(4, 12))
    n = batch_size_even * int(rng.integers(5, 9))
    batch_size = int(rng.integers(4, 12))
    while n % batch_size == 0:
        batch_size += 1
    images = np.zeros((n, 28, 28), _F32)
    images[:, 0, 0] = np.arange(n)
    images[:, 0, 1:8] = rng.normal(size=(n, 7))
    labels = (rng.random(n) < 0.5).astype(_F32)
    return {"images": images, "labels": labels, "batch_size": batch_size,
            "batch_size_even": batch_size_even,
            "key_a": int(rng.integers(2**31)), "key_b": int(rng.integers(2**31))}


def model(rng: np.random.Generator) -> dict:
    """Task 2: small networks for the forward pass, one of the lesson's depth and one shallower or
    deeper (the docstring takes any number of layers); the lesson's own sizes for the initialiser
    (the notebook has compiled it for them, so the kernel's compilation cache serves the check),
    and other sizes and depth (``init_other_sizes``: the docstring takes any)."""
    sizes = [28 * 28, int(rng.integers(4, 20)), int(rng.integers(2, 10)), 1]
    depth = int(rng.choice([1, 3]))  # hidden layers of the other network
    other = [28 * 28, *(int(rng.integers(3, 12)) for _ in range(depth)), 1]
    init_other = [int(rng.integers(20, 60)), *(int(rng.integers(10, 30)) for _ in range(int(rng.choice([1, 3])))),
                  int(rng.integers(1, 4))]
    return {"params": layers(rng, sizes), "params_other_depth": layers(rng, other),
            "x": rng.normal(size=(6, sizes[0])).astype(_F32),
            "init_sizes": list(LESSON_SIZES), "init_other_sizes": init_other, "stddev": float(rng.uniform(0.05, 0.5)),
            "key_a": int(rng.integers(2**31)), "key_b": int(rng.integers(2**31)), "key_c": int(rng.integers(2**31))}


def objective(rng: np.random.Generator) -> dict:
    """Task 3: parameters, a batch, a penalty weight, and parameters whose logits are +-10,000."""
    sizes = [28 * 28, int(rng.integers(4, 20)), 1]
    huge = [[np.zeros((sizes[0], sizes[1]), _F32), np.zeros(sizes[1], _F32)],
            [np.zeros((sizes[1], 1), _F32), np.array([1e4], _F32)]]
    return {"params": layers(rng, sizes), "x": rng.normal(size=(9, sizes[0])).astype(_F32),
            "y": rng.integers(0, 2, 9).astype(_F32), "l2": float(rng.uniform(0.01, 1.0)),
            "huge_up": huge, "huge_down": [huge[0], [huge[1][0], -huge[1][1]]]}


def training(rng: np.random.Generator) -> dict:
    """Task 4: parameters, batches, a test set and optimiser settings; a number of steps that
    ``eval_every`` does not divide (so a record follows the last step), and two thresholds, one
    below 0.5 and one above (the docstring takes any), for two training runs.
    The test images are large, so that the model's probabilities spread, and each run's labels are
    all of the class that its threshold moves images into (ones below 0.5, sevens above): the
    accuracy at a threshold then differs from the one at 0.5 by every probability between the two,
    and one of the two runs has such probabilities however the model leans."""
    sizes = [28 * 28, int(rng.integers(4, 12)), 1]
    eval_every = int(rng.integers(2, 5))
    num_steps = eval_every * int(rng.integers(1, 3)) + int(rng.integers(1, eval_every))  # a record after the last
    batches = [[rng.normal(size=(5, 28, 28)).astype(_F32), rng.integers(0, 2, 5).astype(_F32)]
               for _ in range(num_steps)]
    thresholds = [float(0.5 - rng.uniform(0.2, 0.35)), float(0.5 + rng.uniform(0.2, 0.35))]
    return {"params": layers(rng, sizes), "batches": batches,
            "x_test": 3 * rng.normal(size=(100, 28, 28)).astype(_F32),
            "y_tests": [np.ones(100, _F32), np.zeros(100, _F32)],
            "learning_rate": float(rng.uniform(0.05, 0.2)), "weight_decay": float(rng.uniform(0.05, 0.5)),
            "momentum": float(rng.uniform(0.3, 0.8)), "num_steps": num_steps, "eval_every": eval_every,
            "thresholds": thresholds}


def examples(rng: np.random.Generator) -> dict:
    """Task 5: distinct probabilities for a test set with both classes."""
    n = int(rng.integers(60, 200))
    targets = rng.integers(0, 2, n).astype(_F32)
    targets[:2] = [0, 1]
    probabilities = (rng.permutation(n) + rng.uniform(0.1, 0.9, n)) / n
    return {"probabilities": probabilities.astype(np.float64), "targets": targets,
            "num_samples": int(rng.integers(3, 8))}
