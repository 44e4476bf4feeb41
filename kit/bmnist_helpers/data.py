"""MNIST on first use: download from mirrors, verify, cache, and cut out the lesson's two digits.

The cache holds the four decompressed idx files. They are checked against the SHA-256 table below
on every load, so a file corrupted on disk is noticed and fetched again. Command line::

    python -m bmnist_helpers.data fetch [--from DIR]   # warm the cache
    python -m bmnist_helpers.data info                 # where the cache is, what it holds
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._atomic import write_atomic

__all__ = [
    "DEFAULT_MIRRORS",
    "MNIST_FILES",
    "CacheError",
    "MirrorError",
    "binary_subset",
    "default_cache_dir",
    "fetch",
    "load_mnist",
    "mirrors",
]


@dataclass(frozen=True)
class _IdxFile:
    """One of the four MNIST files: its name, the SHA-256 and size of its decompressed bytes."""

    name: str
    sha256: str
    size: int
    header: int  # bytes before the data: 16 for images, 8 for labels


#: The download table, keyed by the array each file becomes (d2l style).
MNIST_FILES: dict[str, _IdxFile] = {
    "x_train": _IdxFile(
        "train-images-idx3-ubyte",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        47040016,
        16,
    ),
    "y_train": _IdxFile(
        "train-labels-idx1-ubyte",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        60008,
        8,
    ),
    "x_test": _IdxFile(
        "t10k-images-idx3-ubyte",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        7840016,
        16,
    ),
    "y_test": _IdxFile(
        "t10k-labels-idx1-ubyte",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        10008,
        8,
    ),
}

#: Public mirrors serving the four original ``.gz`` files, tried in order.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

_IMAGE_SHAPE = (28, 28)
_TIMEOUT_S = 30
_FIX_HINT = (
    "Set BMNIST_MIRRORS to a comma-separated list of mirror URLs (file:// works for a local folder), "
    "or copy the four .gz files into a folder and run: python -m bmnist_helpers.data fetch --from DIR"
)


class MirrorError(RuntimeError):
    """No mirror delivered a file with the right checksum."""


class CacheError(RuntimeError):
    """The cache folder cannot be used."""


def default_cache_dir() -> Path:
    """Return the cache folder: ``$BMNIST_CACHE`` if set, else the platform's user cache folder.

    :returns: The folder (not created here).
    """
    env = os.environ.get("BMNIST_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("bmnist-kit", appauthor=False)) / "mnist"


def mirrors() -> list[str]:
    """Return the mirrors to try, in order: ``$BMNIST_MIRRORS`` (comma-separated) or the defaults.

    :returns: Base URLs, each ending in ``/``.
    """
    env = os.environ.get("BMNIST_MIRRORS", "")
    urls = [u.strip() for u in env.split(",") if u.strip()] or list(DEFAULT_MIRRORS)
    return [u if u.endswith("/") else u + "/" for u in urls]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download(url: str) -> bytes:
    """Read a URL into memory with a progress bar that disappears when done."""
    import urllib.request  # here, not at the top: a load from the cache needs no HTTP stack

    from tqdm.auto import tqdm

    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
        total = response.headers.get("Content-Length")
        chunks = []
        with tqdm(
            total=int(total) if total else None,
            unit="B",
            unit_scale=True,
            desc=url.rsplit("/", 1)[-1],
            leave=False,
            disable=None,  # no bar where stderr is not a terminal or notebook
        ) as bar:
            while chunk := response.read(1 << 20):
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks)


def _fetch_verified(spec: _IdxFile, urls: list[str]) -> bytes:
    """Try each mirror in turn; return the first decompressed file whose SHA-256 matches."""
    failures = []
    for base in urls:
        url = base + spec.name + ".gz"
        try:
            data = gzip.decompress(_download(url))
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then the next mirror
            failures.append(f"  {url}: {type(exc).__name__}: {exc}")
            continue
        if _sha256(data) == spec.sha256:
            return data
        failures.append(f"  {url}: checksum mismatch ({len(data)} bytes after gunzip)")
    raise MirrorError(
        f"Could not get a valid copy of {spec.name} from any mirror:\n"
        + "\n".join(failures)
        + "\n"
        + _FIX_HINT
    )


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a cache file atomically, turning an unwritable folder into a :class:`CacheError`."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise CacheError(
            f"The MNIST cache folder {path.parent} is not writable ({exc.strerror or exc}). "
            "Set BMNIST_CACHE to a folder you can write to."
        ) from exc


def _read_cached(path: Path, spec: _IdxFile) -> bytes | None:
    """Return the cached bytes if the file is there and intact, else ``None``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return data if len(data) == spec.size and _sha256(data) == spec.sha256 else None


def _cached_or_fetched(path: Path, spec: _IdxFile, urls: list[str]) -> bytes:
    """Return the verified cached file, fetching and caching it first if missing or corrupt."""
    data = _read_cached(path, spec)
    if data is None:
        data = _fetch_verified(spec, urls)
        _write_atomic(path, data)
    return data


