"""Quantise once from the full model and reuse those int8 weights in every level.

TFLiteConverter quantises each level on its own, so two levels never share int8 bytes.
``share_weights`` rewrites a level's converted model so that every weight tensor holds the
FULL level's int8 values and per-channel scales restricted to the level's units (a
prefix, or for Flatten -> Dense a strided sub-block), and recomputes the int32 biases
for the new weight scales: ``bias_q = round(bias_float / (s_in * s_w[c]))`` with
``bias_float`` recovered from the converter's own int32 bias and scale. ``share_activations``
(shared calibration, run first) gives every level the full level's activation quantisation; then
each level's int32 biases are the full level's, restricted to its channels.

TFLM's ``QuantizeMultiplier`` has one Python twin, ``c_prepare.quantize_multiplier`` (std::round:
halves away from zero).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..errors import UnsupportedLayerError
from .flatbuffer import S, add_buffer, op_name, tensor_array

# op name -> (filter input index, bias input index, quantized (output-channel) axis of the filter)
WEIGHT_OPS = {"CONV_2D": (1, 2, 0), "DEPTHWISE_CONV_2D": (1, 2, 3), "FULLY_CONNECTED": (1, 2, 0)}
# Ops whose constant inputs are small parameters (axes, shapes), not weights to share.
PARAM_OPS = {
    "MEAN", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE", "SOFTMAX", "ADD", "MUL", "PAD", "RELU", "RELU6",
    "QUANTIZE", "DEQUANTIZE", "CONCATENATION", "SLICE", "STRIDED_SLICE", "LOGISTIC", "TANH", "SQUEEZE",
    "HARD_SWISH", "LEAKY_RELU", "SUM",
}  # fmt: skip


@dataclass(frozen=True)
class TensorShare:
    """How one level's weight tensor sits inside the full level's tensor.

    ``layout``: ``"prefix"`` (its int8 bytes are the first bytes of the full tensor),
    ``"slice"`` (a box ``[0:s0, 0:s1, ...]`` of the full tensor, cut by SLICE at run time)
    or ``"gather"`` (strided, e.g. Dense after Flatten: stored as a copy). ``shared`` is
    False when the level's float weights are not the full model's restricted to its units
    (e.g. per-level BatchNorm statistics): then the level keeps its own quantisation.
    """

    op_index: int
    op: str
    name: str
    full_shape: tuple[int, ...]
    level_shape: tuple[int, ...]
    layout: str
    shared: bool
    max_abs_diff_lsb: float

    def to_dict(self) -> dict:
        return asdict(self)


def _full_bias_if_same(
    full: S.ModelT, op_f: S.OperatorT, bi: int, channels: np.ndarray, s_in: float, bq: np.ndarray, ratio
) -> np.ndarray:
    """The full level's int32 bias for ``channels`` when it quantises the same float bias at the same
    scale as ``bq`` (same input scale, i.e. shared calibration): then the level's bias array is a prefix
    of the full one and is stored once. ``bq`` was recovered through the level's own bias scale, so it
    may differ from the full one by that scale's rounding (``ratio``: level bias scale / new scale)."""
    if len(op_f.inputs) <= bi or op_f.inputs[bi] < 0:
        return bq
    sg = full.subgraphs[0]
    if float(sg.tensors[op_f.inputs[0]].quantization.scale[0]) != s_in:
        return bq
    fb = tensor_array(full, int(op_f.inputs[bi])).astype(np.int64)[channels]
    tol = 0.5 * np.asarray(ratio, np.float64) + 1.0
    return fb.astype(np.int32) if np.all(np.abs(fb - bq.astype(np.int64)) <= tol) else bq


def _scales(t: S.TensorT, n: int) -> np.ndarray:
    s = np.asarray(t.quantization.scale, np.float64)
    return np.full(n, s[0]) if s.size == 1 else s


