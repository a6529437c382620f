"""Quantisation-aware fine-tuning: train the nested levels through the int8 rounding they run with.

Calibration alone leaves the narrow levels up to 0.7 pp below float (README, issue 12): their
activations are rounded at the full level's int8 steps and their weights are the full level's
int8 values. ``simulated_int8`` gives a training twin of a nested model that computes what the
converter's int8 model computes, up to integer rounding inside kernels:

- weights: every Conv2D/DepthwiseConv2D kernel is folded with the BatchNorm that follows it (as
  the converter folds it: ``W * gamma / sqrt(var + eps)`` per output channel), rounded per output
  channel to int8 with the scale of the FULL kernel (``max |W| / 127``; every level shares those
  int8 values, ``convert.quantize``), and unfolded again, so the layers keep their float weights
  and BN; Dense kernels are rounded the same way without a fold;
- activations: every tensor the int8 graph stores (the output of each fused conv + BN, of each
  activation the converter does not fuse, of global pooling, of Add, the input and the output) is
  rounded to 8 bits over a fixed range measured on the calibration inputs the converter uses, with
  the recipe's range method (``convert.ranges``). Pooling, Flatten, Reshape and Dropout keep their
  input's quantisation in TFLite: only an average pool rounds (back onto its input's grid);
- LeakyReLU: TFLM's int8 kernel (the reference one; CMSIS-NN has none) rescales the input's integer
  code with a fixed-point multiplier and two roundings (``Int8LeakyReLU``). For the alpha branch the
  first rounding happens before the right shift, on a value as small as the int8 code, so the result
  is often one step below the nearest one: a bias that plain rounding would hide from training.

Gradients pass straight through the rounding (zero outside a clipped range), the usual
fake-quantisation estimator. The twin shares every layer and variable with the model, so training
the twin trains the model; the converter then quantises it as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import nested
from ._keras import keras, tf
from .convert.c_prepare import leaky_relu_multipliers, requantize
from .convert.ranges import clip_histogram, histogram
from .errors import UnsupportedLayerError
from .graph import INPUT
from .layers import LevelState
from .topology import is_softmax, layer_kind, ordered_layers

L = keras.layers
# Keras layers whose output the converter fuses into the op before them (conv/dense/BN/Add).
_FUSED_ACTIVATIONS = ("relu", "relu6")
# Kinds TFLite runs with their input's quantisation: no rounding of their own.
_SAME_RANGE_KINDS = ("pool", "flatten", "dropout", "pad")
# Same-range kinds whose int8 op still rounds (the mean of grid values is not on the grid).
_AVERAGING = (L.AveragePooling1D, L.AveragePooling2D)
# Kinds whose int8 op takes a following ReLU/ReLU6 as its fused activation (a BN here is a folded one).
_FUSING_KINDS = ("conv2d", "depthwise", "dense", "add", "batchnorm")


@dataclass(frozen=True)
class QuantPoint:
    """One int8 tensor of the converted graph: the Keras layer whose output it is (``INPUT`` for the
    model input) and whether its range stays the observed min/max (input and output, as in the
    converter) or is clipped."""

    layer: str
    clipped: bool


def _fused_activation(layer: Any) -> bool:
    if isinstance(layer, L.ReLU):
        return (
            float(layer.negative_slope) == 0.0
            and float(layer.threshold) == 0.0
            and (layer.max_value is None or float(layer.max_value) == 6.0)
        )
    if isinstance(layer, L.Activation):
        return getattr(layer.activation, "__name__", "") in _FUSED_ACTIVATIONS
    return False


def analyse(model: keras.Model) -> tuple[list[QuantPoint], dict[str, str]]:
    """The int8 tensors of ``model``'s converted graph and the BN folded into each conv layer
    (conv layer name -> BN layer name)."""
    ordered = ordered_layers(model)
    consumers: dict[str, list[Any]] = {}
    for layer, ins in ordered:
        for name in ins:
            consumers.setdefault(name, []).append(layer)
    outputs = set(model.output_names)
    folds: dict[str, str] = {}
    for layer, _ in ordered:
        nxt = consumers.get(layer.name, [])
        if (
            layer_kind(layer) in ("conv2d", "depthwise")
            and len(nxt) == 1
            and isinstance(nxt[0], L.BatchNormalization)
            and getattr(layer.activation, "__name__", "linear") == "linear"
            and layer.name not in outputs
        ):
            folds[layer.name] = nxt[0].name
    points = [QuantPoint(INPUT, clipped=False)]
    for layer, _ in ordered:
        kind, nxt = layer_kind(layer), consumers.get(layer.name, [])
        if layer.name in outputs:
            if not is_softmax(layer):  # softmax: a fixed output range in int8
                points.append(QuantPoint(layer.name, clipped=False))
            continue
        if kind in _SAME_RANGE_KINDS or layer.name in folds:
            continue
        if len(nxt) == 1 and _fused_activation(nxt[0]) and kind in _FUSING_KINDS:
            continue  # the activation's output is the stored tensor
        points.append(QuantPoint(layer.name, clipped=True))
    return points, folds


def _observer(model: keras.Model, points: Sequence[QuantPoint]) -> keras.Model:
    outs = [model.inputs[0] if p.layer == INPUT else model.get_layer(p.layer).output for p in points]
    return keras.Model(model.inputs, outs)


def calibrate(
    model: keras.Model,
    x: np.ndarray,
    method: str = "percentile",
    percentile: float = 99.99,
    levels: Sequence[int | None] = (None,),
    batch_size: int = 128,
) -> dict[int | None, dict[str, tuple[float, float]]]:
    """Per level: the range (lo <= 0 <= hi) of every quantisation point on the calibration inputs
    ``x``, clipped by ``method`` where the converter clips (``convert.ranges.clip_histogram``).

    ``levels=(None,)`` measures the full level only (the converter's shared calibration); list every
    level for per-level calibration.
    """
    points, _ = analyse(model)
    out: dict[int | None, dict[str, tuple[float, float]]] = {}
    obs = _observer(model, points)
    for k in levels:
        with nested.level_scope(model, k):
            batches = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
            lo = np.full(len(points), np.inf)
            hi = np.full(len(points), -np.inf)
            for b in batches:  # pass 1: the observed bounds
                for j, v in enumerate(_as_list(obs(b, training=False))):
                    lo[j], hi[j] = min(lo[j], float(np.min(v))), max(hi[j], float(np.max(v)))
            lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
            hi = np.where(hi > lo, hi, lo + 1e-6)
            counts = [0] * len(points)
            if method != "minmax":
                for b in batches:  # pass 2: histograms over those bounds
                    for j, v in enumerate(_as_list(obs(b, training=False))):
                        if points[j].clipped:
                            counts[j] = counts[j] + histogram(np.asarray(v), lo[j], hi[j])
            ranges = {}
            for j, p in enumerate(points):
                a, b = float(lo[j]), float(hi[j])
                if p.clipped and method != "minmax":
                    a, b = clip_histogram(counts[j], a, b, method, percentile)
                ranges[p.layer] = (min(a, 0.0), max(b, 0.0))
            out[k] = ranges
    return out


def _as_list(v: Any) -> list[Any]:
    return [np.asarray(a) for a in (v if isinstance(v, list | tuple) else [v])]


class FakeQuant(LevelState, L.Layer):
    """Rounds its input to 8 bits over a fixed range (per level, or one for every level).

    Args:
        ranges: ``[[lo, hi]]`` for every level, or one ``[lo, hi]`` per level (level k uses row k).
    """

    in_widths = None
    out_widths = None

    def __init__(self, ranges: Sequence[Sequence[float]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ranges = [[float(a), float(b)] for a, b in ranges]
        for a, b in self.ranges:
            if not a <= 0.0 <= b or not b > a:
                raise ValueError(
                    f"Layer '{self.name}': every range needs lo <= 0 <= hi, lo < hi. Received: {ranges}"
                )

    @property
    def num_levels(self) -> int | None:
        return len(self.ranges) if len(self.ranges) > 1 else None

    def _row(self, ranges: Sequence[Sequence[float]]) -> Sequence[float]:
        return ranges[0 if len(ranges) == 1 else (-1 if self.level is None else self.level)]

    def call(self, inputs: Any) -> Any:
        lo, hi = self._row(self.ranges)
        return tf.quantization.fake_quant_with_min_max_args(inputs, min=lo, max=hi, num_bits=8)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ranges": self.ranges}


def _grid(lo: float, hi: float) -> tuple[float, int, int]:
    """The 8-bit grid ``fake_quant_with_min_max_args`` (and the converter) put on [lo, hi]: scale and
    the lowest and highest integer codes relative to the zero point (zero is exactly representable)."""
    scale = (np.float32(hi) - np.float32(lo)) / np.float32(255.0)
    zero = int(np.clip(np.round(-np.float32(lo) / scale), 0, 255))
    return float(scale), -zero, 255 - zero


def _float_requantize(v: Any, multiplier: int, shift: int, positive: bool, xp: Any) -> Any:
    """``c_prepare.requantize`` (TFLM's double rounding) in float32 for integer-valued ``v``, all >= 0
    (``positive``) or all <= 0 (``xp``: numpy or tf.math): the high multiply rounds half up, the
    division by ``2**right`` half away from zero."""
    t = xp.floor(v * np.float32(multiplier * 2.0 ** (max(shift, 0) - 31)) + np.float32(0.5))
    if shift >= 0:
        return t
    d = np.float32(2.0**shift)  # exact: a power of two
    return xp.floor(t * d + np.float32(0.5)) if positive else xp.ceil(t * d - np.float32(0.5))


class Int8LeakyReLU(FakeQuant):
    """LeakyReLU(alpha) from one int8 tensor to another as TFLM computes it (``QuantizeLeakyRelu``):
    the input's code minus its zero point is rescaled by ``s_in / s_out`` (>= 0) or
    ``s_in * alpha / s_out`` (< 0) as a fixed-point multiplier, rounded twice, and clamped to the
    output's codes. The input must already lie on its grid (a ``FakeQuant`` over ``input_ranges``).

    Gradients are LeakyReLU's where the output is not clamped, zero where it is.

    Args:
        ranges: the output's ranges, as ``FakeQuant``'s.
        alpha: the negative slope.
        input_ranges: the input's ranges, one row or one per level like ``ranges``.
    """

    def __init__(
        self,
        ranges: Sequence[Sequence[float]],
        alpha: float,
        input_ranges: Sequence[Sequence[float]],
        **kwargs: Any,
    ) -> None:
        super().__init__(ranges, **kwargs)
        self.alpha = float(alpha)
        self.input_ranges = [[float(a), float(b)] for a, b in input_ranges]
        n_in, n_out = len(self.input_ranges), len(self.ranges)
        if n_in != 1 and n_out != 1 and n_in != n_out:
            raise ValueError(
                f"Layer '{self.name}': {n_in} input ranges for {n_out} output "
                "ranges. Fix: one row, or one per level for both."
            )

    def call(self, inputs: Any) -> Any:
        s_in, in_lo, in_hi = _grid(*self._row(self.input_ranges))
        s_out, q_lo, q_hi = _grid(*self._row(self.ranges))
        m = leaky_relu_multipliers(s_in, self.alpha, s_out)
        codes = np.arange(in_lo, in_hi + 1)
        exact = np.where(
            codes >= 0,
            requantize(codes, m["mult"], m["shift"]),
            requantize(codes, m["alpha_mult"], m["alpha_shift"]),
        )
        # Float32 arithmetic is 3x cheaper than a table lookup (TF's CPU gather) and gives the exact
        # codes unless some v * m lies within float32 error of a rounding tie: checked on all 256 codes.
        pos, neg = codes[codes >= 0].astype(np.float32), codes[codes < 0].astype(np.float32)

        def float_codes(p: Any, n: Any, xp: Any) -> Any:
            return (
                _float_requantize(p, m["mult"], m["shift"], True, xp),
                _float_requantize(n, m["alpha_mult"], m["alpha_shift"], False, xp),
            )

        v = tf.round(inputs / s_in)
        if np.array_equal(np.concatenate(float_codes(pos, neg, np)[::-1]), exact):
            # 0 maps to 0 on both branches, so each branch may see the other's values as 0
            out = tf.add_n(float_codes(tf.maximum(v, 0.0), tf.minimum(v, 0.0), tf.math))
        else:
            table = tf.constant(exact.astype(np.float32))
            out = tf.gather(table, tf.clip_by_value(tf.cast(v, tf.int32) - in_lo, 0, len(exact) - 1))
        q = tf.clip_by_value(out, q_lo, q_hi) * s_out
        y = tf.clip_by_value(tf.nn.leaky_relu(inputs, self.alpha), q_lo * s_out, q_hi * s_out)
        return y + tf.stop_gradient(q - y)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "alpha": self.alpha, "input_ranges": self.input_ranges}


def kernel_quantizer(layer: Any, bn: Any | None) -> Any:
    """The ``kernel_quantizer`` of a nested conv/dense layer: fold ``bn`` (or nothing), round per
    output channel to int8 with the full kernel's scale, unfold."""
    depthwise = isinstance(layer, L.DepthwiseConv2D)
    if bn is not None and len(bn.moving_variance.shape) != 1:
        raise UnsupportedLayerError(
            f"Layer '{bn.name}' keeps per-level BN statistics; quantisation-aware training needs the "
            "shared, frozen statistics the int8 levels share. Fix: fine-tune with shared BN."
        )

    def quantize(kernel: tf.Tensor) -> tf.Tensor:
        shape = kernel.shape
        # Output channels last (a depthwise kernel's are its input channels times the multiplier).
        k = tf.reshape(kernel, [*shape[:2], -1]) if depthwise else kernel
        f = tf.ones(k.shape[-1:], k.dtype)
        if bn is not None:
            f = tf.math.rsqrt(bn.moving_variance + bn.epsilon) * (bn.gamma if bn.scale else 1.0)
            f = tf.where(tf.abs(f) > 1e-12, f, tf.ones_like(f))  # a dead channel stays as it is
        kf = k * f
        m = tf.reduce_max(tf.abs(kf), axis=list(range(len(k.shape) - 1)))
        m = tf.stop_gradient(tf.maximum(m, 1e-8))  # the scale follows the weights; no gradient through it
        q = tf.quantization.fake_quant_with_min_max_vars_per_channel(kf, -m, m, num_bits=8, narrow_range=True)
        return tf.reshape(q / f, shape)

    return quantize


@contextmanager
def simulated_int8(
    model: keras.Model, ranges: dict[int | None, dict[str, tuple[float, float]]]
) -> Iterator[keras.Model]:
    """A twin of nested ``model`` that rounds weights and activations as its int8 conversion does.

    ``ranges``: ``calibrate``'s result (key None: every level uses the full level's ranges, the
    converter's shared calibration; else one entry per level). The twin shares the model's layers
    and variables; the kernel rounding is removed from the layers when the block ends.
    """
    points, folds = analyse(model)
    names = [p.layer for p in points]
    if None in ranges:
        rows = {n: [ranges[None][n]] for n in names}
    else:
        ks = sorted(ranges)
        rows = {n: [ranges[k][n] for k in ks] for n in names}
    weight_layers = [la for la in model.layers if layer_kind(la) in ("conv2d", "depthwise", "dense")]
    for la in weight_layers:
        if not isinstance(la, LevelState):
            raise UnsupportedLayerError(
                f"Layer '{la.name}' ({type(la).__name__}) is not a nested layer. "
                "Fix: pass the nested model (nested.make_nested)."
            )
    try:
        for la in weight_layers:
            bn = model.get_layer(folds[la.name]) if la.name in folds else None
            la.kernel_quantizer = kernel_quantizer(la, bn)
        inp = keras.Input(shape=model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
        tensors = {INPUT: FakeQuant(rows[INPUT], name=f"fq_{INPUT}")(inp)}
        grid = {INPUT: rows[INPUT]}  # the ranges each tensor's int8 values lie on
        for layer, ins in ordered_layers(model):
            args = [tensors[n] for n in ins]
            if layer.name in rows and isinstance(layer, L.LeakyReLU) and grid.get(ins[0]):
                out = Int8LeakyReLU(
                    rows[layer.name], float(layer.alpha), grid[ins[0]], name=f"fq_{layer.name}"
                )(args[0])
            else:
                out = layer(args[0] if len(args) == 1 else args)
                if layer.name in rows:
                    out = FakeQuant(rows[layer.name], name=f"fq_{layer.name}")(out)
                elif isinstance(layer, _AVERAGING) and grid.get(ins[0]):
                    # an int8 average lands back on its input's grid (rounded, same scale)
                    out = FakeQuant(grid[ins[0]], name=f"fq_{layer.name}")(out)
            tensors[layer.name] = out
            if layer.name in rows:
                grid[layer.name] = rows[layer.name]
            elif layer_kind(layer) in _SAME_RANGE_KINDS and len(ins) == 1:
                grid[layer.name] = grid.get(ins[0])
        twin = keras.Model(inp, [tensors[n] for n in model.output_names], name=f"{model.name}_int8sim")
        nested.set_level(twin, nested.get_level(model))
        yield twin
    finally:
        for la in weight_layers:
            la.kernel_quantizer = None
