"""Fashion-MNIST from the original gzipped IDX files (Debian ``dataset-fashion-mnist``, or any copy).

x: float32 (28, 28, 1) in [0, 1]; y: int32 0..9. Validation is a stratified carve of the 60k training
images; the 10k test images are only for the final report. Training augmentation (``augment=True``):
random horizontal flip and a shift of up to 2 pixels.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from reds_tf.data.layout import find_fashion_mnist
from reds_tf.data.splits import Splits
from reds_tf.errors import DatasetLayoutError

CLASS_NAMES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_MAGIC = {1: 0x00000801, 3: 0x00000803}  # unsigned-byte data with 1 or 3 dimensions


def _hex(v: int | None) -> str:
    return "none (file shorter than 4 bytes)" if v is None else f"{v:#010x}"


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes with ``ndim`` dimensions, checking magic and size."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            buf = f.read()
    except (OSError, EOFError) as e:  # BadGzipFile is an OSError; a cut-off file raises EOFError
        raise DatasetLayoutError(
            f"Cannot decompress IDX file {str(path)!r}: {e}. Fix: the file is truncated or not gzip; "
            "re-install it (`apt-get install --reinstall dataset-fashion-mnist`) or download it again."
        ) from e
    header = 4 + 4 * ndim
    magic = struct.unpack(">i", buf[:4])[0] if len(buf) >= 4 else None
    if magic != _MAGIC[ndim]:
        raise DatasetLayoutError(
            f"IDX file {str(path)!r} has magic number {_hex(magic)}, expected {_MAGIC[ndim]:#010x} "
            f"(unsigned bytes, {ndim} dimension(s)). Fix: images and labels files may be swapped or the "
            "file is not an IDX file."
        )
    if len(buf) < header:
        raise DatasetLayoutError(
            f"IDX file {str(path)!r} is {len(buf)} bytes, shorter than its {header}-byte header. "
            "Fix: the file is truncated; download it again."
        )
    dims = struct.unpack(f">{ndim}i", buf[4:header])
    expected = int(np.prod(dims)) + header
    if len(buf) != expected:
        raise DatasetLayoutError(
            f"IDX file {str(path)!r} has {len(buf)} bytes but its header {dims} needs {expected}. "
            "Fix: the file is truncated or corrupt; download it again."
        )
    return np.frombuffer(buf, np.uint8, offset=header).reshape(dims)


def load_arrays(data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, ...]:
    """(x_train, y_train, x_test, y_test) as uint8; x with a trailing channel axis, shape (n, 28, 28, 1)."""
    root = find_fashion_mnist(data_dir)
    x_tr = read_idx(root / "train-images-idx3-ubyte.gz", 3)
    y_tr = read_idx(root / "train-labels-idx1-ubyte.gz", 1)
    x_te = read_idx(root / "t10k-images-idx3-ubyte.gz", 3)
    y_te = read_idx(root / "t10k-labels-idx1-ubyte.gz", 1)
    for x, y, name in ((x_tr, y_tr, "train"), (x_te, y_te, "t10k")):
        if len(x) != len(y) or (len(y) and y.max() > 9):
            raise DatasetLayoutError(
                f"Fashion-MNIST {name} files disagree: {len(x)} images, {len(y)} labels "
                f"(max label {int(y.max()) if len(y) else None}, expected <= 9) in {str(root)!r}. "
                "Fix: images and labels must come from the same release; download both again."
            )
    return x_tr[..., None], y_tr, x_te[..., None], y_te


def load(
    data_dir: str | os.PathLike | None = None,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    augment: bool = True,
    shuffle: bool = True,
    pass_key: Any = None,
) -> Splits:
    """Fashion-MNIST as :class:`Splits` (see the module docstring)."""
    from reds_tf.data.arrays import splits_from_arrays  # TF-importing helpers only when loading
    from reds_tf.data.augment import shift_flip_image

    x_tr, y_tr, x_te, y_te = load_arrays(data_dir)
    return splits_from_arrays(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=CLASS_NAMES,
        validation_fraction=validation_fraction,
        seed=seed,
        limit=limit,
        augment_fn=(lambda im, s: shift_flip_image(im, s, pad=2)) if augment else None,
        shuffle=shuffle,
        pass_key=pass_key,
        info={
            "dataset": "fashion_mnist",
            "source": str(find_fashion_mnist(data_dir)),
            "preprocessing": "x / 255",
            "augmentation": "random horizontal flip, shift <= 2 px (training only)" if augment else "none",
        },
    )