def _index_map(full: S.ModelT, level: S.ModelT, op_f: S.OperatorT, op_l: S.OperatorT, fshape, lshape):
    """Per-axis indices of the level's weights inside the full tensor, and the layout name."""
    idx = [np.arange(n) for n in lshape]
    layout = "slice"
    name = op_name(level, op_l)
    if name == "FULLY_CONNECTED" and lshape[1] != fshape[1]:
        # Dense after Flatten: input feature (h, w, c) sits at (h*W + w)*C + c in the full model.
        src_l = _producer_input_shape(level, op_l.inputs[0])
        src_f = _producer_input_shape(full, op_f.inputs[0])
        if src_l is not None and src_f is not None and src_l[:-1] == src_f[:-1] and src_l[-1] != src_f[-1]:
            hw = int(np.prod(src_l[1:-1]))
            cl, cf = src_l[-1], src_f[-1]
            idx[1] = (np.arange(hw)[:, None] * cf + np.arange(cl)[None, :]).ravel()
            layout = "gather"
    if layout == "slice" and _is_prefix(tuple(fshape), tuple(lshape)):
        layout = "prefix"
    return idx, layout


def _is_prefix(fshape: tuple[int, ...], lshape: tuple[int, ...]) -> bool:
    """True when the box ``[0:l0, 0:l1, ...]`` of a C-order tensor is its first bytes.

    That holds when only one axis shrinks, every axis before it has size 1 and every axis
    after it is full (OHWI conv with fewer filters, [out, in] dense with fewer outputs).
    """
    shrunk = [a for a in range(len(lshape)) if lshape[a] != fshape[a]]
    if not shrunk:
        return True
    a = shrunk[0]
    return int(np.prod(lshape[:a], dtype=np.int64)) == 1 and lshape[a + 1 :] == fshape[a + 1 :]


def _producer_input_shape(model: S.ModelT, tensor: int) -> list[int] | None:
    """Shape of the input of the RESHAPE that produces ``tensor`` (Flatten), if any."""
    sg = model.subgraphs[0]
    for op in sg.operators:
        if tensor in list(op.outputs) and op_name(model, op) == "RESHAPE":
            return [int(d) for d in sg.tensors[op.inputs[0]].shape]
    return None


def check_supported(model: S.ModelT, label: str) -> None:
    """Refuse ops whose constant weights the shared arena cannot describe, and custom ops."""
    sg = model.subgraphs[0]
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = op_name(model, op)
        if code.customCode:
            raise UnsupportedLayerError(
                f"{label} contains the custom op {code.customCode!r}; TFLite Micro runs builtin ops only. "
                "Fix: replace the layer that produces it with a builtin-op layer."
            )
        if name in WEIGHT_OPS or name in PARAM_OPS:
            continue
        for i in op.inputs:
            if i >= 0 and sg.tensors[i].buffer and model.buffers[sg.tensors[i].buffer].data is not None:
                if len(sg.tensors[i].shape) >= 2:
                    raise UnsupportedLayerError(
                        f"{label} contains op {name} with constant weights; reds_tf can share weights of "
                        f"{sorted(WEIGHT_OPS)} only. Received: op={name}. Fix: use Conv2D, DepthwiseConv2D "
                        "and Dense layers."
                    )


CALIBRATION_MODES = ("shared", "per_level")


def _is_const(model: S.ModelT, t: int) -> bool:
    data = model.buffers[model.subgraphs[0].tensors[t].buffer].data
    return data is not None and len(data) > 0


def share_activations(full: S.ModelT, level: S.ModelT, label: str = "level") -> int:
    """Give every activation tensor of ``level`` the full level's quantisation (one calibration for all).

    Tensors are matched by position in the operator list (``share_weights`` checks that both graphs
    have the same ops). Run before ``share_weights``: it rescales each int32 bias to the new input
    scale, after which the biases, multipliers and shifts of a width-prefix level are prefixes of the
    full level's. Returns the number of tensors whose quantisation changed.
    """
    ops_f, ops_l = full.subgraphs[0].operators, level.subgraphs[0].operators
    if [op_name(full, o) for o in ops_f] != [op_name(level, o) for o in ops_l]:
        raise UnsupportedLayerError(
            f"{label}'s TFLite graph is not the full model's graph with fewer units. Fix: every level "
            "must keep every layer (width >= 1)."
        )
    tf_, tl = full.subgraphs[0].tensors, level.subgraphs[0].tensors
    changed: set[int] = set()
    for op_f, op_l in zip(ops_f, ops_l, strict=True):
        for ios_f, ios_l in ((op_f.inputs, op_l.inputs), (op_f.outputs, op_l.outputs)):
            for i_f, i_l in zip(ios_f, ios_l, strict=True):
                if i_l < 0 or _is_const(level, int(i_l)) or i_l in changed:
                    continue
                qf, ql = tf_[int(i_f)].quantization, tl[int(i_l)].quantization
                if qf is None or qf.scale is None or len(qf.scale) != 1:
                    continue  # float or per-axis activations: nothing the firmware runs
                if ql.scale[0] != qf.scale[0] or ql.zeroPoint[0] != qf.zeroPoint[0]:
                    ql.scale = np.asarray(qf.scale, np.float32).copy()
                    ql.zeroPoint = np.asarray(qf.zeroPoint, np.int64).copy()
                    ql.min, ql.max = qf.min, qf.max
                    changed.add(int(i_l))
    return len(changed)


