"""Per-level int8 .tflite files -> ONE device blob: a shared int8 weight arena plus per-level op tables.

The firmware (``firmware/src/runtime/reds_model.c``) parses this blob; switching level there is one
integer. TFLM's *prepare* step (per-channel multipliers/shifts, zero points, activation clamps, padding)
runs here, once, at build time, so the device kernels only loop.

Blob layout (all little-endian; every field below is a uint32 unless noted; sections 16-byte aligned)::

    header   16 words   magic "REDS", version, total bytes, n_levels, offsets/sizes of the sections,
                        max scratch/input/output bytes over the levels
    levels   16 words per level: op table offset, n_ops, input/output bytes, scratch bytes, MACs (lo, hi),
                        input scale (float32 bits), input zp, output scale, output zp, input h, w, c
    ops      32 words per op (see ``OP_FIELDS``): type, shapes, kernel/stride/pad/dilation, weight offset
                        into the arena with the FULL tensor's strides, offsets of the level's int32 bias,
                        multiplier and shift arrays in the params section, zero points, clamps, MEAN's
                        folded multiplier and shift; the remaining words are reserved and must be 0
    arena    int8 weights of the widest (last) level, stored once; levels read sub-blocks with full strides
    params   int32 arrays (biases, multipliers, shifts), per level, identical arrays stored once

``VERSION`` (the header's version word, ``REDS_BLOB_VERSION`` in ``reds_model.h``) changes with the
layout: 2 dropped version 1's MEAN requantise flag (op word 28), which the firmware ignored because
tflite-micro requantises every int8 MEAN.

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
    OP_CONV_2D,
    OP_DEPTHWISE_CONV_2D,
    OP_FIELDS,
    OP_FULLY_CONNECTED,
    OP_MEAN,
    OP_NAMES,
    act_bytes,
    op_macs,
    read_level,
)

MAGIC = 0x53444552  # b"REDS" read as a little-endian uint32
VERSION = 2  # 2: MEAN's requantise flag (op word 28) removed; must match REDS_BLOB_VERSION
HEADER_WORDS = 16
LEVEL_WORDS = 16
OP_WORDS = 32
ALIGN = 16
NONE = 0xFFFFFFFF  # "no bias" offset
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
)


# The runtime's limits (``reds_model.c``: DIM_MAX, ELEMS_MAX, REDUCE_MAX, BIAS_MAX, SMALL_MAX): a blob
# outside them is refused by ``reds_model_init`` (REDS_BAD_BLOB), so ``build_blob`` refuses to write it.
RUNTIME_LIMITS = {
    "DIM_MAX": 65535,
    "ELEMS_MAX": 1 << 24,
    "REDUCE_MAX": 1 << 15,
    "BIAS_MAX": 1 << 30,
    "SMALL_MAX": 255,
}


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
    if reduce > lim["REDUCE_MAX"]:
        raise bad(f"each output sums {reduce:,} products (> {lim['REDUCE_MAX']:,}, the int32-safe bound)",
                  "split the layer or reduce its fan-in")  # fmt: skip
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


def level_scratch_bytes(recs: list[dict[str, int]]) -> int:
    """Scratch one level needs: up to two ping-pong buffers for the intermediate activations.

    Mirrors ``reds_model.c``: op i writes buffer i % 2 (the last op writes the caller's output).
    """
    inter = [act_bytes(r, "out") for r in recs[:-1]]
    if not inter:
        return 0
    one = -(-max(inter) // ALIGN) * ALIGN
    return one * min(len(inter), 2)


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


def build_blob(levels: list[dict[str, Any]]) -> tuple[bytes, dict[str, Any]]:
    """Pack parsed levels (``read_level``) into the device blob. Returns ``(blob, summary)``."""
    if not levels:
        raise ValueError("At least one level is required. Received: 0 levels.")
    full = levels[-1]["ops"]
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
                r["mult_off"] = params.put(e["mult"].astype("<i4").tobytes(), 4)
                r["shift_off"] = params.put(e["shift"].astype("<i4").tobytes(), 4)
                r["bias_off"] = (
                    NONE if e["bias"] is None else params.put(e["bias"].astype("<i4").tobytes(), 4)
                )
            check_runtime_limits(k, i, {**e, "rec": r})
            recs.append(r)
        params_added[k] = len(params.data) - params_before

    n_levels = len(levels)
    levels_off = HEADER_WORDS * 4
    ops_off = levels_off + LEVEL_WORDS * 4 * n_levels
    op_offsets = []
    for recs in level_recs:
        op_offsets.append(ops_off)
        ops_off += OP_WORDS * 4 * len(recs)
    arena_off = -(-ops_off // ALIGN) * ALIGN
    params_off = -(-(arena_off + len(arena.data)) // ALIGN) * ALIGN
    total = params_off + len(params.data)
    blob = bytearray(total)

    def words(off: int, vals: list[int]) -> None:
        struct.pack_into(f"<{len(vals)}I", blob, off, *[v & 0xFFFFFFFF for v in vals])

    f32 = lambda x: struct.unpack("<I", struct.pack("<f", x))[0]  # noqa: E731
    summary_levels = []
    for k, (lv, recs) in enumerate(zip(levels, level_recs, strict=True)):
        macs = sum(op_macs(r) for r in recs)
        scratch = level_scratch_bytes(recs)
        in_bytes, out_bytes = act_bytes(recs[0], "in"), act_bytes(recs[-1], "out")
        row = dict(
            ops_off=op_offsets[k],
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
        )
        words(levels_off + k * LEVEL_WORDS * 4, [row[f] for f in LEVEL_FIELDS])
        for j, r in enumerate(recs):
            words(op_offsets[k] + j * OP_WORDS * 4, [r[f] for f in OP_FIELDS])
        summary_levels.append(
            {
                "level": k,
                "n_ops": len(recs),
                "macs": macs,
                "scratch_bytes": scratch,
                "input_bytes": in_bytes,
                "output_bytes": out_bytes,
                "weight_bytes_standalone": int(
                    sum(e["weights"].size for e in lv["ops"] if e["weights"] is not None)
                ),
                # int32 bias/multiplier/shift bytes this level adds (the widest level's are stored
                # first, so a narrower level counts only what is not a view of them)
                "params_bytes_added": params_added[k],
                "table_bytes": LEVEL_WORDS * 4 + OP_WORDS * 4 * len(recs),
            }
        )
    blob[arena_off : arena_off + len(arena.data)] = arena.data
    blob[params_off:] = params.data
    hdr = dict(
        magic=MAGIC,
        version=VERSION,
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
    )
    words(0, [hdr[f] for f in HEADER_FIELDS])
    summary = {
        "blob_bytes": total,
        "arena_bytes": len(arena.data),
        "params_bytes": len(params.data),
        "table_bytes": arena_off,
        # Every byte of the blob once: header, level and op tables, alignment, weights, int32 params.
        "sections": {
            "header": HEADER_WORDS * 4,
            "level and op tables": ops_off - levels_off,
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
    """Decode a blob's header, level table and op records (for tests, reports and debugging)."""
    if len(blob) < HEADER_WORDS * 4 or struct.unpack_from("<I", blob)[0] != MAGIC:
        raise CorruptFlatbufferError(
            f"Not a reds device blob (bad magic or {len(blob)} bytes). Regenerate it."
        )
    hdr = dict(zip(HEADER_FIELDS, struct.unpack_from(f"<{len(HEADER_FIELDS)}I", blob), strict=True))
    if hdr["version"] != VERSION:
        raise CorruptFlatbufferError(
            f"Device blob version {hdr['version']} is not the supported version {VERSION}. "
            "Fix: regenerate the blob with this reds_tf (reds_tf.convert.c_arena.write)."
        )
    out: dict[str, Any] = {"header": hdr, "levels": []}
    for k in range(hdr["n_levels"]):
        raw = struct.unpack_from(f"<{len(LEVEL_FIELDS)}I", blob, hdr["levels_off"] + 64 * k)
        lv = dict(zip(LEVEL_FIELDS, raw, strict=True))
        ops = [
            struct.unpack_from(f"<{len(OP_FIELDS)}i", blob, lv["ops_off"] + 128 * j)
            for j in range(lv["n_ops"])
        ]
        lv["ops"] = [dict(zip(OP_FIELDS, r, strict=True)) for r in ops]
        out["levels"].append(lv)
    return out


# --- files --------------------------------------------------------------------------------------------


def _c_source(blob: bytes, name: str) -> tuple[str, str]:
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


def write(level_tflite_paths: list[Path], out_dir: Path, name: str = "model") -> dict[str, Any]:
    """Write ``<name>.blob``, ``<name>_blob.c`` and ``<name>_blob.h`` for the firmware.

    Args:
        level_tflite_paths: per-level int8 .tflite files, level 0 (smallest) first, the widest last.
        out_dir: output directory (created).
        name: C identifier prefix; the arrays are ``<name>_blob`` / ``<name>_blob_len``.

    Returns:
        A summary for report.json: blob/arena/params bytes, per-level MACs, scratch and standalone weight
        bytes, the tensors that could not share the arena, and the written paths.
    """
    if not name.isidentifier():
        raise ValueError(f"name must be a C identifier. Received: name={name!r}. Use e.g. 'model'.")
    levels = [read_level(Path(p)) for p in level_tflite_paths]
    blob, summary = build_blob(levels)
    out_dir = Path(out_dir)
    c, h = _c_source(blob, name)
    paths = {
        "blob": atomic_write_bytes(out_dir / f"{name}.blob", blob),
        "c": atomic_write_text(out_dir / f"{name}_blob.c", c),
        "h": atomic_write_text(out_dir / f"{name}_blob.h", h),
    }
    full_alone = len(build_blob(levels[-1:])[0]) if len(levels) > 1 else len(blob)
    summary["full_level_blob_bytes"] = full_alone
    summary["blob_ratio_vs_full"] = round(len(blob) / full_alone, 4)
    full_standalone = summary["levels"][-1]["weight_bytes_standalone"]
    summary["weights_ratio_vs_full"] = (summary["arena_bytes"] / full_standalone) if full_standalone else None
    summary["paths"] = {k: str(v) for k, v in paths.items()}
    return summary
