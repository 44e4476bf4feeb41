"""Hidden checks: one cell per task, appended to every grading copy.

Each cell calls the student's function on inputs drawn from the run's seed and prints plain
numbers, rounded to 3 significant digits, and booleans computed with plain Python. The grader
runs the same cells on the solution to get the reference output, and nbval compares the two
outside the student's kernel, so patching numpy or ``assert`` inside the kernel changes nothing.

While a task is checked, the functions of the *other* tasks that it calls are swapped for
reference versions, so one wrong task does not cost the points of another. The reference
versions are the solution's own cells, handed in by the grader: this package holds no answers.
"""

from __future__ import annotations

import textwrap

__all__ = ["HIDDEN_TAG", "hidden_check_cells"]

HIDDEN_TAG = "hidden-check"

# Helpers of the checks; ``_reference`` runs the solution's cells in a namespace of its own.
_REFERENCE = '''
import numpy as _np, jax as _jax, jax.numpy as _jnp
_reference = {}
exec(compile(_REFERENCE_SOURCE, "reference", "exec"), _reference)
_ref_mlp, _ref_loss_fn = _reference["mlp"], _reference["loss_fn"]
del _REFERENCE_SOURCE
def _g(x):
    return f"{float(x):.3g}"
def _swap(**names):
    """Put reference functions in the notebook's globals; return what to put back."""
    g = globals()
    old = {k: g.get(k) for k in names}
    g.update(names)
    return old
def _params(rng, sizes, scale=0.3):
    return [(_np.asarray(rng.normal(0, scale, (a, b)), _np.float32), _np.asarray(rng.normal(0, scale, b), _np.float32))
            for a, b in zip(sizes[:-1], sizes[1:])]
'''

