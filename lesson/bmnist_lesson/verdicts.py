"""The verdicts of the binary-MNIST hidden checks, made in the grader process.

Each function gets the inputs drawn by :mod:`.draws`, the values the student's kernel sent
(``got``) and the reference run's (``ref``), and raises :class:`CheckFailed` with a message that
names the property or quantity that failed, never a reference value. Tasks 3 and 4 are judged
against the student's own earlier functions (see :mod:`.probes`), each anchored on values computed
here: the cross-entropy and the penalty, the momentum update, the test accuracy from logits, and
the stand-ins' values where the student's earlier functions cannot serve (:mod:`.usable`).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from nbjudge import CheckFailed
from nbjudge.compare import array, close, not_raised

from .kernel import usable

__all__ = ["dataloader", "model", "objective", "training", "examples"]


def _layers(value, what: str) -> list:
    """``value`` as a list of ``[weights, bias]`` pairs of arrays."""
    value = not_raised(value, what)
    if isinstance(value, dict):
        raise CheckFailed(f"{what} returned a dict; expected a list of (weights, bias) pairs")
    if not isinstance(value, list):
        raise CheckFailed(f"{what} returned a single array; expected a list of (weights, bias) pairs")
    for layer in value:
        if not (isinstance(layer, list) and len(layer) == 2 and all(isinstance(a, np.ndarray) for a in layer)):
            raise CheckFailed(f"{what}: every layer must be a (weights, bias) pair of arrays")
    return value


def _close_layers(got, ref, what: str, *, rtol: float, atol: float) -> None:
    got, ref = _layers(got, what), _layers(ref, what)
    if len(got) != len(ref):
        raise CheckFailed(f"{what} has {len(got)} layers; expected {len(ref)}")
    for i, (g, r) in enumerate(zip(got, ref, strict=True), 1):
        for name, a, b in (("weights", g[0], r[0]), ("bias", g[1], r[1])):
            close(a, b, f"{what}, layer {i} {name}", rtol=rtol, atol=atol)


def _batch_positions(run, images: np.ndarray, labels: np.ndarray) -> list[np.ndarray]:
    """The training-set positions of every batch of one run, after checking images and labels."""
    n = len(images)
    run = not_raised(run, "train_dataloader")
    if not isinstance(run, list):
        raise CheckFailed("train_dataloader did not yield (images, labels) pairs")
    positions = []
    for batch in run:
        if not (isinstance(batch, list) and len(batch) == 3 and all(isinstance(a, np.ndarray) for a in batch)):
            raise CheckFailed("train_dataloader did not yield (images, labels) pairs of arrays")
        pixels, y, shape = batch
        shape = [int(s) for s in shape.reshape(-1)]
        if len(y) != len(pixels) or int(np.prod(shape[1:], dtype=np.int64)) != 28 * 28:
            raise CheckFailed(f"a batch has image shape {tuple(shape)} and {len(y)} labels; expected images "
                              "(batch, 28, 28) and one label per image")
        index = pixels[:, 0]
        if not np.all((index >= 0) & (index < n) & (index == np.round(index))):
            raise CheckFailed("the batches hold images that are not training images (were they changed?)")
        index = index.astype(int)
        if not np.array_equal(pixels[:, 1:8], images.reshape(n, -1)[index, 1:8]):
            raise CheckFailed("the batches hold images that are not training images (were they changed?)")
        if not np.array_equal(np.asarray(y, np.float64).reshape(-1), labels[index]):
            raise CheckFailed("the labels do not belong to their images")
        positions.append(index)
    return positions


def _epochs(batches: list[np.ndarray], n: int, bs: int, count: int) -> list[np.ndarray]:
    """The positions of each of ``count`` epochs, after checking the batch sizes and that each epoch
    visits every example once."""
    per_epoch = -(-n // bs)
    sizes = [bs] * (per_epoch - 1) + [n - bs * (per_epoch - 1)]
    if [len(b) for b in batches] != sizes * count:
        got_sizes = [len(b) for b in batches[:per_epoch + 1]]
        last = f"one of {sizes[-1]}" if sizes[-1] != bs else f"one more of {bs}"
        raise CheckFailed(f"with {n} examples and batch_size={bs}, each epoch should be {per_epoch - 1} full "
                          f"batches and {last}; got batch sizes {got_sizes}...")
    epochs = [np.concatenate(batches[e * per_epoch:(e + 1) * per_epoch]) for e in range(count)]
    if not all(np.array_equal(np.sort(e), np.arange(n)) for e in epochs):
        raise CheckFailed("an epoch does not visit every training example exactly once")
    return epochs


_KEY_DEPTH = 3  # splits followed from the loader's key


@functools.cache
def _split_key_orders(key_seed: int, n: int) -> dict[tuple[int, ...], np.ndarray]:
    """The order ``jax.random.permutation(key, n)`` gives for the loader's key ``()`` and for every
    key split off it (pairwise) up to :data:`_KEY_DEPTH` times, by path (``(1, 0)``: the first half of
    the second half of the key's split). Computed here, in the grader."""
    import jax

    with jax.default_device(jax.devices("cpu")[0]):
        level: dict[tuple[int, ...], jax.Array] = {(): jax.random.key(key_seed)}
        orders: dict[tuple[int, ...], np.ndarray] = {}
        for _ in range(_KEY_DEPTH + 1):
            orders.update({path: np.asarray(jax.random.permutation(key, n)) for path, key in level.items()})
            level = {(*path, i): half for path, key in level.items() for i, half in enumerate(jax.random.split(key))}
        return orders


def _check_key_use(epochs: list[np.ndarray], key_seed: int) -> None:
    """The task's key rule: no key both shuffles and is split. The loader's own key can only be
    split (the first epoch shuffled with it means that later epochs' keys came from it too), and no
    epoch's key is split to make a later epoch's."""
    orders = _split_key_orders(key_seed, len(epochs[0]))
    used = [next((path for path, order in orders.items() if np.array_equal(order, epoch)), None) for epoch in epochs]
    spent = used[0] == () or any(a is not None and b is not None and b[:len(a)] == a
                                 for i, a in enumerate(used) for b in used[i + 1:])
    if spent:
        raise CheckFailed("a key both shuffles and is split: split the key at the start of every epoch, "
                          "and shuffle with one half only, keeping the other for the next epoch")


def dataloader(inputs: dict, got: dict, ref: dict) -> None:
    """Task 1, by properties: batch sizes (one that divides the set, one that does not), every
    example once per epoch, a new order each epoch, the same batches for the same key, other
    batches for another key, and no key that both shuffles and is split."""
    images, labels, bs = inputs["images"], inputs["labels"], inputs["batch_size"]
    n = len(images)
    runs = {name: _batch_positions(got.get(name), images, labels) for name in ("a", "a_again", "b", "even")}
    first = runs["a"]
    epochs = _epochs(first, n, bs, 3)
    if np.array_equal(epochs[0], epochs[1]) or np.array_equal(epochs[1], epochs[2]):
        raise CheckFailed("an epoch repeats the order of the epoch before it")
    if np.array_equal(epochs[0], np.arange(n)):
        raise CheckFailed("the first epoch is not shuffled")
    if not all(np.array_equal(a, b) for a, b in zip(first, runs["a_again"], strict=False)):
        raise CheckFailed("the same key gave different batches")
    if np.array_equal(np.concatenate(runs["b"]), epochs[0]):
        raise CheckFailed("a different key gave the same batches")
    _check_key_use(epochs, int(inputs["key_a"]))
    even = _epochs(runs["even"], n, int(inputs["batch_size_even"]), 2)
    if np.array_equal(even[0], even[1]):
        raise CheckFailed("an epoch repeats the order of the epoch before it")


def _initial_arrays(value, sizes: list[int], stddev: float) -> list[np.ndarray]:
    """The arrays of one initialisation, flat, after checking their shapes, values and spread."""
    init = _layers(value, "init_mlp_params")
    shapes = [(tuple(w.shape), tuple(b.shape)) for w, b in init]
    want = [((a, b), (b,)) for a, b in zip(sizes[:-1], sizes[1:], strict=False)]
    if shapes != want:
        raise CheckFailed(f"init_mlp_params({tuple(sizes)}) gives shapes {shapes}; expected {want}")
    arrays = [a.astype(np.float64).reshape(-1) for layer in init for a in layer]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise CheckFailed("init_mlp_params gives values that are not finite")
    for a in arrays:
        if a.size >= 50:
            spread = float(np.std(a)) / stddev
            if abs(spread - 1) > 5 / np.sqrt(2 * a.size):
                raise CheckFailed(f"the spread of the initial values is {spread:.2f} times stddev; "
                                  "expected stddev itself")
            if abs(float(np.mean(a))) > 5 * stddev / np.sqrt(a.size):
                raise CheckFailed("the initial values do not have mean zero")
    return arrays


def _check_initialiser(inputs: dict, got: dict) -> None:
    sizes, stddev = inputs["init_sizes"], inputs["stddev"]
    init = _layers(got.get("init_a"), "init_mlp_params")
    arrays = _initial_arrays(init, sizes, stddev)
    _initial_arrays(got.get("init_other"), inputs["init_other_sizes"], stddev)
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            k = min(a.size, b.size, 16)
            if k >= 4 and np.allclose(a[:k], b[:k], rtol=1e-5, atol=0):
                raise CheckFailed("two parameter arrays start with the same numbers: a key was used twice")
    again = _layers(got.get("init_again"), "init_mlp_params")
    same = len(again) == len(init) and all(np.array_equal(x, y) for la, lb in zip(init, again, strict=False)
                                           for x, y in zip(la, lb, strict=True))
    if not same:
        raise CheckFailed("init_mlp_params gives other values for the same key")
    other = _layers(got.get("init_b"), "init_mlp_params")
    if len(other) == len(init) and np.array_equal(other[0][0], init[0][0]):
        raise CheckFailed("init_mlp_params gives the same values for a different key")


def model(inputs: dict, got: dict, ref: dict) -> None:
    """Task 2: the logits against the reference; the initialiser by shapes, spread, mean and keys."""
    close(got.get("relu"), array(ref.get("relu"), "reference"), "mlp's logits")
    close(got.get("tanh"), array(ref.get("tanh"), "reference"), "mlp's logits with nonlinearity=jnp.tanh")
    depth = len(inputs["params_other_depth"])
    close(got.get("relu_other_depth"), array(ref.get("relu_other_depth"), "reference"),
          f"mlp's logits for a network of {depth} layers (params may hold any number of layers)")
    _check_initialiser(inputs, got)


def _float_layers(layers) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]


