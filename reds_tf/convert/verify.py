"""Run int8 models in TFLite Micro (the device reference) and reference tf.lite; measure arenas.

Every byte string handed to an interpreter here has passed ``read_tflite`` first, so a
corrupt file raises ``CorruptFlatbufferError`` instead of reaching C++.
"""

from __future__ import annotations

import contextlib
import os
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


def measure_arena(model_bytes: bytes) -> int:
    """Smallest TFLM tensor arena (bytes) that loads and runs the model, by bisection."""
    m = read_tflite(model_bytes)
    sg = m.subgraphs[0]
    shape = [int(d) for d in sg.tensors[sg.inputs[0]].shape]
    probe = np.zeros(shape, np.int8)
    model_bytes = bytes(model_bytes)
    hi = 16 * 1024
    while not _fits(model_bytes, hi, probe):
        hi *= 2
        if hi > _ARENA_MAX:
            raise RuntimeError(f"TFLM could not run the model with a {_ARENA_MAX}-byte arena.")
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(model_bytes, mid, probe):
            hi = mid
        else:
            lo = mid
    return hi
