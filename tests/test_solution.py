"""The five answers of the solution, against references, and the seed errata 2-7 pinned."""

from __future__ import annotations

import inspect
import itertools
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from bmnist_lesson.exercise import SOLUTION_PY

from tests.conftest import ROOT

# --- task 1: dataloader (seed erratum 2) -----------------------------------------------------


def _tagged(n=103):
    return {"x_train": np.arange(n), "y_train": np.arange(n) % 2 * 1.0}


def _epochs(solution, key, *, n=103, batch_size=10, count=3):
    loader = solution.train_dataloader(_tagged(n), batch_size=batch_size, key=key)
    per_epoch = -(-n // batch_size)
    return [[next(loader) for _ in range(per_epoch)] for _ in range(count)]


def test_every_example_once_per_epoch_with_a_smaller_last_batch(solution):
    for epoch in _epochs(solution, jax.random.key(0)):
        ids = np.concatenate([x for x, _ in epoch])
        assert sorted(ids.tolist()) == list(range(103))
        assert [len(x) for x, _ in epoch] == [10] * 10 + [3]
        assert all(np.array_equal(y, x % 2 * 1.0) for x, y in epoch)  # each image keeps its label


def test_new_order_every_epoch(solution):
    # Seed erratum 2: one permutation served every epoch.
    orders = [np.concatenate([x for x, _ in e]) for e in _epochs(solution, jax.random.key(1), count=4)]
    assert len({tuple(o) for o in orders}) == 4


def test_same_key_same_batches_other_key_other_batches(solution):
    a1, a2, b = (_epochs(solution, k, count=2) for k in (jax.random.key(5), jax.random.key(5), jax.random.key(6)))
    flat = lambda epochs: np.concatenate([x for e in epochs for x, _ in e])  # noqa: E731
    assert np.array_equal(flat(a1), flat(a2))
    assert not np.array_equal(flat(a1), flat(b))


def test_each_epoch_is_the_permutation_of_a_fresh_half_of_the_key(solution):
    # The task text: split first, `key, epoch_key = jax.random.split(key)`, shuffle with epoch_key.
    key = jax.random.key(9)
    orders = [np.concatenate([x for x, _ in e]) for e in _epochs(solution, key, count=2)]
    for order in orders:
        key, epoch_key = jax.random.split(key)
        assert np.array_equal(order, np.asarray(jax.random.permutation(epoch_key, 103)))


class _KeyLog:
    """Wrap jax.random's functions and record every key handed to them, by its bits."""

    def __init__(self, monkeypatch):
        self.uses: list[tuple[str, tuple[int, ...]]] = []
        for name in ("split", "normal", "permutation", "uniform", "bernoulli", "choice", "fold_in"):
            original = getattr(jax.random, name)
            monkeypatch.setattr(jax.random, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def wrapped(key, *args, **kwargs):
            self.uses.append((name, tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())))
            return original(key, *args, **kwargs)
        return wrapped

    def reused(self):
        seen: dict = {}
        for name, bits in self.uses:
            seen.setdefault(bits, []).append(name)
        return {bits: names for bits, names in seen.items() if len(names) > 1}


def test_dataloader_uses_every_key_once(solution, monkeypatch):
    log = _KeyLog(monkeypatch)
    _epochs(solution, jax.random.key(11), count=4)
    assert [name for name, _ in log.uses].count("permutation") == 4
    assert log.reused() == {}, "a key was handed to two random functions: split first, then use the halves"


def test_initialiser_uses_every_key_once(solution, monkeypatch):
    log = _KeyLog(monkeypatch)
    solution.init_mlp_params((784, 256, 64, 1), stddev=0.1, key=jax.random.key(12))
    assert [name for name, _ in log.uses].count("normal") == 6
    assert log.reused() == {}, "a key was handed to two random functions: split first, then use the halves"


def test_lesson_keys_are_distinct_and_run_training_uses_its_own(solution, monkeypatch):
    keys = solution.lesson_keys(5)
    bits = {tuple(np.asarray(jax.random.key_data(k)).ravel().tolist()) for k in keys.values()}
    assert len(bits) == len(keys) == 4
    log = _KeyLog(monkeypatch)
    with jax.disable_jit():  # the initialiser runs eagerly, so its keys are seen
        next(solution.run_training(5, num_steps=1))  # the preview: the initialiser and the first epoch have drawn
    assert [name for name, _ in log.uses].count("normal") == 6
    assert log.reused() == {}


def test_keys_are_required_keyword_arguments(solution):
    # Seed erratum 5: defaults like rng=PRNGKey(12345) hid one shared key.
    for fn in (solution.train_dataloader, solution.init_mlp_params):
        param = inspect.signature(fn).parameters["key"]
        assert param.kind is inspect.Parameter.KEYWORD_ONLY and param.default is inspect.Parameter.empty
    for name, fn in vars(solution).items():
        if inspect.isfunction(fn) and fn.__module__ == "bmnist_solution":
            for p in inspect.signature(fn).parameters.values():
                assert not isinstance(p.default, jax.Array), f"{name}({p.name}=...) has an array default"


# --- task 2: model and initialiser (seed erratum 6) -------------------------------------------


def _numpy_mlp(params, x, act):
    for w, b in params[:-1]:
        x = act(x @ np.asarray(w) + np.asarray(b))
    w, b = params[-1]
    return (x @ np.asarray(w) + np.asarray(b))[:, 0]


def test_mlp_matches_numpy_and_uses_its_nonlinearity(solution):
    params = solution.init_mlp_params((784, 256, 64, 1), stddev=0.1, key=jax.random.key(0))
    x = np.random.default_rng(0).normal(size=(7, 784)).astype(np.float32)
    relu = _numpy_mlp(params, x, lambda z: np.maximum(z, 0))
    np.testing.assert_allclose(solution.mlp(params, x), relu, rtol=1e-4, atol=1e-4)
    tanh = _numpy_mlp(params, x, np.tanh)
    np.testing.assert_allclose(solution.mlp(params, x, nonlinearity=jnp.tanh), tanh, rtol=1e-4, atol=1e-4)
    doc = inspect.getdoc(solution.mlp)
    assert "inputs @ w_i" in doc and "w_i @ inputs" not in doc


def test_initialiser_shapes_scale_and_independence(solution):
    params = solution.init_mlp_params((784, 256, 64, 1), stddev=0.1, key=jax.random.key(3))
    assert [(w.shape, b.shape) for w, b in params] == [((784, 256), (256,)), ((256, 64), (64,)), ((64, 1), (1,))]
    w1 = np.asarray(params[0][0])
    assert abs(w1.std() - 0.1) < 0.005 and abs(w1.mean()) < 0.005
    other = solution.init_mlp_params((784, 256, 64, 1), stddev=0.1, key=jax.random.key(4))
    assert not np.allclose(other[0][0], w1)


# --- task 3: objective ------------------------------------------------------------------------


def test_loss_is_optax_cross_entropy_plus_l2(solution):
    params = solution.init_mlp_params((784, 256, 64, 1), stddev=0.1, key=jax.random.key(1))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 784)).astype(np.float32)
    y = (rng.uniform(size=16) > 0.5).astype(np.float32)
    l2 = 0.3
    squared = sum(float(jnp.sum(w**2) + jnp.sum(b**2)) for w, b in params)
    expected = float(optax.sigmoid_binary_cross_entropy(solution.mlp(params, x), y).mean()) + 0.5 * l2 * squared
    assert float(solution.loss_fn(params, x, y, l2_reg=l2)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_loss_is_finite_at_huge_logits(solution, scale):
    params = [(jnp.zeros((784, 1)), jnp.array([scale]))]  # a single layer: the logit is the bias
    x = np.zeros((4, 784), np.float32)
    y = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    loss = float(solution.loss_fn(params, x, y, l2_reg=0.0))
    assert np.isfinite(loss) and loss == pytest.approx(abs(scale) / 2, rel=1e-6)
    grads = jax.grad(solution.loss_fn)(params, x, y, l2_reg=0.0)
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


# --- task 4: training (seed erratum 3) --------------------------------------------------------


def test_make_update_step_is_one_jitted_sgd_step(solution):
    params = solution.init_mlp_params((784, 8, 1), stddev=0.1, key=jax.random.key(2))
    x = np.random.default_rng(2).normal(size=(5, 784)).astype(np.float32)
    y = np.array([1, 0, 1, 0, 1], np.float32)
    optimizer = optax.sgd(0.1)
    update = solution.make_update_step(optimizer, weight_decay=0.3)
    assert hasattr(update, "lower")  # jax.jit
    new_params, state, loss = update(params, optimizer.init(params), x, y)
    want_loss, grads = jax.value_and_grad(solution.loss_fn)(params, x, y, l2_reg=0.3)
    assert float(loss) == pytest.approx(float(want_loss), rel=1e-6)
    for (w, b), (dw, db), (w_new, b_new) in zip(params, grads, new_params, strict=True):
        np.testing.assert_allclose(w_new, w - 0.1 * dw, atol=1e-6)
        np.testing.assert_allclose(b_new, b - 0.1 * db, atol=1e-6)
    # any optax optimiser: its state is threaded through
    adam = optax.adam(0.01)
    _, adam_state, _ = solution.make_update_step(adam, weight_decay=0.0)(params, adam.init(params), x, y)
    assert int(adam_state[0].count) == 1


def _one_step(solution, weight_decay, *, learning_rate=0.1):
    params = solution.init_mlp_params((784, 8, 1), stddev=0.1, key=jax.random.key(2))
    x = np.random.default_rng(2).normal(size=(5, 28, 28)).astype(np.float32)
    y = np.array([1, 0, 1, 0, 1], np.float32)
    (record,) = solution.train(
        params, iter([(x, y)]), x_test=x, y_test=y, num_steps=1, learning_rate=learning_rate,
        weight_decay=weight_decay, eval_every=1, threshold=0.5,
    )
    return params, record


def test_weight_decay_reaches_the_update(solution):
    # Seed erratum 3: the jitted update's l2_reg stayed 0, so WEIGHT_DECAY did nothing.
    params, plain = _one_step(solution, 0.0)
    _, decayed = _one_step(solution, 0.5)
    for (w0, _), (w_plain, _), (w_decayed, _) in zip(params, plain["params"], decayed["params"], strict=True):
        np.testing.assert_allclose(np.asarray(w_plain) - np.asarray(w_decayed), 0.1 * 0.5 * np.asarray(w0), atol=1e-6)


def test_train_records_and_steps(solution):
    params = solution.init_mlp_params((784, 16, 1), stddev=0.1, key=jax.random.key(0))
    data = _tagged(60)
    data["x_train"] = np.random.default_rng(0).normal(size=(60, 28, 28)).astype(np.float32)
    loader = solution.train_dataloader(data, batch_size=8, key=jax.random.key(1))
    records = list(solution.train(
        params, loader, x_test=data["x_train"], y_test=data["y_train"], num_steps=25, learning_rate=0.01,
        weight_decay=0.0, eval_every=10, threshold=0.5,
    ))
    assert [r["step"] for r in records] == [10, 20, 25]
    assert [len(r["losses"]) for r in records] == [10, 10, 5]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in records)


