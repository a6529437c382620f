"""Python twin of firmware/src/runtime/reds_requant.h and of TFLite's prepare-time quantisation maths.

Everything here reproduces TFLM bit for bit (default double-rounding build):
``quantize_multiplier`` is ``QuantizeMultiplier``, ``requantize`` is ``MultiplyByQuantizedMultiplier``,
``activation_range`` is ``CalculateActivationRangeQuantized`` and ``mean_multiplier`` folds ``1/n`` into
a MEAN multiplier as ``reference_ops::QuantizedMeanOrSum`` does. Arrays are numpy int64 so that the
intermediate products never overflow; results are returned as int32/int64 arrays or Python ints.
"""

from __future__ import annotations

import math

import numpy as np

# MultiplyByQuantizedMultiplier lives in the package, which the QAT twin also uses.
from reds_tf.convert.c_prepare import INT32_MAX, INT32_MIN, requantize  # noqa: F401

ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3  # tflite ActivationFunctionType values


def _round_half_away(v: float) -> int:
    """std::round: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    if real_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(real_multiplier)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def conv_multipliers(
    input_scale: float, filter_scales: np.ndarray, output_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel CONV_2D / DEPTHWISE multipliers (PopulateConvolutionQuantizationParams: double maths)."""
    fs = np.asarray(filter_scales, np.float32).astype(np.float64)
    i_s, o_s = float(np.float32(input_scale)), float(np.float32(output_scale))
    pairs = [quantize_multiplier(i_s * float(f) / o_s) for f in fs]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def fc_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """Per-tensor FULLY_CONNECTED multiplier (GetQuantizedConvolutionMultipler: float product first)."""
    product = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(product / float(np.float32(output_scale)))


def activation_range(activation: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs (float32 division, std::round)."""

    def quant(f: float) -> int:
        return zero_point + _round_half_away(float(np.float32(f) / np.float32(scale)))

    lo, hi = -128, 127
    if activation == ACT_RELU:
        lo = max(lo, quant(0.0))
    elif activation == ACT_RELU6:
        lo, hi = max(lo, quant(0.0)), min(hi, quant(6.0))
    elif activation != ACT_NONE:
        raise ValueError(f"unsupported fused activation: Received: activation={activation}")
    return lo, hi


def mean_multiplier(multiplier: int, shift: int, n: int) -> tuple[int, int]:
    """Fold 1/n into a MEAN multiplier exactly as reference_ops::QuantizedMeanOrSum."""
    s = min(n.bit_length() - 1, 32, 31 + shift)
    return int((multiplier << s) // n), shift - s


def compute_padding(in_size: int, k: int, stride: int, dilation: int, same: bool) -> tuple[int, int]:
    """TFLite ComputeOutSize + ComputePaddingWithOffset: (output size, leading padding)."""
    eff = (k - 1) * dilation + 1
    out = (in_size + stride - 1) // stride if same else (in_size - eff + stride) // stride
    total = (out - 1) * stride + eff - in_size
    return out, max(int(total / 2), 0)  # C++ integer division truncates toward zero
