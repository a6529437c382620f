"""Aligned, deduplicating packing of TFLite models into one file or a multi-level bundle.

See ``flatbuffer``'s module docstring for what differs from the generated ``ModelT.Pack``;
in a bundle (``pack_models``) identical tables and offset vectors are also written once,
and a byte ledger records what every level adds (``report.bundle_breakdown``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import flatbuffers
import numpy as np

from .flatbuffer import DATA_ALIGN, FILE_ID, S


def _canon(x: object) -> object:
    """A hashable value equal for equal object-API tables (used to write each table once)."""
    if isinstance(x, _Node):
        return _canon(x.obj)
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, (list, tuple)):
        return tuple(_canon(v) for v in x)
    if isinstance(x, (bytes, str, int, float, bool)) or x is None:
        return x
    return (type(x).__name__, tuple((k, _canon(v)) for k, v in sorted(vars(x).items())))


class _DedupBuilder(flatbuffers.Builder):
    """A builder that writes identical vectors, strings and (optionally) tables once.

    It also keeps a byte ledger: ``ledger[(owner, category)]`` is the number of bytes
    written while packing ``owner`` (a model label) for that category, each byte counted
    once (a table's own bytes exclude its children). ``report.bundle_breakdown`` prints it.
    """

    def __init__(self, size: int = 1024, *, dedup_tables: bool = False) -> None:
        super().__init__(size)
        self._vectors: dict[tuple[str, bytes], int] = {}
        self._strings: dict[bytes, int] = {}
        self._data: dict[bytes, int] = {}
        self._data_list: list[tuple[bytes, int]] = []
        self._tables: dict[object, int] = {}
        self.dedup_tables = dedup_tables
        self.prefix_views = 0
        self.owner = "-"
        self.ledger: dict[tuple[str, str], int] = {}
        self._stack: list[list] = [["other", self.Offset(), 0]]

    # -- ledger -----------------------------------------------------------------------
    def enter(self, category: str) -> None:
        self._stack.append([category, self.Offset(), 0])

    def leave(self) -> None:
        cat, start, children = self._stack.pop()
        total = self.Offset() - start
        key = (self.owner, cat)
        self.ledger[key] = self.ledger.get(key, 0) + total - children
        self._stack[-1][2] += total

    @property
    def context(self) -> str:
        return self._stack[-1][0]

    def close_ledger(self) -> None:
        """Attribute the bytes written outside any category (root headers, padding)."""
        accounted = sum(self.ledger.values())
        key = (self.owner, "file header, root offsets")
        self.ledger[key] = self.ledger.get(key, 0) + self.Offset() - accounted

    # -- deduplication ----------------------------------------------------------------
    def StartVector(self, elemSize: int, numElems: int, alignment: int) -> int:  # noqa: N802, N803
        self._vec = (self.Offset(), [])
        return super().StartVector(elemSize, numElems, alignment)

    def PrependUOffsetTRelative(self, off: int) -> None:  # noqa: N802 - flatbuffers API name
        vec = getattr(self, "_vec", None)
        if vec is not None and self.nested:
            vec[1].append(off)
        super().PrependUOffsetTRelative(off)

    def EndVector(self, numElems: int | None = None) -> int:  # noqa: N802, N803
        """With ``dedup_tables``, a vector of table offsets equal to one written is dropped
        again (the builder writes downwards, so rolling ``head`` back erases it)."""
        start, targets = getattr(self, "_vec", None) or (None, [])
        self._vec = None
        n = self.vectorNumElems
        off = super().EndVector(numElems)
        if not (self.dedup_tables and targets and len(targets) == n):
            return off
        key = ("offsets", tuple(targets))
        if key in self._tables:
            self.head = len(self.Bytes) - start
            return self._tables[key]
        self._tables[key] = off
        return off

    def CreateNumpyVector(self, x: np.ndarray) -> int:  # noqa: N802 - flatbuffers API name
        key = (x.dtype.str, x.tobytes())
        if key not in self._vectors:
            self.enter(f"{self.context}: {x.dtype.name} vectors")
            self._vectors[key] = super().CreateNumpyVector(x)
            self.leave()
        return self._vectors[key]

    def CreateString(self, s: str | bytes, encoding: str = "utf-8", errors: str = "strict") -> int:  # noqa: N802
        key = s.encode(encoding, errors) if isinstance(s, str) else bytes(s)
        if key not in self._strings:
            self.enter("strings (names, descriptions)")
            self._strings[key] = super().CreateString(s, encoding, errors)
            self.leave()
        return self._strings[key]

    def data_vector(self, raw: bytes, align: int = DATA_ALIGN) -> int:
        """An aligned data vector: reused when identical or a prefix of one written."""
        if raw in self._data:
            return self._data[raw]
        for full, off in self._data_list:
            if len(full) > len(raw) and full.startswith(raw):
                self.prefix_views += 1
                self._data[raw] = off
                return off
        start = self.Offset()
        self.StartVector(1, len(raw), align)
        self.head -= len(raw)
        self.Bytes[self.head : self.head + len(raw)] = raw
        off = self.EndVector(len(raw))
        key = (self.owner, "buffer data (weights, biases)")
        self.ledger[key] = self.ledger.get(key, 0) + len(raw) + 4
        key = (self.owner, "alignment padding of buffer data")
        self.ledger[key] = self.ledger.get(key, 0) + self.Offset() - start - len(raw) - 4
        self._stack[-1][2] += self.Offset() - start
        self._data[raw] = off
        self._data_list.append((raw, off))
        return off


class _Node:
    """Stands in for an object-API table during packing: files its bytes under a category
    in the ledger and, with ``dedup_tables``, writes identical tables once (a flatbuffer DAG)."""

    def __init__(self, obj: object, category: str) -> None:
        self.obj = obj
        self.category = category

    def Pack(self, builder: _DedupBuilder) -> int:  # noqa: N802 - flatbuffers API name
        key = (self.category, _canon(self.obj)) if builder.dedup_tables else None
        if key is not None and key in builder._tables:
            return builder._tables[key]
        builder.enter(self.category)
        off = self.obj.Pack(builder)
        builder.leave()
        if key is not None:
            builder._tables[key] = off
        return off


class _BufferRef:
    """Stands in for a ``BufferT`` during packing; its data vector comes from the builder's cache."""

    def __init__(self, data: np.ndarray | None, align: int = DATA_ALIGN) -> None:
        self.raw = b"" if data is None else bytes(np.asarray(data, np.uint8))
        self.align = align

    def Pack(self, builder: _DedupBuilder) -> int:  # noqa: N802 - flatbuffers API name
        data = builder.data_vector(self.raw, self.align) if self.raw else None
        key = ("buffer", data)
        if builder.dedup_tables and key in builder._tables:
            return builder._tables[key]
        builder.enter("buffer tables")
        S.BufferStart(builder)
        if data is not None:
            S.BufferAddData(builder, data)
        off = S.BufferEnd(builder)
        builder.leave()
        if builder.dedup_tables:
            builder._tables[key] = off
        return off


def referenced_buffers(model: S.ModelT) -> set[int]:
    """Buffer indices some tensor or metadata entry uses (edits leave orphans behind)."""
    used = {0}
    for sg in model.subgraphs or []:
        used |= {int(t.buffer) for t in sg.tensors or []}
    used |= {int(md.buffer) for md in model.metadata or []}
    used |= {int(i) for i in (model.metadataBuffer if model.metadataBuffer is not None else [])}
    return used


def buffer_alignments(model: S.ModelT, natural: bool = False) -> dict[int, int]:
    """Alignment of each used buffer's data: the schema's 16 bytes, or with ``natural``
    16 for int8/uint8 weights (the shared arena) and 4 for everything else.

    TFLM does not check buffer alignment, but its kernels read int32 biases and SLICE
    parameters through ``int32_t*``: 4 bytes is required (Cortex-M0 faults on unaligned
    words, and C++ calls it undefined). Int8 weights are read bytewise or via memcpy,
    but they are shared by every level, so keeping the schema's 16 costs almost nothing.
    """
    out = {i: DATA_ALIGN for i in referenced_buffers(model)}
    if natural:
        small: dict[int, int] = {}
        for sg in model.subgraphs or []:
            for t in sg.tensors or []:
                a = DATA_ALIGN if t.type in (S.TensorType.INT8, S.TensorType.UINT8) else 4
                small[int(t.buffer)] = max(small.get(int(t.buffer), 4), a)
        out.update(small)
    return out


def _wrapped(model: S.ModelT, natural_align: bool = False) -> S.ModelT:
    """A shallow copy of ``model`` whose tables are ``_Node``s (ledger categories, dedup)."""
    m = copy.copy(model)
    aligns = buffer_alignments(model, natural_align)
    # Orphaned buffers keep their index (tensors refer to buffers by position) but lose their data.
    # In a bundle (natural_align) the levels share one buffers list, so every entry keeps its data.
    m.buffers = [
        _BufferRef(b.data if (i in aligns or natural_align) else None, aligns.get(i, DATA_ALIGN))
        for i, b in enumerate(model.buffers)
    ]
    m.operatorCodes = [_Node(c, "operator codes") for c in model.operatorCodes or []]
    subgraphs = []
    for sg in model.subgraphs or []:
        sg2 = copy.copy(sg)
        tensors = []
        for t in sg.tensors or []:
            t2 = copy.copy(t)
            if t.quantization is not None:
                t2.quantization = _Node(t.quantization, "quantization tables")
            tensors.append(_Node(t2, "tensor tables"))
        sg2.tensors = tensors
        sg2.operators = [_Node(op, "operator tables") for op in sg.operators or []]
        subgraphs.append(_Node(sg2, "subgraph, model tables, offset vectors"))
    m.subgraphs = subgraphs
    return m


def _pack_into(builder: _DedupBuilder, model: S.ModelT) -> int:
    builder.enter("subgraph, model tables, offset vectors")
    off = _wrapped(model, builder.dedup_tables).Pack(builder)
    builder.leave()
    return off


def _prewrite_data(builder: _DedupBuilder, models: Sequence[S.ModelT], owners: Sequence[str]) -> None:
    """Write all buffer data first, longest first, so shorter buffers can become prefix views.

    A vector is filed in the ledger under the first owner (in ``owners`` order) using it.
    """
    first: dict[bytes, str] = {}
    align: dict[bytes, int] = {}
    for m, who in zip(models, owners, strict=True):
        aligns = buffer_alignments(m, builder.dedup_tables)
        for i, b in enumerate(m.buffers):
            if b.data is not None and len(b.data) and i in aligns:
                raw = bytes(np.asarray(b.data, np.uint8))
                first.setdefault(raw, who)
                align[raw] = max(align.get(raw, 1), aligns[i])
    for raw in sorted(first, key=len, reverse=True):
        builder.owner = first[raw]
        builder.data_vector(raw, align[raw])


def pack_model(model: S.ModelT) -> bytes:
    """Serialise one model with aligned, deduplicated data (a valid standalone .tflite)."""
    builder = _DedupBuilder(4096)
    _prewrite_data(builder, [model], ["model"])
    root = _pack_into(builder, model)
    builder.Finish(root, file_identifier=FILE_ID)
    return bytes(builder.Output())


def pack_models(models: Sequence[S.ModelT], *, dedup_tables: bool = True) -> tuple[bytes, list[int], int]:
    """Serialise several models into one blob sharing data vectors (a multi-root flatbuffer).

    Each model gets an 8-byte root header ``[uoffset to its Model][b"TFL3"]`` at a 16-byte
    aligned position, so ``blob[offsets[k]:]`` (in C: ``tflite::GetModel(blob + offsets[k])``)
    is model k. The blob's own root (offset 0) is the last model. With ``dedup_tables``
    identical tables (operators, operator codes, tensors, quantisation, buffers) are also
    written once. Returns ``(blob, offsets, prefix_views)``.
    """
    blob, offsets, views, _ = pack_models_ledger(models, dedup_tables=dedup_tables)
    return blob, offsets, views


def pack_models_ledger(
    models: Sequence[S.ModelT], labels: Sequence[str] | None = None, *, dedup_tables: bool = True
) -> tuple[bytes, list[int], int, dict[tuple[str, str], int]]:
    """``pack_models`` plus its byte ledger ``{(label, category): bytes}`` summing to the blob size.

    The last model (the full level) is packed first, then the others from the last down, so
    every shared byte is filed under the largest model using it and a smaller level's
    entries are what it adds to the bundle.
    """
    if not models:
        raise ValueError("pack_models needs at least one model. Received: models=[]")
    labels = list(labels) if labels is not None else [f"model {i}" for i in range(len(models))]
    order = list(range(len(models)))[::-1]
    builder = _DedupBuilder(16384, dedup_tables=dedup_tables)
    _prewrite_data(builder, [models[i] for i in order], [labels[i] for i in order])
    roots: list[int] = [0] * len(models)
    for i in order:
        builder.owner = labels[i]
        roots[i] = _pack_into(builder, models[i])
    marks = []
    for i, root in enumerate(roots[:-1]):
        builder.owner = labels[i]
        builder.enter("file header, root offsets")
        builder.Prep(DATA_ALIGN, 8)
        for c in reversed(FILE_ID):
            builder.PrependByte(c)
        builder.PrependUOffsetTRelative(root)
        builder.leave()
        marks.append(builder.Offset())
    builder.owner = labels[-1]
    builder.Finish(roots[-1], file_identifier=FILE_ID)
    builder.close_ledger()
    out = bytes(builder.Output())
    offsets = [len(out) - mark for mark in marks] + [0]
    for k, off in enumerate(offsets):
        if off % DATA_ALIGN or out[off + 4 : off + 8] != FILE_ID:  # pragma: no cover - builder invariant
            raise AssertionError(f"bundle root header {k} at byte {off} is misplaced")
    return out, offsets, builder.prefix_views, builder.ledger
