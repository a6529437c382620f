"""TFLM's *prepare* step in Python: one per-level int8 .tflite -> op records for the device blob.

Computes what TFLM computes when it prepares each op (per-channel multiplier/shift with
``QuantizeMultiplier``, activation clamps, SAME/VALID padding, MEAN's folded 1/n) so the firmware
kernels only loop. ``c_arena`` packs the records of all levels into one blob.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFlatbufferError, UnsupportedLayerError
from .flatbuffer import S, read_tflite

# Blob op types (reds_model.h: enum reds_op_type). Values are part of the format: never renumber.
OP_CONV_2D, OP_DEPTHWISE_CONV_2D, OP_FULLY_CONNECTED = 1, 2, 3
OP_AVERAGE_POOL_2D, OP_MAX_POOL_2D, OP_MEAN, OP_SOFTMAX, OP_ADD, OP_LEAKY_RELU = 4, 5, 6, 7, 8, 9
OP_SPARSE_CONV_2D, OP_SPARSE_FULLY_CONNECTED = 10, 11  # row-sparse (DRESS) ops, blob version 4
SPARSE_OPS = {OP_CONV_2D: OP_SPARSE_CONV_2D, OP_FULLY_CONNECTED: OP_SPARSE_FULLY_CONNECTED}
OP_NAMES = {
    1: "CONV_2D",
    2: "DEPTHWISE_CONV_2D",
    3: "FULLY_CONNECTED",
    4: "AVERAGE_POOL_2D",
    5: "MAX_POOL_2D",
    6: "MEAN",
    7: "SOFTMAX",
    8: "ADD",
    9: "LEAKY_RELU",
    10: "SPARSE_CONV_2D",
    11: "SPARSE_FULLY_CONNECTED",
}

OP_FIELDS = (
    "type",
    "in_h",
    "in_w",
    "in_c",
    "out_h",
    "out_w",
    "out_c",
    "k_h",
    "k_w",
    "stride_h",
    "stride_w",
    "pad_h",
    "pad_w",
    "dil_h",
    "dil_w",
    "depth_mult",
    "w_off",
    "w_stride_o",
    "w_stride_p",
    "bias_off",
    "mult_off",
    "shift_off",
    "in_zp",
    "out_zp",
    "act_min",
    "act_max",
    "mult",
    "shift",
    # ADD only: input 2's zero point, the inputs' multipliers, their right shifts (input 1 in bits 0-7,
    # input 2 in bits 8-15); mult/shift are then the output's. LEAKY_RELU keeps its alpha branch's
    # multiplier in in1_mult and its (signed) shift in in2_mult (``ALPHA_FIELDS``; REDS_F_ALPHA_* in C)
    "in2_zp",
    "in1_mult",
    "in2_mult",
    "in_rshifts",
)
ALPHA_FIELDS = ("in1_mult", "in2_mult")  # LEAKY_RELU: the alpha branch's multiplier and shift
# Sparse ops: the arena offset of the column indices and their width in bytes (REDS_F_IDX_OFF/_BYTES in
# C); w_off is the values' offset and w_stride_o the stored entries per row (n_max).
SPARSE_FIELDS = ("in1_mult", "in2_mult")
_BUILTIN = S.BuiltinOperator
_SUPPORTED = {
    _BUILTIN.CONV_2D: OP_CONV_2D,
    _BUILTIN.DEPTHWISE_CONV_2D: OP_DEPTHWISE_CONV_2D,
    _BUILTIN.FULLY_CONNECTED: OP_FULLY_CONNECTED,
    _BUILTIN.AVERAGE_POOL_2D: OP_AVERAGE_POOL_2D,
    _BUILTIN.MAX_POOL_2D: OP_MAX_POOL_2D,
    _BUILTIN.MEAN: OP_MEAN,
    _BUILTIN.SOFTMAX: OP_SOFTMAX,
    _BUILTIN.ADD: OP_ADD,
    _BUILTIN.LEAKY_RELU: OP_LEAKY_RELU,
}
ADD_LEFT_SHIFT = 20  # TFLM's int8 ADD: inputs shifted left by 20 (REDS_ADD_LEFT_SHIFT)
# TFLM's int8 softmax: input differences as Q5.26 (kScaledDiffIntegerBits); int8 output fixed at 1/256, -128.
SOFTMAX_DIFF_INT_BITS = 5
SOFTMAX_DEPTH_MAX = 511  # REDS_SOFTMAX_DEPTH_MAX in reds_kernels.h


# --- TFLM prepare --------------------------------------------------------------------------


INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's ``QuantizeMultiplier``: ``real ~= m * 2**(shift - 31)`` with ``m`` in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))  # std::round: half away from 0
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def sat_round_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values held in int64 arrays."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))  # C division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: round half away from zero, exponent in [0, 31]."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + ((x & mask) > threshold)


def _wrap32(v: np.ndarray) -> np.ndarray:
    return ((np.asarray(v, np.int64) + 2**31) % 2**32) - 2**31


def requantize(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """MultiplyByQuantizedMultiplier(int32 x, multiplier, shift), elementwise, as int64 array."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(np.asarray(x, np.int64) << left)  # int32 multiply by 2^left wraps in TFLM
    return rounding_divide_by_pot(sat_round_doubling_high_mul(shifted, multiplier), right)