# --- task 5: interesting examples (seed erratum 4) --------------------------------------------


def _brute_force(p, t, k):
    pos = [i for i in range(len(p)) if t[i] == 1]
    neg = [i for i in range(len(p)) if t[i] == 0]
    return {
        "posmax": sorted(pos, key=lambda i: -p[i])[:k],
        "posmin": sorted(pos, key=lambda i: p[i])[:k],
        "negmax": sorted(neg, key=lambda i: -p[i])[:k],
        "negmin": sorted(neg, key=lambda i: p[i])[:k],
    }


@pytest.mark.parametrize("seed", range(5))
def test_interesting_samples_match_brute_force_with_mistakes(solution, seed):
    rng = np.random.default_rng(seed)
    t = (rng.uniform(size=200) < 0.4).astype(float)
    p = np.clip(t * 0.8 + rng.normal(0, 0.25, size=200), 0, 1)  # distinct values, some misclassified
    p = np.unique(p, return_inverse=True)[1] / 200 + rng.uniform(0, 1e-4, 200)
    assert ((p > 0.5) != t).any()
    got = solution.retrieve_interesting_samples(p, t, num_samples=5)
    want = _brute_force(p, t, 5)
    for key in want:
        assert list(map(int, got[key])) == want[key], key
    # positions in the whole test set, misclassified ones included in the confusing rows
    wrong_pos = [i for i in range(200) if t[i] == 1 and p[i] <= 0.5]
    assert set(sorted(wrong_pos, key=lambda i: p[i])[:5]) <= set(map(int, got["posmin"]))


