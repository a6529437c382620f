"""Nested-width Keras layers: full weights, a per-level width column, prefix slicing in ``call``."""

from __future__ import annotations

from ._slice import LevelState
from .batch_normalization import NestedBatchNormalization
from .conv2d import NestedConv2D
from .dense import NestedDense
from .depthwise_conv2d import NestedDepthwiseConv2D

NESTED_CLASSES = (NestedDense, NestedConv2D, NestedDepthwiseConv2D, NestedBatchNormalization)


def custom_objects() -> dict[str, type]:
    """Name -> class of every nested layer, for ``keras.models.load_model(custom_objects=...)``."""
    return {cls.__name__: cls for cls in NESTED_CLASSES}


def is_nested(layer: object) -> bool:
    """True for the nested layers of this package."""
    return isinstance(layer, NESTED_CLASSES)


def is_switched(layer: object) -> bool:
    """True for every layer whose submodel is chosen by its ``level`` attribute: the nested layers and
    any other ``LevelState`` layer (e.g. ``reds_tf.dress``'s row-sparse layers)."""
    return isinstance(layer, LevelState)


__all__ = [
    "NESTED_CLASSES",
    "LevelState",
    "NestedBatchNormalization",
    "NestedConv2D",
    "NestedDense",
    "NestedDepthwiseConv2D",
    "custom_objects",
    "is_nested",
    "is_switched",
]