def mean_multiplier(multiplier: int, shift: int, n: int) -> tuple[int, int]:
    """Fold MEAN's 1/n into (multiplier, shift) as TFLM's QuantizedMeanOrSum does.

    Python twin of ``reds_mean_multiplier`` in ``firmware/src/runtime/reds_requant.h``.
    """
    s = min(n.bit_length() - 1, 32, 31 + shift)
    return (multiplier << s) // n, shift - s


def softmax_multiplier(input_scale: float, beta: float) -> tuple[int, int]:
    """TFLM's ``PreprocessSoftmaxScaling`` (double rounding build): (multiplier, left shift) of
    ``beta * input_scale * 2^26``, capped at 2^31 - 1; the left shift is >= 0."""
    real = min(float(beta) * float(input_scale) * (1 << (31 - SOFTMAX_DIFF_INT_BITS)), (1 << 31) - 1.0)
    if real <= 1.0:
        raise UnsupportedLayerError(
            f"SOFTMAX with beta * input scale = {beta * input_scale:.3g} (< 2^-26): TFLM refuses it "
            "(QuantizeMultiplierGreaterThanOne). Fix: the logits' int8 range is degenerate; calibrate "
            "with representative data."
        )
    return quantize_multiplier(real)


def add_multipliers(s1: float, s2: float, s_out: float) -> dict[str, int]:
    """TFLM's int8 ADD prepare (``CalculateOpDataAdd``), in double from the float32 scales: each input
    rescaled to twice the larger input scale, the sum (of inputs shifted left by 20) to the output.
    Returns the inputs' and output's multipliers and shifts (``QuantizeMultiplierSmallerThanOneExp``)."""
    twice_max = 2.0 * max(float(s1), float(s2))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * float(s_out)))
    return {"in1_mult": m1, "in1_shift": sh1, "in2_mult": m2, "in2_shift": sh2, "mult": mo, "shift": sho}


def leaky_relu_multipliers(s_in: float, alpha: float, s_out: float) -> dict[str, int]:
    """TFLM's int8 LEAKY_RELU prepare (``CalculateOpDataLeakyRelu``): the identity branch's
    ``QuantizeMultiplier(s_in / s_out)`` and the alpha branch's ``QuantizeMultiplier(s_in * alpha / s_out)``,
    both ratios in float32 as the C++ computes them (scales and alpha are floats there)."""
    s_in32, a32, s_out32 = np.float32(s_in), np.float32(alpha), np.float32(s_out)
    mult, shift = quantize_multiplier(float(s_in32 / s_out32))
    alpha_mult, alpha_shift = quantize_multiplier(float(s_in32 * a32 / s_out32))
    return {"mult": mult, "shift": shift, "alpha_mult": alpha_mult, "alpha_shift": alpha_shift}


