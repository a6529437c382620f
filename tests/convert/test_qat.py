"""Quantisation-aware fine-tuning: the simulated int8 twin computes what the converted int8 levels compute."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf._keras import keras

from .conftest import _train


@pytest.fixture(scope="module")
def paper_nested(fmnist):
    """The paper's DS-CNN (AvgPool head, LeakyReLU) with 16 filters, trained briefly, nested in 2 levels."""
    from reds_tf import nested, topology, zoo
    from reds_tf.plan import WidthPlan

    keras.utils.set_random_seed(0)
    m = zoo.build("ds_cnn_fmnist", filters=16, blocks=2, pool=[13, 5], leaky_relu=0.3)
    m = _train(m, fmnist, epochs=2)
    g = topology.graph_of(m)
    half = tuple(max(1, f // 2) for f in g.full_widths)
    return nested.make_nested(m, WidthPlan(g.group_names, g.full_widths, (half, g.full_widths)))


@pytest.fixture(scope="module")
def converted(paper_nested, fmnist, tmp_path_factory):
    from reds_tf.convert import convert

    out = tmp_path_factory.mktemp("qat_conv")
    x = fmnist["x_train"][:200]
    convert(
        paper_nested,
        out,
        calibration=x,
        calibration_samples=200,
        verify=False,
        activation_ranges="percentile",
    )
    return out


def _int8_outputs(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = i["quantization"], o["quantization"]
    out = []
    for v in x:
        it.set_tensor(i["index"], np.clip(np.round(v[None] / si + zi), -128, 127).astype(np.int8))
        it.invoke()
        out.append((it.get_tensor(o["index"]).astype(np.float32) - zo) * so)
    return np.concatenate(out)


def test_simulated_int8_tracks_the_converted_levels(paper_nested, converted, fmnist):
    """At every level the twin's logits sit far closer to the int8 model's than the float logits do:
    the twin rounds the same weights and activations (ranges measured the converter's way)."""
    from reds_tf import nested, qat

    x_cal, x = fmnist["x_train"][:200], fmnist["x_test"][:300]
    ranges = qat.calibrate(paper_nested, x_cal, method="percentile")
    for k in range(2):
        int8 = _int8_outputs(converted / f"submodel_{k}.tflite", x)
        with nested.level_scope(paper_nested, k):
            flt = paper_nested(x, training=False).numpy()
        with qat.simulated_int8(paper_nested, ranges) as twin:
            nested.set_level(twin, k)
            sim = twin(x, training=False).numpy()
        err_float, err_sim = np.abs(flt - int8).mean(), np.abs(sim - int8).mean()
        assert err_sim < 0.5 * err_float, (k, err_sim, err_float)  # measured: 0.40 and 0.35 x
        assert (sim.argmax(1) == int8.argmax(1)).mean() >= (flt.argmax(1) == int8.argmax(1)).mean()
    # Leaving the block removes the rounding from the shared layers.
    with nested.level_scope(paper_nested, 1):
        np.testing.assert_array_equal(paper_nested(x, training=False).numpy(), flt)


def test_rounded_kernels_are_the_converted_int8_weights(paper_nested, converted):
    """Full level: every pointwise kernel folded with its BN and rounded by the twin equals the
    converter's int8 filter times its per-channel scale (within float rounding)."""
    from ai_edge_litert.interpreter import Interpreter

    from reds_tf import qat

    it = Interpreter(model_path=str(converted / "submodel_1.tflite"))
    filters = {
        d["name"]: d for d in it.get_tensor_details() if len(d["shape"]) == 4 and d["dtype"] == np.int8
    }
    _, folds = qat.analyse(paper_nested)
    checked = 0
    for name in ("pw1", "pw2"):
        layer, bn = paper_nested.get_layer(name), paper_nested.get_layer(folds[name])
        k = qat.kernel_quantizer(layer, bn)(layer.kernel).numpy()
        f = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
        ours = (k * f).transpose(3, 0, 1, 2)  # HWIO -> OHWI, the TFLite filter layout
        (d,) = [d for n, d in filters.items() if n.endswith(f"/{name}/Conv2D")]
        scales = d["quantization_parameters"]["scales"]
        theirs = it.get_tensor(d["index"]).astype(np.float32) * scales[:, None, None, None]
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6 * np.abs(theirs).max())
        checked += 1
    assert checked == 2


def test_quant_points_and_folds(paper_nested):
    """The int8 tensors: input, each fused conv + BN, each LeakyReLU, the logits; pooling and Flatten
    add none. Every conv folds the BN after it."""
    from reds_tf import qat

    points, folds = qat.analyse(paper_nested)
    names = [p.layer for p in points]
    assert names[0] == "input" and names[-1] == paper_nested.output_names[0]
    assert not any(p.clipped for p in (points[0], points[-1]))
    assert {"pool", "flatten"}.isdisjoint(names)
    assert set(folds) == {"conv1", "dw1", "pw1", "dw2", "pw2"}
    assert all(f"bn_{c}" in names and f"lrelu_{c}" in names for c in folds)


def test_fake_quant_layer_config_and_bad_range():
    from reds_tf.qat import FakeQuant

    layer = FakeQuant([[-1.0, 2.0], [-0.5, 1.0]], name="fq")
    again = FakeQuant.from_config(layer.get_config())
    assert again.ranges == [[-1.0, 2.0], [-0.5, 1.0]] and again.num_levels == 2
    layer.level = 1
    y = layer(np.array([[-3.0, 0.3, 3.0]], np.float32)).numpy()
    assert y[0, 0] == pytest.approx(-0.5, abs=1e-6) and y[0, 2] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="lo <= 0 <= hi"):
        FakeQuant([[0.5, 1.0]])
