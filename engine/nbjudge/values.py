"""The values a hidden check sends from the kernel to the grader, and the inputs it is given.

Inputs go into the kernel as literals in the probe cell (arrays compressed and base64-encoded);
the kernel sends back raw values only: numbers and arrays, lists and dicts of them, and the error
message of a call that raised. :func:`decode_values` refuses anything else, and anything larger than
its budget, so that a notebook can send only numbers, never objects or code.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PRINTED_MIME", "RESULTS_BUDGET", "TEXT_CHARS", "VALUES_BYTES", "VALUES_MIME", "MalformedValues", "Raised",
           "bounded_values", "decode_input", "decode_values", "encode_input", "encode_value"]

VALUES_MIME = "application/x-grading-values+json"
# An expected-result cell's own printed lines, and the marks around its code (:func:`.probe.show`).
PRINTED_MIME = "application/x-grading-printed+json"
_MAX_DEPTH = 8
_MAX_ELEMENTS = 2_000_000
# The JSON text of one probe's values: at most this many characters, and this many brackets and
# commas (arrays travel as base64 text, one element each), whatever a notebook sends.
VALUES_BYTES = 8 * 1024 * 1024
TEXT_CHARS = 20_000  # characters of text the worker keeps per cell
# Bytes of one job's results file: the worker stops the job before passing it, the grader reads no
# more, and the worker's RLIMIT_FSIZE backs it up.
RESULTS_BUDGET = 48 * 1024 * 1024
_MAX_JSON_ELEMENTS = 100_000
_ERROR_CHARS = 400


class MalformedValues(ValueError):
    """The kernel sent back something that is not a well-formed set of values."""


@dataclass(frozen=True)
class Raised:
    """A call in the kernel that raised; ``message`` is ``"TypeError: ..."``."""

    message: str


def encode_input(value: object) -> object:
    """An input as JSON: arrays compressed, lists element by element, numbers as they are.

    :param value: A numpy array, a list of inputs, or a plain JSON value.
    """
    if isinstance(value, list):
        return [encode_input(v) for v in value]
    if isinstance(value, np.ndarray):
        raw = zlib.compress(np.ascontiguousarray(value).tobytes(), 6)
        return {"t": value.dtype.str, "s": list(value.shape), "b": base64.b64encode(raw).decode()}
    return value


def decode_input(value: object) -> object:
    """What :func:`encode_input` wrote, back as numpy arrays (in the kernel).

    :param value: One encoded input.
    """
    if isinstance(value, dict):
        raw = zlib.decompress(base64.b64decode(value["b"]))
        return np.frombuffer(raw, dtype=value["t"]).reshape(value["s"]).copy()
    if isinstance(value, list):
        return [decode_input(v) for v in value]
    return value


def encode_value(value: object, depth: int = 0) -> dict[str, Any]:
    """A value computed in the kernel as JSON: dicts, lists and tuples of numbers and arrays.

    :param value: What a student's function returned (arrays of any library that numpy reads).
    :raises TypeError: Something that is not numbers (strings, objects).
    :raises ValueError: Nested too deeply.
    """
    if depth > _MAX_DEPTH - 2:
        raise ValueError("nested too deeply")
    if isinstance(value, Raised):
        return {"e": value.message[:_ERROR_CHARS]}
    if isinstance(value, dict):
        return {"d": {str(k): encode_value(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"l": [encode_value(v, depth + 1) for v in value]}
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"expected numbers, got {type(value).__name__}")
    return {"t": array.dtype.str, "s": list(array.shape), "b": base64.b64encode(array.tobytes()).decode()}


def _check_bounds(text: object) -> None:
    """Refuse JSON text past :data:`VALUES_BYTES` or :data:`_MAX_JSON_ELEMENTS` (:class:`MalformedValues`)."""
    if not isinstance(text, str) or len(text) > VALUES_BYTES:
        raise MalformedValues("too large")
    if sum(text.count(c) for c in "[{,") > _MAX_JSON_ELEMENTS:
        raise MalformedValues("too many elements")


def bounded_values(values: object) -> object | None:
    """One :data:`VALUES_MIME` output as the worker records it: the JSON data itself, sent on once
    (no JSON text inside the record), or ``None`` where it is not JSON, or its JSON text is longer
    than :data:`VALUES_BYTES` or holds more than :data:`_MAX_JSON_ELEMENTS` elements: counted in
    the text, so that the grader never parses a small text into a large structure.

    :param values: The output's data, as the kernel's message held it.
    """
    try:
        _check_bounds(json.dumps(values, ensure_ascii=True))
    except (TypeError, ValueError, RecursionError):  # MalformedValues is a ValueError
        return None
    return values


def decode_values(raw: object, *, depth: int = 0, budget: list[int] | None = None) -> object:
    """Turn the JSON a probe sent into numpy arrays, lists and dicts; refuse anything else.

    :param raw: The parsed JSON of one :data:`VALUES_MIME` output.
    :returns: The values; a call that raised stays ``{"error": message}``.
    :raises MalformedValues: Not the structure a probe sends, or too large.
    """
    budget = [_MAX_ELEMENTS] if budget is None else budget
    if depth > _MAX_DEPTH or not isinstance(raw, dict):
        raise MalformedValues("unexpected structure")
    if set(raw) == {"e"}:
        return {"error": str(raw["e"])[:_ERROR_CHARS]}
    if set(raw) == {"d"} and isinstance(raw["d"], dict):
        return {str(k): decode_values(v, depth=depth + 1, budget=budget) for k, v in raw["d"].items()}
    if set(raw) == {"l"} and isinstance(raw["l"], list):
        return [decode_values(v, depth=depth + 1, budget=budget) for v in raw["l"]]
    if set(raw) == {"t", "s", "b"}:
        try:
            dtype = np.dtype(raw["t"])
            shape = tuple(int(s) for s in raw["s"])
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if dtype.kind not in "biuf" or min(shape, default=0) < 0 or count > budget[0]:
                raise MalformedValues("array too large or not numeric")
            budget[0] -= count
            return np.frombuffer(base64.b64decode(raw["b"], validate=True), dtype=dtype).reshape(shape).copy()
        except (TypeError, ValueError) as exc:
            raise MalformedValues(f"bad array: {exc}") from None
    raise MalformedValues("unexpected structure")
