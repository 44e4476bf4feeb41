"""The kernel's part of the binary-MNIST hidden checks: call the student's functions on the drawn
inputs and return raw values. Runs inside the student's sandboxed kernel (see
:mod:`nbjudge.probe`); holds no answer to any task.

Tasks 3 and 4 build on earlier tasks, and each is judged against what the student's *own* earlier
functions return on the same inputs: the objective against the student's own ``mlp`` logits, the
update step against gradients of the student's own ``loss_fn``, the training loop against the
student's own update. So a task is judged the same however it refers to its helpers (looked up at
call time, or bound earlier: a notebook variable, a default argument, ``functools.partial``, a
closure). Only where an earlier function is missing, raises or tells nothing (:mod:`.usable`) does
the probe put a stand-in in its place (a linear model for ``mlp``, a squared-error objective for
``loss_fn``), and there in every binding form too: into the notebook's globals, and into the
student's own function object itself, so that whatever holds on to that function (a jitted
``forward``, a default argument, a partial, a closure) calls the stand-in (:func:`_standing_in`).
The grader then computes the stand-in's values itself.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpy as np
import optax  # type: ignore[import-untyped]  # optax ships no type information (no py.typed)
from nbjudge.probe import attempt, student

from . import usable

__all__ = ["dataloader", "model", "objective", "training", "examples"]


def _compiled(fn: Callable, **options) -> Callable:
    """``fn`` compiled as one program (far fewer compilations than op by op), or ``fn`` itself from
    the first call on which it cannot be traced (Python control flow on values, ...)."""
    try:
        jitted = jax.jit(fn, **options)
    except Exception:  # noqa: BLE001 - e.g. a signature without the static argument's name
        return fn
    eager = False

    def call(*args, **kwargs):
        nonlocal eager
        if not eager:
            try:
                return jitted(*args, **kwargs)
            except Exception:  # noqa: BLE001 - not traceable: run it as written
                eager = True
        return fn(*args, **kwargs)

    return call


def _layers(layers: list) -> list[tuple]:
    """Parameters as JAX arrays; ``device_put`` copies, where ``jnp.asarray`` would compile a
    small program per shape."""
    return [(jax.device_put(w), jax.device_put(b)) for w, b in layers]


def standin_mlp(params, inputs, *_, **__):
    """A linear model, not an MLP: what the checks run on where the student's ``mlp`` cannot serve
    (whatever else it is called with, a nonlinearity say, changes nothing)."""
    h = inputs
    for w, b in params:
        h = h @ w + b
    return h[..., 0]


def standin_loss(params, inputs, targets, *, l2_reg):
    """Squared error of the linear model's probabilities plus ``l2_reg * ||params||**2``: what the
    update check runs on where the student's ``loss_fn`` cannot serve."""
    p = jax.nn.sigmoid(standin_mlp(params, inputs))
    return jnp.mean((p - targets) ** 2) + l2_reg * sum(jnp.sum(w**2) + jnp.sum(b**2) for w, b in params)


@contextmanager
def _swapped(namespace: dict, names: dict):
    """``names`` put into the notebook's globals for the ``with`` block, restored afterwards."""
    old = {k: namespace[k] for k in names if k in namespace}
    namespace.update(names)
    try:
        yield
    finally:
        for k in names:
            namespace.pop(k, None)
        namespace.update(old)


_STANDIN_ARG = "_nbjudge_standin_"
_UNWRAP_LIMIT = 16  # wrappers followed from a notebook name to the function it wraps


def _own_functions(value, namespace: dict) -> list[types.FunctionType]:
    """The notebook's own Python functions behind ``value``: itself, or what a jit, a decorator made
    with ``functools.wraps`` or a ``functools.partial`` wraps (a library's function is never one)."""
    found: list[types.FunctionType] = []
    for _ in range(_UNWRAP_LIMIT):
        if isinstance(value, types.FunctionType) and value.__globals__ is namespace and value not in found:
            found.append(value)
        if isinstance(value, functools.partial):
            value = value.func
        else:
            try:
                value = getattr(value, "__wrapped__", None)
            except Exception:  # noqa: BLE001 - a student's object may raise on any attribute
                return found
        if value is None:
            break
    return found


@functools.cache
def _calling_code(free: int) -> types.CodeType:
    """Code that calls the function in its keyword default ``_STANDIN_ARG`` with its arguments, and
    has ``free`` free variables (never read), so that it fits a function made in a closure."""
    names = [f"_free_{i}" for i in range(free)]
    keep = f"        def _keep():\n            return ({', '.join(names)},)\n" if names else ""
    source = ("def _outer():\n" + "".join(f"    {n} = None\n" for n in names)
              + f"    def _call(*args, {_STANDIN_ARG}, **kwargs):\n" + keep
              + f"        return {_STANDIN_ARG}(*args, **kwargs)\n    return _call\n")
    scope: dict = {}
    exec(compile(source, "<stand-in>", "exec"), scope)  # noqa: S102 - the probe's own fixed code
    return scope["_outer"]().__code__


