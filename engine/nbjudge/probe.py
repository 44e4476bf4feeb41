"""The kernel's side of a hidden check: call the lesson's probe function, send back its values.

A probe cell, written by :mod:`.plan`, holds one call::

    __import__("<this module>", fromlist=["run"]).run("lesson.module:function", {inputs}, globals())

:func:`run` first undoes what the notebook changed in the libraries (:mod:`.guard`), then decodes
the inputs, calls the lesson's probe function with them and the notebook's namespace, and displays
what it returns as one output of :data:`.values.VALUES_MIME`. The probe
function only calls the student's functions (:func:`attempt` turns an exception into its message)
and returns a dict of raw values, each entry sent on its own; every verdict is made in the grader process.

An expected-result cell of the grading copy (:func:`.notebook.checked_source`) prints its own
lines with :func:`show` and brackets its code with :func:`mark`, so that the worker can tell the
cell's checked lines from what the functions it calls print in between.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from . import guard
from .values import PRINTED_MIME, VALUES_MIME, Raised, decode_input, encode_value

__all__ = ["attempt", "mark", "run", "show", "student"]


def attempt(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or :class:`.values.Raised` with the message of what it raised.

    :param fn: A student's function (or a closure that calls some).
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any error of the student's code is a value to report
        return Raised(f"{type(exc).__name__}: {exc}")


def student(namespace: Mapping[str, Any], name: str) -> Any:
    """The notebook's ``name``; raises :class:`NameError` as Python would when it is missing.

    :param namespace: The notebook's globals.
    :param name: A function the student defines.
    """
    try:
        return namespace[name]
    except KeyError:
        raise NameError(f"name {name!r} is not defined") from None


def run(target: str, payload: Mapping[str, Any], namespace: dict[str, Any]) -> None:
    """Run one hidden check in the kernel and display its values.

    :param target: ``"module:function"``: the lesson's probe function, called as
        ``function(inputs, namespace)``; it returns a dict of values.
    :param payload: The encoded inputs (:func:`.values.encode_input`).
    :param namespace: The notebook's globals, where the student's functions are.
    """
    snapshot = guard.restore()  # no hook, no patched library between the probe and the student's functions
    module, _, name = target.partition(":")
    probe = getattr(importlib.import_module(module), name)
    inputs = {key: decode_input(value) for key, value in payload.items()}
    values = attempt(probe, inputs, namespace)
    guard.restore()  # nor between the probe's values and the worker
    if isinstance(values, dict):
        sent = {"d": {str(key): _encoded(value) for key, value in values.items()}}
    else:  # the probe itself raised (a function it needs is missing, say), or returned no dict
        sent = _encoded(values if isinstance(values, Raised) else Raised("the probe returned no dict"))
    if snapshot is not None and snapshot.shell is not None:  # the kernel's own publisher, as it started
        shell: Any = snapshot.shell
        shell.display_pub.publish(data={VALUES_MIME: sent}, metadata={})
    else:
        from IPython.display import display

        display({VALUES_MIME: sent}, raw=True)  # type: ignore[no-untyped-call]


def _encoded(value: object) -> dict[str, Any]:
    """One entry of a probe's result, or the reason it cannot be sent (an entry of its own)."""
    try:
        return encode_value(value)
    except (TypeError, ValueError) as exc:
        return encode_value(Raised(f"{type(exc).__name__}: {exc}"))


def show(*args: object, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
    """``print`` for an expected-result cell's own lines: the text goes out as one output of
    :data:`.values.PRINTED_MIME`, apart from whatever the student's functions write to stdout.

    A ``file`` other than stdout is printed to as ``print`` would.
    """
    import sys

    from IPython.display import display

    if file is not None and file is not sys.stdout:
        print(*args, sep=sep, end=end, file=file, flush=flush)
        return
    sep, end = " " if sep is None else sep, "\n" if end is None else end
    display({PRINTED_MIME: {"text": sep.join(map(str, args)) + end}}, raw=True)  # type: ignore[no-untyped-call]


def mark(where: str) -> None:
    """Mark where an expected-result cell's own code starts (``"begin"``) or ends (``"end"``).

    At its start, the cell's code too runs without hooks and with the libraries' originals
    (:func:`.guard.restore`): its lines then show what the student's functions compute, as the
    hidden checks see it.
    """
    from IPython.display import display

    if where == "begin":
        guard.restore()

    display({PRINTED_MIME: {"mark": where}}, raw=True)  # type: ignore[no-untyped-call]
