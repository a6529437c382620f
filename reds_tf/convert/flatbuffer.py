"""TFLite flatbuffers: validated reading and editing helpers (packing: ``packing.py``).

This is the one module that imports the TFLite flatbuffer schema. It uses the object API
(``ModelT``) of the schema copy shipped with tflite-micro, which is the device reference.
``pack_model`` / ``pack_models`` (re-exported here) live in ``packing``.

Packing differs from the generated ``ModelT.Pack`` in three ways that matter on a device:

* every ``Buffer.data`` vector is 16-byte aligned (the schema's ``force_align: 16``, which
  the Python generator ignores);
* identical vectors and strings are written once (a flatbuffer DAG), within one model and
  across the models of a multi-level bundle;
* a buffer whose bytes are a prefix of an already written buffer points at that buffer's
  vector ("prefix view"): TFLM reads only the bytes the tensor's shape needs.

TFLM ignores ``Buffer.offset/size`` (external buffers), so they are never used here.
"""

from __future__ import annotations

import struct
from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S

from ..errors import CorruptFlatbufferError

__all__ = [
    "S",
    "BUILTIN_NAMES",
    "TENSOR_DTYPES",
    "read_tflite",
    "pack_model",
    "pack_models",
    "pack_models_ledger",
    "buffer_alignments",
    "referenced_buffers",
    "op_name",
    "tensor_array",
    "add_buffer",
]

FILE_ID = b"TFL3"
DATA_ALIGN = 16
# Builtin operator code -> name, e.g. 3 -> "CONV_2D".
BUILTIN_NAMES: dict[int, str] = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
# Schema TensorType -> numpy dtype, for the types int8 models use.
TENSOR_DTYPES: dict[int, np.dtype] = {
    S.TensorType.FLOAT32: np.dtype("<f4"),
    S.TensorType.INT32: np.dtype("<i4"),
    S.TensorType.INT8: np.dtype("i1"),
    S.TensorType.UINT8: np.dtype("u1"),
    S.TensorType.INT16: np.dtype("<i2"),
    S.TensorType.INT64: np.dtype("<i8"),
    S.TensorType.BOOL: np.dtype("?"),
}


# -- reading ------------------------------------------------------------------------------
def read_tflite(src: str | Path | bytes | bytearray, *, name: str | None = None) -> S.ModelT:
    """Parse a .tflite file or bytes into a ``ModelT``, refusing corrupt or truncated input.

    The bytes are walked with bounds checks *before* the object API touches them, so a
    damaged file raises ``CorruptFlatbufferError`` instead of crashing, hanging on a huge
    vector length, or reaching an interpreter.
    """
    if isinstance(src, (bytes, bytearray, memoryview)):
        buf, label = bytes(src), name or "<bytes>"
    else:
        label = name or str(src)
        try:
            buf = Path(src).read_bytes()
        except OSError as e:
            raise CorruptFlatbufferError(
                f"Cannot read TFLite model {label}: {e}. Fix: pass an existing .tflite file."
            ) from e
    if len(buf) < 16 or buf[4:8] != FILE_ID:
        raise CorruptFlatbufferError(
            f"{label} is not a TFLite flatbuffer: expected the file identifier {FILE_ID!r} "
            "at bytes 4..8 of at "
            f"least 16 bytes. Received: {len(buf)} bytes, identifier {buf[4:8]!r}. Fix: pass a .tflite file "
            "written by the TFLite converter or reds_tf.convert (re-create it if it was truncated)."
        )
    try:
        _walk(buf)
        model = S.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except CorruptFlatbufferError as e:
        raise CorruptFlatbufferError(f"{label}: {e}") from None
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, KeyError) as e:
        raise CorruptFlatbufferError(
            f"{label} is a corrupt or truncated TFLite flatbuffer ({type(e).__name__}: {e}). "
            "Fix: re-create the file with reds_tf.convert."
        ) from e
    _check_model(model, label)
    return model


def _bad(msg: str) -> CorruptFlatbufferError:
    return CorruptFlatbufferError(f"corrupt or truncated TFLite flatbuffer: {msg}. Fix: re-create the file.")


def _table_ok(tab: flatbuffers.table.Table, n: int) -> None:
    pos = tab.Pos
    vt = pos - struct.unpack_from("<i", tab.Bytes, pos)[0] if 0 <= pos <= n - 4 else -1
    if not (0 <= pos <= n - 4 and 0 <= vt <= n - 4):
        raise _bad(f"table at byte {pos} lies outside the {n}-byte buffer")
    vt_len = struct.unpack_from("<H", tab.Bytes, vt)[0]
    if vt + vt_len > n:
        raise _bad(f"vtable at byte {vt} runs past the end of the {n}-byte buffer")


def _vec(tab: flatbuffers.table.Table, field: int, elem: int, n: int) -> int:
    """Length of vector field ``field`` of a table, after checking it fits in the buffer."""
    o = tab.Offset(4 + 2 * field)
    if o == 0:
        return 0
    start = tab.Vector(o)
    length = tab.VectorLen(o)
    if start < 0 or start + length * elem > n:
        raise _bad(f"vector of {length} x {elem} bytes at byte {start} runs past the end ({n} bytes)")
    return length


