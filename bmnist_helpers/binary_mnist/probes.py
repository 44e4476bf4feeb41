"""The kernel's part of the binary-MNIST hidden checks: call the student's functions on the drawn
inputs and return raw values. Runs inside the student's sandboxed kernel (see
:mod:`bmnist_helpers.grading.probe`); holds no answer to any task.

Tasks 3 and 4 need *some* model and objective. Their probes swap in stand-ins that are not
answers, a linear model for ``mlp`` and a squared-error objective for ``loss_fn``; the reference
run uses the same stand-ins, so one wrong task never costs the hidden points of another.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..grading.probe import attempt, student

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


def standin_mlp(params, inputs, *, nonlinearity=None):
    """A linear model, not an MLP: what the objective and training checks run on."""
    h = inputs
    for w, b in params:
        h = h @ w + b
    return h[..., 0]


def standin_loss(params, inputs, targets, *, l2_reg):
    """Squared error of the linear model's probabilities plus ``l2_reg * ||params||**2``."""
    p = jax.nn.sigmoid(standin_mlp(params, inputs))
    return jnp.mean((p - targets) ** 2) + l2_reg * sum(jnp.sum(w**2) + jnp.sum(b**2) for w, b in params)


def _swapped(namespace: dict, names: dict, run: Callable):
    """``run()`` with ``names`` put into the notebook's globals, restored afterwards."""
    old = {k: namespace[k] for k in names if k in namespace}
    namespace.update(names)
    try:
        return run()
    finally:
        for k in names:
            namespace.pop(k, None)
        namespace.update(old)


def dataloader(inputs: dict, namespace: dict) -> dict:
    """Task 1: three epochs for one key, the same again, one epoch for another key (positions and labels)."""
    data = {"x_train": inputs["images"], "y_train": inputs["labels"]}
    n, batch_size = len(inputs["images"]), int(inputs["batch_size"])
    per_epoch = -(-n // batch_size)

    def batches(key_seed: int, epochs: int) -> list:
        loader = student(namespace, "train_dataloader")(data, batch_size=batch_size, key=jax.random.key(key_seed))
        seen = []
        for _ in range(epochs * per_epoch):
            x, y = next(loader)
            x = np.asarray(x)
            seen.append([x.reshape(len(x), -1)[:, :8], np.asarray(y), np.asarray(x.shape)])
        return seen

    return {"a": attempt(batches, int(inputs["key_a"]), 3), "a_again": attempt(batches, int(inputs["key_a"]), 3),
            "b": attempt(batches, int(inputs["key_b"]), 1)}


def model(inputs: dict, namespace: dict) -> dict:
    """Task 2: logits with ReLU and with tanh; three initialisations (one key twice)."""
    params, x = _layers(inputs["params"]), jax.device_put(inputs["x"])
    forward = _compiled(student(namespace, "mlp"), static_argnames="nonlinearity")
    out = {"relu": attempt(forward, params, x), "tanh": attempt(forward, params, x, nonlinearity=jnp.tanh)}
    sizes, stddev = tuple(int(s) for s in inputs["init_sizes"]), float(inputs["stddev"])
    init = _compiled(student(namespace, "init_mlp_params"), static_argnums=0)
    for name, key_seed in (("init_a", inputs["key_a"]), ("init_again", inputs["key_a"]), ("init_b", inputs["key_b"])):
        out[name] = attempt(init, sizes, stddev=stddev, key=jax.random.key(int(key_seed)))
    return out


def objective(inputs: dict, namespace: dict) -> dict:
    """Task 3: the objective without and with the penalty, and for logits of +-10,000 (on the stand-in model)."""
    params, x, y = _layers(inputs["params"]), jax.device_put(inputs["x"]), jax.device_put(inputs["y"])
    l2 = float(inputs["l2"])

    def losses() -> dict:
        loss = _compiled(student(namespace, "loss_fn"))  # traced while the stand-in is in place
        return {
            "plain": attempt(loss, params, x, y, l2_reg=0.0),
            "penalised": attempt(loss, params, x, y, l2_reg=l2),
            "huge_up": attempt(loss, _layers(inputs["huge_up"]), x, y, l2_reg=0.0),
            "huge_down": attempt(loss, _layers(inputs["huge_down"]), x, y, l2_reg=0.0),
        }

    return _swapped(namespace, {"mlp": standin_mlp}, losses)


def training(inputs: dict, namespace: dict) -> dict:
    """Task 4: three updates with momentum, and a short training run (on the stand-ins)."""
    params = _layers(inputs["params"])
    batches = [(jax.device_put(x), jax.device_put(y)) for x, y in inputs["batches"]]
    learning_rate, weight_decay = float(inputs["learning_rate"]), float(inputs["weight_decay"])

    def updates() -> dict:
        optimizer = optax.sgd(learning_rate, momentum=float(inputs["momentum"]))
        update = student(namespace, "make_update_step")(optimizer, weight_decay=weight_decay)
        p, state, losses = params, optimizer.init(params), []
        for x, y in batches[:3]:
            p, state, loss = update(p, state, x.reshape(len(x), -1), y)
            losses.append(loss)
        return {"losses": losses, "params": p}

    def records() -> list:
        run = student(namespace, "train")(
            params, iter(batches), x_test=jax.device_put(inputs["x_test"]), y_test=jax.device_put(inputs["y_test"]),
            num_steps=int(inputs["num_steps"]), learning_rate=learning_rate, weight_decay=weight_decay,
            eval_every=int(inputs["eval_every"]), threshold=0.5)
        return [{"step": r["step"], "losses": r["losses"], "test_accuracy": r["test_accuracy"], "params": r["params"]}
                for r in run]

    standins = {"mlp": standin_mlp, "loss_fn": standin_loss}
    return {"update": _swapped(namespace, standins, lambda: attempt(updates)),
            "train": _swapped(namespace, standins, lambda: attempt(records))}


def examples(inputs: dict, namespace: dict) -> dict:
    """Task 5: the four rows of indices."""
    def rows() -> dict:
        found = student(namespace, "retrieve_interesting_samples")(
            inputs["probabilities"], inputs["targets"], num_samples=int(inputs["num_samples"]))
        return dict(found)

    return {"rows": attempt(rows)}