# --- seed erratum 7 and the published trace ---------------------------------------------------


def test_no_store_magic_or_pickled_data():
    for path in (SOLUTION_PY, ROOT / "notebooks" / "binary_mnist.py"):
        text = path.read_text()
        assert "%store" not in text and "pickle" not in text


# The sheet's key scheme, kept here only to reproduce its trace: it used one key for both the
# initialiser and the dataloader, drew with a key and then split that same key. The lesson does not.
_TRACE = textwrap.dedent(
    """
    import jax, numpy as np
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_threefry_partitionable", False)
    from tests.solution_ns import solution_namespace
    s = solution_namespace()
    bmnist = s.binary_subset(s.mnist, pos_digit=1, neg_digit=7, dtype=np.float64)

    def sheet_init(layer_sizes, *, stddev, key):
        params = []
        for d_in, d_out in zip(layer_sizes[:-1], layer_sizes[1:]):
            key, bias_key = jax.random.split(key)
            weights = stddev * jax.random.normal(key, (d_in, d_out))  # drawn with the key it then carries on
            params.append((weights, stddev * jax.random.normal(bias_key, (d_out,))))
        return params

    def sheet_dataloader(bmnist, *, batch_size, key):
        n, epoch_key = len(bmnist["x_train"]), key
        while True:
            order = np.asarray(jax.random.permutation(epoch_key, n))
            for start in range(0, n, batch_size):
                batch = order[start:start + batch_size]
                yield bmnist["x_train"][batch], bmnist["y_train"][batch]
            epoch_key, _ = jax.random.split(epoch_key)

    key = jax.random.PRNGKey(12345)
    params = sheet_init((784, 256, 64, 1), stddev=0.1, key=key)
    batches = sheet_dataloader(bmnist, batch_size=25, key=key)
    for r in s.train(params, batches, x_test=bmnist["x_test"], y_test=bmnist["y_test"], num_steps=400,
                     learning_rate=1e-3, weight_decay=1e-12, eval_every=200, threshold=0.5):
        print(f"[step {r['step']:07d}] Loss={r['losses'][-1]:5f}, Test accuracy={r['test_accuracy']:2f}")
    """
)


