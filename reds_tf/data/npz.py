"""A user's own data as numpy arrays: ``train.npz`` and ``test.npz`` (and optionally ``val.npz``).

Each file holds ``x`` (N examples of the model's input shape) and ``y`` (N integer class labels
0..C-1); ``train.npz`` may add ``class_names`` (C strings). uint8 ``x`` is scaled to [0, 1]; float
``x`` is used as it is. Without ``val.npz`` the validation split is a stratified carve of the
training data. No augmentation: reds_tf cannot know which transforms keep the user's labels true.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from reds_tf.data.layout import find_npz, layout_error
from reds_tf.data.splits import Splits


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(x, y, other arrays) of one split file, checking that x and y exist and pair up."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise layout_error(
            "npz",
            f"Cannot read {str(path)!r} as .npz ({type(e).__name__}: {e}).",
            "write it again with np.savez.",
        ) from e
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise layout_error(
            "npz",
            f"{str(path)!r} has no array(s) {missing}. Received arrays: {sorted(arrays)}.",
            f"save it as np.savez({path.name!r}, x=inputs, y=labels).",
        )
    x, y = arrays.pop("x"), arrays.pop("y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or len(y) != len(x) or x.ndim < 2:
        raise layout_error(
            "npz",
            f"{str(path)!r}: x {x.shape} and y {y.shape} do not pair up; need x (N, *shape) and y (N,).",
            "give one integer label per example (not one-hot).",
        )
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise layout_error(
            "npz",
            f"{str(path)!r}: y must hold class indices 0..C-1. Received dtype {y.dtype}, "
            f"min {y.min() if len(y) else None}.",
            "store integer labels, e.g. y=np.argmax(one_hot, axis=1).astype(np.int32).",
        )
    if not (x.dtype == np.uint8 or np.issubdtype(x.dtype, np.floating)):
        raise layout_error(
            "npz",
            f"{str(path)!r}: x has dtype {x.dtype}; need uint8 (scaled by 1/255) or float (used as is).",
            "store x as uint8 pixels or float32 features.",
        )
    return x, y.astype(np.int64), arrays


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
    """The ``.npz`` splits in ``data_dir`` as :class:`Splits` (``augment`` is recorded as not applied)."""
    from reds_tf.data.arrays import splits_from_arrays  # TF-importing helpers only when loading

    root = find_npz(data_dir)
    split_files = {"train": root / "train.npz", "test": root / "test.npz", "val": root / "val.npz"}
    splits = {k: read_npz(p) for k, p in split_files.items() if p.is_file()}
    shapes = {k: (x.shape[1:], x.dtype.kind) for k, (x, _, _) in splits.items()}
    if len(set(shapes.values())) > 1:
        raise layout_error(
            "npz", f"The splits disagree on x's shape or kind: {shapes}.", "save every split in one format."
        )
    num_classes = 1 + max(int(y.max()) for _, y, _ in splits.values() if len(y))
    names = splits["train"][2].get("class_names")
    if names is not None and len(names) != num_classes:
        raise layout_error(
            "npz",
            f"train.npz names {len(names)} classes but the labels reach {num_classes - 1}.",
            "give one class name per label 0..C-1, or leave class_names out.",
        )
    x_tr, y_tr, _ = splits["train"]
    x_te, y_te, _ = splits["test"]
    return splits_from_arrays(
        x_tr,
        y_tr,
        x_te,
        y_te,
        class_names=[str(n) for n in names] if names is not None else [str(c) for c in range(num_classes)],
        validation_fraction=validation_fraction,
        seed=seed,
        limit=limit,
        augment_fn=None,
        shuffle=shuffle,
        pass_key=pass_key,
        info={
            "dataset": "npz",
            "source": str(root),
            "preprocessing": "x / 255" if x_tr.dtype == np.uint8 else "none (float x used as is)",
            "augmentation": "none (npz data)",
        },
        val=splits["val"][:2] if "val" in splits else None,
        pixel_scale=255.0 if x_tr.dtype == np.uint8 else None,
    )
