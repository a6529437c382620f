"""Generate golden headers for the reds int8 kernel tests from single-op int8 models run by TFLM.

Each case is one standard builtin-op .tflite flatbuffer (CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN, ADD, LEAKY_RELU) with random shapes, random quantisation
parameters and random fused activations, executed by the tflite-micro Python interpreter. Weight
tensors of the model are a prefix sub-block of a larger random "full" tensor; the header stores
the FULL tensor, so the C test exercises the strided prefix view the nested runtime relies on.
Multipliers, shifts and clamps in the headers come from requant_ref.py (the Python twin of
TFLM's prepare step), so a mismatch also flags a wrong twin.

    python firmware/tests/gen_goldens.py --out firmware/tests/golden --seed 7 --cases 6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import tflite_micro
from tflite_micro import runtime
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

sys.path.insert(0, str(Path(__file__).resolve().parent))
import requant_ref as rq  # noqa: E402

INT8, INT32 = S.TensorType.INT8, S.TensorType.INT32
ACTS = (rq.ACT_NONE, rq.ACT_RELU, rq.ACT_RELU6)


# ---------------------------------------------------------------- flatbuffer building
class _Model:
    """Collects tensors and buffers of a one-operator subgraph."""

    def __init__(self) -> None:
        self.tensors: list = []
        self.buffers: list = [S.BufferT()]  # buffer 0 is the empty sentinel

    def tensor(self, shape, ttype, scale=None, zp=None, data: np.ndarray | None = None, qdim=0) -> int:
        t = S.TensorT()
        t.shape = list(int(s) for s in shape)
        t.type = ttype
        t.name = f"t{len(self.tensors)}"
        if scale is not None:
            q = S.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zp)]
            q.quantizedDimension = qdim
            t.quantization = q
        if data is not None:
            b = S.BufferT()
            b.data = np.ascontiguousarray(data).tobytes()
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def pack(self, opcode: int, version: int, inputs, outputs, opt_type, options, n_graph_inputs=1) -> bytes:
        code = S.OperatorCodeT()
        code.builtinCode = opcode
        code.deprecatedBuiltinCode = min(opcode, 127)
        code.version = version
        op = S.OperatorT()
        op.opcodeIndex = 0
        op.inputs, op.outputs = list(inputs), list(outputs)
        op.builtinOptionsType, op.builtinOptions = opt_type, options
        sg = S.SubGraphT()
        sg.tensors, sg.operators = self.tensors, [op]
        sg.inputs, sg.outputs = list(inputs[:n_graph_inputs]), list(outputs)
        m = S.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [code], [sg], self.buffers
        m.description = "reds golden"
        b = flatbuffers.Builder(4096)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def run_tflm(model: bytes, x: np.ndarray, *more: np.ndarray) -> np.ndarray:
    """Run a model in the tflite-micro interpreter on inputs ``x, *more`` and return output 0."""
    it = runtime.Interpreter.from_bytes(model, arena_size=64 * 1024 + 8 * x.size * (1 + len(more)))
    for i, v in enumerate((x, *more)):
        it.set_input(v, i)
    it.invoke()
    return np.array(it.get_output(0))


# ---------------------------------------------------------------- random quantisation
def _q(rng, lo=-128, hi=127) -> int:
    return int(rng.integers(lo, hi + 1))


def _out_scale(rng, real: np.ndarray, act: int) -> float:
    """Output scale covering roughly the real outputs, sometimes tighter so clamps bite."""
    span = float(np.max(real) - np.min(real)) or 1.0
    if act == rq.ACT_RELU6 and rng.random() < 0.5:
        return float(np.float32(6.0 / rng.uniform(30, 250)))
    return float(np.float32(span / rng.uniform(120, 300)))


def _weights_and_scales(rng, full_shape, per_channel_axis_len, per_channel: bool):
    w_full = rng.integers(-127, 128, size=full_shape, dtype=np.int8)
    n = per_channel_axis_len if per_channel else 1
    scales = rng.uniform(0.002, 0.05, size=n).astype(np.float32)
    return w_full, scales


def _bias(rng, n: int, in_scale: float, w_scales: np.ndarray, typical: float) -> np.ndarray:
    return rng.integers(-int(typical) - 1, int(typical) + 2, size=n).astype(np.int32)


# ---------------------------------------------------------------- one case per op kind
def case_fc(rng) -> dict:
    batches = int(rng.integers(1, 4))
    in_full, out_full = int(rng.integers(1, 48)), int(rng.integers(1, 24))
    in_w, out_w = int(rng.integers(1, in_full + 1)), int(rng.integers(1, out_full + 1))
    per_channel = bool(rng.random() < 0.5)
    w_full, w_scales = _weights_and_scales(rng, (out_full, in_full), out_w, per_channel)
    w = w_full[:out_w, :in_w]
    in_scale, in_zp = float(np.float32(rng.uniform(0.005, 0.1))), _q(rng)
    x = rng.integers(-128, 128, size=(batches, in_w), dtype=np.int8)
    acc = (x.astype(np.int64) - in_zp) @ w.T.astype(np.int64)
    bias = _bias(rng, out_w, in_scale, w_scales, np.abs(acc).mean() + 1)
    act = int(rng.choice(ACTS))
    ws = np.broadcast_to(w_scales, (out_w,))
    out_scale, out_zp = _out_scale(rng, (acc + bias) * in_scale * ws, act), _q(rng, -60, 60)

    m = _Model()
    ti = m.tensor((batches, in_w), INT8, in_scale, in_zp)
    tw = m.tensor((out_w, in_w), INT8, w_scales, np.zeros(len(w_scales)), w, qdim=0)
    tb = m.tensor((out_w,), INT32, in_scale * ws, np.zeros(out_w), bias, qdim=0)
    to = m.tensor((batches, out_w), INT8, out_scale, out_zp)
    opt = S.FullyConnectedOptionsT()
    opt.fusedActivationFunction = act
    model = m.pack(
        S.BuiltinOperator.FULLY_CONNECTED, 9, [ti, tw, tb], [to], S.BuiltinOptions.FullyConnectedOptions, opt
    )
    if per_channel:
        mult, shift = rq.conv_multipliers(in_scale, w_scales, out_scale)
    else:
        mm, ss = rq.fc_multiplier(in_scale, float(w_scales[0]), out_scale)
        mult, shift = np.array([mm]), np.array([ss])
    lo, hi = rq.activation_range(act, out_scale, out_zp)
    return dict(
        kind="fc",
        ints=dict(
            batches=batches,
            in_w=in_w,
            out_w=out_w,
            in_stride=in_full,
            per_channel=int(per_channel),
            input_offset=-in_zp,
            output_offset=out_zp,
            act_min=lo,
            act_max=hi,
        ),
        input=x,
        filter=w_full,
        bias=bias,
        mult=mult,
        shift=shift,
        expected=run_tflm(model, x),
    )


def _conv_like(
    rng,
    depthwise: bool,
    kernel: tuple[int, int] | None = None,
    max_c: int = 12,
    full_in: bool = False,
    stride: int | None = None,
    act: int | None = None,
) -> dict:
    """A random CONV_2D / DEPTHWISE_CONV_2D case; `kernel` forces the filter size (e.g. (1, 1) for the
    pointwise path), `max_c` widens the channel counts (SIMD blocks of 4 and 8 plus their tails),
    `full_in` keeps every input channel of the weight tensor (contiguous windows, as in a first layer),
    `stride` and `act` force the strides and the fused activation."""
    n = int(rng.integers(1, 3))
    in_h, in_w_ = int(rng.integers(1, 11)), int(rng.integers(1, 9))
    k_h, k_w = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    if rng.random() < 0.35:  # 3x3, the DS-CNN / MobileNet kernel (the depthwise fast path)
        k_h, k_w, in_h, in_w_ = 3, 3, max(in_h, 3), max(in_w_, 3)
    if kernel is not None:
        k_h, k_w = kernel
        in_h, in_w_ = max(in_h, k_h), max(in_w_, k_w)
    same = bool(rng.random() < 0.5)
    s_h, s_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    dil = 2 if rng.random() < 0.15 else 1
    if stride is not None:
        s_h = s_w = stride
    if kernel is not None or stride is not None:  # forced shapes: the fast paths are undilated
        dil = 1
    if not same:  # VALID needs the (dilated) kernel to fit
        k_h, k_w = min(k_h, (in_h - 1) // dil + 1), min(k_w, (in_w_ - 1) // dil + 1)
    out_h, pad_h = rq.compute_padding(in_h, k_h, s_h, dil, same)
    out_w, pad_w = rq.compute_padding(in_w_, k_w, s_w, dil, same)
    in_scale, in_zp = float(np.float32(rng.uniform(0.005, 0.1))), _q(rng)
    act = int(rng.choice(ACTS)) if act is None else act
    if depthwise:
        c_in = int(rng.integers(1, max_c + 1))
        mult_ch = 2 if rng.random() < 0.2 else 1
        c_out = c_in * mult_ch
        c_full = c_out + int(rng.integers(0, 9))
        w_full, w_scales = _weights_and_scales(rng, (1, k_h, k_w, c_full), c_out, True)
        w = w_full[..., :c_out]
        in_stride = c_full
    else:
        c_in_full, c_out_full = int(rng.integers(1, max_c + 1)), int(rng.integers(1, max_c + 5))
        c_in, c_out = int(rng.integers(1, c_in_full + 1)), int(rng.integers(1, c_out_full + 1))
        c_in = c_in_full if full_in else c_in
        w_full, w_scales = _weights_and_scales(rng, (c_out_full, k_h, k_w, c_in_full), c_out, True)
        w = w_full[:c_out, :, :, :c_in]
        in_stride, mult_ch = c_in_full, 1
    x = rng.integers(-128, 128, size=(n, in_h, in_w_, c_in), dtype=np.int8)
    typical = 60.0 * 60.0 * np.sqrt(k_h * k_w * (1 if depthwise else c_in))
    bias = _bias(rng, c_out, in_scale, w_scales, typical)
    real = np.array([typical * in_scale * float(w_scales.max()), -typical * in_scale * float(w_scales.max())])
    out_scale, out_zp = _out_scale(rng, real, act), _q(rng, -60, 60)

    m = _Model()
    ti = m.tensor(x.shape, INT8, in_scale, in_zp)
    qdim = 3 if depthwise else 0
    tw = m.tensor(w.shape, INT8, w_scales, np.zeros(len(w_scales)), np.ascontiguousarray(w), qdim=qdim)
    tb = m.tensor((c_out,), INT32, in_scale * w_scales, np.zeros(c_out), bias)
    to = m.tensor((n, out_h, out_w, c_out), INT8, out_scale, out_zp)
    if depthwise:
        opt = S.DepthwiseConv2DOptionsT()
        opt.depthMultiplier = mult_ch
        code, ver, otype = S.BuiltinOperator.DEPTHWISE_CONV_2D, 6, S.BuiltinOptions.DepthwiseConv2DOptions
    else:
        opt = S.Conv2DOptionsT()
        code, ver, otype = S.BuiltinOperator.CONV_2D, 5, S.BuiltinOptions.Conv2DOptions
    opt.padding = S.Padding.SAME if same else S.Padding.VALID
    opt.strideH, opt.strideW, opt.dilationHFactor, opt.dilationWFactor = s_h, s_w, dil, dil
    opt.fusedActivationFunction = act
    model = m.pack(code, ver, [ti, tw, tb], [to], otype, opt)
    mult, shift = rq.conv_multipliers(in_scale, w_scales, out_scale)
    lo, hi = rq.activation_range(act, out_scale, out_zp)
    return dict(
        kind="dw" if depthwise else "conv",
        ints=dict(
            n=n,
            in_h=in_h,
            in_w=in_w_,
            in_c=c_in,
            k_h=k_h,
            k_w=k_w,
            out_h=out_h,
            out_w=out_w,
            out_c=c_out,
            c_stride=in_stride,
            ch_mult=mult_ch,
            stride_h=s_h,
            stride_w=s_w,
            pad_h=pad_h,
            pad_w=pad_w,
            dilation=dil,
            input_offset=-in_zp,
            output_offset=out_zp,
            act_min=lo,
            act_max=hi,
        ),
        input=x,
        filter=w_full,
        bias=bias,
        mult=mult,
        shift=shift,
        expected=run_tflm(model, x),
    )


def case_conv(rng) -> dict:
    return _conv_like(rng, depthwise=False)


def case_dw(rng) -> dict:
    return _conv_like(rng, depthwise=True)


def _pool(rng, is_max: bool) -> dict:
    n, in_h, in_w_, c = (
        int(rng.integers(1, 3)),
        int(rng.integers(1, 10)),
        int(rng.integers(1, 10)),
        int(rng.integers(1, 9)),
    )
    f_h, f_w = int(rng.integers(1, min(in_h, 4) + 1)), int(rng.integers(1, min(in_w_, 4) + 1))
    s_h, s_w = int(rng.integers(1, 3)), int(rng.integers(1, 3))
    same = bool(rng.random() < 0.5)
    out_h, pad_h = rq.compute_padding(in_h, f_h, s_h, 1, same)
    out_w, pad_w = rq.compute_padding(in_w_, f_w, s_w, 1, same)
    scale, zp = float(np.float32(rng.uniform(0.005, 0.1))), _q(rng, -50, 50)
    act = int(rng.choice(ACTS))
    x = rng.integers(-128, 128, size=(n, in_h, in_w_, c), dtype=np.int8)
    m = _Model()
    ti = m.tensor(x.shape, INT8, scale, zp)
    to = m.tensor((n, out_h, out_w, c), INT8, scale, zp)
    opt = S.Pool2DOptionsT()
    opt.padding = S.Padding.SAME if same else S.Padding.VALID
    opt.strideH, opt.strideW, opt.filterHeight, opt.filterWidth = s_h, s_w, f_h, f_w
    opt.fusedActivationFunction = act
    code = S.BuiltinOperator.MAX_POOL_2D if is_max else S.BuiltinOperator.AVERAGE_POOL_2D
    model = m.pack(code, 2, [ti], [to], S.BuiltinOptions.Pool2DOptions, opt)
    lo, hi = rq.activation_range(act, scale, zp)
    return dict(
        kind="maxpool" if is_max else "avgpool",
        ints=dict(
            n=n,
            in_h=in_h,
            in_w=in_w_,
            c=c,
            out_h=out_h,
            out_w=out_w,
            f_h=f_h,
            f_w=f_w,
            stride_h=s_h,
            stride_w=s_w,
            pad_h=pad_h,
            pad_w=pad_w,
            act_min=lo,
            act_max=hi,
        ),
        input=x,
        expected=run_tflm(model, x),
    )


def case_avgpool(rng) -> dict:
    return _pool(rng, is_max=False)


def case_maxpool(rng) -> dict:
    return _pool(rng, is_max=True)


def case_mean(rng) -> dict:
    n, h, w, c = (
        int(rng.integers(1, 3)),
        int(rng.integers(1, 26)),
        int(rng.integers(1, 12)),
        int(rng.integers(1, 20)),
    )
    in_scale, in_zp = float(np.float32(rng.uniform(0.005, 0.1))), _q(rng)
    same = bool(rng.random() < 0.25)  # identical quantisation: TFLM still requantises
    if same:
        out_scale, out_zp = in_scale, in_zp
    else:
        out_scale, out_zp = float(np.float32(in_scale * rng.uniform(0.1, 1.5))), _q(rng, -60, 60)
    x = rng.integers(-128, 128, size=(n, h, w, c), dtype=np.int8)
    m = _Model()
    ti = m.tensor(x.shape, INT8, in_scale, in_zp)
    ta = m.tensor((2,), INT32, data=np.array([1, 2], np.int32))
    to = m.tensor((n, c), INT8, out_scale, out_zp)
    opt = S.ReducerOptionsT()
    opt.keepDims = False
    model = m.pack(S.BuiltinOperator.MEAN, 2, [ti, ta], [to], S.BuiltinOptions.ReducerOptions, opt)
    base_m, base_s = rq.quantize_multiplier(float(np.float32(in_scale)) / float(np.float32(out_scale)))
    mm, ss = rq.mean_multiplier(base_m, base_s, h * w)
    return dict(
        kind="mean",
        ints=dict(n=n, h=h, w=w, c=c, input_offset=-in_zp, output_offset=out_zp, multiplier=mm, shift=ss),
        input=x,
        expected=run_tflm(model, x),
    )


def add_params(s1: float, s2: float, s_out: float) -> dict[str, int]:
    """TFLM's int8 ADD prepare (CalculateOpDataAdd) from float32 scales, in double as TFLM computes it:
    inputs rescaled to twice the larger input scale after a left shift of 20, the sum to the output."""
    s1, s2, s_out = (float(np.float32(v)) for v in (s1, s2, s_out))
    twice_max = 2 * max(s1, s2)
    m1, sh1 = rq.quantize_multiplier(s1 / twice_max)
    m2, sh2 = rq.quantize_multiplier(s2 / twice_max)
    mo, sho = rq.quantize_multiplier(twice_max / ((1 << 20) * s_out))
    return dict(input1_multiplier=m1, input1_shift=sh1, input2_multiplier=m2, input2_shift=sh2,
                output_multiplier=mo, output_shift=sho)  # fmt: skip


def case_add(rng) -> dict:
    shape = tuple(int(v) for v in rng.integers(1, 9, size=int(rng.integers(1, 5))))
    s1 = float(np.float32(rng.uniform(0.005, 0.2)))
    s2 = float(np.float32(s1 * rng.choice([1.0, rng.uniform(0.2, 5.0)])))  # equal scales, or not
    z1, z2 = _q(rng), _q(rng)
    x1 = rng.integers(-128, 128, size=shape, dtype=np.int8)
    x2 = rng.integers(-128, 128, size=shape, dtype=np.int8)
    act = int(rng.choice(ACTS))
    real = s1 * (x1.astype(np.float64) - z1) + s2 * (x2.astype(np.float64) - z2)
    out_scale = _out_scale(rng, real, act)
    out_zp = _q(rng, -60, 60)
    m = _Model()
    t1 = m.tensor(shape, INT8, s1, z1)
    t2 = m.tensor(shape, INT8, s2, z2)
    to = m.tensor(shape, INT8, out_scale, out_zp)
    opt = S.AddOptionsT()
    opt.fusedActivationFunction = act
    model = m.pack(S.BuiltinOperator.ADD, 1, [t1, t2], [to], S.BuiltinOptions.AddOptions, opt, 2)
    lo, hi = rq.activation_range(act, out_scale, out_zp)
    return dict(
        kind="add",
        ints=dict(
            size=int(np.prod(shape)),
            input1_offset=-z1,
            input2_offset=-z2,
            output_offset=out_zp,
            **add_params(s1, s2, out_scale),
            act_min=lo,
            act_max=hi,
        ),  # fmt: skip
        input=x1,
        input2=x2,
        expected=run_tflm(model, x1, x2),
    )


def leaky_relu_params(in_scale: float, alpha: float, out_scale: float) -> dict[str, int]:
    """TFLM's int8 LEAKY_RELU prepare (CalculateOpDataLeakyRelu): the ratios are float32 arithmetic (the
    scales and alpha are floats in C++), then QuantizeMultiplier in double."""
    s_in, a, s_out = np.float32(in_scale), np.float32(alpha), np.float32(out_scale)
    mi, si = rq.quantize_multiplier(float(s_in / s_out))
    ma, sa = rq.quantize_multiplier(float(s_in * a / s_out))
    return dict(identity_multiplier=mi, identity_shift=si, alpha_multiplier=ma, alpha_shift=sa)


def case_leaky(rng) -> dict:
    """LEAKY_RELU on a random shape: alpha below 1 (the paper's 0.3 among them), sometimes above 1; the
    output scale sometimes tighter than the values (the int8 clamps bite) or finer than the input's (a
    left shift); the input always holds -128 and 127."""
    shape = tuple(int(v) for v in rng.integers(1, 9, size=int(rng.integers(1, 5))))
    alpha = float(np.float32(rng.choice([0.3, rng.uniform(0.01, 0.99), rng.uniform(1.0, 3.0)], p=[0.3, 0.5, 0.2])))
    in_scale, in_zp = float(np.float32(rng.uniform(0.005, 0.2))), _q(rng)
    x = rng.integers(-128, 128, size=shape, dtype=np.int8)
    x.reshape(-1)[0] = -128
    x.reshape(-1)[-1] = 127
    real = in_scale * (x.astype(np.float64) - in_zp)
    real = np.where(real >= 0, real, alpha * real)
    out_scale = float(np.float32(_out_scale(rng, real, rq.ACT_NONE) * rng.choice([1.0, 0.5, 0.25])))
    out_zp = _q(rng, -60, 60)
    m = _Model()
    ti = m.tensor(shape, INT8, in_scale, in_zp)
    to = m.tensor(shape, INT8, out_scale, out_zp)
    opt = S.LeakyReluOptionsT()
    opt.alpha = alpha
    model = m.pack(S.BuiltinOperator.LEAKY_RELU, 2, [ti], [to], S.BuiltinOptions.LeakyReluOptions, opt)
    return dict(
        kind="leaky",
        ints=dict(
            size=int(np.prod(shape)),
            input_offset=-in_zp,
            output_offset=out_zp,
            **leaky_relu_params(in_scale, alpha, out_scale),
        ),  # fmt: skip
        input=x,
        expected=run_tflm(model, x),
    )


CASES = {
    "fc": case_fc,
    "conv": case_conv,
    "dw": case_dw,
    "avgpool": case_avgpool,
    "maxpool": case_maxpool,
    "mean": case_mean,
    "add": case_add,
    "leaky": case_leaky,
}
# Random stream per kind: fixed numbers (the first six are their alphabetical positions, as before ADD
# existed), so adding a kind leaves every other kind's goldens unchanged.
STREAM = {"avgpool": 0, "conv": 1, "dw": 2, "fc": 3, "maxpool": 4, "mean": 5, "add": 6, "leaky": 7}
HEADER_FOR = {
    "fc": "fully_connected_s8",
    "conv": "conv_s8",
    "dw": "depthwise_conv_s8",
    "avgpool": "avgpool_s8",
    "maxpool": "maxpool_s8",
    "mean": "mean_s8",
    "add": "add_s8",
    "leaky": "leaky_relu_s8",
}


# ---------------------------------------------------------------- header writing
def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    body = ", ".join(str(int(v)) for v in flat) if flat.size else "0"
    return f"static const {ctype} {name}[{max(flat.size, 1)}] = {{{body}}};\n"


def render_header(kind: str, cases: list[dict], stamp: str) -> str:
    """One header per kernel: arrays per case plus a table of golden_<kind>_case structs."""
    guard = f"GOLDEN_{kind.upper()}_H"
    keys = list(cases[0]["ints"])
    arrays = [k for k in ("input", "input2", "filter", "bias", "mult", "shift", "expected") if k in cases[0]]
    types = {
        "input": "int8_t",
        "input2": "int8_t",
        "filter": "int8_t",
        "expected": "int8_t",
        "bias": "int32_t",
        "mult": "int32_t",
        "shift": "int32_t",
    }
    out = [
        f"/* Generated by firmware/tests/gen_goldens.py -- do not edit. {stamp} */\n",
        f"#ifndef {guard}\n#define {guard}\n#include <stdint.h>\n\n",
    ]
    out.append("typedef struct {\n" + "".join(f"    int32_t {k};\n" for k in keys))
    out.append("".join(f"    const {types[a]} *{a};\n" for a in arrays))
    out.append(f"    int32_t expected_len;\n}} golden_{kind}_case;\n\n")
    for i, c in enumerate(cases):
        for a in arrays:
            out.append(_c_array(types[a], f"{kind}_{i}_{a}", c[a]))
    out.append(f"\n#define GOLDEN_{kind.upper()}_NUM_CASES {len(cases)}\n")
    out.append(f"static const golden_{kind}_case golden_{kind}_cases[{len(cases)}] = {{\n")
    for i, c in enumerate(cases):
        ints = ", ".join(str(int(c["ints"][k])) for k in keys)
        ptrs = ", ".join(f"{kind}_{i}_{a}" for a in arrays)
        out.append(f"    {{{ints}, {ptrs}, {int(np.asarray(c['expected']).size)}}},\n")
    out.append(f"}};\n\n#endif /* {guard} */\n")
    return "".join(out)


def generate(out_dir: Path, seed: int, n_cases: int, kinds: list[str] | None = None) -> list[Path]:
    """Write golden_<kernel>.h files for every kernel kind; returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = f"tflite-micro {tflite_micro.__version__}, numpy {np.__version__}, seed {seed}, {n_cases} cases"
    paths = []
    for kind in kinds or list(CASES):
        rng = np.random.default_rng([seed, STREAM[kind]])
        cases = [CASES[kind](rng) for _ in range(n_cases)]
        path = out_dir / f"golden_{HEADER_FOR[kind]}.h"
        tmp = path.with_suffix(".h.tmp")
        tmp.write_text(render_header(kind, cases, stamp))
        tmp.replace(path)  # atomic: a half-written header never reaches the compiler
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "golden")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--cases", type=int, default=12)
    ap.add_argument("--kinds", default=",".join(CASES), help="comma list of " + ",".join(CASES))
    a = ap.parse_args(argv)
    for p in generate(a.out, a.seed, a.cases, a.kinds.split(",")):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