@contextmanager
def _standing_in(namespace: dict, standins: dict[str, Callable]) -> Iterator[None]:
    """Each stand-in in place of the notebook's function of its name, in every binding form: in the
    notebook's globals (for code that looks the name up when called), and as the behaviour of the
    student's own function object behind that name (for whatever bound it when its cell ran: a
    jitted ``forward``, a default argument, a partial, a closure). JAX's caches are cleared on the
    way in and out, so that no program traced from the student's code, or from the stand-in, is
    reused where the other should run."""
    if not standins:
        yield
        return
    saved = []
    for name, standin in standins.items():
        for fn in _own_functions(namespace.get(name), namespace):
            saved.append((fn, fn.__code__, fn.__defaults__, fn.__kwdefaults__))
            fn.__code__ = _calling_code(len(fn.__code__.co_freevars))
            fn.__defaults__, fn.__kwdefaults__ = None, {_STANDIN_ARG: standin}
    jax.clear_caches()
    try:
        with _swapped(namespace, standins):
            yield
    finally:
        for fn, code, defaults, kwdefaults in reversed(saved):
            fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults
        jax.clear_caches()


def _numbers(value):
    """A returned value as numpy (a pytree of arrays stays a list of lists)."""
    if isinstance(value, list | tuple):
        return [_numbers(v) for v in value]
    return np.asarray(value)


def _logits_of(namespace: dict, params, inputs) -> np.ndarray:
    """The notebook's ``mlp`` logits, as numpy."""
    return np.asarray(_compiled(student(namespace, "mlp"), static_argnames="nonlinearity")(params, inputs))


