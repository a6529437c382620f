"""Run int8 models in TFLite Micro (the device reference) and reference tf.lite; measure arenas.

Every byte string handed to an interpreter here has passed ``read_tflite`` first, so a
corrupt file raises ``CorruptFlatbufferError`` instead of reaching C++.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tflite_micro import runtime

from .flatbuffer import read_tflite


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
    """int8 outputs of LiteRT (ai_edge_litert, the successor of tf.lite.Interpreter) with the
    reference kernels (no XNNPACK)."""
    read_tflite(model_bytes)
    ref = OpResolverType.BUILTIN_REF
    it = Interpreter(model_content=bytes(model_bytes), experimental_op_resolver_type=ref)
    it.allocate_tensors()
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    out = []
    for i in range(len(x_q)):
        it.set_tensor(i_idx, x_q[i : i + 1])
        it.invoke()
        out.append(it.get_tensor(o_idx).reshape(-1).copy())
    return np.stack(out)


_PROBE = Path(__file__).with_name("arena_probe.py")
# A child that crashes again and again cannot make progress; this bounds the restarts.
_MAX_RESTARTS = 32


def measure_arenas(models: Sequence[bytes]) -> list[int]:
    """Smallest TFLM tensor arena (bytes) that loads and runs each model.

    The probing runs in a child process (``arena_probe.py``): tflite-micro can segfault instead of
    raising when an arena is too small, and a crash there must not take the caller down. A size at
    which the child died counts as too small, with a margin that doubles per crash; the child is
    restarted above it, so the result is the smallest size that ran above every crash. All models share one
    child, so the start-up cost is paid once per call, not once per model.
    """
    blobs = [bytes(b) for b in models]
    for b in blobs:
        read_tflite(b)  # corrupt bytes raise CorruptFlatbufferError here, never reach C++
    result: dict[int, int] = {}
    unsafe: dict[int, int] = {}
    crashes: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="reds_arena_") as tmp:
        paths = []
        for i, b in enumerate(blobs):
            paths.append(Path(tmp) / f"m{i}.tflite")
            paths[-1].write_bytes(b)
        for _ in range(_MAX_RESTARTS):
            todo = [i for i in range(len(blobs)) if i not in result]
            if not todo:
                break
            args = [str(paths[i]) for i in todo]
            for pos, i in enumerate(todo):
                if i in unsafe:
                    args += ["--unsafe", f"{pos}:{unsafe[i]}"]
            r = subprocess.run(
                [sys.executable, str(_PROBE), *args], capture_output=True, text=True, timeout=1800
            )
            pending = None
            for line in r.stdout.splitlines():
                word, pos, n, *_ = line.split() + [""]
                i = todo[int(pos)]
                if word == "try":
                    pending = (i, int(n))
                elif word == "fit":
                    pending = None
                elif word == "min":
                    if int(n) < 0:
                        raise RuntimeError(
                            f"TFLM could not run model {i} with an arena of up to 64 MiB. Fix: check "
                            "that the model runs in tflite_micro.runtime.Interpreter at all."
                        )
                    result[i] = int(n)
            if r.returncode == 0 and len(result) == len(blobs):
                break
            if pending is None:  # died outside a probe: not an arena question
                raise RuntimeError(
                    f"The TFLM arena probe failed (exit code {r.returncode}): {r.stderr.strip()[-500:]}"
                )
            # Crashed at n: treat n and a margin above it as too small. Crashes come in bands (sizes
            # just below a model's need), so the margin doubles with every crash of the same model.
            i, n = pending
            crashes[i] = crashes.get(i, 0) + 1
            unsafe[i] = max(unsafe.get(i, 0), n + 8 * 2 ** crashes[i])
        else:
            raise RuntimeError(f"The TFLM arena probe crashed {_MAX_RESTARTS} times; giving up.")
    return [result[i] for i in range(len(blobs))]


def measure_arena(model_bytes: bytes) -> int:
    """``measure_arenas`` for one model."""
    return measure_arenas([model_bytes])[0]
