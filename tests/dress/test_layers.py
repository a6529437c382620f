"""Row-sparse layers: per-row mask counts, exact outputs against hand-masked kernels, the order
layout (Conv2D columns over (kh, kw, c_in) row-major), config and .keras round trips, level switching."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import nested
from reds_tf._keras import keras
from reds_tf.dress import RowSparseConv2D, RowSparseDense, custom_objects, load_model, save_model
from reds_tf.errors import PlanError


def _perm_rows(rng, rows, fan_in):
    return np.stack([rng.permutation(fan_in) for _ in range(rows)]).astype(np.int32)


def _dense(rng):
    layer = RowSparseDense(4, counts=[1, 3, 6], name="d")
    layer.build((None, 6))
    layer.kernel.assign(rng.normal(size=(6, 4)).astype("float32"))
    layer.bias.assign(rng.normal(size=4).astype("float32"))
    layer.set_order(_perm_rows(rng, 4, 6))
    return layer


def test_dense_mask_keeps_the_first_n_of_every_row_order(rng):
    layer = _dense(rng)
    order = layer.order.numpy()
    for n in (1, 3, 6):
        mask = layer.row_mask(n).numpy()
        assert mask.shape == (4, 6) and (mask.sum(axis=1) == n).all()  # row-balanced
        for r in range(4):
            assert set(np.flatnonzero(mask[r])) == set(order[r, :n])


def test_dense_output_equals_the_hand_masked_kernel(rng):
    layer = _dense(rng)
    kernel, bias, order, rank = layer.get_weights()
    np.testing.assert_array_equal(np.take_along_axis(rank, order, axis=1), np.tile(np.arange(6), (4, 1)))
    x = rng.normal(size=(3, 6)).astype("float32")
    for k, n in enumerate([1, 3, 6]):
        layer.level = k
        masked = np.zeros_like(kernel)
        for r in range(4):
            masked[order[r, :n], r] = kernel[order[r, :n], r]
        np.testing.assert_allclose(layer(x).numpy(), x @ masked + bias, rtol=1e-5, atol=1e-6)
    layer.level = None
    np.testing.assert_allclose(layer(x).numpy(), x @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_conv_columns_are_row_major_over_kh_kw_cin(rng):
    layer = RowSparseConv2D(3, (2, 3), counts=[1, 4], name="c")
    layer.build((None, 5, 5, 2))
    assert layer.fan_in == 12 and layer.rows == 3
    order = _perm_rows(rng, 3, 12)
    layer.set_order(order)
    mask = layer._to_kernel_layout(layer.row_mask(4)).numpy()  # (kh, kw, c_in, out)
    for r in range(3):
        for col in order[r, :4]:
            i, j, c = np.unravel_index(col, (2, 3, 2))
            assert mask[i, j, c, r] == 1
    assert mask.sum() == 12


def test_conv_output_equals_a_plain_conv_with_the_masked_kernel(rng):
    layer = RowSparseConv2D(3, 3, counts=[2, 9], padding="same", activation="relu", name="c")
    layer.build((None, 6, 6, 2))
    layer.kernel.assign(rng.normal(size=(3, 3, 2, 3)).astype("float32"))
    layer.set_order(_perm_rows(rng, 3, 18))
    plain = keras.layers.Conv2D.from_config(layer.plain_config())
    x = rng.normal(size=(2, 6, 6, 2)).astype("float32")
    plain.build(x.shape)
    layer.level = 0
    plain.set_weights([layer.level_kernel(0), layer.bias.numpy()])
    np.testing.assert_allclose(layer(x).numpy(), plain(x).numpy(), rtol=1e-5, atol=1e-5)
    assert np.count_nonzero(layer.level_kernel(0)) <= 3 * 2


def test_config_round_trip_and_bad_input(rng):
    layer = RowSparseDense(5, counts=[2, 4], activation="relu", name="d")
    cfg = layer.get_config()
    assert cfg["counts"] == [2, 4] and RowSparseDense.from_config(cfg).get_config() == cfg
    again = keras.layers.deserialize(keras.layers.serialize(layer), custom_objects=custom_objects())
    assert isinstance(again, RowSparseDense) and again.get_config() == cfg
    with pytest.raises(PlanError, match="non-decreasing"):
        RowSparseDense(2, counts=[3, 1])
    with pytest.raises(PlanError, match=r"counts\[1\] must be in \[1, 4\]"):
        RowSparseDense(2, counts=[1, 5]).build((None, 4))
    d = _dense(rng)
    with pytest.raises(PlanError, match="permutation of range"):
        d.set_order(np.zeros((4, 6), np.int32))
    with pytest.raises(PlanError, match="level must be in"):
        d.level = 3


def _tiny_model(rng):
    inp = keras.Input((6, 6, 2))
    x = RowSparseConv2D(4, 3, counts=[2, 5, 18], name="c")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = RowSparseDense(3, counts=[1, 2, 4], name="d")(x)
    m = keras.Model(inp, out)
    for layer in (m.get_layer("c"), m.get_layer("d")):
        layer.set_order(_perm_rows(rng, layer.rows, layer.fan_in))
    return m


def test_set_level_switches_every_row_sparse_layer_and_keras_round_trip(rng, tmp_path):
    m = _tiny_model(rng)
    x = rng.normal(size=(2, 6, 6, 2)).astype("float32")
    assert nested.num_levels(m) == 3
    outs = []
    for k in range(3):
        with nested.level_scope(m, k):
            outs.append(m(x).numpy())
    assert not np.allclose(outs[0], outs[2])
    save_model(m, tmp_path / "m.keras")
    m2 = load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(m2.get_layer("c").order.numpy(), m.get_layer("c").order.numpy())
    for k in range(3):
        nested.set_level(m2, k)
        np.testing.assert_allclose(m2(x).numpy(), outs[k], rtol=1e-6)