def _standin_logits(params, x: np.ndarray) -> np.ndarray:
    """The stand-in model of :func:`.probes.standin_mlp` (linear layers), in float64."""
    h = np.asarray(x, np.float64)
    for w, b in _float_layers(params):
        h = h @ w + b
    return h[..., 0]


def _standin_objective(params, x: np.ndarray, y: np.ndarray, l2_reg: float) -> tuple[float, list]:
    """Value and gradient of :func:`.probes.standin_loss`, in float64."""
    layers = _float_layers(params)
    inputs = [np.asarray(x, np.float64)]
    for w, b in layers:
        inputs.append(inputs[-1] @ w + b)
    s = 0.5 * (1 + np.tanh(inputs[-1][..., 0] / 2))  # the sigmoid, without overflow
    y = np.asarray(y, np.float64)
    value = float(np.mean((s - y) ** 2)) + l2_reg * _squared_norm(layers)
    upstream = (2 * (s - y) * s * (1 - s) / len(y))[:, None]
    grads = []
    for (w, b), h in zip(reversed(layers), reversed(inputs[:-1]), strict=True):
        grads.append((h.T @ upstream + 2 * l2_reg * w, upstream.sum(0) + 2 * l2_reg * b))
        upstream = upstream @ w.T
    return value, grads[::-1]


