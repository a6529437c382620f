"""One TFLite Micro file holding every level, with int8 weights stored once.

Levels are separate ``Model`` tables in one flatbuffer (a multi-root blob, see
``flatbuffer.pack_models``); level k is ``blob[offsets[k]:]``. Weight bytes are shared:

* identical vectors are written once and a level tensor whose int8 bytes are a prefix of
  the full tensor's points at the full vector (prefix view: output-channel-only shrinks,
  the 1-input-channel first conv);
* tensors that are a box of the full tensor but not a prefix (input channels shrink too,
  depthwise channel prefixes) are handled by a strategy:
  ``"copy"`` stores the level's own int8 copy (flash), ``"slice"`` inserts a builtin SLICE
  op that cuts the level's box out of the shared tensor at run time (arena RAM and a copy
  per inference), ``"auto"`` decides per tensor by packing both ways and keeping the
  smaller bundle (ties: copy).

The packer also writes identical tables once (operators, tensors, quantisation), keeps a
single zero point for all-zero per-channel weight zero points (TFLM reads ``zero_point[0]``
for every channel then), gives every level one shared buffers list, and aligns per-level
int32 data to 4 bytes instead of 16 (see ``flatbuffer.buffer_alignments``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .flatbuffer import S, add_buffer, op_name, pack_models, tensor_array
from .quantize import WEIGHT_OPS, TensorShare

STRATEGIES = ("copy", "slice", "auto")
# After table dedup a SLICE costs about 60-150 bytes of flash (its size constant, a tensor
# table, two offsets; the operator table is shared by every level with the same SLICEs).
# "auto" measures copy vs SLICE only for copies smaller than this; larger ones are SLICEd.
AUTO_MEASURE_BELOW = 512


@dataclass(frozen=True)
class Bundle:
    """A packed multi-level blob: ``blob[offsets[k]:]`` is level k's model."""

    blob: bytes
    offsets: tuple[int, ...]
    strategy: str
    slices: tuple[int, ...]
    prefix_views: int
    choice: tuple[tuple[int, ...], ...] = ()

    def level(self, k: int) -> bytes:
        """Level k's model bytes (a valid standalone flatbuffer view of the blob)."""
        if not 0 <= k < len(self.offsets):
            raise IndexError(f"Bundle has levels 0..{len(self.offsets) - 1}. Received: level={k}")
        return self.blob[self.offsets[k] :]

    def index(self) -> dict:
        return {
            "format": "reds_tf multi-root tflite bundle v1",
            "levels": len(self.offsets),
            "offsets": list(self.offsets),
            "strategy": self.strategy,
            "slice_ops_per_level": list(self.slices),
            "sliced_op_indices_per_level": [list(c) for c in self.choice],
            "bytes": len(self.blob),
        }


