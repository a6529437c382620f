"""The ``Splits`` record every loader returns, and the seeded index helpers they share.

Pure numpy: the validation carve and the per-split ``limit`` are decided on labels alone, before any
file is decoded, so a tiny CI recipe never reads more of a dataset than it uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from reds_tf._keras import tf


@dataclass
class Splits:
    """Unbatched ``tf.data`` splits of one dataset plus what a results file must record about them.

    ``train`` yields ``(x float32 [H,W,C], y int32 scalar)`` with training augmentation applied (when
    requested) and is reshuffled each pass; ``val`` (carved from the training data) and ``test`` are in
    a fixed order without augmentation.
    """

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset
    num_classes: int
    input_shape: tuple[int, ...]
    class_names: list[str]
    sizes: dict[str, int]
    info: dict[str, Any] = field(default_factory=dict)
    pass_key: Any = None  # the ``pass_key`` option it was loaded with (``augment.set_pass`` names passes)


def stratified_carve(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of ``labels`` into (keep, carved) with ``round(fraction * n_c)`` of each class carved.

    Seeded, so the same seed always carves the same examples; both outputs are sorted.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1). Received: validation_fraction={fraction}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    carved = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        k = int(round(fraction * len(idx)))
        carved.append(rng.permutation(idx)[:k])
    carved_idx = np.sort(np.concatenate(carved)) if carved else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), carved_idx)
    return keep, carved_idx


def balanced_limit(indices: np.ndarray, labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """At most ``limit`` of ``indices``, taken round-robin over classes so small subsets stay balanced.

    ``labels[i]`` is the class of ``indices[i]``. Returns the chosen indices sorted (stable file order).
    """
    indices = np.asarray(indices)
    if limit is None or limit >= len(indices):
        return indices
    if limit < 1:
        raise ValueError(f"limit must be a positive number of examples per split. Received: limit={limit}.")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed + 7919)  # offset: independent of the validation carve's stream
    per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    order = []
    depth = max(len(p) for p in per_class)
    for r in range(depth):  # round r takes the r-th example of every class that still has one
        order.extend(p[r] for p in per_class if r < len(p))
        if len(order) >= limit:
            break
    return np.sort(indices[np.asarray(order[:limit])])


def class_counts(labels: np.ndarray, num_classes: int) -> list[int]:
    """Examples per class, for ``Splits.info``."""
    return np.bincount(np.asarray(labels, np.int64), minlength=num_classes).tolist()