def _squared_norm(params) -> float:
    return float(sum(np.sum(np.square(a)) for layer in _float_layers(params) for a in layer))


def _cross_entropy(logits, y: np.ndarray) -> float:
    """Mean binary cross-entropy of logits, computed stably from the logits."""
    z = np.asarray(logits, np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - np.asarray(y, np.float64) * z))


def objective(inputs: dict, got: dict, ref: dict) -> None:
    """Task 3: the loss without and with the penalty, and stable for huge logits, each against the
    cross-entropy of the logits of the student's own ``mlp`` (the stand-in's, computed here, where
    that cannot serve) plus ``0.5 * l2_reg * ||params||**2``, both computed here."""
    x, y = inputs["x"], inputs["y"]
    cases = {"plain": inputs["params"], "huge_up": inputs["huge_up"], "huge_down": inputs["huge_down"]}
    if int(np.asarray(got.get("standin", 1))):
        logits = {name: _standin_logits(p, x) for name, p in cases.items()}
    else:
        sent = got.get("logits")
        if not (isinstance(sent, dict) and all(usable.logits(sent.get(name), len(x), varied=name == "plain")
                                               for name in cases)):
            raise CheckFailed("the check could not read mlp's logits")
        logits = sent
    close(got.get("plain"), _cross_entropy(logits["plain"], y),
          "the loss with l2_reg=0 (the mean cross-entropy of mlp's logits)")
    penalty = 0.5 * inputs["l2"] * _squared_norm(inputs["params"])
    close(got.get("penalised"), _cross_entropy(logits["plain"], y) + penalty,
          "the loss with l2_reg > 0 (the penalty term)")
    for name in ("huge_up", "huge_down"):
        value = array(got.get(name), "loss_fn")
        if not np.all(np.isfinite(value)):
            raise CheckFailed("the loss is not finite for logits of size 10,000: compute it from the logits "
                              "(jax.nn.log_sigmoid or jnp.logaddexp)")
        close(value, _cross_entropy(logits[name], y), "the loss for logits of size 10,000", rtol=1e-3)


