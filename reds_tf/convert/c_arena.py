"""Per-level int8 .tflite files -> ONE device blob: a shared int8 weight arena plus per-level op lists.

The firmware (``firmware/src/runtime/reds_model.c``) parses this blob; switching level there is one
integer. TFLM's *prepare* step (per-channel multipliers/shifts, zero points, activation clamps, padding)
runs here, once, at build time, so the device kernels only loop.

Blob layout (all little-endian; every field below is a uint32 unless noted; sections 16-byte aligned)::

    header     16 words   magic "REDS", version, total bytes, n_levels, offsets/sizes of the sections,
                          max scratch/input/output bytes over the levels, op template offset and count
    levels     16 words per level: op list offset, n_ops, input/output bytes, scratch bytes, MACs (lo, hi),
                          input scale (float32 bits), input zp, output scale, output zp, input h, w, c,
                          n_slots (scratch buffers), predicted Cortex-M4 cycles (0 = unknown; the
                          firmware's budget policy turns them into microseconds)
    templates  32 words per template (see ``OP_FIELDS``): an op record without its channel counts (in_c
                          and out_c are 0): type, shapes, kernel/stride/pad/dilation, weight offset into the
                          arena with the FULL tensor's strides, offsets of the int32 bias, multiplier and
                          shift arrays in the params section, zero points, clamps, MEAN's folded multiplier
                          and shift (SOFTMAX's input multiplier and left shift; ADD's and LEAKY_RELU's
                          output or identity-branch multiplier and shift); words 28-31 are ADD's second
                          input (zero point, the inputs' multipliers, their right shifts), and LEAKY_RELU
                          keeps its alpha branch's multiplier and signed shift in words 29 and 30; unused
                          words must be 0. Identical templates are stored once, so levels that differ only
                          in channel counts share them.
    op lists   per level: n_ops entries of 4 words (``ENTRY_FIELDS``): template index, the level's in_c
                          and out_c, and the buffer slots (byte 0: input, 1: second input or 0xFF, 2:
                          output, 3: 0), then n_slots words: each scratch slot's byte offset in scratch,
                          then (version 4) one word per sparse op of the list, in op order: the entries
                          per row the level runs (its count table)
    arena      int8 weights of the widest (last) level, stored once; levels read sub-blocks with full strides
    params     int32 arrays (biases, multipliers, shifts), per level; equal arrays and prefixes stored once

Buffer slots: 0 is the level's input (the caller's, read-only), 1 the level's output (written by the last
op only), 2 + s scratch slot s. ``plan_buffers`` assigns them by liveness (a slot is reused once the
tensor in it has been read for the last time); a slot's size is the largest tensor it holds, rounded up
to 16 bytes, and the level's scratch is the sum of its slots.

``VERSION`` (the header's version word, ``REDS_BLOB_VERSION`` in ``reds_model.h``) changes with the
layout: 2 dropped version 1's MEAN requantise flag (op word 28); 3 replaced the per-level 128-byte op
records by shared templates plus 16-byte per-level entries with buffer slots; 4 (``VERSION_SPARSE``)
added the row-sparse ops (SPARSE_CONV_2D, SPARSE_FULLY_CONNECTED: int8 values [out_c, n_max] in
importance order at w_off, w_stride_o = n_max, the uint8/uint16 column indices [out_c, n_max] at the
arena offset in op word 29 and their width in bytes in word 30) and each level's count table. A blob
without sparse ops is written as version 3, byte for byte as before; the firmware reads both.

A narrower level whose int8 weights are NOT the widest level's prefix sub-block cannot share them; that
tensor is then stored separately in the arena and listed under ``"separate_tensors"`` in the summary.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptFlatbufferError, UnsupportedLayerError
from ..runstore import atomic_write_bytes, atomic_write_text
from .c_prepare import (
    ALPHA_FIELDS,
    OP_ADD,
    OP_CONV_2D,
    OP_DEPTHWISE_CONV_2D,
    OP_FIELDS,
    OP_FULLY_CONNECTED,
    OP_LEAKY_RELU,
    OP_MEAN,
    OP_NAMES,
    OP_SPARSE_CONV_2D,
    OP_SPARSE_FULLY_CONNECTED,
    SPARSE_FIELDS,
    act_bytes,
    op_macs,
    read_level,
)

MAGIC = 0x53444552  # b"REDS" read as a little-endian uint32
VERSION = 3  # 3: shared op templates + per-level entries with buffer slots; must match REDS_BLOB_VERSION
VERSION_SPARSE = 4  # 3 + row-sparse ops and per-level count tables; REDS_BLOB_VERSION_SPARSE
HEADER_WORDS = 16
LEVEL_WORDS = 16
OP_WORDS = 32  # one op template
ENTRY_WORDS = 4  # one op of a level's op list
ALIGN = 16
NONE = 0xFFFFFFFF  # "no bias" offset
SLOT_INPUT, SLOT_OUTPUT, SLOT_SCRATCH, SLOT_NONE = 0, 1, 2, 0xFF  # buffer slot ids (REDS_SLOT_*)
MAX_SLOTS = 16  # scratch slots per level (REDS_MAX_SLOTS)
MAX_LEVELS, MAX_OPS = 16, 256  # levels per blob, ops per level (REDS_MAX_LEVELS, REDS_MAX_OPS)
ENTRY_FIELDS = ("template", "in_c", "out_c", "bufs")
HEADER_FIELDS = (
    "magic",
    "version",
    "total_bytes",
    "n_levels",
    "levels_off",
    "arena_off",
    "arena_bytes",
    "params_off",
    "params_bytes",
    "max_scratch",
    "max_in",
    "max_out",
    "templates_off",
    "n_templates",
)
LEVEL_FIELDS = (
    "ops_off",
    "n_ops",
    "in_bytes",
    "out_bytes",
    "scratch",
    "macs_lo",
    "macs_hi",
    "in_scale",
    "in_zp",
    "out_scale",
    "out_zp",
    "in_h",
    "in_w",
    "in_c",
    "n_slots",
    "cycles",
)


# The runtime's limits (``reds_model.c``: DIM_MAX, ELEMS_MAX, REDUCE_MAX, BIAS_MAX, SMALL_MAX): a blob
# outside them is refused by ``reds_model_init`` (REDS_BAD_BLOB), so ``build_blob`` refuses to write it.
RUNTIME_LIMITS = {
    "DIM_MAX": 65535,
    "ELEMS_MAX": 1 << 24,
    "REDUCE_MAX": 1 << 15,
    "BIAS_MAX": 1 << 30,
    "SMALL_MAX": 255,
    "FAN_IN_MAX": 65536,
}
SPARSE_TYPES = (OP_SPARSE_CONV_2D, OP_SPARSE_FULLY_CONNECTED)


MEAN_HW_MAX = (2**31 - 1) // 256  # REDS_MEAN_HW_MAX in reds_kernels.h


def check_runtime_limits(k: int, i: int, e: dict[str, Any]) -> None:
    """Raise ``UnsupportedLayerError`` naming level ``k``, op ``i``, the value and the fix when op record
    ``e`` holds anything the device runtime's validator would refuse."""
    r, lim = e["rec"], RUNTIME_LIMITS
    where = f"Level {k} op {i} ({OP_NAMES[r['type']]}{', ' + e['name'] if e.get('name') else ''})"

    def bad(what: str, fix: str) -> UnsupportedLayerError:
        return UnsupportedLayerError(f"{where}: {what}; the device runtime (reds_model_init) would refuse "
                                     f"the blob. Fix: {fix}.")  # fmt: skip

    for f in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c"):
        if not 1 <= r[f] <= lim["DIM_MAX"]:
            raise bad(f"{f} = {r[f]} is outside [1, {lim['DIM_MAX']}]", "use smaller tensors")
    for side in ("in", "out"):
        if act_bytes(r, side) > lim["ELEMS_MAX"]:
            raise bad(f"the {side}put has {act_bytes(r, side):,} elements (> {lim['ELEMS_MAX']:,})",
                      "use smaller activations")  # fmt: skip
    for f in ("k_h", "k_w", "stride_h", "stride_w", "pad_h", "pad_w", "dil_h", "dil_w", "depth_mult"):
        if r[f] > lim["SMALL_MAX"]:
            raise bad(f"{f} = {r[f]} exceeds {lim['SMALL_MAX']}", "use smaller kernels, strides and padding")
    if r["type"] == OP_MEAN and r["in_h"] * r["in_w"] > MEAN_HW_MAX:
        raise bad(f"MEAN averages {r['in_h'] * r['in_w']:,} pixels (> {MEAN_HW_MAX:,}: its int32 sum could "
                  "overflow)", "pool in stages (AveragePooling2D before the global average)")  # fmt: skip
    if r["type"] not in (OP_FULLY_CONNECTED, OP_MEAN) and r["stride_h"] * r["in_w"] * r["in_c"] > 2**31 - 1:
        raise bad("stride_h x input width x channels exceeds int32 (the kernels' row step)",
                  "use a smaller stride or input")  # fmt: skip
    reduce = {OP_CONV_2D: r["k_h"] * r["k_w"] * r["in_c"], OP_DEPTHWISE_CONV_2D: r["k_h"] * r["k_w"],
              OP_FULLY_CONNECTED: r["in_c"]}.get(r["type"], 0)  # fmt: skip
    if r["type"] in SPARSE_TYPES:
        fan, reduce = r["k_h"] * r["k_w"] * r["in_c"], r["w_stride_o"]
        if fan > lim["FAN_IN_MAX"] or r["dil_h"] != 1 or r["dil_w"] != 1:
            raise bad(f"a sparse layer with fan-in {fan:,} (> {lim['FAN_IN_MAX']:,}: uint16 indices) or "
                      f"dilation {r['dil_h']}x{r['dil_w']} (the sparse kernel takes 1)",
                      "keep this layer dense (leave it out of layer_names)")  # fmt: skip
    if reduce > lim["REDUCE_MAX"]:
        raise bad(f"each output sums {reduce:,} products (> {lim['REDUCE_MAX']:,}, the int32-safe bound)",
                  "split the layer or reduce its fan-in")  # fmt: skip
    if r["type"] == OP_ADD:
        rs = r["in_rshifts"]
        for what, v in (("output", r["shift"]), ("input 1", -(rs & 0xFF)), ("input 2", -((rs >> 8) & 0xFF))):
            if not -31 <= v <= 0 or rs >> 16:
                raise bad(f"ADD's {what} requantisation shift is {v}, outside [-31, 0] (TFLM requires a "
                          "multiplier below 1: the output scale must exceed 2 x the larger input scale "
                          "/ 2^20)", "check the ADD's input and output scales")  # fmt: skip
    if r["type"] == OP_LEAKY_RELU:
        for what, v in (("identity", r["shift"]), ("alpha", r[ALPHA_FIELDS[1]])):
            if not -31 <= v <= 30:
                raise bad(f"LEAKY_RELU's {what}-branch requantisation shift is {v}, outside [-31, 30]",
                          "check the LeakyReLU's input and output scales")  # fmt: skip
    sh = e["shift"]
    if sh is not None and (sh.min() < -31 or sh.max() > 30):
        raise bad(f"a requantisation shift is outside [-31, 30] (range {sh.min()}..{sh.max()})",
                  "check the layer's input, weight and output scales (an output scale far from the "
                  "accumulator's, e.g. from a dead channel)")  # fmt: skip
    b = e["bias"]
    if b is not None and np.abs(b.astype(np.int64)).max() > lim["BIAS_MAX"]:
        c = int(np.abs(b.astype(np.int64)).argmax())
        raise bad(f"the int32 bias of output channel {c} is {int(b[c]):,}, beyond the runtime's +-2^30 "
                  "(it keeps sum + bias inside int32); its float bias is huge against input scale x "
                  "weight scale, typically a channel whose weights are all ~0",
                  "retrain with weight decay or prune that channel (its output is a constant), or "
                  "calibrate with data that covers the layer's real input range")  # fmt: skip


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan_buffers(ops: list[dict[str, Any]]) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Assign buffer slots to one level's ops by liveness; returns ``(bufs, slot_bytes)``.

    ``ops[i]`` gives ``"inputs"`` (tensor ids it reads, in order), ``"output"`` (the tensor id it writes)
    and ``"out_elems"``. A tensor no op wrote is the level input (slot 0); the last op writes the level
    output (slot 1). Every other tensor gets a scratch slot that is free while it is written: a slot is
    freed after the last op that reads its tensor (never reused by that op's own output, since the
    kernels do not work in place). Among the free slots the smallest one large enough is taken, else the
    largest (which grows), else a new one. ``bufs[i]`` is ``(in, in2, out)`` (``in2`` ``SLOT_NONE`` for
    one input); ``slot_bytes[s]`` is scratch slot s's size (its largest tensor, 16-byte aligned).
    Mirrors the validation in ``reds_model_init``.
    """
    written = {op["output"] for op in ops}
    last_use: dict[Any, int] = {}
    for i, op in enumerate(ops):
        for t in op["inputs"]:
            last_use[t] = i
    where: dict[Any, int] = {}  # tensor -> slot id
    sizes: list[int] = []  # scratch slot s -> bytes (aligned)
    free: list[int] = []  # free scratch slot indices
    bufs = []
    for i, op in enumerate(ops):
        ins = []
        for t in op["inputs"]:
            if t not in written:
                ins.append(SLOT_INPUT)
            elif t not in where:
                raise UnsupportedLayerError(f"Op {i} reads tensor {t!r} before an op writes it.")
            else:
                ins.append(where[t])
        if not 1 <= len(ins) <= 2:
            raise UnsupportedLayerError(f"Op {i} has {len(ins)} inputs; the firmware takes 1 or 2.")
        if i == len(ops) - 1:
            out = SLOT_OUTPUT
        else:
            need = _align(op["out_elems"])
            fits = [s for s in free if sizes[s] >= need]
            if fits:
                s = min(fits, key=lambda s: (sizes[s], s))
            elif free:
                s = max(free, key=lambda s: (sizes[s], -s))
                sizes[s] = need
            else:
                s = len(sizes)
                sizes.append(need)
                if len(sizes) > MAX_SLOTS:
                    raise UnsupportedLayerError(
                        f"Op {i} needs scratch buffer {len(sizes)}; the firmware keeps at most {MAX_SLOTS} "
                        "tensors alive at once. Fix: use fewer parallel branches."
                    )
            free = [f for f in free if f != s]
            out = SLOT_SCRATCH + s
            where[op["output"]] = out
        for t in set(op["inputs"]):  # read for the last time: its slot is free from the next op on
            if last_use[t] == i and t in where:
                free.append(where[t] - SLOT_SCRATCH)
        if op["output"] not in last_use and out != SLOT_OUTPUT:  # written but never read
            free.append(out - SLOT_SCRATCH)
        bufs.append((ins[0], ins[1] if len(ins) > 1 else SLOT_NONE, out))
    return bufs, sizes


def _chain_io(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each op's ``inputs`` / ``output`` tensor ids (``read_level`` records them; a plain chain otherwise)."""
    return [
        {
            "inputs": e.get("inputs", [i - 1]),
            "output": e.get("output", i),
            "out_elems": act_bytes(e["rec"], "out"),
        }
        for i, e in enumerate(ops)
    ]


