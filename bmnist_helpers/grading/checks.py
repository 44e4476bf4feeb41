"""Hidden checks: values computed in the student's kernel, verdicts computed here.

For every task the grader draws fresh inputs from ``(seed, task)``, writes them into a probe
cell as literals, and the probe cell calls the student's functions on them. The kernel sends back
raw results only (arrays, lists of numbers), as one display output of the MIME type
:data:`VALUES_MIME`. Everything that turns these values into a verdict happens in the grader
process: the properties a correct function has (every example once per epoch, a new order each
epoch, ...) and the comparison with the values the solution's own functions produce on the same
inputs in the reference run. Patching ``print``, numpy or IPython inside the kernel can therefore
only change values, and a wrong function cannot produce the right ones.

Tasks 3 and 4 need *some* model and objective. Their probes swap in stand-ins that are not
answers: a linear model for ``mlp`` and a squared-error objective for ``loss_fn``; the
reference run uses the same stand-ins, so one wrong task never costs the points of another, and
no line of the solution ever enters a student's kernel.

Failure messages name the property or the quantity that failed and by how much; they never show
the reference values.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["VALUES_MIME", "TASK_FUNCTIONS", "Probe", "probes", "judge", "decode_values", "MalformedValues"]

VALUES_MIME = "application/vnd.bmnist.values+json"
TASK_FUNCTIONS = {
    1: ("train_dataloader",),
    2: ("mlp", "init_mlp_params"),
    3: ("loss_fn",),
    4: ("make_update_step", "train"),
    5: ("retrieve_interesting_samples",),
}
_RTOL, _ATOL = 1e-4, 1e-6
_MAX_DEPTH = 8
_MAX_ELEMENTS = 2_000_000
_LESSON_SIZES = (28 * 28, 256, 64, 1)  # LAYER_SIZES of the lesson's parameters cell


class MalformedValues(ValueError):
    """The kernel sent back something that is not a well-formed set of values."""


@dataclass(frozen=True)
class Probe:
    """One hidden check: the cell run in the kernel and the inputs it was given."""

    task: int
    source: str
    inputs: dict


# ---------------------------------------------------------------------------------------------
# Inputs, drawn here from (seed, task)


def _draw(seed: int, task: int) -> dict:
    rng = np.random.default_rng([int(seed), task])
    f32 = np.float32
    if task == 1:
        n = int(rng.integers(40, 90))
        batch_size = int(rng.integers(4, 12))
        while n % batch_size == 0:
            batch_size += 1
        images = np.zeros((n, 28, 28), f32)
        images[:, 0, 0] = np.arange(n)  # each image carries its own position
        images[:, 0, 1:8] = rng.normal(size=(n, 7))
        labels = (rng.random(n) < 0.5).astype(f32)
        return {"images": images, "labels": labels, "batch_size": batch_size,
                "key_a": int(rng.integers(2**31)), "key_b": int(rng.integers(2**31))}
    if task == 2:
        sizes = [28 * 28, int(rng.integers(4, 20)), int(rng.integers(2, 10)), 1]
        return {"params": _layers(rng, sizes), "x": rng.normal(size=(6, sizes[0])).astype(f32),
                # the lesson's own sizes: the notebook has compiled the initialiser for them, and the
                # kernel's compilation cache hands the check that program instead of compiling it again
                "init_sizes": list(_LESSON_SIZES), "stddev": float(rng.uniform(0.05, 0.5)),
                "key_a": int(rng.integers(2**31)), "key_b": int(rng.integers(2**31))}
    if task == 3:
        sizes = [28 * 28, int(rng.integers(4, 20)), 1]
        huge = [[np.zeros((sizes[0], sizes[1]), f32), np.zeros(sizes[1], f32)],
                [np.zeros((sizes[1], 1), f32), np.array([1e4], f32)]]
        return {"params": _layers(rng, sizes), "x": rng.normal(size=(9, sizes[0])).astype(f32),
                "y": rng.integers(0, 2, 9).astype(f32), "l2": float(rng.uniform(0.01, 1.0)),
                "huge_up": huge, "huge_down": [huge[0], [huge[1][0], -huge[1][1]]]}
    if task == 4:
        sizes = [28 * 28, int(rng.integers(4, 12)), 1]
        batches = [[rng.normal(size=(5, 28, 28)).astype(f32), rng.integers(0, 2, 5).astype(f32)] for _ in range(9)]
        return {"params": _layers(rng, sizes), "batches": batches,
                "x_test": rng.normal(size=(40, 28, 28)).astype(f32), "y_test": rng.integers(0, 2, 40).astype(f32),
                "learning_rate": float(rng.uniform(0.05, 0.2)), "weight_decay": float(rng.uniform(0.05, 0.5)),
                "momentum": float(rng.uniform(0.3, 0.8)), "num_steps": 7, "eval_every": 3}
    if task == 5:
        n = int(rng.integers(60, 200))
        targets = rng.integers(0, 2, n).astype(f32)
        targets[:2] = [0, 1]  # both classes, always
        probabilities = (rng.permutation(n) + rng.uniform(0.1, 0.9, n)) / n  # all distinct
        return {"probabilities": probabilities.astype(np.float64), "targets": targets,
                "num_samples": int(rng.integers(3, 8))}
    raise ValueError(f"no task {task}")


def _layers(rng, sizes) -> list:
    """Random (weights, bias) pairs, scaled so that every layer's outputs are of order one."""
    return [[rng.normal(0, 1 / np.sqrt(a), (a, b)).astype(np.float32), rng.normal(0, 0.3, b).astype(np.float32)]
            for a, b in zip(sizes[:-1], sizes[1:], strict=False)]