def _momentum_steps(inputs: dict, got: dict) -> None:
    """Three updates with momentum against the momentum update, computed here, of the gradients of
    the student's own objective (of the stand-in's, computed here, where that cannot serve)."""
    update = not_raised(got.get("update"), "make_update_step")
    if not (isinstance(update, dict) and isinstance(update.get("losses"), list) and len(update["losses"]) == 3
            and isinstance(update.get("params"), list) and len(update["params"]) == 3):
        raise CheckFailed("make_update_step's update did not return (params, opt_state, loss)")
    standin = int(np.asarray(got["standin"]["loss"]))
    learning_rate, momentum, weight_decay = inputs["learning_rate"], inputs["momentum"], inputs["weight_decay"]
    start = [inputs["params"], *(_layers(p, "make_update_step's update") for p in update["params"][:2])]
    expected, trace = _float_layers(inputs["params"]), None
    for k, (x, y) in enumerate(inputs["batches"][:3]):
        if standin:
            value, grads = _standin_objective(start[k], x.reshape(len(x), -1), y, weight_decay)
        else:
            found = not_raised(got["objective"][k], "loss_fn")
            value, grads = found[0], found[1]
            if k == 0 and not usable.gradients(inputs["params"], grads, learning_rate):
                raise CheckFailed("the check could not read the gradient of loss_fn")
            grads = _float_layers(grads)
        close(update["losses"][k], value, "the losses of three updates (the loss before each step, "
              "loss_fn with l2_reg=weight_decay)")
        trace = grads if trace is None else [tuple(g + momentum * t for g, t in zip(gl, tl, strict=True))
                                             for gl, tl in zip(grads, trace, strict=True)]
        expected = [tuple(p - learning_rate * t for p, t in zip(pl, tl, strict=True))
                    for pl, tl in zip(expected, trace, strict=True)]
        _close_layers(update["params"][k], [list(layer) for layer in expected],
                      f"the parameters after {k + 1} update{'s' * (k > 0)} with momentum (the optimizer's update of "
                      "the gradient of loss_fn; is the optimizer state passed on?)",
                      rtol=usable.UPDATE_RTOL, atol=usable.UPDATE_ATOL)


def _accuracy(logits, y: np.ndarray, threshold: float) -> float:
    """The test accuracy, at ``threshold``, of the probabilities of these logits."""
    z = np.asarray(logits, np.float64).reshape(-1)
    return float(np.mean((z > np.log(threshold / (1 - threshold))) == (np.asarray(y) == 1)))


