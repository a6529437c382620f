"""Row-sparse models: convert a plain model, read its RowPlan, save and load it.

``make_row_sparse`` clones a plain functional/Sequential model, replacing every Dense and Conv2D
layer the plan names by its row-sparse twin with the plan's counts, the row orders and the weights
copied. Depthwise convolutions, BatchNorm and the other layers stay as they are (dense). Levels are
switched by ``reds_tf.nested.set_level`` / ``level_scope``, as for nested-width models.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._keras import keras
from ..errors import NotARedsModelError, PlanError
from ..keras_file import load_keras, save_keras
from .plan import RowPlan
from .row_sparse_conv2d import RowSparseConv2D
from .row_sparse_dense import RowSparseDense

L = keras.layers
ROW_SPARSE_CLASSES = (RowSparseDense, RowSparseConv2D)
_TWIN = {L.Dense: RowSparseDense, L.Conv2D: RowSparseConv2D}
PLAIN = {twin: plain for plain, twin in _TWIN.items()}


def custom_objects() -> dict[str, type]:
    """Name -> class of the row-sparse layers, for ``keras.models.load_model``."""
    return {cls.__name__: cls for cls in ROW_SPARSE_CLASSES}


def sparse_layers(model: keras.Model) -> list[Any]:
    """The row-sparse layers of a model, in layer order."""
    return [layer for layer in model.layers if isinstance(layer, ROW_SPARSE_CLASSES)]


def _fan_in(layer: Any) -> int:
    return int(np.prod(layer.kernel.shape[:-1]))


def candidate_layers(model: keras.Model) -> list[tuple[str, int]]:
    """(name, fan_in) of every layer DRESS can make row-sparse: plain Dense and Conv2D (groups=1).

    Depthwise convolutions are not candidates: their rows hold only kh*kw weights, so they stay dense.
    """
    out = []
    for layer in model.layers:
        if isinstance(layer, ROW_SPARSE_CLASSES):
            out.append((layer.name, layer.fan_in))
        elif type(layer) in _TWIN and getattr(layer, "groups", 1) == 1:
            out.append((layer.name, _fan_in(layer)))
    return out


def make_row_sparse(model: keras.Model, orders: Mapping[str, np.ndarray], plan: RowPlan) -> keras.Model:
    """A row-sparse copy of plain ``model`` (weights copied) whose levels are the plan's levels.

    Args:
        model: a built plain functional/Sequential tf_keras model.
        orders: per plan layer, int32 ``(rows, fan_in)``: row r's flat column indices by descending
            importance (``scores.row_orders``).
        plan: the per-row counts; its layers must be plain Dense/Conv2D layers of ``model`` with
            the fan_in the plan states.
    """
    fan = dict(candidate_layers(model))
    for name, f in zip(plan.layers, plan.fan_in, strict=True):
        if name not in fan:
            raise PlanError(
                f"RowPlan layer '{name}' is not a plain Dense/Conv2D layer of model '{model.name}'. "
                f"Candidates: {sorted(fan)}. Fix: solve the counts for this model."
            )
        if fan[name] != f:
            raise PlanError(
                f"RowPlan says layer '{name}' has fan_in {f}; in model '{model.name}' it has {fan[name]}."
            )
        if name not in orders:
            raise PlanError(f"No row order for layer '{name}'. Fix: pass orders from scores.row_orders.")

    def clone(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer.name in plan.layers:
            return _TWIN[type(layer)](counts=list(plan.column(layer.name)), **cfg)
        return type(layer).from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights:
            continue
        target = new.get_layer(layer.name)
        if isinstance(target, ROW_SPARSE_CLASSES):
            target.kernel.assign(layer.kernel)
            if target.use_bias:
                target.bias.assign(layer.bias)
            target.set_order(orders[layer.name])
        else:
            target.set_weights(layer.get_weights())
    return new


def plan_of(model: keras.Model) -> RowPlan:
    """The RowPlan stored in a row-sparse model's layers."""
    layers = sparse_layers(model)
    if not layers:
        raise NotARedsModelError(
            f"Model '{model.name}' has no row-sparse layers. Fix: reds_tf.dress.make_row_sparse(model, ...)."
        )
    ks = {len(layer.counts) for layer in layers if layer.counts is not None}
    if len(ks) > 1:
        raise PlanError(f"Row-sparse layers of '{model.name}' disagree on the number of levels: {sorted(ks)}")
    k = ks.pop() if ks else 1
    cols = [list(layer.counts) if layer.counts is not None else [layer.fan_in] * k for layer in layers]
    counts = tuple(tuple(c[i] for c in cols) for i in range(k))
    return RowPlan(tuple(layer.name for layer in layers), tuple(layer.fan_in for layer in layers), counts)


def orders_of(model: keras.Model) -> dict[str, np.ndarray]:
    """Row orders of every row-sparse layer (int32, ``(rows, fan_in)``)."""
    return {layer.name: layer.order.numpy().astype(np.int32) for layer in sparse_layers(model)}


def save_model(model: keras.Model, path: str | Path) -> None:
    """Save a row-sparse model as ``.keras`` (atomically): weights, row orders and counts included."""
    save_keras(model, path, plan_of)  # plan_of: refuse to save something load_model would reject


def load_model(path: str | Path) -> keras.Model:
    """Load a row-sparse model saved by ``save_model``; raises NotARedsModelError otherwise."""
    model = load_keras(path, custom_objects(), "row-sparse model", "reds_tf.dress.save_model")
    plan_of(model)
    return model
