"""Hand a row-sparse model to the converter: the plain dense model plus orders and counts.

``to_plain`` is the interface the DRESS converter (``reds_tf.convert.dress``) reads; ``expand_level``
builds the float twin of one level's zero-expanded dense reference (the converter's bit-exact check
does the same in int8).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .._keras import keras
from .model import PLAIN, ROW_SPARSE_CLASSES, orders_of, plan_of
from .scores import as_rows


def to_plain(model: keras.Model) -> tuple[keras.Model, dict[str, np.ndarray], list[list[int]], list[str]]:
    """(plain model, orders, counts, layer_names) of a row-sparse model.

    * plain model: standard Keras layers with the full dense weights (BatchNorm layers stay; the
      converter folds them);
    * orders: per row-sparse layer name, int32 ``(out_units, fan_in)``: row r's flat column indices by
      descending importance (Conv2D: ``np.ravel_multi_index`` over the kernel's (kh, kw, c_in),
      row-major; Dense: the input index);
    * counts: K lists of L ints, level 0 smallest (the last level may be the full fan_in);
    * layer_names: the L layer names in the order of counts' columns.
    """
    plan = plan_of(model)

    def clone(layer: Any) -> Any:
        if isinstance(layer, ROW_SPARSE_CLASSES):
            return PLAIN[type(layer)].from_config(layer.plain_config())
        return type(layer).from_config(layer.get_config())

    plain = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if not layer.weights:
            continue
        target = plain.get_layer(layer.name)
        if isinstance(layer, ROW_SPARSE_CLASSES):
            target.set_weights([layer.kernel.numpy()] + ([layer.bias.numpy()] if layer.use_bias else []))
        else:
            target.set_weights(layer.get_weights())
    plain = keras.Model(plain.inputs, plain.outputs, name=f"{model.name}_plain")
    return plain, orders_of(model), [list(row) for row in plan.counts], list(plan.layers)


def expand_level(
    plain: keras.Model,
    orders: Mapping[str, np.ndarray],
    counts: Sequence[Sequence[int]],
    layer_names: Sequence[str],
    level: int,
) -> keras.Model:
    """A plain copy of ``plain`` whose row-sparse layers keep only level ``level``'s weights (the
    dropped ones set to exactly 0): the dense reference of that level."""
    out = keras.models.clone_model(plain)
    out.set_weights(plain.get_weights())
    for i, name in enumerate(layer_names):
        layer = out.get_layer(name)
        kernel = layer.kernel.numpy()
        rows = as_rows(kernel)
        n = int(counts[level][i])
        keep = np.zeros(rows.shape, dtype=bool)
        np.put_along_axis(keep, np.asarray(orders[name])[:, :n].astype(np.int64), True, axis=1)
        layer.kernel.assign((rows * keep).T.reshape(kernel.shape))
    return keras.Model(out.inputs, out.outputs, name=f"{plain.name}_level{level}")
