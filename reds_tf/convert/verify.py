"""Run int8 models in TFLite Micro (the device reference) and reference tf.lite; measure arenas.

Every byte string handed to an interpreter here has passed ``read_tflite`` first, so a
corrupt file raises ``CorruptFlatbufferError`` instead of reaching C++.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass

import numpy as np
from tflite_micro import runtime

from .._keras import tf
from .flatbuffer import read_tflite

# Tries of the arena bisection are cheap (a few ms each); this bounds them.
_ARENA_MAX = 64 * 1024 * 1024


@dataclass(frozen=True)
class IOQuant:
    """Scale and zero point of a model's int8 input and output."""

    in_scale: float
    in_zero: int
    out_scale: float
    out_zero: int


def io_quant(model_bytes: bytes) -> IOQuant:
    m = read_tflite(model_bytes)
    sg = m.subgraphs[0]
    ti, to = sg.tensors[sg.inputs[0]].quantization, sg.tensors[sg.outputs[0]].quantization
    return IOQuant(float(ti.scale[0]), int(ti.zeroPoint[0]), float(to.scale[0]), int(to.zeroPoint[0]))


def quantize_input(x: np.ndarray, q: IOQuant) -> np.ndarray:
    return np.clip(np.round(x / q.in_scale) + q.in_zero, -128, 127).astype(np.int8)


def dequantize_output(y: np.ndarray, q: IOQuant) -> np.ndarray:
    return (y.astype(np.float32) - q.out_zero) * q.out_scale


@contextlib.contextmanager
def _no_stderr():
    """TFLM prints allocation failures to fd 2; keep the caller's terminal clean."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def tflm_interpreter(model_bytes: bytes, arena_size: int | None = None) -> runtime.Interpreter:
    read_tflite(model_bytes)
    size = arena_size or max(len(model_bytes) * 10, 256 * 1024)
    return runtime.Interpreter.from_bytes(bytes(model_bytes), arena_size=size)


def run_tflm(model_bytes: bytes, x_q: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """int8 outputs of TFLite Micro for a batch of int8 inputs (one invoke per sample)."""
    it = tflm_interpreter(model_bytes, arena_size)
    out = []
    for i in range(len(x_q)):
        it.set_input(x_q[i : i + 1], 0)
        it.invoke()
        out.append(np.array(it.get_output(0)).reshape(-1))
    return np.stack(out)


def run_tflite_ref(model_bytes: bytes, x_q: np.ndarray) -> np.ndarray:
    """int8 outputs of tf.lite with the reference kernels (no XNNPACK)."""
    read_tflite(model_bytes)
    it = tf.lite.Interpreter(
        model_content=bytes(model_bytes),
        experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF,
    )
    it.allocate_tensors()
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for i in range(len(x_q)):
        it.set_tensor(i_idx, x_q[i : i + 1])
        it.invoke()
        out.append(it.get_tensor(o_idx).reshape(-1).copy())
    return np.stack(out)


def _fits(model_bytes: bytes, size: int, probe: np.ndarray) -> bool:
    try:
        with _no_stderr():
            it = runtime.Interpreter.from_bytes(model_bytes, arena_size=size)
            it.set_input(probe, 0)
            it.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")


def recorded_arena(model_bytes: bytes, arena_size: int | None = None) -> int:
    """Arena bytes TFLM's RecordingMicroAllocator reports after one invoke (parsed from fd 2)."""
    m = read_tflite(model_bytes)
    sg = m.subgraphs[0]
    probe = np.zeros([int(d) for d in sg.tensors[sg.inputs[0]].shape], np.int8)
    it = tflm_interpreter(model_bytes, arena_size)
    it.set_input(probe, 0)
    it.invoke()
    with tempfile.TemporaryFile() as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()
    found = _TOTAL.search(text)
    if not found:  # pragma: no cover - depends on the tflite-micro build
        raise RuntimeError(f"tflite-micro printed no arena total: {text[:200]!r}")
    return int(found.group(1))


def measure_arena(model_bytes: bytes) -> int:
    """Smallest TFLM tensor arena (bytes) that loads and runs the model.

    The recording allocator's total is the starting point; the search then only tries
    sizes at or above a size that failed cleanly. (tflite-micro can crash instead of
    failing when an arena is far too small for its own bookkeeping, so the tiny sizes
    a plain bisection from zero would try are never attempted.)
    """
    model_bytes = bytes(model_bytes)
    m = read_tflite(model_bytes)
    sg = m.subgraphs[0]
    probe = np.zeros([int(d) for d in sg.tensors[sg.inputs[0]].shape], np.int8)
    total = recorded_arena(model_bytes)
    hi = total
    while not _fits(model_bytes, hi, probe):
        hi += max(16, hi // 8)
        if hi > _ARENA_MAX:
            raise RuntimeError(f"TFLM could not run the model with a {_ARENA_MAX}-byte arena.")
    # Look just below for the exact minimum (alignment padding can make it a few bytes less).
    lo = max(hi - 64, 1)
    if _fits(model_bytes, lo, probe):
        return lo if lo == hi else _bisect_down(model_bytes, lo, probe)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(model_bytes, mid, probe):
            hi = mid
        else:
            lo = mid
    return hi


def _bisect_down(model_bytes: bytes, fits: int, probe: np.ndarray) -> int:
    """Step down in 16-byte strides while the model still fits, then refine to the byte."""
    while fits > 16 and _fits(model_bytes, fits - 16, probe):
        fits -= 16
    lo = fits - 16
    while fits - lo > 1:
        mid = (lo + fits) // 2
        if _fits(model_bytes, mid, probe):
            fits = mid
        else:
            lo = mid
    return fits
