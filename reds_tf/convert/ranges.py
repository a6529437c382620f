"""Activation ranges for int8 calibration: the min and max seen, or clipped to cut quantisation error.

TFLiteConverter gives every activation tensor the range [min, max] of the values the
calibration inputs produce. A few outliers then stretch the int8 step for every other value:
on the Fashion-MNIST DS-CNN the conv outputs reach +-20 to 30 while almost all values lie
within +-10. ``clip_ranges`` narrows each range to the one that minimises the expected squared
quantisation error over the calibration values (``"mse"``: clipping error of the values outside
plus step^2/12 for those inside), or to two percentiles (``"percentile"``). The converter then
quantises with those ranges (biases, multipliers and zero points follow from them as usual).

The model input, the model outputs and fixed-range ops (softmax, logistic, tanh) keep their
ranges; ops TFLite runs with their input's quantisation (pooling, reshape, ...) get their input's
clipped range.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from .flatbuffer import S, op_name, pack_model, read_tflite

RANGE_METHODS = ("minmax", "mse", "percentile")
# Output range fixed by the op (TFLite's int8 softmax/logistic/tanh): never changed.
FIXED_RANGE_OPS = {"SOFTMAX", "LOGISTIC", "TANH", "LOG_SOFTMAX"}
# Output quantisation must equal the input's in TFLite int8 kernels.
SAME_RANGE_OPS = {
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE", "SQUEEZE", "SLICE", "STRIDED_SLICE", "PAD", "EXPAND_DIMS",
}  # fmt: skip
HISTOGRAM_BINS = 4096
_CANDIDATES = np.linspace(0.05, 1.0, 96)  # fractions of the observed min (max) tried as the clipped bound


@dataclass(frozen=True)
class ClippedRange:
    """One activation tensor's range before and after clipping."""

    tensor: str
    op: str
    min_before: float
    max_before: float
    min_after: float
    max_after: float

    def to_dict(self) -> dict:
        return asdict(self)


def check_method(method: str, percentile: float) -> None:
    if method not in RANGE_METHODS:
        raise ValueError(
            f"Unknown activation range method. Received: {method!r}. Fix: use one of {RANGE_METHODS}."
        )
    if method == "percentile" and not 50.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (50, 100). Received: {percentile}")


def clip_ranges(
    calibrated: bytes, calibration_x: np.ndarray, method: str = "mse", percentile: float = 99.99
) -> tuple[bytes, list[ClippedRange]]:
    """Narrow the activation ranges of a calibrated float flatbuffer (``tflite.calibrate``).

    ``calibration_x`` must be the inputs the calibration saw, so that every histogram spans the
    recorded [min, max]. Returns the edited flatbuffer (ready for ``tflite.quantize_calibrated``)
    and one ``ClippedRange`` per changed tensor.
    """
    check_method(method, percentile)
    model = read_tflite(calibrated, name="calibrated model")
    if method == "minmax":
        return calibrated, []
    sg = model.subgraphs[0]
    producer = {int(o): op for op in sg.operators for o in op.outputs}
    outputs = {int(t) for t in sg.outputs}
    targets = []
    for t, op in producer.items():
        q = sg.tensors[t].quantization
        name = op_name(model, op)
        if t in outputs or name in FIXED_RANGE_OPS or name in SAME_RANGE_OPS:
            continue
        if q is None or q.min is None or len(q.min) != 1 or not q.max[0] > q.min[0]:
            continue
        targets.append(t)
    hists = _histograms(calibrated, calibration_x, {t: _bounds(sg, t) for t in targets})
    changed = []
    for t in targets:
        q = sg.tensors[t].quantization
        lo0, hi0 = float(q.min[0]), float(q.max[0])
        lo, hi = clip_histogram(hists[t], lo0, hi0, method, percentile)
        q.min = np.array([lo], np.float32)
        q.max = np.array([hi], np.float32)
        changed.append(ClippedRange(_name(sg, t), op_name(model, producer[t]), lo0, hi0, lo, hi))
    # Pass-through ops (in graph order, so chains follow): the output takes the input's range.
    for op in sg.operators:
        if op_name(model, op) in SAME_RANGE_OPS and int(op.outputs[0]) not in outputs:
            qi, qo = sg.tensors[op.inputs[0]].quantization, sg.tensors[op.outputs[0]].quantization
            if qi is not None and qi.min is not None and qo is not None and qo.min is not None:
                qo.min, qo.max = np.array(qi.min, np.float32), np.array(qi.max, np.float32)
    return pack_model(model), changed