# --- packing ------------------------------------------------------------------------------------------


class _Section:
    """An append-only byte section that stores an array once: an array equal to an earlier one, or to
    the first bytes of an earlier one (a narrower level's bias, multiplier or shift array under shared
    calibration), is a view of it. Arrays carry no length, so a view is just an offset."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._arrays: list[tuple[bytes, int]] = []

    def put(self, b: bytes, align: int) -> int:
        for stored, off in self._arrays:
            if off % align == 0 and stored.startswith(b):
                return off
        self.data += b"\0" * (-len(self.data) % align)
        off = len(self.data)
        self.data += b
        self._arrays.append((b, off))
        return off


def _share(w: np.ndarray, full: np.ndarray) -> bool:
    """True when ``w`` equals the prefix sub-block of ``full`` (both [O, H, W, I]) with the same kernel."""
    o, h, kw, i = w.shape
    fo, fh, fkw, fi = full.shape
    return h == fh and kw == fkw and o <= fo and i <= fi and np.array_equal(w, full[:o, :, :, :i])


def build_blob(
    levels: list[dict[str, Any]], level_cycles: list[int] | None = None
) -> tuple[bytes, dict[str, Any]]:
    """Pack parsed levels (``read_level``) into the device blob. Returns ``(blob, summary)``.

    ``level_cycles``: each level's predicted cycles on the device (0 or None: unknown), stored in its
    level descriptor for the firmware's latency-budget policy.
    """
    if not levels:
        raise ValueError("At least one level is required. Received: 0 levels.")
    cycles = list(level_cycles) if level_cycles is not None else [0] * len(levels)
    if len(cycles) != len(levels) or any(not 0 <= int(c) <= 0xFFFFFFFF for c in cycles):
        raise ValueError(
            f"level_cycles must hold one count in [0, 2^32) per level. Received: {cycles} for "
            f"{len(levels)} levels."
        )
    full = levels[-1]["ops"]
    if len(levels) > MAX_LEVELS or len(full) > MAX_OPS:
        raise UnsupportedLayerError(
            f"{len(levels)} levels of {len(full)} ops each; the device runtime (reds_model_init) takes at "
            f"most {MAX_LEVELS} levels of {MAX_OPS} ops. Fix: convert fewer levels or a smaller model."
        )
    kinds = [e["rec"]["type"] for e in full]
    for k, lv in enumerate(levels):
        got = [e["rec"]["type"] for e in lv["ops"]]
        if got != kinds:
            raise UnsupportedLayerError(
                f"Level {k} has ops {[OP_NAMES[t] for t in got]} but the widest level has "
                f"{[OP_NAMES[t] for t in kinds]}. All levels must share one topology."
            )
    arena, params = _Section(), _Section()
    full_w = [None if e["weights"] is None else np.ascontiguousarray(e["weights"]) for e in full]
    full_off = [None if w is None else arena.put(w.tobytes(), ALIGN) for w in full_w]
    separate: list[dict[str, Any]] = []
    level_recs: list[list[dict[str, int]]] = [[] for _ in levels]
    params_added = [0] * len(levels)
    # The widest level first: its int32 arrays are stored whole, narrower levels' are views of them.
    for k in reversed(range(len(levels))):
        lv, recs, params_before = levels[k], level_recs[k], len(params.data)
        for i, e in enumerate(lv["ops"]):
            r = dict(e["rec"])
            if e["weights"] is not None:
                w, fw = e["weights"], full_w[i]
                src = fw if _share(w, fw) else np.ascontiguousarray(w)
                if src is fw:
                    r["w_off"] = full_off[i]
                else:
                    r["w_off"] = arena.put(src.tobytes(), ALIGN)
                    separate.append({"level": k, "op": i, "type": OP_NAMES[r["type"]], "bytes": int(w.size)})
                    warnings.warn(
                        f"c_arena: level {k} op {i} ({OP_NAMES[r['type']]}) int8 weights are NOT the "
                        "widest level's prefix sub-block; stored separately (costs flash). Quantise "
                        "weights once from the full model to share them.",
                        stacklevel=2,
                    )
                r["w_stride_p"] = int(src.shape[3])
                r["w_stride_o"] = int(src.shape[1] * src.shape[2] * src.shape[3])
            elif e.get("sparse") is not None:
                sp = e["sparse"]  # values/indices are every level's, so the arena stores them once
                r["w_off"] = arena.put(np.ascontiguousarray(sp["values"], np.int8).tobytes(), ALIGN)
                r[SPARSE_FIELDS[0]] = arena.put(np.ascontiguousarray(sp["indices"]).astype(
                    sp["indices"].dtype.newbyteorder("<")).tobytes(), ALIGN)  # fmt: skip
                r[SPARSE_FIELDS[1]] = int(sp["indices"].dtype.itemsize)
                r["w_stride_o"], r["w_stride_p"], r["count"] = int(sp["values"].shape[1]), 0, int(sp["count"])
            if e["weights"] is not None or e.get("sparse") is not None:
                r["mult_off"] = params.put(e["mult"].astype("<i4").tobytes(), 4)
                r["shift_off"] = params.put(e["shift"].astype("<i4").tobytes(), 4)
                r["bias_off"] = (
                    NONE if e["bias"] is None else params.put(e["bias"].astype("<i4").tobytes(), 4)
                )
            check_runtime_limits(k, i, {**e, "rec": r})
            recs.append(r)
        params_added[k] = len(params.data) - params_before

    # Op templates: a record without its channel counts, stored once for every level that uses it.
    templates: list[tuple[int, ...]] = []
    index: dict[tuple[int, ...], int] = {}
    level_entries: list[list[tuple[int, int, int, int]]] = []
    level_slots: list[list[int]] = []
    level_counts = [[r["count"] for r in recs if r["type"] in SPARSE_TYPES] for recs in level_recs]
    for lv, recs in zip(levels, level_recs, strict=True):
        bufs, slot_bytes = plan_buffers(_chain_io(lv["ops"]))
        entries = []
        for r, (b_in, b_in2, b_out) in zip(recs, bufs, strict=True):
            t = tuple(0 if f in ("in_c", "out_c") else r[f] & 0xFFFFFFFF for f in OP_FIELDS)
            if t not in index:
                index[t] = len(templates)
                templates.append(t)
            entries.append((index[t], r["in_c"], r["out_c"], b_in | (b_in2 << 8) | (b_out << 16)))
        level_entries.append(entries)
        level_slots.append(slot_bytes)

    n_levels = len(levels)
    levels_off = HEADER_WORDS * 4
    templates_off = levels_off + LEVEL_WORDS * 4 * n_levels
    ops_off = templates_off + OP_WORDS * 4 * len(templates)
    list_offsets = []
    list_bytes = [4 * (ENTRY_WORDS * len(e) + len(sl) + len(c))
                  for e, sl, c in zip(level_entries, level_slots, level_counts, strict=True)]  # fmt: skip
    for n in list_bytes:
        list_offsets.append(ops_off)
        ops_off += n
    arena_off = _align(ops_off)
    params_off = _align(arena_off + len(arena.data))
    total = params_off + len(params.data)
    blob = bytearray(total)

    def words(off: int, vals: list[int]) -> None:
        struct.pack_into(f"<{len(vals)}I", blob, off, *[v & 0xFFFFFFFF for v in vals])

    f32 = lambda x: struct.unpack("<I", struct.pack("<f", x))[0]  # noqa: E731
    for n, t in enumerate(templates):
        words(templates_off + n * OP_WORDS * 4, list(t))
    summary_levels = []
    for k, (lv, recs) in enumerate(zip(levels, level_recs, strict=True)):
        macs = sum(op_macs(r) for r in recs)
        slot_bytes = level_slots[k]
        scratch = sum(slot_bytes)
        in_bytes, out_bytes = act_bytes(recs[0], "in"), act_bytes(recs[-1], "out")
        row = dict(
            ops_off=list_offsets[k],
            n_ops=len(recs),
            in_bytes=in_bytes,
            out_bytes=out_bytes,
            scratch=scratch,
            macs_lo=macs & 0xFFFFFFFF,
            macs_hi=macs >> 32,
            in_scale=f32(lv["in_scale"]),
            in_zp=lv["in_zp"],
            out_scale=f32(lv["out_scale"]),
            out_zp=lv["out_zp"],
            in_h=lv["in_hwc"][0],
            in_w=lv["in_hwc"][1],
            in_c=lv["in_hwc"][2],
            n_slots=len(slot_bytes),
            cycles=int(cycles[k]),
        )
        words(levels_off + k * LEVEL_WORDS * 4, [row[f] for f in LEVEL_FIELDS])
        words(list_offsets[k], [v for e in level_entries[k] for v in e])
        words(
            list_offsets[k] + ENTRY_WORDS * 4 * len(recs),
            [sum(slot_bytes[:s]) for s in range(len(slot_bytes))] + level_counts[k],
        )
        summary_levels.append(
            {
                "level": k,
                "n_ops": len(recs),
                "macs": macs,
                "cycles_pred": int(cycles[k]) or None,
                "scratch_bytes": scratch,
                "input_bytes": in_bytes,
                "output_bytes": out_bytes,
                "weight_bytes_standalone": int(
                    sum(e["weights"].size for e in lv["ops"] if e["weights"] is not None)
                    + sum(
                        e["sparse"]["count"]
                        * len(e["sparse"]["values"])
                        * (1 + e["sparse"]["indices"].itemsize)
                        for e in lv["ops"]
                        if e.get("sparse") is not None
                    )  # fmt: skip
                ),
                # int32 bias/multiplier/shift bytes this level adds (the widest level's are stored
                # first, so a narrower level counts only what is not a view of them)
                "params_bytes_added": params_added[k],
                # its level descriptor, op list, slot and count tables (templates are shared, counted once)
                "table_bytes": LEVEL_WORDS * 4 + list_bytes[k],
            }
        )
    blob[arena_off : arena_off + len(arena.data)] = arena.data
    blob[params_off:] = params.data
    hdr = dict(
        magic=MAGIC,
        version=VERSION_SPARSE if any(level_counts) else VERSION,
        total_bytes=total,
        n_levels=n_levels,
        levels_off=levels_off,
        arena_off=arena_off,
        arena_bytes=len(arena.data),
        params_off=params_off,
        params_bytes=len(params.data),
        max_scratch=max(s["scratch_bytes"] for s in summary_levels),
        max_in=max(s["input_bytes"] for s in summary_levels),
        max_out=max(s["output_bytes"] for s in summary_levels),
        templates_off=templates_off,
        n_templates=len(templates),
    )
    words(0, [hdr[f] for f in HEADER_FIELDS])
    summary = {
        "blob_bytes": total,
        "arena_bytes": len(arena.data),
        "params_bytes": len(params.data),
        "table_bytes": arena_off,
        "n_templates": len(templates),
        # Every byte of the blob once: header, tables, alignment, weights, int32 params.
        "sections": {
            "header": HEADER_WORDS * 4,
            "level table": templates_off - levels_off,
            "op templates (shared by the levels)": ops_off - templates_off - sum(list_bytes),
            "level op lists and slot tables": sum(list_bytes) - 4 * sum(len(c) for c in level_counts),
            "level count tables (sparse ops)": 4 * sum(len(c) for c in level_counts),
            "alignment": arena_off - ops_off + params_off - arena_off - len(arena.data),
            "int8 weight arena": len(arena.data),
            "int32 params (bias, multiplier, shift)": len(params.data),
        },
        "max_scratch_bytes": hdr["max_scratch"],
        "levels": summary_levels,
        "separate_tensors": sorted(separate, key=lambda d: (d["level"], d["op"])),
    }
    return bytes(blob), summary


def read_blob(blob: bytes) -> dict[str, Any]:
    """Decode a blob's header, level table, templates and each level's ops as full records (template +
    the entry's channel counts and buffer slots), for tests, reports and debugging."""
    if len(blob) < HEADER_WORDS * 4 or struct.unpack_from("<I", blob)[0] != MAGIC:
        raise CorruptFlatbufferError(
            f"Not a reds device blob (bad magic or {len(blob)} bytes). Regenerate it."
        )
    hdr = dict(zip(HEADER_FIELDS, struct.unpack_from(f"<{len(HEADER_FIELDS)}I", blob), strict=True))
    if hdr["version"] not in (VERSION, VERSION_SPARSE):
        raise CorruptFlatbufferError(
            f"Device blob version {hdr['version']} is not a supported version ({VERSION}, {VERSION_SPARSE}). "
            "Fix: regenerate the blob with this reds_tf (reds_tf.convert.c_arena.write)."
        )
    templates = [
        struct.unpack_from(f"<{OP_WORDS}i", blob, hdr["templates_off"] + OP_WORDS * 4 * n)
        for n in range(hdr["n_templates"])
    ]
    out: dict[str, Any] = {"header": hdr, "levels": [], "templates": [
        dict(zip(OP_FIELDS, t[: len(OP_FIELDS)], strict=True)) for t in templates]}  # fmt: skip
    for k in range(hdr["n_levels"]):
        raw = struct.unpack_from(f"<{len(LEVEL_FIELDS)}I", blob, hdr["levels_off"] + LEVEL_WORDS * 4 * k)
        lv = dict(zip(LEVEL_FIELDS, raw, strict=True))
        lv["ops"] = []
        for j in range(lv["n_ops"]):
            e = dict(zip(ENTRY_FIELDS, struct.unpack_from("<4I", blob, lv["ops_off"] + ENTRY_WORDS * 4 * j),
                         strict=True))  # fmt: skip
            op = dict(zip(OP_FIELDS, templates[e["template"]][: len(OP_FIELDS)], strict=True))
            op.update(in_c=e["in_c"], out_c=e["out_c"], template=e["template"], in_slot=e["bufs"] & 0xFF,
                      in2_slot=(e["bufs"] >> 8) & 0xFF, out_slot=(e["bufs"] >> 16) & 0xFF)  # fmt: skip
            lv["ops"].append(op)
        lv["slots"] = list(struct.unpack_from(
            f"<{lv['n_slots']}I", blob, lv["ops_off"] + ENTRY_WORDS * 4 * lv["n_ops"]))  # fmt: skip
        sparse = [op for op in lv["ops"] if op["type"] in SPARSE_TYPES]
        counts_off = lv["ops_off"] + 4 * (ENTRY_WORDS * lv["n_ops"] + lv["n_slots"])
        counts = struct.unpack_from(f"<{len(sparse)}I", blob, counts_off)
        for op, c in zip(sparse, counts, strict=True):
            op["count"] = c
        out["levels"].append(lv)
    return out


# --- files --------------------------------------------------------------------------------------------


def c_source(blob: bytes, name: str) -> tuple[str, str]:
    guard = f"REDS_{name.upper()}_BLOB_H"
    hdr = read_blob(blob)["header"]
    up = name.upper()
    h = (
        f"/* Generated by reds_tf.convert.c_arena: device blob for reds_model_init(). Do not edit. */\n"
        f"#ifndef {guard}\n#define {guard}\n\n#include <stdint.h>\n\n"
        f'#ifdef __cplusplus\nextern "C" {{\n#endif\n\n'
        f"#define {up}_BLOB_LEN {len(blob)}u\n"
        "/* Buffers the app needs (the blob header's maxima over its levels): activation scratch for\n"
        " * reds_invoke, the largest level input and output. Size static buffers with these. */\n"
        f"#define {up}_BLOB_MAX_SCRATCH {hdr['max_scratch']}u\n"
        f"#define {up}_BLOB_MAX_IN {hdr['max_in']}u\n"
        f"#define {up}_BLOB_MAX_OUT {hdr['max_out']}u\n"
        f"extern const uint8_t {name}_blob[{len(blob)}];\nextern const uint32_t {name}_blob_len;\n\n"
        f"#ifdef __cplusplus\n}}\n#endif\n\n#endif /* {guard} */\n"
    )
    rows = [", ".join(f"0x{b:02x}" for b in blob[i : i + 16]) for i in range(0, len(blob), 16)]
    c = (
        f"/* Generated by reds_tf.convert.c_arena: {len(blob)} bytes. Do not edit. */\n"
        f'#include "{name}_blob.h"\n\n'
        "/* 16-byte aligned so the int32 parameter arrays inside can be read in place. */\n"
        "#if defined(__GNUC__) || defined(__clang__)\n__attribute__((aligned(16)))\n#endif\n"
        f"const uint8_t {name}_blob[{len(blob)}] = {{\n  " + ",\n  ".join(rows) + "\n};\n"
        f"const uint32_t {name}_blob_len = {len(blob)}u;\n"
    )
    return c, h


def write(
    level_tflite_paths: list[Path],
    out_dir: Path,
    name: str = "model",
    level_cycles: list[int] | None = None,
) -> dict[str, Any]:
    """Write ``<name>.blob``, ``<name>_blob.c`` and ``<name>_blob.h`` for the firmware.

    Args:
        level_tflite_paths: per-level int8 .tflite files, level 0 (smallest) first, the widest last.
        out_dir: output directory (created).
        name: C identifier prefix; the arrays are ``<name>_blob`` / ``<name>_blob_len``.
        level_cycles: predicted device cycles per level, stored in the blob (None: unknown).

    Returns:
        A summary for report.json: blob/arena/params bytes, per-level MACs, scratch and standalone weight
        bytes, the tensors that could not share the arena, and the written paths.
    """
    if not name.isidentifier():
        raise ValueError(f"name must be a C identifier. Received: name={name!r}. Use e.g. 'model'.")
    levels = [read_level(Path(p)) for p in level_tflite_paths]
    blob, summary = build_blob(levels, level_cycles)
    out_dir = Path(out_dir)
    c, h = c_source(blob, name)
    paths = {
        "blob": atomic_write_bytes(out_dir / f"{name}.blob", blob),
        "c": atomic_write_text(out_dir / f"{name}_blob.c", c),
        "h": atomic_write_text(out_dir / f"{name}_blob.h", h),
    }
    full_cycles = None if level_cycles is None else list(level_cycles)[-1:]
    full_alone = len(build_blob(levels[-1:], full_cycles)[0]) if len(levels) > 1 else len(blob)
    summary["full_level_blob_bytes"] = full_alone
    summary["blob_ratio_vs_full"] = round(len(blob) / full_alone, 4)
    full_standalone = summary["levels"][-1]["weight_bytes_standalone"]
    summary["weights_ratio_vs_full"] = (summary["arena_bytes"] / full_standalone) if full_standalone else None
    summary["paths"] = {k: str(v) for k, v in paths.items()}
    return summary
