"""Comparisons for hidden-check verdicts: numbers and arrays against the reference, with messages
for students that say what differs and by how much, never what the right value is.

A lesson's ``judge`` functions use these; each raises :class:`.lessons.CheckFailed`.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from .lessons import CheckFailed

__all__ = ["RTOL", "ATOL", "array", "close", "not_raised"]

RTOL, ATOL = 1e-4, 1e-6
_T = TypeVar("_T")


def not_raised(value: _T, what: str) -> _T:
    """``value``, unless it is the record of a call that raised.

    :param value: A decoded value.
    :param what: What produced it, for the message ("mlp's logits").
    :raises CheckFailed: The call raised.
    """
    if isinstance(value, dict) and set(value) == {"error"}:
        raise CheckFailed(f"{what} raised {value['error']}")
    return value


def array(value: object, what: str) -> np.ndarray:
    """``value`` as an array (a list of equally shaped arrays is stacked).

    :raises CheckFailed: The call raised, or returned no array.
    """
    value = not_raised(value, what)
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) and v.shape == value[0].shape
                                                 for v in value):
        value = np.stack(value)
    if not isinstance(value, np.ndarray):
        raise CheckFailed(f"{what} did not return an array")
    return value


def _percent(got: np.ndarray, ref: np.ndarray) -> str:
    scale = np.maximum(np.abs(ref), 1e-12)
    worst = float(np.max(np.abs(got - ref) / scale)) if ref.size else 0.0
    return f"{100 * worst:.2g} %" if worst < 10 else f"a factor of {worst:.2g}"


def close(got: object, ref: object, what: str, *, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Check that ``got`` equals ``ref`` within tolerances, in shape and value.

    :param got: The student's value.
    :param ref: The reference value.
    :param what: What the value is, for the message.
    :raises CheckFailed: Another shape, a non-finite value, or a difference beyond the tolerances
        (the message gives the largest relative difference, not the value).
    """
    got, ref = array(got, what), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        if got.size == ref.size:
            raise CheckFailed(f"{what} has shape {got.shape}; expected {ref.shape}")
        raise CheckFailed(f"{what} has {got.size} values; expected {ref.size}")
    got = got.astype(np.float64)
    if not np.all(np.isfinite(got)):
        raise CheckFailed(f"{what} is not finite (nan or inf)")
    if not np.allclose(got, ref, rtol=rtol, atol=atol):
        raise CheckFailed(f"{what} differs from the correct value by up to {_percent(got, ref)}")
