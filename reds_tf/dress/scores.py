"""Per-weight importance of the row-sparse candidates and the per-row orders built from it.

Scores are keyed by layer name, float64 ``(rows, fan_in)``: row r holds output unit r's incoming
weights, Conv2D columns flattened over (kh, kw, c_in) in row-major order. Taylor: ``|W * G|`` with
``G = sum_b dL_b/dW`` (signed, so noise cancels), as REDS's unit scores before they are summed per
unit; magnitude: ``|W|``; random: a seeded baseline.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._keras import keras
from ..importance import accumulated_gradients
from .model import candidate_layers

METHODS = ("taylor", "magnitude", "random")


def as_rows(kernel: np.ndarray) -> np.ndarray:
    """A Dense ``(in, out)`` or Conv2D ``(kh, kw, c_in, out)`` kernel as ``(out, fan_in)`` rows."""
    k = np.asarray(kernel)
    return k.reshape(-1, k.shape[-1]).T


def _kernels(model: keras.Model, layers: Sequence[str] | None) -> list[tuple[str, Any]]:
    names = [n for n, _ in candidate_layers(model)] if layers is None else list(layers)
    return [(n, model.get_layer(n).kernel) for n in names]


def magnitude_scores(model: keras.Model, layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``|w|`` of every weight of the candidate layers (or of ``layers``)."""
    return {n: np.abs(as_rows(k.numpy())).astype(np.float64) for n, k in _kernels(model, layers)}


def random_scores(
    model: keras.Model, layers: Sequence[str] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Uniform random scores per weight (the random-order baseline), reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    return {n: rng.random(as_rows(k.numpy()).shape) for n, k in _kernels(model, layers)}


def taylor_scores(
    model: keras.Model,
    data: Iterable[tuple[Any, Any]],
    layers: Sequence[str] | None = None,
    num_batches: int = 100,
) -> dict[str, np.ndarray]:
    """First-order Taylor saliency ``|W * sum_b dL_b/dW|`` per weight over ``num_batches`` batches."""
    kernels = _kernels(model, layers)
    grads = accumulated_gradients(model, [k for _, k in kernels], data, num_batches=num_batches)
    return {
        n: np.abs(as_rows(k.numpy()).astype(np.float64) * as_rows(g))
        for (n, k), g in zip(kernels, grads, strict=True)
    }


def row_orders(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per layer, int32 ``(rows, fan_in)``: each row's column indices by descending score.

    Ties keep the lower column first (a stable sort), so equal scores give a reproducible order.
    """
    out = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2 or not np.all(np.isfinite(s)):
            raise ValueError(
                f"Scores of layer '{name}' must be a finite (rows, fan_in) array. Received: shape {s.shape}"
            )
        out[name] = np.argsort(-s, axis=1, kind="stable").astype(np.int32)
    return out


def kept_importance(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per layer, ``p[n]`` = importance kept with the top n weights of every row, n = 0..fan_in.

    Concave in n (each row's scores are taken in descending order), which the count solver relies on.
    """
    out = {}
    for name, s in scores.items():
        top = -np.sort(-np.asarray(s, dtype=np.float64), axis=1)
        out[name] = np.concatenate([[0.0], np.cumsum(top.sum(axis=0))])
    return out