# ---------------------------------------------------------------------------------------------
# The probe cells

_PRELUDE = '''
def _bmnist_probe(_payload):
    import base64 as _b64, zlib as _zlib
    import numpy as _np, jax as _jax, jax.numpy as _jnp, optax as _optax
    from IPython.display import display as _display

    def _dec(v):
        if isinstance(v, dict):
            return _np.frombuffer(_zlib.decompress(_b64.b64decode(v["b"])), dtype=v["t"]).reshape(v["s"]).copy()
        if isinstance(v, list):
            return [_dec(x) for x in v]
        return v

    def _enc(v, depth=0):
        if depth > 6:
            raise ValueError("nested too deeply")
        if isinstance(v, dict):
            return {"d": {str(k): _enc(x, depth + 1) for k, x in v.items()}}
        if isinstance(v, (list, tuple)):
            return {"l": [_enc(x, depth + 1) for x in v]}
        a = _np.asarray(v)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"expected numbers, got {type(v).__name__}")
        return {"t": a.dtype.str, "s": list(a.shape), "b": _b64.b64encode(a.tobytes()).decode()}

    def _call(fn, *args, **kwargs):
        try:
            return _enc(fn(*args, **kwargs))
        except Exception as exc:
            return {"e": f"{type(exc).__name__}: {exc}"[:400]}

    def _compiled(fn, **options):
        """``fn`` compiled as one program (far fewer compilations than op by op), or ``fn`` itself
        from the first call on which it cannot be traced (Python control flow on values, ...)."""
        try:
            jitted, state = _jax.jit(fn, **options), {"eager": False}
        except Exception:  # e.g. a signature without the static argument's name
            return fn
        def call(*args, **kwargs):
            if not state["eager"]:
                try:
                    return jitted(*args, **kwargs)
                except Exception:
                    state["eager"] = True
            return fn(*args, **kwargs)
        return call

    def _put(value):
        """A JAX array of ``value``: a copy, where jnp.asarray would compile a small program per shape."""
        return _jax.device_put(value)

    def _jparams(layers):
        return [(_put(w), _put(b)) for w, b in layers]

    def _standin_mlp(params, inputs, *, nonlinearity=None):
        """A linear model, not an MLP: what the objective and training checks run on."""
        h = inputs
        for w, b in params:
            h = h @ w + b
        return h[..., 0]

    def _standin_loss(params, inputs, targets, *, l2_reg):
        """Squared error of the linear model's probabilities plus l2_reg * ||params||**2."""
        p = _jax.nn.sigmoid(_standin_mlp(params, inputs))
        return _jnp.mean((p - targets) ** 2) + l2_reg * sum(_jnp.sum(w**2) + _jnp.sum(b**2) for w, b in params)

    def _swapped(names, run):
        g = globals()
        old = {k: g[k] for k in names if k in g}
        g.update(names)
        try:
            return run()
        finally:
            for k in names:
                g.pop(k, None)
            g.update(old)

    I = {k: _dec(v) for k, v in _payload.items()}
    out = {}
'''

_EMIT = '''
    _display({"application/vnd.bmnist.values+json": {"d": out}}, raw=True)
'''