def _walk(buf: bytes) -> None:
    """Bounds-check every table and vector the converter and interpreters read."""
    n = len(buf)
    m = S.Model.GetRootAs(buf, 0)
    _table_ok(m._tab, n)
    for i in range(_vec(m._tab, 1, 4, n)):
        _table_ok(m.OperatorCodes(i)._tab, n)
    for i in range(_vec(m._tab, 4, 4, n)):
        b = m.Buffers(i)
        _table_ok(b._tab, n)
        _vec(b._tab, 0, 1, n)
    for i in range(_vec(m._tab, 6, 4, n)):
        _table_ok(m.Metadata(i)._tab, n)
    for s in range(_vec(m._tab, 2, 4, n)):
        sg = m.Subgraphs(s)
        _table_ok(sg._tab, n)
        _vec(sg._tab, 1, 4, n)
        _vec(sg._tab, 2, 4, n)
        for t in range(_vec(sg._tab, 0, 4, n)):
            tensor = sg.Tensors(t)
            _table_ok(tensor._tab, n)
            _vec(tensor._tab, 0, 4, n)
            _vec(tensor._tab, 3, 1, n)
            q = tensor.Quantization()
            if q is not None:
                _table_ok(q._tab, n)
                _vec(q._tab, 0, 4, n)
                _vec(q._tab, 1, 4, n)
                _vec(q._tab, 2, 4, n)
                _vec(q._tab, 3, 8, n)
        for k in range(_vec(sg._tab, 3, 4, n)):
            op = sg.Operators(k)
            _table_ok(op._tab, n)
            _vec(op._tab, 1, 4, n)
            _vec(op._tab, 2, 4, n)
            _vec(op._tab, 5, 1, n)
            _vec(op._tab, 7, 4, n)


def _check_model(m: S.ModelT, label: str) -> None:
    """Semantic checks: indices in range and constant data as long as the tensor needs."""

    def bad(msg: str) -> CorruptFlatbufferError:
        return CorruptFlatbufferError(f"{label} is not a valid TFLite model: {msg}. Fix: re-create the file.")

    if m.version != 3:
        raise bad(f"schema version {m.version}, expected 3")
    if not m.subgraphs:
        raise bad("it has no subgraph")
    buffers = m.buffers or []
    codes = m.operatorCodes or []
    for sg in m.subgraphs:
        tensors = sg.tensors or []
        for idx in list(sg.inputs if sg.inputs is not None else []) + list(
            sg.outputs if sg.outputs is not None else []
        ):
            if not 0 <= idx < len(tensors):
                raise bad(f"subgraph input/output tensor index {idx} out of range [0, {len(tensors)})")
        for t in tensors:
            if not 0 <= t.buffer < max(len(buffers), 1):
                raise bad(f"tensor {t.name!r} names buffer {t.buffer}; the model has {len(buffers)}")
            data = buffers[t.buffer].data if buffers else None
            if data is not None and len(data) and t.type in TENSOR_DTYPES and t.shape is not None:
                need = int(np.prod(t.shape, dtype=np.int64)) * TENSOR_DTYPES[t.type].itemsize
                if len(data) < need:
                    raise bad(f"tensor {t.name!r} needs {need} bytes but its buffer holds {len(data)}")
        for op in sg.operators or []:
            if not 0 <= op.opcodeIndex < len(codes):
                raise bad(f"operator opcode index {op.opcodeIndex} out of range [0, {len(codes)})")
            ios = list(op.inputs if op.inputs is not None else []) + list(
                op.outputs if op.outputs is not None else []
            )
            for idx in ios:
                if not -1 <= idx < len(tensors):
                    raise bad(f"operator tensor index {idx} out of range [-1, {len(tensors)})")


# -- small accessors ----------------------------------------------------------------------
def op_name(model: S.ModelT, op: S.OperatorT) -> str:
    """Builtin name of an operator, e.g. ``"CONV_2D"``."""
    code = model.operatorCodes[op.opcodeIndex]
    return BUILTIN_NAMES.get(max(code.builtinCode, code.deprecatedBuiltinCode), f"OP_{code.builtinCode}")


def tensor_array(model: S.ModelT, tensor_index: int, subgraph: int = 0) -> np.ndarray:
    """The constant data of a tensor as a numpy array of its shape (a copy)."""
    t = model.subgraphs[subgraph].tensors[tensor_index]
    data = model.buffers[t.buffer].data
    if data is None or len(data) == 0:
        raise ValueError(f"Tensor {t.name!r} has no constant data.")
    dt = TENSOR_DTYPES[t.type]
    count = int(np.prod(t.shape, dtype=np.int64))
    return np.frombuffer(bytes(np.asarray(data, np.uint8)), dt, count).reshape(tuple(t.shape)).copy()


def add_buffer(model: S.ModelT, data: np.ndarray | bytes) -> int:
    """Append a new constant buffer (never edit a buffer in place: the converter shares them)."""
    b = S.BufferT()
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    b.data = np.frombuffer(raw, np.uint8).copy()
    model.buffers.append(b)
    return len(model.buffers) - 1


# Packing lives in its own module; re-exported so ``flatbuffer`` stays the one entry point.
from .packing import (  # noqa: E402
    buffer_alignments,
    pack_model,
    pack_models,
    pack_models_ledger,
    referenced_buffers,
)