def _act_range(act: int, scale: float, zp: int) -> tuple[int, int]:
    """TFLM ``CalculateActivationRangeQuantized`` for int8 (the division is float32, as in C++)."""

    def q(x: float) -> int:
        v = float(np.float32(x) / np.float32(scale))
        return zp + int(math.copysign(math.floor(abs(v) + 0.5), v))

    A = S.ActivationFunctionType
    if act == A.NONE:
        return -128, 127
    if act == A.RELU:
        return max(-128, q(0.0)), 127
    if act == A.RELU6:
        return max(-128, q(0.0)), min(127, q(6.0))
    if act == A.RELU_N1_TO_1:
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise UnsupportedLayerError(
        f"Fused activation {act} is not supported by the firmware. Use NONE, RELU, RELU6."
    )


def _pad(stride: int, dil: int, size_in: int, k: int, size_out: int) -> int:
    """TFLM ``ComputePaddingWithOffset``: leading (top/left) padding."""
    total = (size_out - 1) * stride + (k - 1) * dil + 1 - size_in
    return max(total, 0) // 2


# --- reading one level --------------------------------------------------------------------------------


def _quant(t: Any) -> tuple[np.ndarray, np.ndarray]:
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) == 0:
        raise UnsupportedLayerError(
            f"Tensor {t.name!r} is not quantised. Convert with full int8 quantisation."
        )
    return np.asarray(q.scale, np.float32), np.asarray(q.zeroPoint, np.int64)


def _const(model: Any, t: Any) -> np.ndarray:
    buf = model.buffers[t.buffer].data
    if buf is None:
        raise CorruptFlatbufferError(f"Constant tensor {t.name!r} has no data. Re-run the converter.")
    dtype = {S.TensorType.INT8: np.int8, S.TensorType.INT32: np.int32}.get(t.type)
    if dtype is None:
        raise UnsupportedLayerError(
            f"Constant tensor {t.name!r} has type {t.type}; only int8/int32 supported."
        )
    data = np.frombuffer(bytes(np.asarray(buf, np.uint8)), dtype)
    n = int(np.prod(t.shape))
    if data.size < n:
        raise CorruptFlatbufferError(
            f"Constant tensor {t.name!r} needs {n} values but its buffer holds {data.size}. "
            "Re-run the converter."
        )
    # A shared-weight file may point a smaller tensor at the start of a larger buffer (a prefix view).
    return data[:n].reshape(list(t.shape))


