"""CIFAR-10 from the python pickle batches (``cifar-10-batches-py``), read without keras.

keras' own loader hard-codes 50,000 images and a download, so it cannot read a copy made elsewhere or
a small fixture tree. x: float32 (32, 32, 3) in [0, 1]; y: int32 0..9. Validation is a stratified
carve of the training batches. Training augmentation: random flip and a shift of up to 4 pixels (the
usual pad-4-and-crop).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from reds_tf.data.layout import find_cifar10
from reds_tf.data.splits import Splits
from reds_tf.errors import DatasetLayoutError


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")  # the batches are Python-2 pickles
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DatasetLayoutError(
            f"Cannot unpickle CIFAR-10 file {str(path)!r}: {e}. Fix: the file is truncated or not a "
            "CIFAR-10 python batch; extract cifar-10-python.tar.gz again."
        ) from e


def read_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (x uint8 [n, 32, 32, 3], y uint8 [n]). Rows are stored R(1024) G(1024) B(1024)."""
    d = _unpickle(Path(path))
    if b"data" not in d or b"labels" not in d:
        raise DatasetLayoutError(
            f"CIFAR-10 batch {str(path)!r} lacks b'data' or b'labels' (keys: {sorted(d)}). "
            "Fix: use the python version of CIFAR-10 (cifar-10-batches-py), not the binary one."
        )
    data = np.asarray(d[b"data"], np.uint8)
    labels = np.asarray(d[b"labels"], np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data) or labels.max(initial=0) > 9:
        raise DatasetLayoutError(
            f"CIFAR-10 batch {str(path)!r} has data {data.shape} and {len(labels)} labels; expected "
            "(n, 3072) uint8 with n labels in 0..9. Fix: extract cifar-10-python.tar.gz again."
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels.astype(np.uint8)


def load_arrays(
    data_dir: str | os.PathLike | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(x_train, y_train, x_test, y_test, class_names) from the five data batches and the test batch."""
    root = find_cifar10(data_dir)
    parts = [read_batch(root / f"data_batch_{i}") for i in range(1, 6)]
    x_te, y_te = read_batch(root / "test_batch")
    meta = _unpickle(root / "batches.meta")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(b"label_names", [])]
    if len(names) != 10:
        raise DatasetLayoutError(
            f"CIFAR-10 batches.meta in {str(root)!r} lists {len(names)} label names, expected 10. "
            "Fix: extract cifar-10-python.tar.gz again."
        )
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    return x_tr, y_tr, x_te, y_te, names


def load(
    data_dir: str | os.PathLike | None,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    augment: bool = True,
    shuffle: bool = True,
    pass_key: Any = None,
) -> Splits:
    """CIFAR-10 as :class:`Splits` (see the module docstring)."""
    from reds_tf.data.arrays import splits_from_arrays
    from reds_tf.data.augment import shift_flip_image

    x_tr, y_tr, x_te, y_te, names = load_arrays(data_dir)
    return splits_from_arrays(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=names,
        validation_fraction=validation_fraction,
        seed=seed,
        limit=limit,
        augment_fn=(lambda im, s: shift_flip_image(im, s, pad=4)) if augment else None,
        shuffle=shuffle,
        pass_key=pass_key,
        info={
            "dataset": "cifar10",
            "source": str(find_cifar10(data_dir)),
            "preprocessing": "x / 255",
            "augmentation": "random horizontal flip, shift <= 4 px (training only)" if augment else "none",
        },
    )
