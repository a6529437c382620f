"""NestedConv2D: config round trip, exact sliced outputs, narrower inputs accepted."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf._keras import keras
from reds_tf.errors import PlanError
from reds_tf.layers import NestedConv2D, custom_objects


def test_config_round_trip():
    layer = NestedConv2D(
        4, (3, 2), strides=(2, 1), padding="same", in_widths=[1, 3], out_widths=[2, 4], name="c"
    )
    cfg = layer.get_config()
    assert cfg["in_widths"] == [1, 3] and cfg["out_widths"] == [2, 4] and cfg["kernel_size"] == (3, 2)
    assert NestedConv2D.from_config(cfg).get_config() == cfg
    again = keras.layers.deserialize(keras.layers.serialize(layer), custom_objects=custom_objects())
    assert isinstance(again, NestedConv2D) and again.get_config() == cfg


def test_hand_set_weights_exact_per_level():
    layer = NestedConv2D(3, 1, in_widths=[1, 2], out_widths=[2, 3])
    layer.build((None, 2, 2, 2))
    kernel = np.array([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]], np.float32).reshape(1, 1, 2, 3)
    layer.set_weights([kernel, np.array([0.0, 1.0, 2.0], np.float32)])
    x = np.ones((1, 2, 2, 2), np.float32)
    np.testing.assert_array_equal(layer(x).numpy()[0, 0, 0], [11.0, 23.0, 35.0])
    layer.level = 0  # only input channel 0 and outputs 0, 1
    out = layer(x[..., :1]).numpy()
    assert out.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(out[0, 1, 1], [1.0, 3.0])


def test_matches_plain_conv_on_the_slice(rng):
    layer = NestedConv2D(5, 3, padding="valid", strides=2, in_widths=[2, 4], out_widths=[3, 5])
    x = rng.normal(size=(2, 7, 6, 4)).astype("float32")
    layer(x)
    k, b = layer.get_weights()
    plain = keras.layers.Conv2D(3, 3, padding="valid", strides=2)
    plain.build((None, 7, 6, 2))
    plain.set_weights([k[:, :, :2, :3], b[:3]])
    layer.level = 0
    np.testing.assert_allclose(layer(x[..., :2]).numpy(), plain(x[..., :2]).numpy(), atol=1e-6)


def test_rejects_grouped_and_bad_widths():
    with pytest.raises(ValueError, match="groups=1 and channels_last"):
        NestedConv2D(4, 3, groups=2)
    with pytest.raises(PlanError, match=r"out_widths\[0\] must be in \[1, 4\]"):
        NestedConv2D(4, 3, out_widths=[0, 4])
    layer = NestedConv2D(4, 3, in_widths=[1, 9])
    with pytest.raises(PlanError, match=r"in_widths\[1\] must be in \[1, 2\]"):
        layer.build((None, 5, 5, 2))
