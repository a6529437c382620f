"""NestedBatchNormalization: exact inference, prefix-only training updates, per-level statistics."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf._keras import keras, tf
from reds_tf.layers import NestedBatchNormalization, custom_objects


def _bn(**kw):
    layer = NestedBatchNormalization(widths=[2, 4], momentum=0.5, epsilon=0.0, **kw)
    layer.build((None, 3, 4))
    return layer


def test_config_round_trip():
    layer = NestedBatchNormalization(widths=[1, 3], stats_per_level=True, momentum=0.9, name="bn")
    layer.build((None, 5, 5, 3))
    cfg = layer.get_config()
    assert cfg["widths"] == [1, 3] and cfg["stats_per_level"] is True
    again = keras.layers.deserialize(keras.layers.serialize(layer), custom_objects=custom_objects())
    assert isinstance(again, NestedBatchNormalization) and again.get_config() == cfg


def test_inference_exact_on_prefix():
    layer = _bn()
    layer.set_weights(
        [
            np.array([1.0, 2.0, 3.0, 4.0]),
            np.array([0.0, 1.0, 0.0, 0.0]),
            np.array([1.0, 2.0, 3.0, 4.0]),
            np.array([4.0, 4.0, 4.0, 4.0]),
        ]
    )
    x = np.full((1, 3, 4), 5.0, np.float32)
    np.testing.assert_allclose(layer(x, training=False).numpy()[0, 0], [2.0, 4.0, 3.0, 2.0])
    layer.level = 0
    np.testing.assert_allclose(layer(x[..., :2], training=False).numpy()[0, 0], [2.0, 4.0])


def test_training_updates_only_active_prefix(rng):
    layer = _bn()
    layer.level = 0
    x = rng.normal(3.0, 2.0, size=(8, 3, 2)).astype("float32")
    out = layer(x, training=True).numpy()
    # Training mode normalises with the batch moments of the active channels.
    np.testing.assert_allclose(out.reshape(-1, 2).mean(0), 0.0, atol=1e-5)
    batch_mean = x.reshape(-1, 2).mean(0)
    mm = layer.moving_mean.numpy()
    np.testing.assert_allclose(mm[:2], 0.5 * batch_mean, rtol=1e-5)
    np.testing.assert_array_equal(mm[2:], 0.0)
    np.testing.assert_array_equal(layer.moving_variance.numpy()[2:], 1.0)


def test_frozen_layer_runs_in_inference_mode(rng):
    layer = _bn()
    layer.trainable = False
    x = rng.normal(3.0, 2.0, size=(8, 3, 4)).astype("float32")
    np.testing.assert_allclose(layer(x, training=True).numpy(), x, atol=1e-6)  # identity stats
    np.testing.assert_array_equal(layer.moving_mean.numpy(), 0.0)


def test_per_level_statistics(rng):
    layer = _bn(stats_per_level=True)
    assert layer.moving_mean.shape == (2, 4)
    layer.level = 0
    layer(rng.normal(5.0, 1.0, size=(8, 3, 2)).astype("float32"), training=True)
    mm = layer.moving_mean.numpy()
    assert np.all(mm[0, :2] > 1.0)  # level 0's row, active prefix only
    np.testing.assert_array_equal(mm[0, 2:], 0.0)
    np.testing.assert_array_equal(mm[1], 0.0)
    # level None normalises with the last row (still identity here).
    layer.level = None
    x = np.ones((1, 3, 4), np.float32)
    np.testing.assert_allclose(layer(x, training=False).numpy(), x)
    layer.level = 0
    assert np.all(layer(x[..., :2], training=False).numpy() < 0)  # (1 - ~2.5) / 1


def test_symbolic_training_flag_in_tf_function(rng):
    layer = _bn()
    x = rng.normal(size=(8, 3, 4)).astype("float32")

    @tf.function
    def run(flag):
        return layer(x, training=flag)

    run(tf.constant(False))
    np.testing.assert_array_equal(layer.moving_mean.numpy(), 0.0)
    run(tf.constant(True))
    assert np.abs(layer.moving_mean.numpy()).sum() > 0


def test_stats_per_level_needs_widths():
    with pytest.raises(ValueError, match="stats_per_level=True needs a widths column"):
        NestedBatchNormalization(stats_per_level=True)