def read_level(path: Path) -> dict[str, Any]:
    """Parse one per-level int8 .tflite into a list of ops with prepared quantisation parameters."""
    model = read_tflite(path)  # validates the bytes before the object API touches them
    g = model.subgraphs[0]
    tensors = g.tensors
    names = {v: k for k, v in vars(_BUILTIN).items() if not k.startswith("_")}
    x_in, x_out = tensors[g.inputs[0]], tensors[g.outputs[0]]
    for t, what in ((x_in, "input"), (x_out, "output")):
        if t.type != S.TensorType.INT8:
            raise UnsupportedLayerError(
                f"{path}: the model {what} is not int8 (type {t.type}). Convert with "
                f"inference_input_type=inference_output_type=tf.int8."
            )
    ops: list[dict[str, Any]] = []
    # Ops run in the file's (topological) order; each reads tensors the level input or an earlier op
    # produced. A RESHAPE is a view: its output is its input's tensor.
    alias: dict[int, int] = {}
    produced = {g.inputs[0]}
    for op in g.operators:
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        n_act = 2 if builtin == _BUILTIN.ADD else 1
        reads = [alias.get(t, t) for t in op.inputs[:n_act]]
        for t in reads:
            if t not in produced:
                raise UnsupportedLayerError(
                    f"{path}: op {names.get(builtin, builtin)} reads tensor {tensors[t].name!r}, which is "
                    "neither the model input nor an earlier op's output (a constant or a second input); "
                    "the firmware runs one input through ops in order. Fix: fold the constant into a layer."
                )
        tin, tout = tensors[op.inputs[0]], tensors[op.outputs[0]]
        s_in, z_in = _quant(tin)
        s_out, z_out = _quant(tout)
        if builtin == _BUILTIN.RESHAPE:  # a view in NHWC int8 when the quantisation is unchanged
            if s_in[0] != s_out[0] or z_in[0] != z_out[0]:
                raise UnsupportedLayerError(f"{path}: RESHAPE changes quantisation; not supported.")
            alias[op.outputs[0]] = reads[0]
            continue
        produced.add(op.outputs[0])
        if builtin not in _SUPPORTED:
            raise UnsupportedLayerError(
                f"{path}: op {names.get(builtin, builtin)} is not supported by the firmware. "
                f"Supported: {sorted(OP_NAMES.values())} and RESHAPE."
            )
        kind = _SUPPORTED[builtin]
        ishape = [int(v) for v in tin.shape]
        oshape = [int(v) for v in tout.shape]
        in_hwc = ishape[1:] if len(ishape) == 4 else [1, 1, int(np.prod(ishape[1:]))]
        out_hwc = oshape[1:] if len(oshape) == 4 else [1, 1, int(np.prod(oshape[1:]))]
        rec: dict[str, Any] = dict.fromkeys(OP_FIELDS, 0)
        rec.update(
            type=kind,
            in_h=in_hwc[0],
            in_w=in_hwc[1],
            in_c=in_hwc[2],
            out_h=out_hwc[0],
            out_w=out_hwc[1],
            out_c=out_hwc[2],
            k_h=1,
            k_w=1,
            stride_h=1,
            stride_w=1,
            dil_h=1,
            dil_w=1,
            depth_mult=1,
            in_zp=int(z_in[0]),
            out_zp=int(z_out[0]),
            act_min=-128,
            act_max=127,
        )
        o = op.builtinOptions
        name = tout.name.decode() if isinstance(tout.name, bytes) else str(tout.name or "")
        entry: dict[str, Any] = {"rec": rec, "weights": None, "bias": None, "mult": None, "shift": None,
                                 "name": f"output tensor {name!r}", "inputs": reads,
                                 "output": op.outputs[0]}  # fmt: skip
        if kind in (OP_CONV_2D, OP_DEPTHWISE_CONV_2D, OP_FULLY_CONNECTED):
            tw = tensors[op.inputs[1]]
            w = _const(model, tw)
            s_w, z_w = _quant(tw)
            if np.any(z_w != 0):
                raise UnsupportedLayerError(f"{path}: weights of {tw.name!r} have a non-zero zero point.")
            n_ch = out_hwc[2]
            if kind == OP_FULLY_CONNECTED and len(s_w) == 1:  # per-tensor: float32 product, as TFLM does
                real = [float(np.float32(s_in[0]) * np.float32(s_w[0])) / float(s_out[0])] * n_ch
            else:
                s_w = np.broadcast_to(s_w, (n_ch,))
                real = [float(s_in[0]) * float(sw) / float(s_out[0]) for sw in s_w]
            ms = [quantize_multiplier(r) for r in real]
            entry["mult"] = np.array([m for m, _ in ms], np.int32)
            entry["shift"] = np.array([s for _, s in ms], np.int32)
            if len(op.inputs) > 2 and op.inputs[2] >= 0:
                entry["bias"] = _const(model, tensors[op.inputs[2]]).astype(np.int32).reshape(-1)
            rec["act_min"], rec["act_max"] = _act_range(
                o.fusedActivationFunction, float(s_out[0]), int(z_out[0])
            )
            if kind == OP_FULLY_CONNECTED:
                rec.update(in_h=1, in_w=1, in_c=int(w.shape[1]))
                entry["weights"] = w.reshape(w.shape[0], 1, 1, w.shape[1])  # [O, 1, 1, I]
            else:
                rec.update(
                    k_h=int(w.shape[1]),
                    k_w=int(w.shape[2]),
                    stride_h=o.strideH,
                    stride_w=o.strideW,
                    dil_h=o.dilationHFactor,
                    dil_w=o.dilationWFactor,
                )
                if kind == OP_DEPTHWISE_CONV_2D:
                    rec["depth_mult"] = o.depthMultiplier
                entry["weights"] = w  # OHWI, or [1, H, W, C] for depthwise
        elif kind in (OP_AVERAGE_POOL_2D, OP_MAX_POOL_2D):
            if s_in[0] != s_out[0] or z_in[0] != z_out[0]:
                raise UnsupportedLayerError(f"{path}: pooling must keep the quantisation (TFLM requires it).")
            rec.update(k_h=o.filterHeight, k_w=o.filterWidth, stride_h=o.strideH, stride_w=o.strideW)
            rec["act_min"], rec["act_max"] = _act_range(
                o.fusedActivationFunction, float(s_out[0]), int(z_out[0])
            )
        elif kind == OP_SOFTMAX:
            if float(s_out[0]) != 1.0 / 256 or int(z_out[0]) != -128:
                raise UnsupportedLayerError(
                    f"{path}: SOFTMAX output quantisation is scale {float(s_out[0])}, zero point "
                    f"{int(z_out[0])}; TFLM's int8 softmax needs 1/256 and -128. Fix: convert with "
                    "TFLiteConverter's full-integer int8 quantisation."
                )
            if in_hwc[2] > SOFTMAX_DEPTH_MAX:
                raise UnsupportedLayerError(
                    f"{path}: SOFTMAX over {in_hwc[2]} values; the firmware's int8 softmax takes at most "
                    f"{SOFTMAX_DEPTH_MAX} (TFLM's fixed-point sum overflows its rounding shift beyond). Fix: "
                    "end the model at the logits and take the argmax on the device."
                )
            rec.update(out_h=in_hwc[0], out_w=in_hwc[1], out_c=in_hwc[2])
            rec["mult"], rec["shift"] = softmax_multiplier(float(s_in[0]), float(o.beta))
        elif kind == OP_ADD:
            tin2 = tensors[op.inputs[1]]
            shapes = [[int(v) for v in t.shape] for t in (tin, tin2, tout)]
            if shapes[0] != shapes[1] or shapes[0] != shapes[2]:
                raise UnsupportedLayerError(
                    f"{path}: ADD of shapes {shapes[0]} and {shapes[1]} -> {shapes[2]}; the firmware adds "
                    "tensors of one shape only (no broadcasting). Fix: add tensors of equal shapes."
                )
            if tin2.type != S.TensorType.INT8:
                raise UnsupportedLayerError(f"{path}: ADD's second input is not int8 (type {tin2.type}).")
            s_in2, z_in2 = _quant(tin2)
            am = add_multipliers(s_in[0], s_in2[0], s_out[0])
            if am["in1_shift"] > 0 or am["in2_shift"] > 0:  # impossible: each real multiplier is <= 1/2
                raise UnsupportedLayerError(f"{path}: ADD input multiplier >= 1; corrupt quantisation.")
            rec.update(in2_zp=int(z_in2[0]), in1_mult=am["in1_mult"], in2_mult=am["in2_mult"],
                       in_rshifts=(-am["in1_shift"]) | ((-am["in2_shift"]) << 8), mult=am["mult"],
                       shift=am["shift"])  # fmt: skip
            rec["act_min"], rec["act_max"] = _act_range(
                o.fusedActivationFunction, float(s_out[0]), int(z_out[0])
            )
        elif kind == OP_LEAKY_RELU:
            if [int(v) for v in tin.shape] != [int(v) for v in tout.shape]:
                raise UnsupportedLayerError(
                    f"{path}: LEAKY_RELU of shape {list(tin.shape)} -> {list(tout.shape)}; it must keep "
                    "the shape. Fix: re-run the TFLite converter."
                )
            lm = leaky_relu_multipliers(float(s_in[0]), float(o.alpha), float(s_out[0]))
            rec.update(mult=lm["mult"], shift=lm["shift"])
            rec[ALPHA_FIELDS[0]], rec[ALPHA_FIELDS[1]] = lm["alpha_mult"], lm["alpha_shift"]
        else:  # MEAN over H, W (global average pooling)
            axis = sorted(int(a) for a in _const(model, tensors[op.inputs[1]]).reshape(-1))
            if axis != [1, 2] or len(ishape) != 4:
                raise UnsupportedLayerError(f"{path}: MEAN over axes {axis}; only axes [1, 2] of NHWC.")
            rec.update(out_h=1, out_w=1)
            m, sh = quantize_multiplier(float(s_in[0]) / float(s_out[0]))
            # The pinned tflite-micro requantises every int8 MEAN (keep_dims = false), even when input
            # and output quantisation are identical, so the record has no "plain mean" flag.
            rec["mult"], rec["shift"] = mean_multiplier(m, sh, in_hwc[0] * in_hwc[1])
        if kind in (OP_CONV_2D, OP_DEPTHWISE_CONV_2D, OP_AVERAGE_POOL_2D, OP_MAX_POOL_2D):
            rec["pad_h"] = _pad(rec["stride_h"], rec["dil_h"], rec["in_h"], rec["k_h"], rec["out_h"])
            rec["pad_w"] = _pad(rec["stride_w"], rec["dil_w"], rec["in_w"], rec["k_w"], rec["out_w"])
        ops.append(entry)
    if not ops or alias.get(g.outputs[0], g.outputs[0]) != ops[-1]["output"]:
        raise UnsupportedLayerError(f"{path}: the last op does not write the model output.")
    s_i, z_i = _quant(x_in)
    s_o, z_o = _quant(x_out)
    ishape = [int(v) for v in x_in.shape] + [1, 1, 1]
    return {
        "ops": ops,
        "in_scale": float(s_i[0]),
        "in_zp": int(z_i[0]),
        "out_scale": float(s_o[0]),
        "out_zp": int(z_o[0]),
        # a rank-2 or rank-3 input (e.g. before a Flatten) is one row of all its elements
        "in_hwc": ishape[1:4] if len(x_in.shape) == 4 else [1, 1, int(np.prod(x_in.shape[1:]))],
        "out_bytes": int(np.prod(x_out.shape)),
    }


def op_macs(r: dict[str, int]) -> int:
    """Multiply-accumulates of one op record (pooling and MEAN count as 0; a sparse op counts the entries
    its level runs per row, ``r["count"]``)."""
    pix = r["out_h"] * r["out_w"]
    if r["type"] in (OP_SPARSE_CONV_2D, OP_SPARSE_FULLY_CONNECTED):
        return pix * r["out_c"] * r["count"]
    if r["type"] == OP_CONV_2D:
        return pix * r["out_c"] * r["k_h"] * r["k_w"] * r["in_c"]
    if r["type"] == OP_DEPTHWISE_CONV_2D:
        return pix * r["out_c"] * r["k_h"] * r["k_w"]
    if r["type"] == OP_FULLY_CONNECTED:
        return r["in_c"] * r["out_c"]
    return 0


def act_bytes(r: dict[str, int], side: str) -> int:
    return r[f"{side}_h"] * r[f"{side}_w"] * r[f"{side}_c"]
