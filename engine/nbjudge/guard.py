"""What a notebook changed in the kernel's libraries, undone for a hidden check.

A student controls the kernel: a profile or trace hook, or a library function replaced in its
module, could change what a probe's calls receive or return. So :func:`take` runs at the kernel's
start (:mod:`.kernel_start`), before any cell: it imports the modules the probes use (and so the
libraries they use) and notes the originals:

* every callable and submodule in the namespace of every module loaded then, and the module
  itself in ``sys.modules``;
* the code and defaults of every Python function among them, and the callables of every class
  defined in them (methods, properties, ...);
* the callables that the kernel objects a probe's values pass through (the shell, its display
  publisher, the kernel, its session) hold, and which of their traits are such objects;
* ``gc.callbacks``.

:func:`restore`, called by :func:`.probe.run` before a probe calls anything, switches off every
profile and trace hook (``sys``, ``threading``, ``sys.monitoring``) and puts back each of those
originals that a notebook changed. A probe thus runs the student's functions with the libraries as
they were installed, and sends its values through the kernel's own publisher.

Not covered (an in-process guard cannot be): what runs before the probe's first line (IPython's
input transformers, ``builtins.__import__``), another thread of the student's running beside the
probe, and changes made inside objects that are no module, class or function (a closure's cell, a
C extension's state). Those need code written against the grader itself, not a patched library.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import itertools
import operator
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["PRELOAD_ENV", "Snapshot", "restore", "take"]

PRELOAD_ENV = "NBJUDGE_PRELOAD"  # the kernel's environment: the probe modules to import first, comma-separated

_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE: classes that refuse new attributes anyway
_DESCRIPTORS = (staticmethod, classmethod, property)
_SKIPPED_MODULES = ("__main__", "__mp_main__")
_GONE = object()  # what an attribute that was removed reads as


def _kept(value: object) -> bool:
    """Whether a namespace entry is an original worth keeping: something callable, a descriptor or
    a module (never data: caches and settings that libraries change as they run)."""
    return callable(value) or isinstance(value, (*_DESCRIPTORS, types.ModuleType))


@dataclass
class _Holder:
    """One namespace (a module's, a class's or an object's) and the originals kept from it."""

    target: object
    saved: dict[str, object]
    known: frozenset[str]  # every name it had at the start, data included
    names: tuple[str, ...] = ()
    values: tuple[object, ...] = ()

    def __post_init__(self) -> None:
        self.names, self.values = tuple(self.saved), tuple(self.saved.values())

    def changed(self, space: Mapping[str, object]) -> bool:
        """Whether ``space`` (its namespace now) differs from the originals: one C-level pass."""
        return any(map(operator.is_not, map(space.get, self.names, itertools.repeat(_GONE)), self.values)) or bool(
            space.keys() - self.known)


_Functions = tuple[tuple[types.FunctionType, ...], tuple[types.CodeType, ...],
                   tuple[tuple[object, ...] | None, ...], tuple[dict[str, object] | None, ...]]


@dataclass
class Snapshot:
    """The originals noted at the kernel's start (see the module's text)."""

    modules: dict[str, types.ModuleType] = field(default_factory=dict)
    holders: list[_Holder] = field(default_factory=list)
    functions: _Functions = ((), (), (), ())  # the functions, their code, defaults and keyword defaults
    gc_callbacks: list[Callable[..., object]] = field(default_factory=list)
    shell: object = None


_SNAPSHOT: Snapshot | None = None


def _classes_and_functions(module: types.ModuleType, seen: set[int], snapshot: Snapshot,
                           functions: list[types.FunctionType]) -> None:
    name = module.__name__
    for value in list(vars(module).values()):
        if id(value) in seen:
            continue
        if isinstance(value, types.FunctionType):
            seen.add(id(value))
            functions.append(value)
        elif isinstance(value, type) and getattr(value, "__module__", None) == name:
            seen.add(id(value))
            if not value.__flags__ & _IMMUTABLE_TYPE:
                space = dict(vars(value))
                snapshot.holders.append(_Holder(value, {k: v for k, v in space.items() if _kept(v)},
                                                frozenset(space)))
                for member in space.values():
                    if isinstance(member, types.FunctionType) and id(member) not in seen:
                        seen.add(id(member))
                        functions.append(member)


def _kernel_objects(shell: object) -> list[object]:
    """The objects a probe's values pass through on their way to the worker."""
    kernel = getattr(shell, "kernel", None)
    found = [shell, getattr(shell, "display_pub", None), kernel, getattr(kernel, "session", None),
             getattr(kernel, "iopub_socket", None)]
    return [obj for obj in found if obj is not None]


def take(preload: Sequence[str], *, shell: object = None) -> Snapshot:
    """Import ``preload`` and note the originals; call once, before any cell runs.

    :param preload: Modules to import first (the lesson's probe modules).
    :param shell: The kernel's IPython shell, whose publishing objects are noted too.
    :returns: The snapshot, also kept for :func:`restore`.
    """
    global _SNAPSHOT
    for name in preload:
        importlib.import_module(name)
    snapshot = Snapshot(shell=shell, gc_callbacks=list(gc.callbacks))
    seen: set[int] = set()
    functions: list[types.FunctionType] = []
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name in _SKIPPED_MODULES:
            continue
        snapshot.modules[name] = module
        space = vars(module)
        snapshot.holders.append(_Holder(module, {k: v for k, v in space.items() if _kept(v)}, frozenset(space)))
        _classes_and_functions(module, seen, snapshot, functions)
    objects = _kernel_objects(shell) if shell is not None else []
    for obj in objects:
        space = vars(obj)
        saved = {k: v for k, v in space.items() if _kept(v) or any(v is o for o in objects)}
        snapshot.holders.append(_Holder(obj, saved, frozenset(space)))
        traits = space.get("_trait_values")
        if isinstance(traits, dict):
            snapshot.holders.append(_Holder(traits, {k: v for k, v in traits.items()
                                                     if _kept(v) or any(v is o for o in objects)}, frozenset(traits)))
    snapshot.functions = (tuple(functions), tuple(f.__code__ for f in functions),
                          tuple(f.__defaults__ for f in functions), tuple(f.__kwdefaults__ for f in functions))
    _SNAPSHOT = snapshot
    return snapshot


def _put_back(holder: _Holder) -> None:
    target = holder.target
    space = target if isinstance(target, dict) else vars(target)  # a dict: traitlets' values of a kernel object
    if not holder.changed(space):
        return
    put: Callable[[str, object], None]
    drop: Callable[[str], None]
    if isinstance(target, type):
        put, drop = (lambda k, v: setattr(target, k, v)), (lambda k: delattr(target, k))
    else:
        put, drop = space.__setitem__, space.__delitem__
    for key, value in holder.saved.items():
        if space.get(key, _GONE) is not value:
            put(key, value)
    for key in [k for k in space.keys() - holder.known if _kept(space[k]) and _shadows(target, k)]:
        drop(key)


def _shadows(target: object, name: str) -> bool:
    """Whether an attribute ``name`` added to ``target`` hides one that its class (or, for a class,
    a base) had: a method replaced on one object, or an inherited one overridden."""
    if isinstance(target, type):
        return any(name in vars(base) for base in target.__mro__[1:])
    return not isinstance(target, (dict, types.ModuleType)) and hasattr(type(target), name)


def _hooks_off() -> None:
    sys.setprofile(None)
    sys.settrace(None)
    threading.setprofile(None)
    threading.settrace(None)
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12+
    if monitoring is not None:
        for tool in range(6):
            if monitoring.get_tool(tool) is not None:
                monitoring.set_events(tool, 0)
                for bit in range(32):
                    with contextlib.suppress(ValueError):  # not an event of this Python
                        monitoring.register_callback(tool, 1 << bit, None)


def restore() -> Snapshot | None:
    """Switch profile and trace hooks off, and put back every original a notebook changed since
    :func:`take` (``None`` and nothing put back when it was never taken: outside a grading kernel).
    """
    snapshot = _SNAPSHOT
    if snapshot is None:
        _hooks_off()
        return None
    for name, module in snapshot.modules.items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module
    for holder in snapshot.holders:
        try:
            _put_back(holder)
        except (AttributeError, TypeError):
            pass  # a class that refuses the change keeps its own attribute
    functions, codes, defaults, kwdefaults = snapshot.functions
    for attribute, originals in (("__code__", codes), ("__defaults__", defaults), ("__kwdefaults__", kwdefaults)):
        if any(map(operator.is_not, map(operator.attrgetter(attribute), functions), originals)):
            for fn, original in zip(functions, originals, strict=True):
                if getattr(fn, attribute) is not original:
                    setattr(fn, attribute, original)
    gc.callbacks[:] = snapshot.gc_callbacks
    _hooks_off()
    return snapshot
