"""Range equalisation keeps every level's function and evens out per-tensor int8 activation ranges."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf._keras import keras
from reds_tf.convert.equalize import Equalization, apply_factors, channel_factors
from reds_tf.convert.tflite import convert_int8
from reds_tf.convert.verify import dequantize_output, io_quant, quantize_input, run_tflite_ref
from reds_tf.topology import unit_groups

L = keras.layers


def _copy(m: keras.Model) -> keras.Model:
    twin = keras.models.clone_model(m)
    twin.set_weights(m.get_weights())
    return twin


def _paper_like(act=lambda: L.LeakyReLU(0.3)) -> keras.Model:
    """The paper's vision DS-CNN in small: BN and LeakyReLU as separate ops, AvgPool(13, 5) + Flatten."""
    i = keras.Input((28, 28, 1))
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(i)
    x = act()(L.BatchNormalization()(x))
    x = L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = act()(L.BatchNormalization()(x))
    x = L.Conv2D(16, 1, use_bias=False)(x)
    x = act()(L.BatchNormalization()(x))
    x = L.Flatten()(L.AveragePooling2D((13, 5), strides=1)(x))
    return keras.Model(i, L.Dense(10)(x))


def _with_bn_statistics(m: keras.Model, seed: int) -> keras.Model:
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.moving_mean.assign(rng.normal(size=n))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=n))
            layer.beta.assign(0.3 * rng.normal(size=n))
    return m


def _int8_error(m: keras.Model, x: np.ndarray) -> float:
    """Mean |int8 - float| of the logits under the tf.lite reference kernels, relative to mean |float|."""
    tfl = convert_int8(m, x, len(x))
    q = io_quant(tfl)
    y_q = dequantize_output(run_tflite_ref(tfl, quantize_input(x, q)), q)
    y_f = m.predict(x, verbose=0)
    return float(np.abs(y_q - y_f).mean() / np.abs(y_f).mean())


def test_every_level_keeps_its_function(ds_cnn_levels, fmnist):
    levels = [_copy(m) for m in ds_cnn_levels]
    x = fmnist["x_train"][:256]
    eq = channel_factors(levels, x)
    assert set(eq.factors) == {"conv1", "pw1", "pw2", "pw3", "pw4"} and not eq.skipped
    assert max(float(np.abs(np.log(f)).max()) for f in eq.factors.values()) > np.log(1.2)  # not a no-op
    for m in levels:
        apply_factors(m, eq)
    for before, after in zip(ds_cnn_levels, levels, strict=True):
        x_test = fmnist["x_test"][:200]
        y0, y1 = before.predict(x_test, verbose=0), after.predict(x_test, verbose=0)
        np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-4 * np.abs(y0).max())


def test_equalisation_repairs_imbalanced_channel_ranges():
    keras.utils.set_random_seed(0)
    m = _with_bn_statistics(_paper_like(), 0)
    x = np.random.default_rng(1).normal(size=(256, 28, 28, 1)).astype(np.float32)
    y0 = m.predict(x, verbose=0)
    balanced = _int8_error(m, x)
    # Spread every unit's range over e^-3 .. e^3 without changing the function (as BN drift does).
    rng = np.random.default_rng(2)
    apply_factors(m, Equalization({g.name: np.exp(rng.uniform(-3, 3, g.full)) for g in unit_groups(m)}))
    np.testing.assert_allclose(m.predict(x, verbose=0), y0, rtol=1e-4, atol=1e-5)
    imbalanced = _int8_error(m, x)
    apply_factors(m, channel_factors([m], x))
    np.testing.assert_allclose(m.predict(x, verbose=0), y0, rtol=1e-4, atol=1e-5)
    repaired = _int8_error(m, x)
    assert imbalanced > 5 * balanced, (balanced, imbalanced)
    assert repaired < imbalanced / 5 and repaired < 2 * balanced, (balanced, imbalanced, repaired)


@pytest.mark.parametrize("act", [lambda: L.ReLU(max_value=6.0), lambda: L.Activation("sigmoid")])
def test_groups_with_a_non_homogeneous_activation_are_left_alone(act):
    keras.utils.set_random_seed(0)
    m = _with_bn_statistics(_paper_like(act), 0)
    x = np.random.default_rng(1).normal(size=(64, 28, 28, 1)).astype(np.float32)
    eq = channel_factors([m], x)
    assert not eq.factors and set(eq.skipped) == {g.name for g in unit_groups(m)}
    assert "not positively homogeneous" in next(iter(eq.skipped.values()))
