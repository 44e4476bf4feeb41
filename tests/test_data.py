"""bmnist_helpers.data: download, mirror fallback, checksums, cache, subset (seed erratum 1)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from bmnist_helpers import data

from tests.conftest import ROOT, SHARED_MNIST, local_mirror

# --- synthetic idx files, served from a loopback HTTP server ---------------------------------


def _idx_images(n: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    header = np.array([2051, n, 28, 28], dtype=">i4").tobytes()
    return header + rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8).tobytes()


def _idx_labels(labels: np.ndarray) -> bytes:
    return np.array([2049, len(labels)], dtype=">i4").tobytes() + labels.astype(np.uint8).tobytes()


@pytest.fixture
def synthetic(monkeypatch, tmp_path):
    """Swap the download table for four small synthetic files; return their raw bytes by key."""
    raw = {
        "x_train": _idx_images(50, 0),
        "y_train": _idx_labels(np.arange(50) % 10),
        "x_test": _idx_images(20, 1),
        "y_test": _idx_labels(np.arange(20) % 10),
    }
    table = {
        key: data._IdxFile(f"syn-{key}", hashlib.sha256(b).hexdigest(), len(b), 16 if key[0] == "x" else 8)
        for key, b in raw.items()
    }
    monkeypatch.setattr(data, "MNIST_FILES", table)
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    for folder in (good, bad):
        folder.mkdir()
    for key, spec in table.items():
        (good / f"{spec.name}.gz").write_bytes(gzip.compress(raw[key]))
        corrupt = bytearray(raw[key])
        corrupt[-1] ^= 0xFF
        (bad / f"{spec.name}.gz").write_bytes(gzip.compress(bytes(corrupt)))
    (bad / f"{table['x_test'].name}.gz").write_bytes(gzip.compress(raw["x_test"])[:-30])  # truncated
    return raw, table, tmp_path


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        type(self).hits.append(self.path)
        super().do_GET()

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_root(synthetic):
    """A loopback HTTP server over the synthetic folders: /good/ and /bad/."""
    _, _, root = synthetic
    _CountingHandler.hits = []
    handler = functools.partial(_CountingHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_download_falls_back_past_dead_and_corrupt_mirrors(monkeypatch, synthetic, http_root, tmp_path):
    raw, table, _ = synthetic
    monkeypatch.setenv("BMNIST_MIRRORS", f"{_closed_port_url()},{http_root}/bad/,{http_root}/good/")
    cache = tmp_path / "cache"
    arrays = data.load_mnist(cache_dir=cache)
    assert arrays["x_train"].shape == (50, 28, 28) and arrays["x_test"].shape == (20, 28, 28)
    assert arrays["y_train"].tolist() == (np.arange(50) % 10).tolist()
    for key, spec in table.items():
        assert (cache / spec.name).read_bytes() == raw[key]  # only the verified copy was cached
    assert not list(cache.glob("*.part"))
    assert any(h.startswith("/bad/") for h in _CountingHandler.hits)


def test_all_mirrors_failing_lists_each_and_says_how_to_fix(monkeypatch, synthetic, http_root, tmp_path):
    dead = _closed_port_url()
    monkeypatch.setenv("BMNIST_MIRRORS", f"{dead}, {http_root}/bad/")
    with pytest.raises(data.MirrorError) as info:
        data.load_mnist(cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert dead in message and f"{http_root}/bad/" in message
    assert "checksum mismatch" in message
    assert "BMNIST_MIRRORS" in message and "fetch --from" in message
    assert not any((tmp_path / "cache").glob("syn-*"))


def test_corrupted_cache_file_is_fetched_again(monkeypatch, synthetic, http_root, tmp_path):
    raw, table, _ = synthetic
    monkeypatch.setenv("BMNIST_MIRRORS", f"{http_root}/good/")
    cache = tmp_path / "cache"
    data.load_mnist(cache_dir=cache)
    first_hits = len(_CountingHandler.hits)
    data.load_mnist(cache_dir=cache)
    assert len(_CountingHandler.hits) == first_hits  # second load: cache only
    target = cache / table["x_train"].name
    damaged = bytearray(target.read_bytes())
    damaged[100] ^= 0x01
    target.write_bytes(bytes(damaged))
    again = data.load_mnist(cache_dir=cache)
    assert len(_CountingHandler.hits) == first_hits + 1
    assert target.read_bytes() == raw["x_train"]
    assert again["x_train"].tobytes() == raw["x_train"][16:]


def test_read_only_cache_gives_a_clear_error(monkeypatch, synthetic, http_root, tmp_path):
    monkeypatch.setenv("BMNIST_MIRRORS", f"{http_root}/good/")
    if os.geteuid() == 0:  # root ignores permission bits; procfs refuses even root
        cache = Path("/proc/bmnist-cache")
    else:
        cache = tmp_path / "ro"
        cache.mkdir()
        cache.chmod(0o555)
    with pytest.raises(data.CacheError, match="not writable.*BMNIST_CACHE"):
        data.load_mnist(cache_dir=cache)


def _load_in_child(cache: str, mirror: str, table: dict) -> None:
    os.environ["BMNIST_MIRRORS"] = mirror
    data.MNIST_FILES = table
    data.load_mnist(cache_dir=cache)


def test_two_processes_fill_the_cache_at_once(synthetic, tmp_path):
    raw, table, root = synthetic
    cache = tmp_path / "shared-cache"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_load_in_child, args=(str(cache), (root / "good").as_uri(), table)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    for key, spec in table.items():
        assert (cache / spec.name).read_bytes() == raw[key]
    assert sorted(p.name for p in cache.iterdir()) == sorted(s.name for s in table.values())


def test_fetch_from_folder_and_info_cli(synthetic, tmp_path, monkeypatch):
    _, table, root = synthetic
    cache = tmp_path / "cli-cache"
    monkeypatch.setenv("BMNIST_CACHE", str(cache))
    monkeypatch.setenv("BMNIST_MIRRORS", _closed_port_url())
    assert data.main(["fetch", "--from", str(root / "good")]) == 0
    assert all((cache / s.name).exists() for s in table.values())
    assert data.main(["fetch", "--from", str(root / "bad")]) == 0  # cache already valid: nothing fetched
    assert data.default_cache_dir() == cache


def test_cli_reports_failure_without_traceback(tmp_path):
    env = {**os.environ, "BMNIST_CACHE": str(tmp_path / "c"), "BMNIST_MIRRORS": _closed_port_url()}
    proc = subprocess.run(
        [sys.executable, "-m", "bmnist_helpers.data", "fetch"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "BMNIST_MIRRORS" in proc.stderr
    info = subprocess.run(
        [sys.executable, "-m", "bmnist_helpers.data", "info"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert info.returncode == 0 and "missing" in info.stdout and str(tmp_path / "c") in info.stdout


# --- the real MNIST, from the local mirror ---------------------------------------------------


def _readme_counts() -> dict[str, list[int]]:
    text = (SHARED_MNIST / "README.md").read_text()
    return {
        split: [int(n) for n in re.search(rf"Label counts, {split}:\s+([\d ]+)", text).group(1).split()]
        for split in ("train", "test")
    }


def test_real_mnist_from_local_mirror_into_empty_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("BMNIST_MIRRORS", local_mirror())
    mnist = data.load_mnist(cache_dir=tmp_path / "empty")
    assert mnist["x_train"].shape == (60000, 28, 28) and mnist["x_train"].dtype == np.uint8
    assert mnist["y_train"].shape == (60000,) and mnist["x_test"].shape == (10000, 28, 28)
    counts = _readme_counts()
    assert np.bincount(mnist["y_train"]).tolist() == counts["train"]
    assert np.bincount(mnist["y_test"]).tolist() == counts["test"]
    # A mirror list whose first entry serves a corrupted train-images file still gives a correct cache.
    bad = tmp_path / "bad-mirror"
    shutil.copytree(SHARED_MNIST, bad)
    target = bad / "train-images-idx3-ubyte.gz"
    payload = bytearray(gzip.decompress(target.read_bytes()))
    payload[1000] ^= 0xFF
    target.chmod(0o644)
    target.write_bytes(gzip.compress(bytes(payload), compresslevel=1))
    monkeypatch.setenv("BMNIST_MIRRORS", f"{bad.as_uri()},{local_mirror()}")
    again = data.load_mnist(cache_dir=tmp_path / "second")
    assert np.array_equal(again["x_train"], mnist["x_train"])


# --- binary_subset ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_mnist():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    x[0] = 0  # a blank image
    y = np.arange(40) % 10
    return {"x_train": x, "y_train": y, "x_test": x[:20], "y_test": y[:20]}


def test_labels_follow_the_arguments_not_a_global(tiny_mnist):
    # Seed erratum 1: labels came from a global POS_DIGIT, not the pos_digit argument.
    subset = data.binary_subset(tiny_mnist, pos_digit=7, neg_digit=1)
    kept = tiny_mnist["y_train"][(tiny_mnist["y_train"] == 7) | (tiny_mnist["y_train"] == 1)]
    assert subset["y_train"].tolist() == (kept == 7).astype(float).tolist()
    other = data.binary_subset(tiny_mnist, pos_digit=3, neg_digit=0)
    assert len(other["y_train"]) == 8 and other["y_train"].sum() == 4


def test_standardisation_and_blank_images(tiny_mnist):
    subset = data.binary_subset(tiny_mnist, pos_digit=1, neg_digit=0, dtype=np.float32)
    flat = subset["x_train"].reshape(len(subset["x_train"]), -1)
    assert subset["x_train"].dtype == np.float32 and subset["y_train"].dtype == np.float32
    assert np.isfinite(flat).all()
    assert np.all(flat[0] == 0)  # the blank image stays blank instead of NaN
    np.testing.assert_allclose(flat[1:].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(flat[1:].std(axis=1), 1, atol=1e-5)
    raw = data.binary_subset(tiny_mnist, standardize=False)
    assert raw["x_train"].max() > 1
    floats = {k: v.astype(np.float32) for k, v in tiny_mnist.items()}
    before = {k: v.copy() for k, v in floats.items()}
    data.binary_subset(floats, pos_digit=1, neg_digit=0, dtype=np.float32)
    assert all(np.array_equal(floats[k], before[k]) for k in floats)  # standardising in place works on a copy


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pos_digit": 7, "neg_digit": 7}, "must differ"),
        ({"pos_digit": 10}, "digit from 0 to 9"),
        ({"neg_digit": -1}, "digit from 0 to 9"),
        ({"pos_digit": 1.5}, "digit from 0 to 9"),
        ({"dtype": np.uint8}, "floating-point type such as np.float32, got uint8"),
    ],
)
def test_bad_digits_are_named(tiny_mnist, kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.binary_subset(tiny_mnist, **kwargs)


def test_missing_key_is_named(tiny_mnist):
    broken = {k: v for k, v in tiny_mnist.items() if k != "y_test"}
    with pytest.raises(ValueError, match="lacks y_test.*load_mnist"):
        data.binary_subset(broken)


def test_default_mirrors_start_with_ones_that_answer_today():
    # Seed erratum 7: the only URL of the seed (yann.lecun.com) answers 403; it is the last resort.
    assert data.DEFAULT_MIRRORS[-1].startswith("http://yann.lecun.com")
    assert len(data.DEFAULT_MIRRORS) >= 3