def _name(sg: S.SubGraphT, t: int) -> str:
    n = sg.tensors[t].name
    return n.decode() if isinstance(n, bytes) else str(n)


def _bounds(sg: S.SubGraphT, t: int) -> tuple[float, float]:
    q = sg.tensors[t].quantization
    return float(q.min[0]), float(q.max[0])


def _histograms(
    calibrated: bytes, x: np.ndarray, bounds: dict[int, tuple[float, float]]
) -> dict[int, np.ndarray]:
    """Histogram (``HISTOGRAM_BINS`` bins over the recorded [min, max]) of every target tensor's values."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # its "for debugging only" note: reading every tensor is the point
        warnings.simplefilter("ignore")
        it = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    inp = it.get_input_details()[0]
    hists = {t: np.zeros(HISTOGRAM_BINS, np.int64) for t in bounds}
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i : i + 1].astype(inp["dtype"]))
        it.invoke()
        for t, (lo, hi) in bounds.items():
            hists[t] += histogram(it.get_tensor(t), lo, hi)
    return hists


def histogram(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Counts of ``values`` in ``HISTOGRAM_BINS`` bins over [lo, hi] (outside: the end bins)."""
    idx = np.clip(
        ((values.ravel() - lo) * (HISTOGRAM_BINS / (hi - lo))).astype(np.int64),
        0,
        HISTOGRAM_BINS - 1,
    )
    return np.bincount(idx, minlength=HISTOGRAM_BINS)


def clip_histogram(
    counts: np.ndarray, lo0: float, hi0: float, method: str, percentile: float = 99.99
) -> tuple[float, float]:
    """The clipped range (``"mse"`` or ``"percentile"``; ``"minmax"`` keeps it) of values whose
    ``histogram`` over their observed [lo0, hi0] is ``counts``."""
    check_method(method, percentile)
    if method == "minmax":
        return lo0, hi0
    if method == "mse":
        return _mse_range(counts, lo0, hi0)
    return _percentile_range(counts, lo0, hi0, percentile)


def _mse_range(counts: np.ndarray, lo0: float, hi0: float) -> tuple[float, float]:
    """The (lo, hi) among fractions of the observed bounds with the least expected squared error:
    values outside are clipped to the bound, values inside round with error step^2 / 12."""
    width = (hi0 - lo0) / HISTOGRAM_BINS
    x = lo0 + width * (np.arange(HISTOGRAM_BINS) + 0.5)
    los, his = np.minimum(lo0 * _CANDIDATES, 0.0), np.maximum(hi0 * _CANDIDATES, 0.0)
    below = np.clip(los[:, None] - x[None, :], 0.0, None)  # [lo candidate, bin]
    above = np.clip(x[None, :] - his[:, None], 0.0, None)  # [hi candidate, bin]
    err_lo, err_hi = (below**2) @ counts, (above**2) @ counts
    n_lo, n_hi = (below > 0) @ counts, (above > 0) @ counts  # values clipped at each bound
    step = (his[None, :] - los[:, None]) / 255.0
    inside = counts.sum() - n_lo[:, None] - n_hi[None, :]
    total = err_lo[:, None] + err_hi[None, :] + inside * step**2 / 12.0
    i, j = np.unravel_index(int(np.argmin(total)), total.shape)
    return float(los[i]), float(his[j])


def _percentile_range(counts: np.ndarray, lo0: float, hi0: float, percentile: float) -> tuple[float, float]:
    cdf = np.cumsum(counts) / max(int(counts.sum()), 1)
    width = (hi0 - lo0) / HISTOGRAM_BINS
    p = percentile / 100.0
    lo = lo0 + width * int(np.searchsorted(cdf, 1.0 - p))
    hi = lo0 + width * (int(np.searchsorted(cdf, p)) + 1)
    return min(lo, 0.0), max(hi, 0.0)