def test_reproduces_the_sheets_published_trace():
    proc = subprocess.run([sys.executable, "-c", _TRACE], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [
        "[step 0000200] Loss=0.103010, Test accuracy=0.965326",
        "[step 0000400] Loss=0.122704, Test accuracy=0.976884",
    ]


def test_islice_does_not_over_consume(solution):
    # train() draws exactly num_steps batches, so a shared loader stays where it was left.
    loader = iter([(np.zeros((2, 28, 28), np.float32), np.zeros(2, np.float32))] * 5)
    params = solution.init_mlp_params((784, 2, 1), stddev=0.1, key=jax.random.key(0))
    list(solution.train(params, loader, x_test=np.zeros((2, 784), np.float32), y_test=np.zeros(2, np.float32),
                        num_steps=3, learning_rate=0.1, weight_decay=0.0, eval_every=3, threshold=0.5))
    assert len(list(itertools.islice(loader, 10))) == 2


def _untrained_cell_python_calls(solution, num_inits: int) -> int:
    """Run the histogram cell with ``num_inits`` models; count the Python calls of the initialiser
    and of ``accuracy``. A compiled function runs its Python body only while JAX traces it."""
    import contextlib
    import functools
    import io

    import jupytext
    import matplotlib.pyplot as plt

    cell = next(c for c in jupytext.read(SOLUTION_PY).cells if "er-untrained" in c.metadata.get("tags", []))
    calls = [0]

    def counted(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            calls[0] += 1
            return fn(*args, **kwargs)

        return wrapper

    namespace = {**vars(solution), "NUM_INITS": num_inits, "init_mlp_params": counted(solution.init_mlp_params),
                 "accuracy": counted(solution.accuracy)}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(cell.source, "er-untrained", "exec"), namespace)
    plt.close("all")
    assert namespace["accuracies"].shape == (num_inits,)
    return calls[0]


def test_the_histogram_runs_compiled_models_not_op_by_op(solution):
    # Seed erratum 7: the sheet evaluated each untrained model op by op (8,700 passes in all). Here
    # the initialiser and the accuracy are traced once each, whatever the number of models.
    assert _untrained_cell_python_calls(solution, 3) == _untrained_cell_python_calls(solution, 9) <= 3