_BODIES = {
    1: '''
    data = {"x_train": I["images"], "y_train": I["labels"]}
    n, bs = len(I["images"]), int(I["batch_size"])
    per_epoch = -(-n // bs)
    def batches(key_seed, epochs):
        loader = train_dataloader(data, batch_size=bs, key=_jax.random.key(key_seed))
        seen = []
        for _ in range(epochs * per_epoch):
            x, y = next(loader)
            x = _np.asarray(x)
            seen.append([x.reshape(len(x), -1)[:, :8], _np.asarray(y), _np.asarray(x.shape)])
        return seen
    out["a"] = _call(batches, int(I["key_a"]), 3)
    out["a_again"] = _call(batches, int(I["key_a"]), 3)
    out["b"] = _call(batches, int(I["key_b"]), 1)
''',
    2: '''
    params, x = _jparams(I["params"]), _put(I["x"])
    model = _compiled(mlp, static_argnames="nonlinearity")
    out["relu"] = _call(model, params, x)
    out["tanh"] = _call(lambda: model(params, x, nonlinearity=_jnp.tanh))
    sizes, stddev = tuple(int(s) for s in I["init_sizes"]), float(I["stddev"])
    init = _compiled(init_mlp_params, static_argnums=0)
    for name, key_seed in (("init_a", I["key_a"]), ("init_again", I["key_a"]), ("init_b", I["key_b"])):
        out[name] = _call(lambda: init(sizes, stddev=stddev, key=_jax.random.key(int(key_seed))))
''',
    3: '''
    params, x, y, l2 = _jparams(I["params"]), _put(I["x"]), _put(I["y"]), float(I["l2"])
    def losses():
        objective = _compiled(loss_fn)  # traced while the stand-in is in place
        return {
            "plain": _call(objective, params, x, y, l2_reg=0.0),
            "penalised": _call(objective, params, x, y, l2_reg=l2),
            "huge_up": _call(objective, _jparams(I["huge_up"]), x, y, l2_reg=0.0),
            "huge_down": _call(objective, _jparams(I["huge_down"]), x, y, l2_reg=0.0),
        }
    out.update(_swapped({"mlp": _standin_mlp}, losses))
''',
    4: '''
    params = _jparams(I["params"])
    batches = [(_put(x), _put(y)) for x, y in I["batches"]]
    lr, wd = float(I["learning_rate"]), float(I["weight_decay"])
    def updates():
        optimizer = _optax.sgd(lr, momentum=float(I["momentum"]))
        update = make_update_step(optimizer, weight_decay=wd)
        p, state, losses = params, optimizer.init(params), []
        for x, y in batches[:3]:
            p, state, loss = update(p, state, x.reshape(len(x), -1), y)
            losses.append(loss)
        return {"losses": losses, "params": p}
    def training():
        records = train(params, iter(batches), x_test=_put(I["x_test"]), y_test=_put(I["y_test"]),
                        num_steps=int(I["num_steps"]), learning_rate=lr, weight_decay=wd,
                        eval_every=int(I["eval_every"]), threshold=0.5)
        return [{"step": r["step"], "losses": r["losses"], "test_accuracy": r["test_accuracy"], "params": r["params"]}
                for r in records]
    standins = {"mlp": _standin_mlp, "loss_fn": _standin_loss}
    out["update"] = _swapped(standins, lambda: _call(updates))
    out["train"] = _swapped(standins, lambda: _call(training))
''',
    5: '''
    rows = _call(lambda: dict(retrieve_interesting_samples(
        I["probabilities"], I["targets"], num_samples=int(I["num_samples"]))))
    out["rows"] = rows
''',
}


def _encode_input(value):
    if isinstance(value, list):
        return [_encode_input(v) for v in value]
    if isinstance(value, np.ndarray):
        raw = zlib.compress(np.ascontiguousarray(value).tobytes(), 6)
        return {"t": value.dtype.str, "s": list(value.shape), "b": base64.b64encode(raw).decode()}
    return value


def probes(seed: int) -> list[Probe]:
    """The hidden-check cells of a grading run, one per task.

    :param seed: The run's seed; each task draws its inputs from ``(seed, task)``.
    :returns: One :class:`Probe` per task, in task order.
    """
    result = []
    for task, body in _BODIES.items():
        inputs = _draw(seed, task)
        payload = {k: _encode_input(v) for k, v in inputs.items()}
        source = (f"# bmnist-grade: hidden check of task {task}\n" + _PRELUDE.lstrip("\n") + body.strip("\n") + "\n"
                  + _EMIT.strip("\n") + f"\n\n_bmnist_probe({payload!r})\ndel _bmnist_probe\n")
        result.append(Probe(task, source, inputs))
    return result