def share_weights(full: S.ModelT, level: S.ModelT, label: str = "level") -> list[TensorShare]:
    """Rewrite ``level`` in place to use the full model's int8 weights and scales; see module doc."""
    ops_f, ops_l = full.subgraphs[0].operators, level.subgraphs[0].operators
    names_f = [op_name(full, o) for o in ops_f]
    names_l = [op_name(level, o) for o in ops_l]
    if names_f != names_l:
        raise UnsupportedLayerError(
            f"{label}'s TFLite graph is not the full model's graph with fewer units: ops {names_l} vs "
            f"{names_f}. Fix: every level must keep every layer (width >= 1)."
        )
    shares = []
    for i, (op_f, op_l, name) in enumerate(zip(ops_f, ops_l, names_l, strict=True)):
        if name not in WEIGHT_OPS:
            continue
        fi, bi, axis = WEIGHT_OPS[name]
        tl = level.subgraphs[0].tensors[op_l.inputs[fi]]
        tf_ = full.subgraphs[0].tensors[op_f.inputs[fi]]
        wf, wl = tensor_array(full, op_f.inputs[fi]), tensor_array(level, op_l.inputs[fi])
        if wl.ndim != wf.ndim or any(a > b for a, b in zip(wl.shape, wf.shape, strict=True)):
            raise UnsupportedLayerError(
                f"{label} op {i} ({name}) has weights of shape {wl.shape}, larger than the full model's "
                f"{wf.shape}. Fix: levels must be width prefixes of the full model."
            )
        idx, layout = _index_map(full, level, op_f, op_l, wf.shape, wl.shape)
        cand = wf[np.ix_(*idx)]
        s_f = _scales(tf_, wf.shape[axis])[idx[axis]]
        s_l = _scales(tl, wl.shape[axis])
        bshape = [1] * wl.ndim
        bshape[axis] = -1
        diff = np.abs(cand * s_f.reshape(bshape) - wl * s_l.reshape(bshape))
        # The two quantisations of one float weight differ by at most half an LSB of each scale.
        tol = (0.5 * s_f + 0.5 * s_l) * 1.001 + 1e-12
        lsb = float(np.max(diff / s_f.reshape(bshape))) if diff.size else 0.0
        ok = bool(np.all(diff <= tol.reshape(bshape)))
        shares.append(TensorShare(i, name, tl.name.decode() if isinstance(tl.name, bytes) else str(tl.name),
                                  tuple(wf.shape), tuple(wl.shape), layout, ok, round(lsb, 4)))  # fmt: skip
        if not ok:
            continue
        tl.buffer = add_buffer(level, cand.astype(np.int8))
        tl.quantization.scale = s_f.astype(np.float32)
        tl.quantization.zeroPoint = np.zeros(len(s_f), np.int64)
        tl.quantization.quantizedDimension = axis
        if len(op_l.inputs) > bi and op_l.inputs[bi] >= 0:
            tb = level.subgraphs[0].tensors[op_l.inputs[bi]]
            b_float = tensor_array(level, op_l.inputs[bi]).astype(np.float64) * _scales(tb, len(s_f))
            s_in = float(level.subgraphs[0].tensors[op_l.inputs[0]].quantization.scale[0])
            new_s = s_in * s_f.astype(np.float32).astype(np.float64)
            bq = np.clip(np.round(b_float / new_s), -(2**31), 2**31 - 1).astype(np.int32)
            bq = _full_bias_if_same(full, op_f, bi, idx[axis], s_in, bq, _scales(tb, len(s_f)) / new_s)
            tb.buffer = add_buffer(level, bq)
            tb.quantization.scale = new_s.astype(np.float32)
            tb.quantization.zeroPoint = np.zeros(len(s_f), np.int64)
    return shares
