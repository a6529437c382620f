"""Standalone full-integer int8 .tflite per level via TFLiteConverter.

Each level is converted from its own plain Keras model, with int8 input and output,
per-channel weights and activation ranges calibrated on representative data run through
THAT level (smaller levels have different activation ranges).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np
from tensorflow.lite.python.convert import mlir_quantize

from .._keras import keras, tf
from ..errors import UnsupportedLayerError
from .ranges import check_method, clip_ranges


def representative(x: np.ndarray, samples: int):
    """A representative-dataset generator over the first ``samples`` inputs, one at a time."""
    n = min(int(samples), len(x))

    def gen():
        for i in range(n):
            yield [x[i : i + 1].astype(np.float32)]

    return gen


@contextlib.contextmanager
def _quiet():
    """Silence the converter's C++ chatter on fd 2 and its Python warnings (kept on errors)."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.dup2(null.fileno(), 2)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _converter(model: keras.Model, calibration_x: np.ndarray, samples: int):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative(calibration_x, samples)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv


def convert_int8(
    model: keras.Model,
    calibration_x: np.ndarray,
    samples: int = 200,
    ranges: str = "minmax",
    percentile: float = 99.99,
) -> bytes:
    """Convert a plain Keras model to a full-integer int8 flatbuffer (int8 in and out).

    ``ranges``: ``"minmax"`` (TFLiteConverter's own calibration, in one call) or a clipping method of
    ``ranges.clip_ranges`` (``"mse"``, ``"percentile"``): then the converter calibrates only, the
    activation ranges are narrowed, and the converter's quantiser finishes from the edited ranges.
    """
    check_method(ranges, percentile)
    conv = _converter(model, calibration_x, samples)
    if ranges != "minmax":
        # The two halves of TFLiteConverter's own int8 path (as tf.lite's QuantizationDebugger
        # runs them), with the ranges edited in between.
        conv._experimental_calibrate_only = True
        calibrated = _run(conv, model)
        x = calibration_x[: min(int(samples), len(calibration_x))]
        edited, _ = clip_ranges(calibrated, x, ranges, percentile)
        with _quiet():
            return bytes(
                mlir_quantize(edited, fully_quantize=True, input_data_type=tf.int8, output_data_type=tf.int8)
            )
    return _run(conv, model)


def _run(conv, model: keras.Model) -> bytes:
    try:
        with _quiet():
            return bytes(conv.convert())
    except Exception as e:  # the converter raises ConverterError / RuntimeError with the op name
        raise UnsupportedLayerError(
            f"TFLiteConverter could not make a full-integer int8 model of '{model.name}': {e}. "
            "Fix: use layers with int8 TFLite builtin kernels "
            "(Conv2D, DepthwiseConv2D, Dense, pooling, ReLU)."
        ) from e