def fetch(*, cache: Path | None = None, source: Path | None = None) -> dict[str, Path]:
    """Make sure the cache holds all four verified files; download only what is missing or corrupt.

    :param cache: Cache folder; defaults to :func:`default_cache_dir`.
    :param source: A local folder holding the four ``.gz`` files, used instead of the mirrors.
    :returns: The path of each cached file, keyed like :data:`MNIST_FILES`.
    :raises MirrorError: No mirror delivered a valid copy of some file.
    :raises CacheError: The cache folder is not writable.
    """
    folder = Path(cache) if cache is not None else default_cache_dir()
    urls = [Path(source).resolve().as_uri() + "/"] if source is not None else mirrors()
    for spec in MNIST_FILES.values():
        _cached_or_fetched(folder / spec.name, spec, urls)
    return {key: folder / spec.name for key, spec in MNIST_FILES.items()}


def load_mnist(*, cache_dir: Path | str | None = None) -> dict[str, np.ndarray]:
    """Load MNIST from the cache, downloading and verifying it on first use.

    :param cache_dir: Cache folder; defaults to ``$BMNIST_CACHE`` or the platform cache folder.
    :returns: Read-only ``uint8`` arrays ``x_train`` (60000, 28, 28), ``y_train`` (60000,),
        ``x_test`` (10000, 28, 28) and ``y_test`` (10000,).
    """
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    urls = mirrors()
    arrays = {}
    for key, spec in MNIST_FILES.items():
        data = _cached_or_fetched(folder / spec.name, spec, urls)
        array = np.frombuffer(data, dtype=np.uint8, offset=spec.header)
        arrays[key] = array.reshape(-1, *_IMAGE_SHAPE) if key.startswith("x") else array
    return arrays


_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _check_digit(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 9:
        raise ValueError(f"{name} must be a digit from 0 to 9, got {value!r}.")
    return int(value)


def _standardize(images: np.ndarray) -> np.ndarray:
    """Give every image zero mean and unit variance, in place; a constant image becomes all zeros.

    :param images: Floating-point images ``(n, 28, 28)``, overwritten.
    :returns: ``images``.
    """
    flat = images.reshape(len(images), -1)
    flat -= flat.mean(axis=1, keepdims=True)
    std = np.sqrt(np.einsum("ij,ij->i", flat, flat) / flat.shape[1])
    std[std == 0] = 1
    flat /= std[:, None]
    return images


def binary_subset(
    mnist: dict[str, np.ndarray],
    *,
    pos_digit: int = 1,
    neg_digit: int = 7,
    standardize: bool = True,
    dtype: type | np.dtype = np.float64,
) -> dict[str, np.ndarray]:
    """Keep two digits of MNIST and label them for binary classification.

    :param mnist: The dict returned by :func:`load_mnist`.
    :param pos_digit: Digit labelled 1.0.
    :param neg_digit: Digit labelled 0.0.
    :param standardize: Give every image zero mean and unit variance.
    :param dtype: Floating-point type of images and labels.
    :returns: ``x_train``, ``y_train``, ``x_test``, ``y_test`` for the two digits, in MNIST order.
    :raises ValueError: Bad digits, a dtype that is not floating-point, or ``mnist`` lacks a key or has
        inconsistent lengths.
    """
    pos = _check_digit("pos_digit", pos_digit)
    neg = _check_digit("neg_digit", neg_digit)
    if pos == neg:
        raise ValueError(f"pos_digit and neg_digit must differ, both are {pos}.")
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"dtype must be a floating-point type such as np.float32, got {np.dtype(dtype)}.")
    missing = [k for k in _KEYS if k not in mnist]
    if missing:
        raise ValueError(f"mnist lacks {', '.join(missing)}; pass the dict returned by load_mnist().")
    subset = {}
    for split in ("train", "test"):
        x, y = np.asarray(mnist[f"x_{split}"]), np.asarray(mnist[f"y_{split}"])
        if len(x) != len(y):
            raise ValueError(f"x_{split} has {len(x)} images but y_{split} has {len(y)} labels.")
        keep = (y == pos) | (y == neg)
        images = x[keep].astype(dtype)  # a copy, so standardising in place is safe
        subset[f"x_{split}"] = _standardize(images) if standardize else images
        subset[f"y_{split}"] = (y[keep] == pos).astype(dtype)
    return {k: subset[k] for k in _KEYS}


def _info(folder: Path) -> str:
    lines = [f"cache: {folder}", f"mirrors: {', '.join(mirrors())}"]
    for spec in MNIST_FILES.values():
        path = folder / spec.name
        if not path.exists():
            state = "missing"
        elif _read_cached(path, spec) is None:
            state = "corrupt (will be fetched again)"
        else:
            state = f"ok, {spec.size} bytes"
        lines.append(f"  {spec.name}: {state}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``fetch`` and ``info``."""
    parser = argparse.ArgumentParser(prog="python -m bmnist_helpers.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = sub.add_parser("fetch", help="download and verify MNIST into the cache")
    fetch_cmd.add_argument("--from", dest="source", type=Path, help="folder holding the four .gz files")
    sub.add_parser("info", help="print where the cache is and what it holds")
    args = parser.parse_args(argv)
    folder = default_cache_dir()
    if args.command == "info":
        print(_info(folder))
        return 0
    try:
        fetch(cache=folder, source=args.source)
    except (MirrorError, CacheError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(_info(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
