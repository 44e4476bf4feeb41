"""When a student's earlier function can serve a later task's check (numpy only; both sides use it).

The checks of tasks 3 and 4 judge each task against what the student's own earlier functions
return: the objective against the cross-entropy of the student's own logits, the update step
against the momentum update of the student's own gradients. That is a fair test only where those
values say something: logits of the documented shape that are finite and depend on the inputs,
gradients that move the parameters by clearly more than the comparison's tolerance. Where they do
not (the earlier task is missing, raises, or is degenerate), the kernel swaps in a stand-in and the
grader computes the stand-in's values itself. The kernel (:mod:`.probes`) and the grader
(:mod:`.verdicts`) apply the same rules, so an honest notebook never meets a disagreement.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UPDATE_ATOL", "UPDATE_RTOL", "gradients", "logits"]

UPDATE_RTOL, UPDATE_ATOL = 1e-3, 1e-5  # how closely parameters after updates are compared
_MOVES = 10  # a usable gradient moves some parameter by this many tolerances in one plain step


def _floats(value) -> np.ndarray | None:
    """``value`` as a float64 array, or ``None`` where it is no array of real numbers."""
    try:
        array = np.asarray(value)
    except Exception:  # noqa: BLE001 - whatever a student's function returned
        return None
    if array.dtype.kind not in "biuf":
        return None
    return array.astype(np.float64)


def logits(value, count: int, *, varied: bool) -> bool:
    """Whether ``value`` can stand for a model's logits on ``count`` examples.

    :param value: What the student's ``mlp`` returned.
    :param count: The number of examples it was given.
    :param varied: Also require that the logits differ between examples (random parameters and
        inputs give different logits; a constant tells nothing about the objective).
    """
    array = _floats(value)
    if array is None or array.shape != (count,) or not np.all(np.isfinite(array)):
        return False
    return not varied or float(np.ptp(array)) > 1e-4 * (1 + float(np.max(np.abs(array))))


def _pairs(value) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """A list of ``(weights, bias)`` pairs as float64 arrays, or ``None``."""
    if not isinstance(value, list | tuple):
        return None
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for layer in value:
        if not (isinstance(layer, list | tuple) and len(layer) == 2):
            return None
        weights, bias = _floats(layer[0]), _floats(layer[1])
        if weights is None or bias is None:
            return None
        pairs.append((weights, bias))
    return pairs


def gradients(params, grads, learning_rate: float) -> bool:
    """Whether ``grads`` are gradients an update step can be judged on: one finite array per
    parameter, of its shape, and a plain step of ``learning_rate`` moves some parameter by clearly
    more than the tolerance the parameters are compared with.

    :param params: The parameters the gradient was taken at (``[(weights, bias), ...]``).
    :param grads: What ``jax.grad`` of the student's objective returned for them.
    :param learning_rate: The step size of the check.
    """
    params, grads = _pairs(params), _pairs(grads)
    if params is None or grads is None or len(params) != len(grads):
        return False
    moves = False
    for layer, grad in zip(params, grads, strict=True):
        for p, g in zip(layer, grad, strict=True):
            if p.shape != g.shape or not np.all(np.isfinite(g)):
                return False
            moves = moves or bool(np.any(np.abs(learning_rate * g) > _MOVES * (UPDATE_ATOL + UPDATE_RTOL * np.abs(p))))
    return moves
