"""The verdicts of the binary-MNIST hidden checks, made in the grader process.

Each function gets the inputs drawn by :mod:`.draws`, the values the student's kernel sent
(``got``) and the reference run's (``ref``), and raises :class:`CheckFailed` with a message that
names the property or quantity that failed, never a reference value.
"""

from __future__ import annotations

import numpy as np

from ..grading.compare import array, close, not_raised
from ..grading.lessons import CheckFailed

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


def dataloader(inputs: dict, got: dict, ref: dict) -> None:
    """Task 1, by properties: batch sizes, every example once per epoch, a new order each epoch,
    the same batches for the same key, other batches for another key."""
    images, labels, bs = inputs["images"], inputs["labels"], inputs["batch_size"]
    n = len(images)
    per_epoch = -(-n // bs)
    sizes = [bs] * (per_epoch - 1) + [n - bs * (per_epoch - 1)]
    runs = {name: _batch_positions(got.get(name), images, labels) for name in ("a", "a_again", "b")}
    first = runs["a"]
    if [len(b) for b in first] != sizes * 3:
        got_sizes = [len(b) for b in first[:per_epoch + 1]]
        raise CheckFailed(f"with {n} examples and batch_size={bs}, each epoch should be {per_epoch - 1} full "
                          f"batches and one of {sizes[-1]}; got batch sizes {got_sizes}...")
    epochs = [np.concatenate(first[e * per_epoch:(e + 1) * per_epoch]) for e in range(3)]
    if not all(np.array_equal(np.sort(e), np.arange(n)) for e in epochs):
        raise CheckFailed("an epoch does not visit every training example exactly once")
    if np.array_equal(epochs[0], epochs[1]) or np.array_equal(epochs[1], epochs[2]):
        raise CheckFailed("an epoch repeats the order of the epoch before it")
    if np.array_equal(epochs[0], np.arange(n)):
        raise CheckFailed("the first epoch is not shuffled")
    if not all(np.array_equal(a, b) for a, b in zip(first, runs["a_again"], strict=False)):
        raise CheckFailed("the same key gave different batches")
    if np.array_equal(np.concatenate(runs["b"]), epochs[0]):
        raise CheckFailed("a different key gave the same batches")


def _check_initialiser(inputs: dict, got: dict) -> None:
    sizes, stddev = inputs["init_sizes"], inputs["stddev"]
    init = _layers(got.get("init_a"), "init_mlp_params")
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
    _check_initialiser(inputs, got)


def objective(inputs: dict, got: dict, ref: dict) -> None:
    """Task 3: the loss without and with the penalty, and stable for huge logits."""
    close(got.get("plain"), ref.get("plain"), "the loss with l2_reg=0")
    close(got.get("penalised"), ref.get("penalised"), "the loss with l2_reg > 0 (the penalty term)")
    for name in ("huge_up", "huge_down"):
        value = array(got.get(name), "loss_fn")
        if not np.all(np.isfinite(value)):
            raise CheckFailed("the loss is not finite for logits of size 10,000: compute it from the logits "
                              "(jax.nn.log_sigmoid or jnp.logaddexp)")
        close(value, ref.get(name), "the loss for logits of size 10,000", rtol=1e-3)


def training(inputs: dict, got: dict, ref: dict) -> None:
    """Task 4: three updates (losses, parameters with momentum), then a short training run."""
    update = not_raised(got.get("update"), "make_update_step")
    want = not_raised(ref.get("update"), "reference")
    if not isinstance(update, dict) or set(update) != {"losses", "params"}:
        raise CheckFailed("make_update_step's update did not return (params, opt_state, loss)")
    close(update["losses"], want["losses"], "the losses of three updates (the loss before each step)")
    _close_layers(update["params"], want["params"], "the parameters after three updates with momentum "
                  "(is the optimizer state passed on?)", rtol=1e-3, atol=1e-5)
    records = not_raised(got.get("train"), "train")
    want = not_raised(ref.get("train"), "reference")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise CheckFailed("train did not yield progress records")
    steps = [int(np.asarray(r.get("step", -1))) for r in records]
    expected_steps = [int(np.asarray(r["step"])) for r in want]
    if steps != expected_steps:
        raise CheckFailed(f"with num_steps={inputs['num_steps']} and eval_every={inputs['eval_every']}, train "
                          f"yielded records at steps {steps}; expected one every eval_every steps and one after "
                          "the last step")
    for i, (r, w) in enumerate(zip(records, want, strict=True), 1):
        close(r.get("losses"), w["losses"], f"the losses in record {i}")
        close(r.get("test_accuracy"), w["test_accuracy"], f"the test accuracy in record {i}",
              rtol=0, atol=1.5 / len(inputs["y_test"]))
    _close_layers(records[-1].get("params"), want[-1]["params"], "the parameters after training",
                  rtol=1e-3, atol=1e-5)


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