def _slice_code(m: S.ModelT) -> int:
    for i, c in enumerate(m.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == S.BuiltinOperator.SLICE:
            return i
    code = S.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = S.BuiltinOperator.SLICE
    code.version = 2
    m.operatorCodes.append(code)
    return len(m.operatorCodes) - 1


def _const(
    m: S.ModelT, name: str, values: np.ndarray, ttype: int, quant: S.QuantizationParametersT | None = None
) -> int:
    t = S.TensorT()
    t.shape = np.asarray(values.shape, np.int32)
    t.type = ttype
    t.name = name
    t.buffer = add_buffer(m, values)
    t.quantization = quant or S.QuantizationParametersT()
    m.subgraphs[0].tensors.append(t)
    return len(m.subgraphs[0].tensors) - 1


def slice_candidates(shares: Sequence[TensorShare]) -> list[int]:
    """Operator indices whose shared weight is a box but not a prefix of the full tensor."""
    return [s.op_index for s in shares if s.shared and s.layout == "slice"]


def with_slices(
    level: S.ModelT, full: S.ModelT, shares: Sequence[TensorShare], ops: Sequence[int]
) -> tuple[S.ModelT, int]:
    """A copy of ``level`` whose weights of operators ``ops`` are SLICEd from the full tensor."""
    chosen = {s.op_index: s for s in shares if s.op_index in set(ops)}
    if not chosen:
        return level, 0
    m = copy.deepcopy(level)
    sg = m.subgraphs[0]
    code = _slice_code(m)
    ops, begins = [], {}
    for i, op in enumerate(sg.operators):
        s = chosen.get(i)
        if s is not None:
            fi, _, axis = WEIGHT_OPS[s.op]
            t_idx = int(op.inputs[fi])
            t = sg.tensors[t_idx]
            wf = tensor_array(full, int(full.subgraphs[0].operators[i].inputs[fi]))
            ff = full.subgraphs[0].tensors[int(full.subgraphs[0].operators[i].inputs[fi])]
            # The source is the full level's own weight tensor (same data, shape and
            # quantisation), so after stripping its table is the full model's, written once.
            src = copy.deepcopy(ff)
            src.buffer = add_buffer(m, wf.astype(np.int8))
            sg.tensors.append(src)
            src_i = len(sg.tensors) - 1
            rank = len(s.level_shape)
            if rank not in begins:  # one all-zero ``begin`` tensor per rank serves every SLICE
                begins[rank] = _const(m, "reds_slice_begin", np.zeros(rank, np.int32), S.TensorType.INT32)
            begin_i = begins[rank]
            size_i = _const(m, "reds_slice_size", np.asarray(s.level_shape, np.int32), S.TensorType.INT32)
            t.buffer = 0  # now an arena tensor written by SLICE
            sl = S.OperatorT()
            sl.opcodeIndex = code
            sl.inputs = np.asarray([src_i, begin_i, size_i], np.int32)
            sl.outputs = np.asarray([t_idx], np.int32)
            sl.builtinOptionsType = S.BuiltinOptions.SliceOptions
            sl.builtinOptions = S.SliceOptionsT()
            ops.append(sl)
        ops.append(op)
    sg.operators = ops
    return m, len(chosen)


def _all_zero_per_channel(q: S.QuantizationParametersT) -> bool:
    zp = q.zeroPoint
    return zp is not None and len(zp) > 1 and not np.any(np.asarray(zp))


def strip_for_device(model: S.ModelT) -> S.ModelT:
    """A copy without what TFLM never reads, with only the buffers its tensors use.

    Dropped: tensor/subgraph names, shape signatures, signature defs, metadata, the
    description, and the quantisation table of int32 bias tensors (TFLM's kernels derive
    the requantisation from the input, filter and output scales). Bit-exactness of every
    bundle level with its standalone file under TFLM is checked by ``convert(verify=True)``.
    """
    m = copy.copy(model)
    m.subgraphs = []
    used = sorted({0} | {int(t.buffer) for sg in model.subgraphs for t in sg.tensors})
    remap = {old: new for new, old in enumerate(used)}
    m.buffers = [model.buffers[i] for i in used]
    for sg in model.subgraphs:
        sg2 = copy.copy(sg)
        sg2.name = None
        sg2.tensors = [copy.copy(t) for t in sg.tensors]
        biases = {
            int(op.inputs[2])
            for op in sg.operators
            if len(op.inputs) > 2 and op.inputs[2] >= 0 and op_name(model, op) in WEIGHT_OPS
        }
        for i, t in enumerate(sg2.tensors):
            t.name = None
            t.shapeSignature = None
            t.buffer = remap[int(t.buffer)]
            if i in biases and t.type == S.TensorType.INT32:
                t.quantization = None
            elif t.quantization is not None and _all_zero_per_channel(t.quantization):
                # TFLM's allocator reads zero_point[0] for every channel when the vector has
                # one entry ("zero point arrays for weights can be reduced to a single value").
                t.quantization = copy.copy(t.quantization)
                t.quantization.zeroPoint = np.zeros(1, np.int64)
        m.subgraphs.append(sg2)
    m.signatureDefs = None
    m.metadata = None
    m.metadataBuffer = None
    m.description = None
    return m


def build_bundle(
    levels: Sequence[S.ModelT],
    shares: Sequence[Sequence[TensorShare]],
    strategy: str = "auto",
    strip: bool = True,
) -> Bundle:
    """Pack all levels (level 0 smallest, last = full) into one shared-weight blob.

    With ``strip`` the bundle drops what TFLM never reads (tensor names, signature defs,
    converter metadata); the standalone files keep them for tools such as Netron.
    """
    choice = slice_choice(levels, shares, strategy, strip)
    models, slices = device_models(levels, shares, choice, strip)
    blob, offsets, views = pack_models(models)
    return Bundle(blob, tuple(offsets), strategy, tuple(slices), views, tuple(tuple(c) for c in choice))


def slice_choice(
    levels: Sequence[S.ModelT],
    shares: Sequence[Sequence[TensorShare]],
    strategy: str = "auto",
    strip: bool = True,
) -> list[list[int]]:
    """Per level, the operators whose weights are SLICEd at run time.

    ``"copy"``: none; ``"slice"``: every box-shaped shared weight; ``"auto"``: start from
    ``"slice"`` and turn each SLICE back into a copy when the packed bundle is not larger
    with the copy (measured by packing; ties go to the copy, which needs no arena). Only
    copies under ``AUTO_MEASURE_BELOW`` bytes are tried, which keeps big models fast.
    """
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Unknown bundle strategy. Received: strategy={strategy!r}; expected one of {STRATEGIES}"
        )
    full = levels[-1]
    cands = [[] if m is full else slice_candidates(sh) for m, sh in zip(levels, shares, strict=True)]
    if strategy == "copy":
        return [[] for _ in levels]
    if strategy == "slice":
        return cands
    choice = [list(c) for c in cands]

    def size() -> int:
        return len(pack_models(device_models(levels, shares, choice, strip)[0])[0])

    copy_bytes = [{s.op_index: int(np.prod(s.level_shape)) for s in sh} for sh in shares]
    best = size()
    for k, ops in enumerate(cands):
        for op in ops:
            if copy_bytes[k][op] >= AUTO_MEASURE_BELOW:
                continue  # a copy this large never beats a SLICE; skip the trial pack
            choice[k].remove(op)
            n = size()
            if n <= best:
                best = n
            else:
                choice[k].append(op)
    return choice


