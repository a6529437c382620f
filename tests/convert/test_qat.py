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
    """The level's outputs under TFLite Micro (the kernels the device runs), dequantised."""
    from reds_tf.convert import verify

    fb = path.read_bytes()
    q = verify.io_quant(fb)
    return verify.dequantize_output(verify.run_tflm(fb, verify.quantize_input(x, q)), q)


def test_simulated_int8_tracks_the_converted_levels(paper_nested, converted, fmnist):
    """At every level the twin's logits sit far closer to TFLM's int8 logits than the float logits do:
    the twin rounds the same weights and activations (ranges measured the converter's way), with
    TFLM's fixed-point LeakyReLU and the rounding of the average pool."""
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
        # measured: 0.10 and 0.10 x (0.77 and 0.95 x when LeakyReLU and AvgPool rounded to nearest)
        assert err_sim < 0.2 * err_float, (k, err_sim, err_float)
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


@pytest.mark.parametrize("alpha,mean,std", [(0.3, 0.5, 2.0), (0.1, -1.0, 3.0)])
def test_int8_leaky_relu_equals_tflm_on_every_code(alpha, mean, std):
    """Every one of the 256 input codes gives TFLM's output code and TFLite's reference kernel's,
    where rounding to the nearest step misses (the alpha branch rounds before its right shift)."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from reds_tf.convert import verify
    from reds_tf.qat import Int8LeakyReLU

    inp = keras.Input((256,))
    dense = keras.layers.Dense(256, use_bias=False, kernel_initializer="identity")
    m = keras.Model(inp, keras.layers.LeakyReLU(alpha)(dense(inp)))
    rng = np.random.default_rng(0)
    conv = tf.lite.TFLiteConverter.from_keras_model(m)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [rng.normal(mean, std, (1, 256)).astype(np.float32)] for _ in range(20)
    )
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    fb = conv.convert()
    it = Interpreter(
        model_content=fb,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
    )
    it.allocate_tensors()
    (op,) = [o for o in it._get_ops_details() if o["op_name"] == "LEAKY_RELU"]
    t = it.get_tensor_details()
    (si, zi), (so, zo) = t[op["inputs"][0]]["quantization"], t[op["outputs"][0]]["quantization"]
    x = np.arange(-128, 128, dtype=np.int8)[None]
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    a = it.get_tensor(op["inputs"][0]).astype(np.int32)[0]
    ref = it.get_tensor(op["outputs"][0]).astype(np.int32)[0]
    np.testing.assert_array_equal(ref, verify.run_tflm(fb, x)[0])  # LEAKY_RELU's output is the model's

    layer = Int8LeakyReLU([[(-128 - zo) * so, (127 - zo) * so]], alpha, [[(-128 - zi) * si, (127 - zi) * si]])
    ours = np.round(layer(((a - zi) * si).astype(np.float32)[None]).numpy()[0] / so).astype(np.int32) + zo
    np.testing.assert_array_equal(ours, ref)
    v = (a - zi) * si
    nearest = np.clip(np.round(np.where(v >= 0, v, alpha * v) / so) + zo, -128, 127)
    assert (nearest != ref).sum() >= 10  # the case the layer exists for

    again = Int8LeakyReLU.from_config(layer.get_config())
    assert again.alpha == alpha and again.input_ranges == layer.input_ranges
    with pytest.raises(ValueError, match="input ranges"):
        Int8LeakyReLU([[-1.0, 1.0], [-2.0, 2.0]], alpha, [[-1.0, 1.0]] * 3)


def test_int8_leaky_relu_exact_where_float32_meets_a_tie():
    """The float32 path is taken only where it reproduces every code; a grid where it would miss a
    rounding tie gets the exact codes too (the table lookup)."""
    from reds_tf import qat
    from reds_tf.convert.c_prepare import leaky_relu_multipliers, requantize

    def exact_and_float(r_in, r_out, alpha):
        (s_in, lo, hi), (s_out, _, _) = qat._grid(*r_in), qat._grid(*r_out)
        m = leaky_relu_multipliers(s_in, alpha, s_out)
        v = np.arange(lo, hi + 1)
        exact = np.where(
            v >= 0,
            requantize(v, m["mult"], m["shift"]),
            requantize(v, m["alpha_mult"], m["alpha_shift"]),
        )
        f32 = v.astype(np.float32)
        fast = np.where(
            v >= 0,
            qat._float_requantize(np.maximum(f32, 0), m["mult"], m["shift"], True, np),
            qat._float_requantize(np.minimum(f32, 0), m["alpha_mult"], m["alpha_shift"], False, np),
        )
        return s_in, v, exact, fast

    rng = np.random.default_rng(0)
    found = {}
    for _ in range(5000):
        lo_in, hi_in = -rng.uniform(0.5, 8.0), rng.uniform(0.5, 8.0)
        alpha = float(rng.choice([0.1, 0.2, 0.3]))
        r_in, r_out = (lo_in, hi_in), (alpha * lo_in * rng.uniform(0.5, 1.0), hi_in * rng.uniform(0.5, 1.0))
        _, _, exact, fast = exact_and_float(r_in, r_out, alpha)
        found.setdefault(bool(np.array_equal(exact, fast)), (r_in, r_out, alpha))
        if len(found) == 2:
            break
    assert set(found) == {True, False}, "no grid where float32 meets a tie: widen the search"
    for r_in, r_out, alpha in found.values():
        s_in, v, exact, _ = exact_and_float(r_in, r_out, alpha)
        layer = qat.Int8LeakyReLU([r_out], alpha, [r_in])
        s_out, _, _ = qat._grid(*r_out)
        got = layer((v * s_in).astype(np.float32)[None]).numpy()[0]
        np.testing.assert_array_equal(np.round(got / s_out), np.clip(exact, *qat._grid(*r_out)[1:]))
