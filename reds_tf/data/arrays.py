"""In-memory image datasets (Fashion-MNIST, CIFAR-10): uint8 arrays -> ``Splits``.

Both keep the pixels as uint8 in memory (Fashion-MNIST's 70k images take 55 MB that way instead of
220 MB as float32) and scale to [0, 1] float32 inside the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from reds_tf._keras import tf
from reds_tf.data.augment import finish_train
from reds_tf.data.splits import Splits, balanced_limit, class_counts, stratified_carve


def splits_from_arrays(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    class_names: list[str],
    validation_fraction: float,
    seed: int,
    limit: int | None,
    augment_fn: Callable | None,
    shuffle: bool,
    info: dict[str, Any],
    pass_key: Any = None,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    pixel_scale: float | None = 255.0,
) -> Splits:
    """Carve a stratified validation split from the training arrays and wrap all three in tf.data.

    ``augment_fn(image float [H,W,C] in [0,1], seed int64[2]) -> image`` runs on training only.
    ``pass_key``: see ``augment.shuffled_with_seeds``. ``val`` = (x, y) arrays of a given validation
    split (then nothing is carved); x is divided by ``pixel_scale`` (None: kept as it is, as float32).
    """
    if val is None:
        keep, carved = stratified_carve(y_train, validation_fraction, seed)
        x_val, y_val = x_train, y_train
        rule = f"stratified seeded carve of {validation_fraction:.0%} of the training set for validation"
    else:
        (x_val, y_val), keep = val, np.arange(len(y_train))
        carved = np.arange(len(y_val))
        rule = "validation = the given validation set"
    idx = {
        "train": balanced_limit(keep, y_train[keep], limit, seed),
        "val": balanced_limit(carved, y_val[carved], limit, seed + 1),
        "test": balanced_limit(np.arange(len(y_test)), y_test, limit, seed + 2),
    }
    src = {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}

    def scale(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.cast(x, tf.float32)
        return (x if pixel_scale is None else x / pixel_scale), tf.cast(y, tf.int32)

    def aug(x: tf.Tensor, y: tf.Tensor, s: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment_fn(tf.cast(x, tf.float32) / 255.0, s), y

    datasets = {}
    for split, ids in idx.items():
        xs, ys = src[split]
        ds = tf.data.Dataset.from_tensor_slices((xs[ids], ys[ids].astype(np.int32)))
        if split == "train":
            if augment_fn is not None:
                # aug scales already; the final map only fixes dtypes.
                ds = finish_train(
                    ds,
                    len(ids),
                    seed=seed,
                    shuffle=shuffle,
                    pass_key=pass_key,
                    augment_fn=aug,
                    preprocess_fn=lambda x, y: (tf.cast(x, tf.float32), tf.cast(y, tf.int32)),
                )
            else:
                ds = finish_train(
                    ds,
                    len(ids),
                    seed=seed,
                    shuffle=shuffle,
                    pass_key=pass_key,
                    augment_fn=None,
                    preprocess_fn=scale,
                )
        else:
            ds = ds.map(scale)
        datasets[split] = ds
    sizes = {k: int(len(v)) for k, v in idx.items()}
    counts = {
        "train": class_counts(y_train[idx["train"]], len(class_names)),
        "val": class_counts(y_val[idx["val"]], len(class_names)),
        "test": class_counts(y_test[idx["test"]], len(class_names)),
    }
    info = {
        **info,
        "split_rule": f"{rule}; test = the official test set",
        "seed": seed,
        "limit": limit,
        "augment": augment_fn is not None,
        "class_counts": counts,
    }
    return Splits(
        pass_key=pass_key,
        train=datasets["train"],
        val=datasets["val"],
        test=datasets["test"],
        num_classes=len(class_names),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        class_names=list(class_names),
        sizes=sizes,
        info=info,
    )