_TASKS = {
    1: '''
n, bs = int(_rng.integers(40, 90)), int(_rng.integers(4, 12))
key = _jax.random.key(int(_rng.integers(2**31)))
data = {"x_train": _np.arange(n), "y_train": (_np.arange(n) % 3 == 0).astype(_np.float32)}
per_epoch = -(-n // bs)
def _epochs(k, count):
    it = train_dataloader(data, batch_size=bs, key=k)
    return [[next(it) for _ in range(per_epoch)] for _ in range(count)]
epochs = _epochs(key, 3)
ids = [[int(i) for x, _ in e for i in _np.asarray(x).tolist()] for e in epochs]
print("first epoch:", ids[0])
print("batch sizes:", [[len(x) for x, _ in e] for e in epochs])
print("each epoch visits every example once:", all(sorted(e) == list(range(n)) for e in ids))
print("a new order each epoch:", ids[0] != ids[1] and ids[1] != ids[2] and ids[0] != ids[2])
def _labels_ok(x, y):
    return [float(v) for v in _np.asarray(y).tolist()] == [float(i % 3 == 0) for i in _np.asarray(x).tolist()]
print("labels follow their images:", all(_labels_ok(x, y) for e in epochs for x, y in e))
again = [[int(i) for x, _ in e for i in _np.asarray(x).tolist()] for e in _epochs(key, 3)]
other = [[int(i) for x, _ in e for i in _np.asarray(x).tolist()] for e in _epochs(_jax.random.fold_in(key, 1), 1)]
print("same key, same batches:", again == ids, "| other key, other batches:", other[0] != ids[0])
''',
    2: '''
sizes = (int(_rng.integers(5, 30)), int(_rng.integers(4, 20)), int(_rng.integers(2, 10)), 1)
params = _params(_rng, sizes)
x = _np.asarray(_rng.normal(size=(6, sizes[0])), _np.float32)
print("relu logits:", [_g(v) for v in _np.asarray(mlp(params, x)).tolist()])
print("tanh logits:", [_g(v) for v in _np.asarray(mlp(params, x, nonlinearity=_jnp.tanh)).tolist()])
stddev = float(_rng.uniform(0.05, 0.5))
key = _jax.random.key(int(_rng.integers(2**31)))
init = init_mlp_params((300, 200, 50, 1), stddev=stddev, key=key)
print("shapes:", [(tuple(_np.shape(w)), tuple(_np.shape(b))) for w, b in init])
ratios = [float(_np.std(_np.asarray(w))) / stddev for w, _ in init[:2]]
print("weight spread equals stddev:", [round(r, 1) for r in ratios])
print("mean about zero:", abs(float(_np.mean(_np.asarray(init[0][0])))) < 0.05 * stddev)
same = init_mlp_params((300, 200, 50, 1), stddev=stddev, key=key)
other = init_mlp_params((300, 200, 50, 1), stddev=stddev, key=_jax.random.fold_in(key, 1))
w0 = _np.asarray(init[0][0]).tolist()
print("same key, same weights:", _np.asarray(same[0][0]).tolist() == w0)
print("other key, other weights:", _np.asarray(other[0][0]).tolist() != w0)
print("weights and biases independent:", float(_np.asarray(init[0][1])[0]) != float(_np.asarray(init[0][0])[0, 0]))
''',
    3: '''
_old = _swap(mlp=_ref_mlp)
try:
    sizes = (int(_rng.integers(5, 30)), int(_rng.integers(4, 20)), 1)
    params = _params(_rng, sizes)
    x = _np.asarray(_rng.normal(size=(9, sizes[0])), _np.float32)
    y = _np.asarray(_rng.integers(0, 2, 9), _np.float32)
    l2 = float(_rng.uniform(0.01, 1.0))
    print("loss, no penalty:", _g(loss_fn(params, x, y, l2_reg=0.0)))
    print("loss with penalty:", _g(loss_fn(params, x, y, l2_reg=l2)))
    huge = [(_np.zeros((sizes[0], 1), _np.float32), _np.array([s], _np.float32)) for s in (1e4, -1e4)]
    print("huge logits:", [_g(loss_fn([p], x, y, l2_reg=0.0)) for p in huge])
finally:
    _swap(**_old)
''',
    4: '''
_old = _swap(mlp=_ref_mlp, loss_fn=_ref_loss_fn)
try:
    sizes = (int(_rng.integers(10, 40)), int(_rng.integers(4, 12)), 1)
    params = [tuple(_jnp.asarray(a) for a in p) for p in _params(_rng, sizes, scale=0.2)]
    batches = [(_np.asarray(_rng.normal(size=(5, sizes[0])), _np.float32),
                _np.asarray(_rng.integers(0, 2, 5), _np.float32)) for _ in range(9)]
    x_test = _np.asarray(_rng.normal(size=(40, sizes[0])), _np.float32)
    y_test = _np.asarray(_rng.integers(0, 2, 40), _np.float32)
    lr, wd = float(_rng.uniform(0.05, 0.2)), float(_rng.uniform(0.05, 0.5))
    records = list(train(params, iter(batches), x_test=x_test, y_test=y_test, num_steps=7, learning_rate=lr,
                         weight_decay=wd, eval_every=3, threshold=0.5))
    print("steps:", [int(r["step"]) for r in records])
    print("losses per record:", [len(_np.asarray(r["losses"]).tolist()) for r in records])
    print("losses:", [_g(v) for r in records for v in _np.asarray(r["losses"]).tolist()])
    print("test accuracy:", [_g(r["test_accuracy"]) for r in records])
    print("final weights:", [_g(_np.asarray(w).sum()) for w, _ in records[-1]["params"]])
finally:
    _swap(**_old)
''',
    5: '''
n = int(_rng.integers(60, 200))
targets = _np.asarray(_rng.integers(0, 2, n), _np.float32)
probabilities = _np.clip(_np.where(targets == 1, 0.75, 0.25) + _rng.normal(0, 0.3, n), 0, 1)
probabilities = _np.unique(probabilities, return_inverse=True)[1] / n + _rng.uniform(0, 1e-3, n)
k = int(_rng.integers(3, 8))
rows = retrieve_interesting_samples(probabilities, targets, num_samples=k)
for name in ("posmax", "posmin", "negmax", "negmin"):
    print(name, [int(i) for i in _np.asarray(rows[name]).tolist()])
''',
}


def hidden_check_cells(seed: int, *, reference: str) -> list[tuple[int | None, str]]:
    """The hidden-check cell sources for a grading run.

    :param seed: The run's seed; every task draws its inputs from ``(seed, task)``.
    :param reference: Source that defines the reference ``mlp`` and ``loss_fn`` (the solution's cells).
    :returns: ``(task, source)`` pairs: first the reference definitions (task ``None``, no
        output), then tasks 1 to 5.
    """
    setup = f"_REFERENCE_SOURCE = {reference!r}\n" + _REFERENCE.strip() + "\n"
    cells: list[tuple[int | None, str]] = [(None, setup)]
    for task, body in _TASKS.items():
        head = f"# hidden check, task {task}\n_rng = _np.random.default_rng([{int(seed)}, {task}])\n"
        cells.append((task, head + textwrap.dedent(body).strip() + "\n"))
    return cells
