"""The paper's vision DS-CNN variant (``pool: [13, 5]``, ``leaky_relu: 0.3``): shapes, option checks,
and the whole REDS path (topology, costs, solve, permute, make_nested, int8 conversion) at tiny size
with random weights."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import costs, importance, model_source, nested, permute, solve, topology, zoo
from reds_tf._keras import keras
from reds_tf.convert import convert
from reds_tf.errors import ModelFileError
from reds_tf.recipe import Recipe

from .conftest import randomize

PAPER = {"pool": [13, 5], "leaky_relu": 0.3}


def test_paper_pool_gives_2x10_features_and_leaky_relus():
    m = zoo.build("ds_cnn_fmnist", **PAPER)
    # 28x28 -> stride-2 conv -> 14x14; AvgPool((13, 5)) stride 1 -> 2x10; x 64 channels = 1,280 FC inputs.
    assert m.get_layer("pool").output_shape == (None, 2, 10, 64)
    assert m.get_layer("flatten").output_shape == (None, 1280)
    assert m.get_layer("fc").input_shape == (None, 1280)
    leaky = [layer for layer in m.layers if isinstance(layer, keras.layers.LeakyReLU)]
    assert len(leaky) == 9 and all(float(layer.alpha) == pytest.approx(0.3) for layer in leaky)
    assert not any(isinstance(layer, keras.layers.ReLU) for layer in m.layers)
    default = zoo.build("ds_cnn_fmnist")  # unchanged: global average pooling and ReLU
    assert isinstance(default.get_layer("pool"), keras.layers.GlobalAveragePooling2D)
    assert not any(isinstance(layer, keras.layers.LeakyReLU) for layer in default.layers)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"pool": [13]}, r"pool must be two positive integers.*Received: pool=\[13\]"),
        ({"pool": [0, 5]}, r"pool must be two positive integers"),
        ({"pool": "13x5"}, r"pool must be two positive integers"),
        ({"leaky_relu": 1.5}, r"leaky_relu must be a slope in \(0, 1\).*Received: leaky_relu=1.5"),
        ({"leaky_relu": True}, r"leaky_relu must be a slope"),
    ],
)
def test_bad_options_are_refused_before_tensorflow_work(options, match):
    with pytest.raises(ModelFileError, match=match):
        model_source.check("ds_cnn_fmnist", options)


def test_pool_larger_than_the_feature_map_is_refused():
    with pytest.raises(ModelFileError, match=r"pool \[15, 5\] is larger than the 14x14 feature map"):
        zoo.build("ds_cnn_fmnist", pool=[15, 5])


def test_recipe_schedule_sets_the_paper_architecture():
    path = "models/ds_cnn_s-fashion_mnist.yaml"
    for schedule, distill in (("paper_arch", 0.0), ("paper_arch_distill", 0.5)):
        r = Recipe.load(path, schedule=schedule)
        assert r.model_options == PAPER and r.solve.budgets == (0.18, 0.41, 0.63)
        assert r.finetune.distill_weight == distill and r.finetune.epochs == 15
        model_source.check(r.model, r.model_options)


@pytest.fixture(scope="module")
def tiny_nested():
    keras.utils.set_random_seed(0)
    m = randomize(zoo.build("ds_cnn_fmnist", filters=8, blocks=2, dropout=False, **PAPER), seed=1)
    perm, sorted_scores = permute.sort_model(m, importance.random_scores(m, seed=2))
    x = np.random.default_rng(3).random((24, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(perm(x).numpy(), m(x).numpy(), atol=1e-5)  # function-preserving
    g = topology.graph_of(perm)
    rep = solve.solve(g, sorted_scores, [0.25, 0.6], include_full=True, time_limit=20)
    return perm, g, rep.plan, nested.make_nested(perm, rep.plan), x


def test_flatten_couples_last_pointwise_with_fc_and_costs_are_exact(tiny_nested):
    _, g, plan, model, x = tiny_nested
    assert g.group_names == ("conv1", "pw1", "pw2")
    full_macs = costs.macs(g, g.full_widths)
    for k, c in enumerate(costs.plan_costs(g, plan)):
        w = dict(zip(plan.groups, plan.level(k), strict=True))
        # conv1 3x3x1 on 14x14, dw 3x3 + pw per block on 14x14, FC (2*10*C) -> 10; the cost model
        # counts the MACs of weight layers (pooling has none).
        expect = (
            14 * 14 * 9 * w["conv1"]
            + 14 * 14 * (9 * w["conv1"] + w["conv1"] * w["pw1"])
            + 14 * 14 * (9 * w["pw1"] + w["pw1"] * w["pw2"])
            + 2 * 10 * w["pw2"] * 10
        )
        assert c.macs == expect
        sub = nested.extract_level(model, k)
        assert sub.get_layer("fc").input_shape == (None, 20 * w["pw2"])
        with nested.level_scope(model, k):
            np.testing.assert_allclose(model(x).numpy(), sub(x).numpy(), atol=1e-5)
    cs = costs.plan_costs(g, plan)
    assert cs[-1].macs == full_macs and cs[0].macs <= 0.25 * full_macs and cs[1].macs <= 0.6 * full_macs


def test_conversion_writes_tflite_and_records_the_firmware_gap(tiny_nested, tmp_path):
    """TFLM runs LEAKY_RELU, so the levels convert and verify; the firmware runtime does not, so the
    report says why there is no firmware blob instead of the conversion failing."""
    _, _, plan, model, x = tiny_nested
    with pytest.warns(UserWarning, match="No firmware blob"):
        rep = convert(model, tmp_path, calibration=x, calibration_samples=24, verify_samples=12)
    assert sorted(p.name for p in tmp_path.glob("submodel_*.tflite")) == [
        f"submodel_{k}.tflite" for k in range(plan.num_levels)
    ]
    assert all(r.bundle_bit_exact for r in rep.levels)
    assert "LEAKY_RELU" in rep.firmware["error"] and not (tmp_path / "model.blob").exists()