def training(inputs: dict, got: dict, ref: dict) -> None:
    """Task 4: three updates with momentum; then two short training runs (a threshold below 0.5,
    one above) against the student's own update over the same batches, their test accuracy
    computed here from the model's logits."""
    _momentum_steps(inputs, got)
    runs, own = got.get("train"), not_raised(got.get("own"), "make_update_step")
    if not isinstance(runs, list) or len(runs) != len(inputs["thresholds"]):
        raise CheckFailed("train did not yield progress records")
    standin_model = int(np.asarray(got["standin"]["mlp"]))
    logits = None if standin_model else not_raised(got.get("test_logits"), "mlp")
    for k, (threshold, y_test) in enumerate(zip(inputs["thresholds"], inputs["y_tests"], strict=True)):
        _training_run(inputs, not_raised(runs[k], "train"), own, None if logits is None else logits[k],
                      threshold=threshold, y_test=y_test)


def _training_run(inputs: dict, records, own: Any, logits, *, threshold: float, y_test: np.ndarray) -> None:
    """One training run's records: steps, losses and parameters against the student's own update,
    test accuracy at ``threshold`` against the model's logits (``None``: the stand-in's, computed here)."""
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise CheckFailed("train did not yield progress records")
    num_steps, every = inputs["num_steps"], inputs["eval_every"]
    steps = [int(np.asarray(r.get("step", -1))) for r in records]
    expected_steps = sorted({*range(every, num_steps + 1, every), num_steps})
    if steps != expected_steps:
        raise CheckFailed(f"with num_steps={num_steps} and eval_every={every}, train yielded records at steps "
                          f"{steps}; expected one every eval_every steps and one after the last step")
    if logits is not None and (not isinstance(logits, list) or len(logits) != len(records)):
        raise CheckFailed("the check could not read mlp's logits")
    x_test = inputs["x_test"].reshape(len(inputs["x_test"]), -1)
    done = 0
    for i, (record, step) in enumerate(zip(records, steps, strict=True), 1):
        close(record.get("losses"), np.stack(own["losses"][done:step]).reshape(-1),
              f"the losses in record {i} (the losses of the update steps since the record before)")
        params = _layers(record.get("params"), f"the parameters in record {i}")
        _close_layers(params, own["params"][step - 1], f"the parameters in record {i} (after {step} steps "
                      "of make_update_step with optax.sgd(learning_rate))",
                      rtol=usable.UPDATE_RTOL, atol=usable.UPDATE_ATOL)
        z = _standin_logits(params, x_test) if logits is None else array(logits[i - 1], "mlp")
        close(record.get("test_accuracy"), _accuracy(z, y_test, threshold),
              f"the test accuracy in record {i} (on x_test, at the threshold train was given)",
              rtol=0, atol=1.5 / len(y_test))
        done = step


def examples(inputs: dict, got: dict, ref: dict) -> None:
    """Task 5: the four rows of test-set positions, in order."""
    rows = not_raised(got.get("rows"), "retrieve_interesting_samples")
    want = ref["rows"]
    if not isinstance(rows, dict):
        raise CheckFailed("retrieve_interesting_samples did not return a dict")
    k = inputs["num_samples"]
    for name in ("posmax", "posmin", "negmax", "negmin"):
        if name not in rows:
            raise CheckFailed(f"the result has no {name!r} entry")
        value = array(rows[name], name).reshape(-1)
        if value.size != k:
            raise CheckFailed(f"{name} holds {value.size} indices; num_samples={k} asks for {k}")
        if value.dtype.kind == "f" and not np.all(value == np.round(value)):
            raise CheckFailed(f"{name} holds numbers that are not indices")
        value, expected = value.astype(np.int64), want[name].astype(np.int64)
        if np.array_equal(value, expected):
            continue
        if np.array_equal(np.sort(value), np.sort(expected)):
            raise CheckFailed(f"{name} holds the right examples in the wrong order")
        wrong = int(np.sum(~np.isin(value, expected)))
        raise CheckFailed(f"{name}: {wrong} of {k} indices are not the expected test-set positions")
