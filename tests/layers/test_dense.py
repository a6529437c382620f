"""NestedDense: config round trip, exact sliced outputs, Flatten position slicing, level switching."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf._keras import keras, tf
from reds_tf.errors import PlanError
from reds_tf.layers import NestedDense, custom_objects


def _layer(**kw):
    layer = NestedDense(3, in_widths=[1, 2], out_widths=[1, 3], **kw)
    layer.build((None, 2 * kw.get("in_positions", 1)))
    return layer


def test_config_round_trip():
    layer = NestedDense(5, in_widths=[2, 4], out_widths=[3, 5], in_positions=6, activation="relu", name="d")
    cfg = layer.get_config()
    assert cfg["in_widths"] == [2, 4] and cfg["out_widths"] == [3, 5] and cfg["in_positions"] == 6
    again = NestedDense.from_config(cfg)
    assert again.get_config() == cfg
    via_keras = keras.layers.deserialize(keras.layers.serialize(layer), custom_objects=custom_objects())
    assert isinstance(via_keras, NestedDense) and via_keras.get_config() == cfg


def test_hand_set_weights_exact_per_level():
    layer = _layer()
    kernel = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    layer.set_weights([kernel, bias])
    x = np.array([[1.0, 10.0]], np.float32)
    np.testing.assert_array_equal(layer(x).numpy(), [[41.5, 51.0, 65.0]])
    layer.level = 0  # 1 input channel, 1 output unit: 1*1 + 0.5
    np.testing.assert_array_equal(layer(x[:, :1]).numpy(), [[1.5]])
    layer.level = 1
    np.testing.assert_array_equal(layer(x).numpy(), [[41.5, 51.0, 65.0]])


def test_flatten_rows_sliced_per_position():
    # 2 positions x 2 channels -> row p*C + c. Level 0 keeps channel 0 of each position.
    layer = _layer(in_positions=2)
    kernel = np.arange(12, dtype=np.float32).reshape(4, 3)
    layer.set_weights([kernel, np.zeros(3, np.float32)])
    layer.level = 0
    x = np.array([[2.0, 3.0]], np.float32)  # (p0, c0), (p1, c0)
    expected = 2.0 * kernel[0, 0] + 3.0 * kernel[2, 0]
    np.testing.assert_allclose(layer(x).numpy(), [[expected]])


def test_level_switch_inside_one_trace():
    layer = _layer()
    layer.set_weights([np.ones((2, 3), np.float32), np.zeros(3, np.float32)])

    @tf.function
    def both(x):
        layer.level = 0
        small = layer(x[:, :1])
        layer.level = None
        return small, layer(x)

    small, full = both(tf.ones((4, 2)))
    assert small.shape == (4, 1) and full.shape == (4, 3)
    np.testing.assert_array_equal(small.numpy(), 1.0)
    np.testing.assert_array_equal(full.numpy(), 2.0)


def test_invalid_widths_and_levels():
    with pytest.raises(PlanError, match=r"out_widths\[1\] must be in \[1, 3\]"):
        NestedDense(3, out_widths=[1, 4])
    with pytest.raises(PlanError, match="non-decreasing"):
        NestedDense(3, out_widths=[3, 1])
    with pytest.raises(PlanError, match="different numbers of levels"):
        NestedDense(3, in_widths=[1], out_widths=[1, 2])
    layer = _layer()
    with pytest.raises(PlanError, match=r"level must be in \[0, 1\]"):
        layer.level = 2
