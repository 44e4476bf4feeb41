"""The baseline: the lesson done the way the original 2023 sheet does it, as a notebook.

Written anew for the benchmarks (no text or code of the sheet is copied); what matters is that it
does the same work in the same way:

* float64 everywhere (``jax_enable_x64``);
* MNIST parsed from the four ``.gz`` files on every load (the local mirror folder, or the kit's
  cache of decompressed files where no ``.gz`` folder is around);
* SVG figures at 200 dpi;
* the dataloaders and the model as plain Python, the test set evaluated in batches of 25,
  op by op (no ``jax.jit``);
* the accuracy histogram as 100 un-jitted init-and-evaluate passes over the test set;
* training with the ``jax.example_libraries.optimizers`` SGD loop (one jitted update step),
  5000 steps of 25 examples at learning rate 1e-3, evaluated every 200 steps.

Each cell carries ``metadata.bench_role``, the part of the lesson it belongs to, so that
``benchmarks/notebook.py`` can put its times beside the kit's. Run on its own::

    python benchmarks/baseline.py        # executes it in a fresh kernel; prints per-part times
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import nbformat

ROOT = Path(__file__).resolve().parent.parent
_SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
_GZ_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")

#: The parts of the lesson, in order; the kit's cells are sorted into the same parts.
ROLES = ("setup", "data", "dataloader", "untrained", "gradients", "training", "examples", "explore")

_SETUP = '''\
import gzip
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax.example_libraries import optimizers as jopt
from tueplots import bundles

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_platforms", "cpu")
plt.rcParams.update(bundles.beamer_moml())
plt.rcParams.update({"figure.dpi": 200})
%config InlineBackend.figure_formats = ["svg"]
%matplotlib inline


def show_row(images, labels, width=1.8, title=None):
    plt.rcParams.update(bundles.beamer_moml(rel_width=width))
    fig, axes = plt.subplots(ncols=len(images))
    for ax, image, label in zip(axes, images, labels):
        ax.imshow(image, cmap="cividis")
        ax.set_title(str(label))
        ax.set_xticks([])
        ax.set_yticks([])
    if title is not None:
        fig.suptitle(title)
    return fig, axes


SEED = 12345
POS_DIGIT, NEG_DIGIT = 1, 7
LAYER_SIZES = (784, 256, 64, 1)
INIT_STDDEV = 0.1
THRESHOLD = 0.5
LEARNING_RATE = 1e-3
WEIGHT_DECAY = 1e-12
NUM_STEPS = 5000
BATCH_SIZE = 25
'''

_DATA = '''\
def parse_idx(blob, offset, shape):
    return np.frombuffer(blob, np.uint8, offset=offset).reshape(shape)


def read_mnist(folder):
    """Parse the four files anew on every call (gzip if that is what the folder holds)."""
    folder = Path(folder)
    out = {}
    for key, stem, offset, shape in [("x_train", "train-images-idx3-ubyte", 16, (-1, 28, 28)),
                                     ("y_train", "train-labels-idx1-ubyte", 8, (-1,)),
                                     ("x_test", "t10k-images-idx3-ubyte", 16, (-1, 28, 28)),
                                     ("y_test", "t10k-labels-idx1-ubyte", 8, (-1,))]:
        gz = folder / (stem + ".gz")
        blob = gzip.decompress(gz.read_bytes()) if gz.exists() else (folder / stem).read_bytes()
        out[key] = parse_idx(blob, offset, shape)
    return out


def two_digits(mnist, pos, neg, dtype=np.float64):
    subset = {}
    for split in ("train", "test"):
        keep = (mnist["y_" + split] == pos) | (mnist["y_" + split] == neg)
        x = mnist["x_" + split][keep].astype(dtype)
        x -= x.reshape(len(x), -1).mean(axis=1)[:, None, None]
        x /= x.reshape(len(x), -1).std(axis=1)[:, None, None]
        subset["x_" + split] = x
        subset["y_" + split] = (mnist["y_" + split][keep] == pos).astype(dtype)
    return subset


mnist = read_mnist(MNIST_FOLDER)
bmnist = two_digits(mnist, POS_DIGIT, NEG_DIGIT)
show_row(bmnist["x_train"][:10], bmnist["y_train"][:10])
show_row(bmnist["x_train"][10:20], bmnist["y_train"][10:20]);
'''

_DATALOADER = '''\
def train_dataloader(bmnist, batch_size, rng):
    n = len(bmnist["x_train"])
    while True:
        order = np.asarray(jax.random.permutation(rng, n))
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            yield bmnist["x_train"][idx], bmnist["y_train"][idx]
        rng, _ = jax.random.split(rng)


def test_dataloader(bmnist, batch_size):
    for start in range(0, len(bmnist["x_test"]), batch_size):
        yield bmnist["x_test"][start:start + batch_size], bmnist["y_test"][start:start + batch_size]


x_a, y_a = next(train_dataloader(bmnist, BATCH_SIZE, jax.random.PRNGKey(SEED)))
x_b, y_b = next(train_dataloader(bmnist, BATCH_SIZE, jax.random.PRNGKey(SEED + 1)))
show_row(x_a[:10], y_a[:10])
show_row(x_b[:10], y_b[:10]);
'''

_UNTRAINED = '''\
def mlp(params, inputs):
    activations = inputs
    for w, b in params[:-1]:
        activations = jax.nn.relu(jnp.dot(activations, w) + b)
    w, b = params[-1]
    return (jnp.dot(activations, w) + b)[..., 0]


def create_mlp_params(layer_sizes, stddev, rng):
    params = []
    for m, n in zip(layer_sizes[:-1], layer_sizes[1:]):
        rng, rng_b = jax.random.split(rng)
        params.append((jax.random.normal(rng, (m, n)) * stddev, jax.random.normal(rng_b, (n,)) * stddev))
    return params


def test_predictions(params, bmnist, batch_size, threshold):
    logits, targets = [], []
    for x, y in test_dataloader(bmnist, batch_size):
        logits.extend(list(mlp(params, x.reshape(len(x), -1))))
        targets.extend(list(y))
    predictions = jax.nn.sigmoid(np.array(logits)) > threshold
    targets = np.array(targets)
    return (predictions == targets).sum() / len(predictions), logits, targets


x_batch, y_batch = next(test_dataloader(bmnist, BATCH_SIZE))
params = create_mlp_params(LAYER_SIZES, INIT_STDDEV, jax.random.PRNGKey(SEED))
show_row(x_batch[:10], mlp(params, x_batch.reshape(BATCH_SIZE, -1))[:10].round(decimals=3))

accuracies = []
for i in range(100):
    candidate = create_mlp_params(LAYER_SIZES, INIT_STDDEV, jax.random.PRNGKey(SEED + i))
    accuracies.append(test_predictions(candidate, bmnist, BATCH_SIZE, THRESHOLD)[0])
fig, ax = plt.subplots()
ax.hist(accuracies, bins=20)
ax.set_xlabel("Test accuracy under random initialisation")
ax.set_ylabel("Number of initialisations");
'''

_GRADIENTS = '''\
def loss_fn(params, inputs, targets, l2_reg=0.0):
    logits = mlp(params, inputs)
    cross_entropy = jnp.logaddexp(0, -logits * (2 * targets - 1)).mean()
    return cross_entropy + 0.5 * l2_reg * sum(jnp.sum(w**2) + jnp.sum(b**2) for w, b in params)


loss, grads = jax.value_and_grad(loss_fn)(params, x_batch.reshape(BATCH_SIZE, -1), y_batch, WEIGHT_DECAY)
plt.rcParams.update(bundles.beamer_moml(rel_width=1.8, rel_height=1.8))
fig, axes = plt.subplots(nrows=len(grads))
fig.suptitle(loss)
for ax, (gw, _) in zip(axes, grads):
    absmax = abs(gw.T).max()
    ax.imshow(gw.T, cmap="bwr", aspect="auto", vmin=-absmax, vmax=absmax)
'''

_TRAINING = '''\
train_batches = train_dataloader(bmnist, BATCH_SIZE, jax.random.PRNGKey(SEED))
opt_init, opt_update, get_params = jopt.sgd(LEARNING_RATE)
opt_state = opt_init(create_mlp_params(LAYER_SIZES, INIT_STDDEV, jax.random.PRNGKey(SEED)))


@jax.jit
def update(step, opt_state, inputs, targets):
    value, grads = jax.value_and_grad(loss_fn)(get_params(opt_state), inputs, targets, WEIGHT_DECAY)
    return value, opt_update(step, grads, opt_state)


losses, test_accuracies = [], []
for step, (x, y) in enumerate(train_batches, 1):
    if step > NUM_STEPS:
        break
    loss, opt_state = update(step, opt_state, x.reshape(len(x), -1), y)
    losses.append(loss)
    if step % 200 == 0:
        accuracy = test_predictions(get_params(opt_state), bmnist, BATCH_SIZE, THRESHOLD)[0]
        print(f"step {step}: loss {loss:.6f}, test accuracy {accuracy:.6f}")
        test_accuracies.append((step, accuracy))

plt.rcParams.update(bundles.beamer_moml(rel_width=1.8, rel_height=1.5))
fig, (ax_loss, ax_acc) = plt.subplots(nrows=2)
ax_loss.plot(range(NUM_STEPS), losses)
ax_loss.set_title("Loss")
ax_acc.plot(*zip(*test_accuracies))
ax_acc.set_title("Test accuracy");
'''

_EXAMPLES = '''\
final_accuracy, logits, targets = test_predictions(get_params(opt_state), bmnist, BATCH_SIZE, THRESHOLD)
probabilities = np.asarray(jax.nn.sigmoid(np.array(logits)))
order = np.argsort(probabilities)
positives, negatives = order[targets[order] == 1], order[targets[order] == 0]
rows = {"clear positives": positives[::-1][:5], "clear negatives": negatives[:5],
        "confusing positives": positives[:5], "confusing negatives": negatives[::-1][:5]}
plt.rcParams.update(bundles.beamer_moml(rel_width=1.8, rel_height=2.0))
fig, axes = plt.subplots(nrows=4, ncols=5)
for ax_row, (title, indices) in zip(axes, rows.items()):
    for ax, i in zip(ax_row, indices):
        ax.imshow(bmnist["x_test"][i], cmap="cividis")
        ax.set_title(f"{probabilities[i]:.3f}")
        ax.set_xticks([])
        ax.set_yticks([])
    ax_row[0].set_ylabel(title)
print(f"final test accuracy {final_accuracy:.6f}")
'''

_CELLS = (("setup", _SETUP), ("data", _DATA), ("dataloader", _DATALOADER), ("untrained", _UNTRAINED),
          ("gradients", _GRADIENTS), ("training", _TRAINING), ("examples", _EXAMPLES))


def mnist_folder() -> Path:
    """The folder the baseline parses MNIST from: a ``file://`` entry of ``$BMNIST_MIRRORS`` or
    ``../shared/data/mnist`` holding the ``.gz`` files, else the kit's cache (decompressed files).

    :returns: An existing folder.
    """
    candidates = [Path(urlparse(u.strip()).path) for u in os.environ.get("BMNIST_MIRRORS", "").split(",")
                  if u.strip().startswith("file://")]
    for folder in [*candidates, _SHARED_MNIST]:
        if all((folder / name).is_file() for name in _GZ_NAMES):
            return folder
    from bmnist_helpers.data import default_cache_dir, fetch

    fetch()
    return default_cache_dir()


def baseline_notebook(*, folder: Path | None = None) -> nbformat.NotebookNode:
    """Build the baseline notebook.

    :param folder: Where MNIST is parsed from; defaults to :func:`mnist_folder`.
    :returns: An unexecuted notebook whose cells carry ``metadata.bench_role``.
    """
    folder = mnist_folder() if folder is None else folder
    cells = []
    for role, source in _CELLS:
        if role == "data":
            source = f"MNIST_FOLDER = {str(folder)!r}\n" + source
        cells.append(nbformat.v4.new_code_cell(source, metadata={"bench_role": role}))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _nbtime import execute, role_seconds

    start = time.perf_counter()
    nb, total = execute(baseline_notebook(), cwd=ROOT, cache_dir=None)
    print(f"baseline notebook: {total:.1f} s end to end ({time.perf_counter() - start:.1f} s with set-up)")
    for role, seconds in role_seconds(nb).items():
        print(f"  {role:12s} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
