"""Importance of every unit: first-order Taylor (|W * sum_b dL_b/dW|), L1 magnitude, random.

A unit's score is the sum over its incoming weights (Conv2D filter over kh, kw, c_in;
Dense column; plus the depthwise channel tied to the unit, for depthwise-separable
chains), over every producer of a group that an ``Add`` joins. Scores are keyed by
unit-group name, one float64 array of length ``full``. Works on plain models and on
nested models (scored at full width).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import numpy as np

from ._keras import keras, tf
from .nested import level_scope, nested_layers
from .topology import GroupMembers, is_softmax, unit_groups

L = keras.layers


def _unit_vars(model: keras.Model, m: GroupMembers) -> list[tuple[Any, tuple[int, ...]]]:
    """(variable, axes to sum over so that one value per unit remains) of a group's incoming weights."""
    out = []
    for name in m.producers:
        kernel = model.get_layer(name).kernel
        out.append((kernel, tuple(range(len(kernel.shape) - 1))))
    for name in m.tied:
        layer = model.get_layer(name)
        if isinstance(layer, L.DepthwiseConv2D):
            out.append((layer.depthwise_kernel, (0, 1, 3)))
    return out


def _full_width(model: keras.Model) -> Any:
    return level_scope(model, None) if nested_layers(model) else nullcontext()


def magnitude_scores(model: keras.Model) -> dict[str, np.ndarray]:
    """L1 norm of each unit's incoming weights (the magnitude baseline)."""
    return {
        m.name: sum(np.abs(v.numpy()).sum(axis=ax).astype(np.float64) for v, ax in _unit_vars(model, m))
        for m in unit_groups(model)
    }


def random_scores(model: keras.Model, seed: int = 0) -> dict[str, np.ndarray]:
    """Uniform random scores (the random-ranking baseline), reproducible by ``seed``."""
    rng = np.random.default_rng(seed)
    return {m.name: rng.random(m.full) for m in unit_groups(model)}


def _outputs_probabilities(model: keras.Model) -> bool:
    return is_softmax(model.outputs[0]._keras_history.layer)


def default_loss(model: keras.Model, y: Any) -> Callable[[Any, Any], Any]:
    """Cross-entropy matching the model output (logits or softmax) and the label format."""
    from_logits = not _outputs_probabilities(model)
    y_shape = tuple(np.shape(y))
    if len(y_shape) >= 2 and y_shape[-1] == model.output_shape[-1] and y_shape[-1] > 1:
        return keras.losses.CategoricalCrossentropy(from_logits=from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)


def accumulated_gradients(
    model: keras.Model,
    variables: list[Any],
    data: Iterable[tuple[Any, Any]],
    loss_fn: Callable[[Any, Any], Any] | None = None,
    num_batches: int = 100,
) -> list[np.ndarray]:
    """``G = sum_b dL_b/dv`` (signed, float64) for every variable, over ``num_batches`` batches of ``data``.

    The model runs in inference mode at full width (BatchNorm uses its moving statistics, dropout is
    off). ``loss_fn(y_true, y_pred)`` defaults to the cross-entropy ``default_loss`` picks.
    """
    if num_batches < 1:
        raise ValueError(f"taylor_scores needs num_batches >= 1. Received: num_batches={num_batches}")
    acc = [np.zeros(v.shape, np.float64) for v in variables]
    seen = 0
    with _full_width(model):

        @tf.function(reduce_retracing=True)
        def grads(x: Any, y: Any) -> list[Any]:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=False))
            return tape.gradient(loss, variables)

        for x, y in data:
            if loss_fn is None:
                loss_fn = default_loss(model, y)
            for a, g in zip(acc, grads(x, y), strict=True):
                a += g.numpy()
            seen += 1
            if seen >= num_batches:
                break
    if seen == 0:
        raise ValueError("taylor_scores got no batches from data. Fix: pass an iterable of (x, y) batches.")
    return acc


def taylor_scores(
    model: keras.Model,
    data: Iterable[tuple[Any, Any]],
    loss_fn: Callable[[Any, Any], Any] | None = None,
    num_batches: int = 100,
) -> dict[str, np.ndarray]:
    """First-order Taylor importance accumulated over ``num_batches`` batches of ``data``.

    G = sum_b dL_b/dW (signed, so noise cancels), saliency |W * G| per weight, summed per
    unit over its incoming weights (and its tied depthwise channel). The model runs in
    inference mode (BatchNorm uses its moving statistics, dropout is off).

    Args:
        model: plain or nested model (scored at full width).
        data: iterable or ``tf.data.Dataset`` of (x, y) batches.
        loss_fn: ``loss_fn(y_true, y_pred)``; default: cross-entropy chosen by ``default_loss``.
        num_batches: how many batches to accumulate (fewer if ``data`` ends first).
    """
    members = unit_groups(model)
    pairs = [_unit_vars(model, m) for m in members]
    variables = [v for vs in pairs for v, _ in vs]
    acc = accumulated_gradients(model, variables, data, loss_fn, num_batches)
    out, i = {}, 0
    for m, vs in zip(members, pairs, strict=True):
        score = np.zeros(m.full, np.float64)
        for v, ax in vs:
            score += np.abs(v.numpy().astype(np.float64) * acc[i]).sum(axis=ax)
            i += 1
        out[m.name] = score
    return out
