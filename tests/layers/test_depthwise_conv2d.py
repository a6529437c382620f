"""NestedDepthwiseConv2D: config round trip, exact channel-prefix outputs."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf._keras import keras
from reds_tf.layers import NestedDepthwiseConv2D, custom_objects


def test_config_round_trip():
    layer = NestedDepthwiseConv2D(3, padding="same", widths=[2, 5], use_bias=False, name="dw")
    cfg = layer.get_config()
    assert cfg["widths"] == [2, 5]
    assert layer.in_widths == layer.out_widths == [2, 5]
    assert NestedDepthwiseConv2D.from_config(cfg).get_config() == cfg
    again = keras.layers.deserialize(keras.layers.serialize(layer), custom_objects=custom_objects())
    assert again.get_config() == cfg


def test_hand_set_weights_exact_per_level():
    layer = NestedDepthwiseConv2D(1, widths=[1, 3])
    layer.build((None, 1, 1, 3))
    layer.set_weights([np.array([2.0, 3.0, 4.0], np.float32).reshape(1, 1, 3, 1), np.array([1.0, 1.0, 1.0])])
    x = np.ones((1, 1, 1, 3), np.float32)
    np.testing.assert_array_equal(layer(x).numpy().ravel(), [3.0, 4.0, 5.0])
    layer.level = 0
    np.testing.assert_array_equal(layer(x[..., :1]).numpy().ravel(), [3.0])


def test_matches_plain_depthwise_on_the_slice(rng):
    layer = NestedDepthwiseConv2D(3, strides=2, padding="same", widths=[2, 6])
    x = rng.normal(size=(2, 9, 7, 6)).astype("float32")
    layer(x)
    k, b = layer.get_weights()
    plain = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")
    plain.build((None, 9, 7, 2))
    plain.set_weights([k[:, :, :2], b[:2]])
    layer.level = 0
    np.testing.assert_allclose(layer(x[..., :2]).numpy(), plain(x[..., :2]).numpy(), atol=1e-6)


def test_rejects_depth_multiplier():
    with pytest.raises(ValueError, match="depth_multiplier=1"):
        NestedDepthwiseConv2D(3, depth_multiplier=2)