def device_models(
    levels: Sequence[S.ModelT],
    shares: Sequence[Sequence[TensorShare]],
    choice: Sequence[Sequence[int]] | str = "auto",
    strip: bool = True,
) -> tuple[list[S.ModelT], list[int]]:
    """The per-level models exactly as the bundle packs them, and their SLICE op counts.

    ``choice`` is a strategy name or, per level, the operators to SLICE (``slice_choice``).
    """
    if isinstance(choice, str):
        choice = slice_choice(levels, shares, choice, strip)
    full = levels[-1]
    models, slices = [], []
    for m, sh, ops in zip(levels, shares, choice, strict=True):
        mm, n = with_slices(m, full, sh, ops) if m is not full else (m, 0)
        models.append(strip_for_device(mm) if strip else mm)
        slices.append(n)
    return (_one_buffer_table(models) if strip else models), slices


def _one_buffer_table(models: list[S.ModelT]) -> list[S.ModelT]:
    """Give every level the same ``buffers`` list (the union), so the packer writes the
    Buffer tables and the buffers vector once instead of once per level."""
    index: dict[bytes, int] = {b"": 0}
    table = [S.BufferT()]
    for m in models:
        for sg in m.subgraphs:
            for t in sg.tensors:
                data = m.buffers[t.buffer].data
                raw = b"" if data is None else bytes(np.asarray(data, np.uint8))
                if raw not in index:
                    index[raw] = len(table)
                    table.append(m.buffers[t.buffer])
                t.buffer = index[raw]
    for m in models:
        m.buffers = table
    return models