def dataloader(inputs: dict, namespace: dict) -> dict:
    """Task 1: three epochs for one key, the same again, one epoch for another key (positions and
    labels); two epochs with a batch size that divides the set."""
    data = {"x_train": inputs["images"], "y_train": inputs["labels"]}
    n = len(inputs["images"])

    def batches(key_seed: int, epochs: int, batch_size: int = int(inputs["batch_size"])) -> list:
        per_epoch = -(-n // batch_size)
        loader = student(namespace, "train_dataloader")(data, batch_size=batch_size, key=jax.random.key(key_seed))
        seen = []
        for _ in range(epochs * per_epoch):
            x, y = next(loader)
            x = np.asarray(x)
            seen.append([x.reshape(len(x), -1)[:, :8], np.asarray(y), np.asarray(x.shape)])
        return seen

    return {"a": attempt(batches, int(inputs["key_a"]), 3), "a_again": attempt(batches, int(inputs["key_a"]), 3),
            "b": attempt(batches, int(inputs["key_b"]), 1),
            "even": attempt(batches, int(inputs["key_b"]), 2, int(inputs["batch_size_even"]))}


def model(inputs: dict, namespace: dict) -> dict:
    """Task 2: logits with ReLU and with tanh, and of a network of another depth; three
    initialisations of the lesson's sizes (one key twice), one of other sizes and depth."""
    params, x = _layers(inputs["params"]), jax.device_put(inputs["x"])
    forward = _compiled(student(namespace, "mlp"), static_argnames="nonlinearity")
    out = {"relu": attempt(forward, params, x), "tanh": attempt(forward, params, x, nonlinearity=jnp.tanh),
           "relu_other_depth": attempt(forward, _layers(inputs["params_other_depth"]), x)}
    sizes, stddev = tuple(int(s) for s in inputs["init_sizes"]), float(inputs["stddev"])
    init = _compiled(student(namespace, "init_mlp_params"), static_argnums=0)
    for name, key_seed in (("init_a", inputs["key_a"]), ("init_again", inputs["key_a"]), ("init_b", inputs["key_b"])):
        out[name] = attempt(init, sizes, stddev=stddev, key=jax.random.key(int(key_seed)))
    other = tuple(int(s) for s in inputs["init_other_sizes"])
    out["init_other"] = attempt(init, other, stddev=stddev, key=jax.random.key(int(inputs["key_c"])))
    return out


def objective(inputs: dict, namespace: dict) -> dict:
    """Task 3: the objective without and with the penalty, and for logits of +-10,000; with the
    student's own ``mlp`` logits on the same parameters (or, where they cannot serve, on the stand-in)."""
    params, x, y = _layers(inputs["params"]), jax.device_put(inputs["x"]), jax.device_put(inputs["y"])
    l2 = float(inputs["l2"])
    cases = {"plain": params, "huge_up": _layers(inputs["huge_up"]), "huge_down": _layers(inputs["huge_down"])}
    logits: dict = {}
    for name, p in cases.items():  # up to the first that cannot serve
        logits[name] = attempt(_logits_of, namespace, p, x)
        if not usable.logits(logits[name], len(inputs["x"]), varied=name == "plain"):
            break
    own = len(logits) == len(cases) and usable.logits(logits["huge_down"], len(inputs["x"]), varied=False)

    def losses() -> dict:
        loss = _compiled(student(namespace, "loss_fn"))  # traced while a stand-in is in place
        return {
            "plain": attempt(loss, params, x, y, l2_reg=0.0),
            "penalised": attempt(loss, params, x, y, l2_reg=l2),
            "huge_up": attempt(loss, cases["huge_up"], x, y, l2_reg=0.0),
            "huge_down": attempt(loss, cases["huge_down"], x, y, l2_reg=0.0),
        }

    with _standing_in(namespace, {} if own else {"mlp": standin_mlp}):
        values = losses()
    return {**values, "standin": int(not own), "logits": logits if own else {}}


def _objective(namespace: dict) -> Callable:
    """Value and gradient of the notebook's ``loss_fn`` (the student's, or the stand-in swapped in)."""
    return _compiled(jax.value_and_grad(student(namespace, "loss_fn")))


def _updates(namespace: dict, optimizer, params, batches: list, weight_decay: float) -> dict:
    """The student's update step from ``params``, once per batch: the losses and the parameters after each."""
    update = student(namespace, "make_update_step")(optimizer, weight_decay=weight_decay)
    state, losses, visited = optimizer.init(params), [], []
    for x, y in batches:
        params, state, loss = update(params, state, x, y)
        losses.append(np.asarray(loss))
        visited.append(_numbers(params))
    return {"losses": losses, "params": visited}


def training(inputs: dict, namespace: dict) -> dict:
    """Task 4: three updates with momentum, beside the value and gradient of the student's own
    objective at each starting point; two short training runs (a threshold below 0.5, one above),
    beside the student's own update run over the same batches with plain SGD and the model's
    logits on the test set at each record."""
    params = _layers(inputs["params"])
    given = [(jax.device_put(x), jax.device_put(y)) for x, y in inputs["batches"]]
    batches = [(x.reshape(len(x), -1), y) for x, y in given]
    learning_rate, weight_decay = float(inputs["learning_rate"]), float(inputs["weight_decay"])
    x0, y0 = batches[0]
    swaps = {} if usable.logits(attempt(_logits_of, namespace, params, x0), len(y0), varied=True) else {
        "mlp": standin_mlp}
    with _standing_in(namespace, swaps):
        first = attempt(lambda: _numbers(_objective(namespace)(params, x0, y0, l2_reg=weight_decay)))
    own_loss = isinstance(first, list) and usable.gradients(params, first[1], learning_rate)
    swaps = swaps if own_loss else {**swaps, "loss_fn": standin_loss}
    out: dict = {"standin": {"mlp": int("mlp" in swaps), "loss": int(not own_loss)}}
    with _standing_in(namespace, swaps):
        momentum = optax.sgd(learning_rate, momentum=float(inputs["momentum"]))
        out["update"] = attempt(_updates, namespace, momentum, params, batches[:3], weight_decay)
        if own_loss and isinstance(out["update"], dict):
            objective = _objective(namespace)
            starts = [params, *(_layers(p) for p in out["update"]["params"][:2])]
            out["objective"] = [attempt(lambda p=p, b=b: _numbers(objective(p, *b, l2_reg=weight_decay)))
                                for p, b in zip(starts, batches, strict=False)]
        num_steps = int(inputs["num_steps"])
        out["own"] = attempt(_updates, namespace, optax.sgd(learning_rate), params, batches[:num_steps], weight_decay)

        def records(threshold: float, y_test: np.ndarray) -> list:
            run = student(namespace, "train")(
                params, iter(given), x_test=jax.device_put(inputs["x_test"]),
                y_test=jax.device_put(y_test), num_steps=num_steps, learning_rate=learning_rate,
                weight_decay=weight_decay, eval_every=int(inputs["eval_every"]), threshold=threshold)
            return [{"step": r["step"], "losses": r["losses"], "test_accuracy": r["test_accuracy"],
                     "params": _numbers(r["params"])} for r in run]

        out["train"] = [attempt(records, float(t), y) for t, y in zip(inputs["thresholds"], inputs["y_tests"],
                                                                      strict=True)]
        if "mlp" not in swaps:
            x_test = jax.device_put(inputs["x_test"].reshape(len(inputs["x_test"]), -1))
            out["test_logits"] = [[attempt(_logits_of, namespace, _layers(r["params"]), x_test) for r in run]
                                  if isinstance(run, list) else [] for run in out["train"]]
    return out


def examples(inputs: dict, namespace: dict) -> dict:
    """Task 5: the four rows of indices."""
    def rows() -> dict:
        found = student(namespace, "retrieve_interesting_samples")(
            inputs["probabilities"], inputs["targets"], num_samples=int(inputs["num_samples"]))
        return dict(found)

    return {"rows": attempt(rows)}
