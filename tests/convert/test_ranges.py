"""Clipped activation ranges: narrower than min..max, consistent where TFLite needs equal ranges, and
less int8 error than the converter's min/max when a few calibration values are outliers."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf._keras import keras
from reds_tf.convert.flatbuffer import op_name, read_tflite
from reds_tf.convert.ranges import clip_ranges
from reds_tf.convert.tflite import _converter, _run, convert_int8
from reds_tf.convert.verify import dequantize_output, io_quant, quantize_input, run_tflite_ref

from .test_equalize import _paper_like, _with_bn_statistics


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return _with_bn_statistics(_paper_like(), 0)


@pytest.fixture(scope="module")
def calibration(fmnist) -> np.ndarray:
    """Real images, one of them with a bright blotch (a sensor glitch): its activations are outliers."""
    x = fmnist["x_train"][:64].copy()
    x[0, 4:12, 4:12, 0] = 12.0
    return x


def _calibrated(m: keras.Model, x: np.ndarray) -> bytes:
    conv = _converter(m, x, len(x))
    conv._experimental_calibrate_only = True
    return _run(conv, m)


def _int8_error(tfl: bytes, m: keras.Model, x: np.ndarray) -> float:
    """Mean |int8 - float| of the logits (tf.lite reference kernels), relative to mean |float|."""
    q = io_quant(tfl)
    y_q = dequantize_output(run_tflite_ref(tfl, quantize_input(x, q)), q)
    y_f = m.predict(x, verbose=0)
    return float(np.abs(y_q - y_f).mean() / np.abs(y_f).mean())


@pytest.mark.parametrize("method", ["mse", "percentile"])
def test_clipped_ranges_lie_inside_the_seen_ones(model, calibration, method):
    cal = _calibrated(model, calibration)
    edited, changed = clip_ranges(cal, calibration, method)
    before, after = read_tflite(cal), read_tflite(edited)
    sg0, sg1 = before.subgraphs[0], after.subgraphs[0]
    # conv, depthwise, conv outputs and their LeakyReLUs
    assert {c.op for c in changed} == {"CONV_2D", "DEPTHWISE_CONV_2D", "LEAKY_RELU"} and len(changed) == 6
    assert any(c.max_after < 0.9 * c.max_before for c in changed)  # the outlier's reach is cut
    for c in changed:
        assert c.min_before <= c.min_after <= 0.0 <= c.max_after <= c.max_before, c
    # The model input and output keep their ranges; pooling and reshape take their input's.
    for t in list(sg1.inputs) + list(sg1.outputs):
        q0, q1 = sg0.tensors[t].quantization, sg1.tensors[t].quantization
        assert (q1.min[0], q1.max[0]) == (q0.min[0], q0.max[0])
    for op in sg1.operators:
        if op_name(after, op) in ("AVERAGE_POOL_2D", "RESHAPE"):
            qi, qo = sg1.tensors[op.inputs[0]].quantization, sg1.tensors[op.outputs[0]].quantization
            assert (qo.min[0], qo.max[0]) == (qi.min[0], qi.max[0])


def test_mse_ranges_cut_int8_error_when_calibration_has_outliers(model, calibration, fmnist):
    x = fmnist["x_test"][:256]
    minmax = _int8_error(convert_int8(model, calibration, len(calibration)), model, x)
    mse = _int8_error(convert_int8(model, calibration, len(calibration), ranges="mse"), model, x)
    assert mse < 0.75 * minmax, (minmax, mse)


def test_unknown_method_is_refused(model, calibration):
    with pytest.raises(ValueError, match="Unknown activation range method.*'minmax', 'mse', 'percentile'"):
        convert_int8(model, calibration, 8, ranges="kl")
