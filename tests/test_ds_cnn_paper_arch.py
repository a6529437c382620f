"""The paper's vision DS-CNN variant (``pool: [13, 5]``, ``leaky_relu: 0.3``): shapes, option checks,
and the whole REDS path (topology, costs, solve, permute, make_nested, int8 conversion) at tiny size
with random weights."""

from __future__ import annotations

import subprocess

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


def test_conversion_writes_a_firmware_blob_bit_exact_with_tflm(tiny_nested, tmp_path):
    """LEAKY_RELU runs in the firmware (op type 9): every level converts and verifies, the blob holds a
    LEAKY_RELU after each convolution, and the host runtime runs every level bit-exact with TFLM."""
    from reds_tf.convert import c_arena, c_prepare
    from tests.firmware.test_model import FIRMWARE, _feed, _session, _tflm_outputs

    _, _, plan, model, x = tiny_nested
    rep = convert(model, tmp_path, calibration=x, calibration_samples=24, verify_samples=12)
    assert all(r.bundle_bit_exact for r in rep.levels)
    assert "error" not in rep.firmware and (tmp_path / "model.blob").exists()
    blob = c_arena.read_blob((tmp_path / "model.blob").read_bytes())
    for lv in blob["levels"]:
        types = [op["type"] for op in lv["ops"]]
        assert types.count(c_prepare.OP_LEAKY_RELU) == 5  # conv1, and dw + pw of each of the 2 blocks
        assert c_prepare.OP_AVERAGE_POOL_2D in types and types[-1] == c_prepare.OP_FULLY_CONNECTED
        assert lv["cycles"] == 0  # the cost model has no pooling-window kernel: unknown (MAC ratio)
    app = subprocess.run(["make", "-s", "-C", str(FIRMWARE), "host"], check=True, capture_output=True)
    assert app.returncode == 0
    xs = np.random.default_rng(4).integers(-128, 128, size=(8, 28 * 28), dtype=np.int8)
    xs[0], xs[1] = -128, 127
    script = "".join(
        f"level {k}\n" + "".join(_feed(v) + "run\nout\n" for v in xs) for k in range(plan.num_levels)
    )
    lines = _session(FIRMWARE / "build" / "host" / "reds_host", tmp_path / "model.blob", script)
    outs = [ln for ln in lines if ln.startswith("ok out")]
    assert len(outs) == plan.num_levels * len(xs)
    for k in range(plan.num_levels):
        got = np.array([[int(v) for v in ln.split()[2:]] for ln in outs[k * len(xs) : (k + 1) * len(xs)]])
        want = _tflm_outputs(tmp_path / f"submodel_{k}.tflite", xs)
        np.testing.assert_array_equal(got, want, err_msg=f"level {k} differs from TFLM")


def test_device_cost_model_does_not_count_leaky_relu():
    """LeakyReLU is an elementwise activation to the topology: the cost model counts no kernel for it, so
    a LeakyReLU DS-CNN is predicted like its ReLU twin (the blob's cycles then miss the LEAKY_RELU loops);
    with the paper's pooling window it has no prediction (None), and converting does not fail."""
    from reds_tf import device_cost
    from reds_tf.convert import _graph_cycles

    leaky = zoo.build("ds_cnn_fmnist", filters=8, blocks=2, leaky_relu=0.3)
    relu = zoo.build("ds_cnn_fmnist", filters=8, blocks=2)
    g_leaky, g_relu = topology.graph_of(leaky), topology.graph_of(relu)
    assert [op.kind for op in g_leaky.ops if op.name.startswith("lrelu")] == ["activation"] * 5
    cost = device_cost.load("dsp")
    assert cost.cycles(g_leaky, g_leaky.full_widths) == cost.cycles(g_relu, g_relu.full_widths) > 0
    assert _graph_cycles(leaky) == _graph_cycles(relu) > 0
    assert _graph_cycles(zoo.build("ds_cnn_fmnist", filters=8, blocks=2, **PAPER)) is None
