"""to_plain's contract with the converter, zero-expanded dense levels, and nesting on a trained model
and after joint fine-tuning with the REDS trainer."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import nested, train, zoo
from reds_tf._keras import keras, tf
from reds_tf.dress import (
    expand_level,
    magnitude_scores,
    make_row_sparse,
    model_costs,
    row_orders,
    solve_counts,
    sparse_layers,
    taylor_scores,
    to_plain,
)
from reds_tf.dress.scores import as_rows
from reds_tf.dress.steps import level_params
from reds_tf.recipe import TrainConfig


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 28, 28, 1)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


@pytest.fixture(scope="module")
def trained():
    """A tiny DS-CNN trained for one epoch, its Taylor scores and a solved 3-level plan."""
    keras.utils.set_random_seed(0)
    pre = zoo.build("ds_cnn_fmnist", num_classes=10, input_shape=(28, 28, 1), filters=8, blocks=1)
    train.fit(pre, _data(), None, TrainConfig(epochs=1, learning_rate=0.01), stage="pre", progress=False)
    scores = taylor_scores(pre, _data(seed=1), num_batches=2)
    mc = model_costs(pre, list(scores))
    plan, _ = solve_counts(mc, scores, [0.5, 0.75], time_limit=20)
    return pre, scores, mc, plan


def _assert_nested(model, plan):
    """Every weight kept at level k is kept at level k+1, with the same value."""
    for layer in sparse_layers(model):
        kernels = [layer.level_kernel(k) for k in range(plan.num_levels)]
        masks = [as_rows(layer._to_kernel_layout(layer.row_mask(layer.active_count(k))).numpy()) > 0
                 for k in range(plan.num_levels)]  # fmt: skip
        for k in range(plan.num_levels - 1):
            assert (masks[k] <= masks[k + 1]).all(), layer.name
            np.testing.assert_array_equal(as_rows(kernels[k])[masks[k]], as_rows(kernels[k + 1])[masks[k]])
            assert (as_rows(kernels[k])[~masks[k]] == 0).all()


def test_taylor_scores_are_per_weight_rows(trained):
    pre, scores, _, _ = trained
    assert list(scores) == ["conv1", "pw1", "fc"]
    assert scores["conv1"].shape == (8, 9) and scores["pw1"].shape == (8, 8) and scores["fc"].shape == (10, 8)
    assert all((s >= 0).all() and s.sum() > 0 for s in scores.values())


def test_nesting_on_a_trained_model_and_after_joint_fine_tuning(trained):
    pre, scores, mc, plan = trained
    model = make_row_sparse(pre, row_orders(scores), plan)
    _assert_nested(model, plan)
    before = {layer.name: layer.kernel.numpy().copy() for layer in sparse_layers(model)}
    a = train.loss_weights(level_params(model, mc, plan))
    hist = train.fit(
        model, _data(), None, TrainConfig(epochs=1, learning_rate=0.01), stage="ft",
        levels=list(range(plan.num_levels)), weights=a, variables=train.non_bn_variables(model),
        training=False, progress=False,
    )  # fmt: skip
    assert len(hist.epochs[0]["loss"]) == plan.num_levels  # one loss per level: the trainer ran every level
    assert any(not np.array_equal(before[lay.name], lay.kernel.numpy()) for lay in sparse_layers(model))
    _assert_nested(model, plan)


def test_to_plain_matches_the_converter_contract(trained):
    pre, scores, _, plan = trained
    model = make_row_sparse(pre, row_orders(scores), plan)
    plain, orders, counts, names = to_plain(model)
    assert isinstance(plain, keras.Model)
    assert not any(type(layer).__name__.startswith("RowSparse") for layer in plain.layers)
    assert names == ["conv1", "pw1", "fc"] and isinstance(names, list)
    assert counts == [list(r) for r in plan.counts] and all(type(n) is int for r in counts for n in r)
    assert len(counts) == 3 and all(len(r) == len(names) for r in counts)
    for name in names:
        kernel = plain.get_layer(name).kernel.numpy()
        o = orders[name]
        assert o.dtype == np.int32 and o.shape == (kernel.shape[-1], int(np.prod(kernel.shape[:-1])))
        assert (np.sort(o, axis=1) == np.arange(o.shape[1])).all()
        np.testing.assert_array_equal(kernel, model.get_layer(name).kernel.numpy())
    # Flat column = np.ravel_multi_index over (kh, kw, c_in): the first entry is each filter's top score.
    k = plain.get_layer("conv1").kernel.numpy()
    for r in range(k.shape[-1]):
        i, j, c = np.unravel_index(orders["conv1"][r, 0], k.shape[:-1])
        assert scores["conv1"][r].max() == scores["conv1"][r, np.ravel_multi_index((i, j, c), k.shape[:-1])]
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    x = np.random.default_rng(2).random((3, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(plain(x).numpy(), pre(x).numpy(), rtol=1e-5, atol=1e-6)
    for lv in range(plan.num_levels):
        nested.set_level(model, lv)
        ref = expand_level(plain, orders, counts, names, lv)
        np.testing.assert_allclose(ref(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
        kept = np.count_nonzero(ref.get_layer("pw1").kernel.numpy())
        assert kept <= 8 * counts[lv][1]


def test_magnitude_orders_rank_by_absolute_weight(trained):
    pre = trained[0]
    s = magnitude_scores(pre, ["fc"])
    o = row_orders(s)["fc"]
    w = np.abs(pre.get_layer("fc").kernel.numpy().T)
    assert (np.take_along_axis(w, o, axis=1)[:, :-1] >= np.take_along_axis(w, o, axis=1)[:, 1:]).all()
