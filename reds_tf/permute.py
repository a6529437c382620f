"""Function-preserving reordering of every unit group by descending importance.

A group's permutation is applied wherever its unit index appears: every producer's
kernel output axis and bias (an ``Add`` of permuted tensors is the permuted sum),
every tied BatchNorm (gamma, beta, moving statistics, per-level rows included) and
depthwise layer (kernel channel axis, bias), and the input axis of every consumer
(Conv2D kernel axis 2; Dense rows per Flatten position, row ``p*C + c``). Since each
unit moves together with everything that reads or writes it, the permuted network
computes the same function up to float rounding.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._keras import keras
from .errors import PlanError
from .topology import unit_groups

L = keras.layers


def permutation_from_scores(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per group, the unit order by descending score (stable: ties keep their order)."""
    return {g: np.argsort(-np.asarray(s, dtype=np.float64), kind="stable") for g, s in scores.items()}


def _take(var: Any, perm: np.ndarray, axis: int) -> None:
    var.assign(np.take(var.numpy(), perm, axis=axis))


def _check_perm(group: str, perm: Any, full: int) -> np.ndarray:
    p = np.asarray(perm)
    if p.shape != (full,) or not np.array_equal(np.sort(p), np.arange(full)):
        raise PlanError(
            f"Permutation of group '{group}' must be a permutation of range({full}). Received: shape "
            f"{p.shape}, values {p[:8].tolist()}{'...' if p.size > 8 else ''}. Fix: use "
            "permutation_from_scores(scores)."
        )
    return p.astype(np.int64)


def permute_model(model: keras.Model, perms: Mapping[str, np.ndarray]) -> keras.Model:
    """A NEW model (same classes, plain or nested) with every group's units reordered.

    ``perms[g][i]`` is the old index of the unit that becomes unit i of group g; groups
    missing from ``perms`` keep their order. ``model`` itself is not modified. The
    outputs equal the original's to float rounding (see ``max_abs_diff``).
    """
    members = {m.name: m for m in unit_groups(model)}
    unknown = sorted(set(perms) - set(members))
    if unknown:
        raise PlanError(f"Unknown unit groups {unknown}. Model '{model.name}' has groups {list(members)}.")
    new = keras.models.clone_model(model)
    new.set_weights(model.get_weights())
    for g, perm in perms.items():
        m = members[g]
        p = _check_perm(g, perm, m.full)
        for name in m.producers:  # several when an Add joins their outputs: all move alike
            producer = new.get_layer(name)
            _take(producer.kernel, p, -1)
            if producer.use_bias:
                _take(producer.bias, p, 0)
        for name in m.tied:
            layer = new.get_layer(name)
            if isinstance(layer, L.DepthwiseConv2D):
                _take(layer.depthwise_kernel, p, 2)
                if layer.use_bias:
                    _take(layer.bias, p, 0)
            else:  # BatchNormalization: per-channel vectors, or (K, C) per-level statistics
                for var in (layer.gamma, layer.beta, layer.moving_mean, layer.moving_variance):
                    if var is not None:
                        _take(var, p, -1)
        for name, positions in m.consumers:
            layer = new.get_layer(name)
            if isinstance(layer, L.Dense):
                k = layer.kernel.numpy()
                units = k.shape[1]
                k = k.reshape(positions, m.full, units)[:, p, :].reshape(positions * m.full, units)
                layer.kernel.assign(k)
            else:
                _take(layer.kernel, p, 2)
    return new


def sort_model(
    model: keras.Model, scores: Mapping[str, np.ndarray]
) -> tuple[keras.Model, dict[str, np.ndarray]]:
    """Permute by descending score; returns the new model and the scores in the new unit order."""
    perms = permutation_from_scores(scores)
    return permute_model(model, perms), {g: np.asarray(scores[g])[p] for g, p in perms.items()}


def max_abs_diff(a: keras.Model, b: keras.Model, x: Any) -> float:
    """Largest absolute difference of two models' outputs on ``x`` (inference mode)."""
    ya, yb = a(x, training=False), b(x, training=False)
    ya = ya if isinstance(ya, (list, tuple)) else [ya]
    yb = yb if isinstance(yb, (list, tuple)) else [yb]
    return float(max(np.max(np.abs(np.asarray(u) - np.asarray(v))) for u, v in zip(ya, yb, strict=True)))