# ---------------------------------------------------------------------------------------------
# Decoding what the kernel sent


def decode_values(raw, *, depth: int = 0, budget: list | None = None):
    """Turn the JSON a probe sent into numpy arrays, lists and dicts; refuse anything else.

    :param raw: The parsed JSON of one :data:`VALUES_MIME` output.
    :returns: The values; an error of the student's function stays ``{"error": message}``.
    :raises MalformedValues: Not the structure a probe sends, or too large.
    """
    budget = [_MAX_ELEMENTS] if budget is None else budget
    if depth > _MAX_DEPTH or not isinstance(raw, dict):
        raise MalformedValues("unexpected structure")
    if set(raw) == {"e"}:
        return {"error": str(raw["e"])[:400]}
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


# ---------------------------------------------------------------------------------------------
# Verdicts


class _Fail(Exception):
    """One property failed; the message is for the student."""


def _err(value, what: str):
    if isinstance(value, dict) and set(value) == {"error"}:
        raise _Fail(f"{what} raised {value['error']}")
    return value


def _array(value, what: str) -> np.ndarray:
    value = _err(value, what)
    if isinstance(value, list) and value and all(isinstance(v, np.ndarray) and v.shape == value[0].shape
                                                 for v in value):
        value = np.stack(value)  # a list of numbers is as good as an array
    if not isinstance(value, np.ndarray):
        raise _Fail(f"{what} did not return an array")
    return value


def _percent(got: np.ndarray, ref: np.ndarray) -> str:
    scale = np.maximum(np.abs(ref), 1e-12)
    worst = float(np.max(np.abs(got - ref) / scale)) if ref.size else 0.0
    return f"{100 * worst:.2g} %" if worst < 10 else f"a factor of {worst:.2g}"


def _close(got, ref, what: str, *, rtol: float = _RTOL, atol: float = _ATOL) -> None:
    got, ref = _array(got, what), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        if got.size == ref.size:
            raise _Fail(f"{what} has shape {got.shape}; expected {ref.shape}")
        raise _Fail(f"{what} has {got.size} values; expected {ref.size}")
    got = got.astype(np.float64)
    if not np.all(np.isfinite(got)):
        raise _Fail(f"{what} is not finite (nan or inf)")
    if not np.allclose(got, ref, rtol=rtol, atol=atol):
        raise _Fail(f"{what} differs from the correct value by up to {_percent(got, ref)}")


def _tree(value, what: str) -> list:
    value = _err(value, what)
    if isinstance(value, dict):
        raise _Fail(f"{what} returned a dict; expected a list of (weights, bias) pairs")
    if not isinstance(value, list):
        raise _Fail(f"{what} returned a single array; expected a list of (weights, bias) pairs")
    layers = []
    for layer in value:
        if not (isinstance(layer, list) and len(layer) == 2 and all(isinstance(a, np.ndarray) for a in layer)):
            raise _Fail(f"{what}: every layer must be a (weights, bias) pair of arrays")
        layers.append(layer)
    return layers


def _close_tree(got, ref, what: str, *, rtol: float = _RTOL, atol: float = _ATOL) -> None:
    got, ref = _tree(got, what), _tree(ref, what)
    if len(got) != len(ref):
        raise _Fail(f"{what} has {len(got)} layers; expected {len(ref)}")
    for i, (g, r) in enumerate(zip(got, ref, strict=True), 1):
        for name, a, b in (("weights", g[0], r[0]), ("bias", g[1], r[1])):
            _close(a, b, f"{what}, layer {i} {name}", rtol=rtol, atol=atol)


