"""Offline data sets, each built deterministically and cached per process. Nothing is downloaded."""

from __future__ import annotations

import functools
import gzip
import inspect
import re
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DATA_SEED = 0  # the data are the same for every run seed; run seeds change init and batch order


@dataclass(frozen=True)
class Splits:
    """Training data with a validation part carved from it, and a separate test set.

    Tensors are tuples (inputs, targets, ...). ``for_split("validation")`` trains on the
    training part minus the validation part and judges on the validation part;
    ``for_split("test")`` trains on all training data and judges on the test set.
    """

    train: tuple[torch.Tensor, ...]
    test: tuple[torch.Tensor, ...]
    validation_fraction: float = 0.15

    def for_split(self, split: str) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        if split == "test":
            return self.train, self.test
        if split != "validation":
            raise ValueError(f"split must be 'validation' or 'test', got {split!r}")
        n_val = int(len(self.train[0]) * self.validation_fraction)
        return (tuple(t[:-n_val] for t in self.train), tuple(t[-n_val:] for t in self.train))


def _shuffled(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(DATA_SEED).permutation(len(arrays[0]))
    return tuple(a[order] for a in arrays)


@functools.cache
def breast_cancer() -> Splits:
    """scikit-learn's bundled Wisconsin breast cancer set, standardised with training statistics."""
    from sklearn.datasets import load_breast_cancer

    x, y = _shuffled(*load_breast_cancer(return_X_y=True))
    n_test = 169
    mean, std = x[n_test:].mean(0), x[n_test:].std(0)
    x = torch.tensor((x - mean) / std, dtype=torch.float32)
    y = torch.tensor(y, dtype=torch.float32)
    return Splits(train=(x[n_test:], y[n_test:]), test=(x[:n_test], y[:n_test]))


@functools.cache
def mnist1d() -> Splits:
    """MNIST-1D (Greydanus), generated locally from its default arguments (no download)."""
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    as_tensors = lambda x, y: (torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long))
    return Splits(train=as_tensors(data["x"], data["y"]), test=as_tensors(data["x_test"], data["y_test"]))


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


@functools.cache
def fashion_mnist(n_train: int = 12000, n_test: int = 2000) -> tuple[Splits, str]:
    """Fashion-MNIST subsets from the Debian package, or scikit-learn's digits if it is missing.

    Returns the splits and the name of the data actually used.
    """
    files = [FASHION_MNIST_DIR / f"{part}-{kind}-idx{dim}-ubyte.gz"
             for part in ("train", "t10k") for kind, dim in (("images", 3), ("labels", 1))]
    if all(f.exists() for f in files):
        x_train, y_train, x_test, y_test = (_read_idx(f) for f in files)
        x_train, y_train = _shuffled(x_train, y_train)
        x_train, y_train, x_test, y_test = x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test]
        name = "Fashion-MNIST"
    else:
        warnings.warn(f"Fashion-MNIST not found in {FASHION_MNIST_DIR} (install the Debian package "
                      "dataset-fashion-mnist); using scikit-learn's 8x8 digits instead")
        from sklearn.datasets import load_digits

        x, y = _shuffled(*load_digits(return_X_y=True))
        x = (x * (255 / 16)).reshape(-1, 8, 8)
        x_train, y_train, x_test, y_test = x[360:], y[360:], x[:360], y[:360]
        name = "digits"
    to_x = lambda a: torch.tensor(np.asarray(a, dtype=np.float32) / 255.0 - 0.5).unsqueeze(1)
    to_y = lambda a: torch.tensor(np.asarray(a, dtype=np.int64))
    return Splits(train=(to_x(x_train), to_y(y_train)), test=(to_x(x_test), to_y(y_test))), name


def _kjv_text() -> str | None:
    """The King James Bible via the Debian package bible-kjv's ``bible`` program, verse refs stripped."""
    program = shutil.which("bible")
    if program is None:
        return None
    result = subprocess.run([program, "-f", "Ge1:1-Re22:21"], capture_output=True, text=True, check=False)
    if result.returncode != 0 or len(result.stdout) < 100_000:
        return None
    return "\n".join(re.sub(r"^\S+\d+:\d+ ", "", line) for line in result.stdout.splitlines())


def _stdlib_text() -> str:
    """Python's own standard library sources: an always-available fallback corpus."""
    import collections, dataclasses, json, textwrap, typing

    return "\n".join(inspect.getsource(m) for m in (collections, dataclasses, functools, inspect, json, textwrap, typing))


@functools.cache
def character_corpus() -> tuple[torch.Tensor, list[str], str]:
    """Character ids of the corpus, its vocabulary and the corpus name."""
    text = _kjv_text()
    name = "King James Bible"
    if text is None:
        warnings.warn("bible-kjv not installed (Debian packages bible-kjv, bible-kjv-text); "
                      "using Python's standard library sources as the text corpus")
        text, name = _stdlib_text(), "Python stdlib sources"
    vocabulary = sorted(set(text))
    index = {c: i for i, c in enumerate(vocabulary)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    return ids, vocabulary, name


@functools.cache
def noisy_quadratic(dim: int = 100, n_train: int = 1000, n_test: int = 1000) -> tuple[Splits, torch.Tensor]:
    """DeepOBS's quadratic_deep: Hessian with 90 % eigenvalues in [0, 1] and 10 % in [30, 60],
    randomly rotated; data points x ~ N(0, I). Returns the splits (x only) and the Hessian."""
    rng = np.random.default_rng(DATA_SEED)
    n_big = dim // 10
    eigenvalues = np.concatenate([rng.uniform(0, 1, dim - n_big), rng.uniform(30, 60, n_big)])
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    hessian = torch.tensor(rotation @ np.diag(eigenvalues) @ rotation.T, dtype=torch.float32)
    x = torch.tensor(rng.standard_normal((n_train + n_test, dim)), dtype=torch.float32)
    return Splits(train=(x[n_test:],), test=(x[:n_test],)), hessian


@dataclass(frozen=True)
class ClickFields:
    n_users: int = 2000
    n_items: int = 2000
    n_categories: int = 50


@functools.cache
def synthetic_clicks(n_train: int = 40000, n_test: int = 8000, fields: ClickFields = ClickFields()) -> Splits:
    """Clicks from a hidden factorisation model over Zipf-distributed sparse ids (user, item, category).

    Most ids are rare, so each minibatch touches few embedding rows: the gradients are sparse.
    Inputs are (n, 3) id tensors; targets are 0/1 clicks.
    """
    rng = np.random.default_rng(DATA_SEED)
    n = n_train + n_test
    zipf_ids = lambda size: np.minimum(rng.zipf(1.3, n), size) - 1
    users, items = zipf_ids(fields.n_users), zipf_ids(fields.n_items)
    categories = items % fields.n_categories
    rank = 8
    user_vectors = rng.standard_normal((fields.n_users, rank)) / np.sqrt(rank) * 1.5
    item_vectors = rng.standard_normal((fields.n_items, rank)) / np.sqrt(rank) * 1.5
    category_bias = rng.standard_normal(fields.n_categories)
    logits = (user_vectors[users] * item_vectors[items]).sum(1) + category_bias[categories] - 1.0
    clicks = rng.random(n) < 1 / (1 + np.exp(-logits))
    ids = torch.tensor(np.stack([users, items, categories], 1), dtype=torch.long)
    y = torch.tensor(clicks, dtype=torch.float32)
    return Splits(train=(ids[n_test:], y[n_test:]), test=(ids[:n_test], y[:n_test]))