def _judge_dataloader(inputs: dict, got: dict, ref: dict) -> None:
    images, labels, bs = inputs["images"], inputs["labels"], inputs["batch_size"]
    n = len(images)
    per_epoch = -(-n // bs)
    sizes = [bs] * (per_epoch - 1) + [n - bs * (per_epoch - 1)]
    runs = {}
    for name in ("a", "a_again", "b"):
        run = _err(got.get(name), "train_dataloader")
        if not isinstance(run, list):
            raise _Fail("train_dataloader did not yield (images, labels) pairs")
        ids = []
        for batch in run:
            if not (isinstance(batch, list) and len(batch) == 3 and all(isinstance(a, np.ndarray) for a in batch)):
                raise _Fail("train_dataloader did not yield (images, labels) pairs of arrays")
            pixels, y, shape = batch
            shape = [int(s) for s in shape.reshape(-1)]
            if len(y) != len(pixels) or int(np.prod(shape[1:], dtype=np.int64)) != 28 * 28:
                raise _Fail(f"a batch has image shape {tuple(shape)} and {len(y)} labels; expected images "
                            "(batch, 28, 28) and one label per image")
            index = pixels[:, 0]
            if not np.all((index >= 0) & (index < n) & (index == np.round(index))):
                raise _Fail("the batches hold images that are not training images (were they changed?)")
            index = index.astype(int)
            if not np.array_equal(pixels[:, 1:8], images.reshape(n, -1)[index, 1:8]):
                raise _Fail("the batches hold images that are not training images (were they changed?)")
            if not np.array_equal(np.asarray(y, np.float64).reshape(-1), labels[index]):
                raise _Fail("the labels do not belong to their images")
            ids.append(index)
        runs[name] = ids
    first = runs["a"]
    if [len(b) for b in first] != sizes * 3:
        raise _Fail(f"with {n} examples and batch_size={bs}, each epoch should be {per_epoch - 1} full batches and "
                    f"one of {sizes[-1]}; got batch sizes {[len(b) for b in first[:per_epoch + 1]]}...")
    epochs = [np.concatenate(first[e * per_epoch:(e + 1) * per_epoch]) for e in range(3)]
    if not all(np.array_equal(np.sort(e), np.arange(n)) for e in epochs):
        raise _Fail("an epoch does not visit every training example exactly once")
    if np.array_equal(epochs[0], epochs[1]) or np.array_equal(epochs[1], epochs[2]):
        raise _Fail("an epoch repeats the order of the epoch before it")
    if np.array_equal(epochs[0], np.arange(n)):
        raise _Fail("the first epoch is not shuffled")
    if not all(np.array_equal(a, b) for a, b in zip(first, runs["a_again"], strict=False)):
        raise _Fail("the same key gave different batches")
    if np.array_equal(np.concatenate(runs["b"]), epochs[0]):
        raise _Fail("a different key gave the same batches")


def _judge_model(inputs: dict, got: dict, ref: dict) -> None:
    _close(got.get("relu"), _array(ref.get("relu"), "reference"), "mlp's logits")
    _close(got.get("tanh"), _array(ref.get("tanh"), "reference"), "mlp's logits with nonlinearity=jnp.tanh")
    sizes, stddev = inputs["init_sizes"], inputs["stddev"]
    init = _tree(got.get("init_a"), "init_mlp_params")
    shapes = [(tuple(w.shape), tuple(b.shape)) for w, b in init]
    want = [((a, b), (b,)) for a, b in zip(sizes[:-1], sizes[1:], strict=False)]
    if shapes != want:
        raise _Fail(f"init_mlp_params({tuple(sizes)}) gives shapes {shapes}; expected {want}")
    arrays = [a.astype(np.float64).reshape(-1) for layer in init for a in layer]
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise _Fail("init_mlp_params gives values that are not finite")
    for a in arrays:
        if a.size >= 50:
            spread = float(np.std(a)) / stddev
            if abs(spread - 1) > 5 / np.sqrt(2 * a.size):
                raise _Fail(f"the spread of the initial values is {spread:.2f} times stddev; expected stddev itself")
            if abs(float(np.mean(a))) > 5 * stddev / np.sqrt(a.size):
                raise _Fail("the initial values do not have mean zero")
    for i, a in enumerate(arrays):
        for b in arrays[i + 1:]:
            k = min(a.size, b.size, 16)
            if k >= 4 and np.allclose(a[:k], b[:k], rtol=1e-5, atol=0):
                raise _Fail("two parameter arrays start with the same numbers: a key was used twice")
    again = _tree(got.get("init_again"), "init_mlp_params")
    if len(again) != len(init) or not all(np.array_equal(x, y) for la, lb in zip(init, again, strict=False)
                                          for x, y in zip(la, lb, strict=True)):
        raise _Fail("init_mlp_params gives other values for the same key")
    other = _tree(got.get("init_b"), "init_mlp_params")
    if len(other) == len(init) and np.array_equal(other[0][0], init[0][0]):
        raise _Fail("init_mlp_params gives the same values for a different key")


def _judge_objective(inputs: dict, got: dict, ref: dict) -> None:
    _close(got.get("plain"), ref.get("plain"), "the loss with l2_reg=0")
    _close(got.get("penalised"), ref.get("penalised"), "the loss with l2_reg > 0 (the penalty term)")
    for name in ("huge_up", "huge_down"):
        value = _array(got.get(name), "loss_fn")
        if not np.all(np.isfinite(value)):
            raise _Fail("the loss is not finite for logits of size 10,000: compute it from the logits "
                        "(jax.nn.log_sigmoid or jnp.logaddexp)")
        _close(value, ref.get(name), "the loss for logits of size 10,000", rtol=1e-3)


def _judge_training(inputs: dict, got: dict, ref: dict) -> None:
    update = _err(got.get("update"), "make_update_step")
    want = _err(ref.get("update"), "reference")
    if not isinstance(update, dict) or set(update) != {"losses", "params"}:
        raise _Fail("make_update_step's update did not return (params, opt_state, loss)")
    _close(update["losses"], want["losses"], "the losses of three updates (the loss before each step)")
    _close_tree(update["params"], want["params"], "the parameters after three updates with momentum "
                "(is the optimizer state passed on?)", rtol=1e-3, atol=1e-5)
    records = _err(got.get("train"), "train")
    want = _err(ref.get("train"), "reference")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise _Fail("train did not yield progress records")
    steps = [int(np.asarray(r.get("step", -1))) for r in records]
    expected_steps = [int(np.asarray(r["step"])) for r in want]
    if steps != expected_steps:
        raise _Fail(f"with num_steps={inputs['num_steps']} and eval_every={inputs['eval_every']}, train yielded "
                    f"records at steps {steps}; expected one every eval_every steps and one after the last step")
    for i, (r, w) in enumerate(zip(records, want, strict=True), 1):
        _close(r.get("losses"), w["losses"], f"the losses in record {i}")
        _close(r.get("test_accuracy"), w["test_accuracy"], f"the test accuracy in record {i}",
               rtol=0, atol=1.5 / len(inputs["y_test"]))
    _close_tree(records[-1].get("params"), want[-1]["params"], "the parameters after training", rtol=1e-3, atol=1e-5)


def _judge_examples(inputs: dict, got: dict, ref: dict) -> None:
    rows = _err(got.get("rows"), "retrieve_interesting_samples")
    want = ref["rows"]
    if not isinstance(rows, dict):
        raise _Fail("retrieve_interesting_samples did not return a dict")
    k = inputs["num_samples"]
    for name in ("posmax", "posmin", "negmax", "negmin"):
        if name not in rows:
            raise _Fail(f"the result has no {name!r} entry")
        value = _array(rows[name], name).reshape(-1)
        if value.size != k:
            raise _Fail(f"{name} holds {value.size} indices; num_samples={k} asks for {k}")
        if value.dtype.kind == "f" and not np.all(value == np.round(value)):
            raise _Fail(f"{name} holds numbers that are not indices")
        value, expected = value.astype(np.int64), want[name].astype(np.int64)
        if np.array_equal(value, expected):
            continue
        if np.array_equal(np.sort(value), np.sort(expected)):
            raise _Fail(f"{name} holds the right examples in the wrong order")
        wrong = int(np.sum(~np.isin(value, expected)))
        raise _Fail(f"{name}: {wrong} of {k} indices are not the expected test-set positions")


_JUDGES = {1: _judge_dataloader, 2: _judge_model, 3: _judge_objective, 4: _judge_training, 5: _judge_examples}


def judge(task: int, inputs: dict, got, ref) -> str | None:
    """The verdict on one task's probe.

    :param task: The task number.
    :param inputs: The probe's inputs (from :func:`probes`).
    :param got: The decoded values from the student's kernel (``None`` when the probe sent none).
    :param ref: The decoded values from the reference run.
    :returns: ``None`` when the task passes, else one message for the student (never holding
        reference values).
    """
    if got is None:
        return "the check sent back no values (the cell was not reached, or it failed)"
    if not isinstance(got, dict):
        return "the check sent back malformed values"
    try:
        _JUDGES[task](inputs, got, ref)
    except _Fail as fail:
        return str(fail)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return f"the check could not read the values ({type(exc).__name__})"
    return None
