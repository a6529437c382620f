"""DRESS (nested row-sparse levels) on the Cortex-M4, counted in unicorn as ``mcu_cycles.py`` counts REDS.

For a ``convert_dress`` output (``level_k.tflite`` + ``reds_model.bin``), on the -O2 Cortex-M4 build (DSP
kernels; ``--opt=-Os`` for the Arduino core's optimisation, ``--portable`` for the portable C kernels):

* every level of the DRESS blob: ``reds_set_level`` (switching) and ``reds_invoke`` instructions, the
  output checked byte-equal with TFLM on the level's zero-expanded ``level_k.tflite``; beside it the
  same level packed as a dense blob (the stock dense kernels on the zero-expanded int8 weights: the
  dense model's cost, as the dense kernels skip no zero);
* every DRESS layer at every level, as the blob runs it: the sparse kernel (``bench_sparse_conv`` /
  ``bench_sparse_fc``) in instructions per kept MAC, or the dense kernel where the level runs the layer
  densely (``convert_dress(dense_top=...)``); beside it the dense kernel (``bench_conv`` / ``bench_fc``)
  on the same shapes, per MAC (zeros included).

``--baseline`` takes an earlier run's ``--json`` (another kernel revision) and prints its numbers in
"before" columns beside this run's.

    python benchmarks/dress_device.py                         # seeded zoo ds_cnn_fmnist, |w| orders
    python benchmarks/dress_device.py --model fc2 --fractions 0.1,0.3,0.6,1.0
    python benchmarks/dress_device.py --dress-dir DIR --json out.json   # a finished conversion
    python benchmarks/dress_device.py --baseline before.json            # before/after columns
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mcu_cycles  # noqa: E402  (the emulator, timing model and build of the bench image)

SWITCH_TARGET = 16  # issue 18: switching a level stays one integer, <= 16 instructions


def magnitude_levels(name: str, fractions: tuple[float, ...], out: Path, seed: int = 0) -> Path:
    """Convert the seeded zoo model with |w| orders and ceil(f * fan_in) entries per row at each level."""
    from reds_tf._keras import keras
    from reds_tf.convert.dress import convert_dress

    model = mcu_cycles._seeded_model(name, seed)
    names, orders, fans = [], {}, []
    for layer in model.layers:
        sparse = isinstance(layer, keras.layers.Dense) or (
            type(layer) is keras.layers.Conv2D and tuple(layer.dilation_rate) == (1, 1)
        )
        if sparse:
            k = layer.kernel.numpy()
            rows = np.abs(k.reshape(-1, k.shape[-1]).T)
            names.append(layer.name)
            orders[layer.name] = np.argsort(-rows, axis=1, kind="stable").astype(np.int32)
            fans.append(rows.shape[1])
    counts = [[max(1, int(np.ceil(f * fan))) for fan in fans] for f in fractions]
    calib = np.random.default_rng(seed).normal(0, 1, (64, *model.input_shape[1:])).astype(np.float32)
    convert_dress(model, orders, counts, names, calib, out, overwrite=True)
    return out


def _dense_weights(path: Path) -> dict[int, np.ndarray]:
    """Each CONV_2D / FULLY_CONNECTED op's int8 weights of a level file, by output tensor."""
    from reds_tf.convert.flatbuffer import op_name, read_tflite, tensor_array

    m = read_tflite(path.read_bytes())
    ops = m.subgraphs[0].operators
    wanted = ("CONV_2D", "FULLY_CONNECTED")
    return {op.outputs[0]: tensor_array(m, op.inputs[1]) for op in ops if op_name(m, op) in wanted}


def _dress_positions(info: dict) -> list[int]:
    """Op positions that some level runs sparse (the DRESS layers; levels share one topology)."""
    from reds_tf.convert import c_arena

    n_ops = len(info["levels"][0]["ops"])
    return [j for j in range(n_ops)
            if any(lv["ops"][j]["type"] in c_arena.SPARSE_TYPES for lv in info["levels"])]  # fmt: skip


def level_rows(m4: mcu_cycles.M4, out: Path) -> list[dict]:
    """Switching and inference per level: the sparse blob vs the level packed densely; both vs TFLM."""
    from reds_tf.convert import c_arena
    from reds_tf.convert.c_prepare import read_level

    blob = (out / "reds_model.bin").read_bytes()
    info = c_arena.read_blob(blob)
    paths = [out / f"level_{k}.tflite" for k in range(info["header"]["n_levels"])]
    rng = np.random.default_rng(1)
    inputs = [rng.integers(-128, 128, lv["in_bytes"], dtype=np.int8) for lv in info["levels"]]
    shape = mcu_cycles._in_shape(paths[0])
    want = [mcu_cycles._tflm_output(p, x.reshape(1, *shape)) for p, x in zip(paths, inputs, strict=True)]
    sparse = mcu_cycles._level_counts(m4, blob, info, inputs)
    positions = _dress_positions(info)
    rows = []
    for k, path in enumerate(paths):
        dense_blob, dense_summary = c_arena.build_blob([read_level(path)])
        dense = mcu_cycles._level_counts(m4, dense_blob, c_arena.read_blob(dense_blob), inputs[k : k + 1])[0]
        lv = info["levels"][k]
        rows.append(
            {
                "level": k,
                # per DRESS layer: the level's count, or "dense" where it runs the dense kernel
                "counts": [lv["ops"][j].get("count", "dense") for j in positions],
                "macs": lv["macs_lo"] | (lv["macs_hi"] << 32),
                "dense_macs": dense_summary["levels"][0]["macs"],
                "switch_instructions": sparse[k]["switch_instructions"],
                "instructions": sparse[k]["instructions"],
                "cycles": sparse[k]["cycles"],
                "dense_instructions": dense["instructions"],
                "dense_cycles": dense["cycles"],
                "bit_exact_vs_tflm": bool(np.array_equal(sparse[k]["out"], want[k])),
                "dense_bit_exact_vs_tflm": bool(np.array_equal(dense["out"], want[k])),
                "blob_bytes": len(blob),
                "dense_blob_bytes": len(dense_blob),
            }
        )
    return rows


def _call(m4: mcu_cycles.M4, fn: str, *buffers: bytes, out_bytes: int) -> int:
    m4.reset_heap()
    addrs = [m4.alloc(b) for b in buffers]
    status, n = m4.call(fn, *addrs[:-1], m4.alloc(out_bytes), addrs[-1])
    if status != 0:
        raise RuntimeError(f"{fn} returned {status}")
    return n


def layer_rows(m4: mcu_cycles.M4, out: Path) -> list[dict]:
    """Per level and DRESS layer: the kernel the level runs (sparse, or dense) vs the dense kernel's
    instructions on the same shapes."""
    from reds_tf.convert import c_arena
    from reds_tf.convert.c_prepare import SPARSE_FIELDS, read_level

    blob = (out / "reds_model.bin").read_bytes()
    info = c_arena.read_blob(blob)
    arena = info["header"]["arena_off"]
    i32 = lambda *v: np.array(v, "<i4").tobytes()  # noqa: E731
    rng = np.random.default_rng(2)
    rows = []
    positions = _dress_positions(info)
    for k, lv in enumerate(info["levels"]):
        path = out / f"level_{k}.tflite"
        dense_w = _dense_weights(path)
        outputs = [e["output"] for e in read_level(path)["ops"]]
        for j in positions:
            op = lv["ops"][j]
            sparse = op["type"] in c_arena.SPARSE_TYPES
            fan = op["k_h"] * op["k_w"] * op["in_c"]
            rows_n, n_max = op["out_c"], op["w_stride_o"]
            ib, cnt = (op[SPARSE_FIELDS[1]], op["count"]) if sparse else (0, fan)
            vals = blob[arena + op["w_off"] : arena + op["w_off"] + rows_n * n_max] if sparse else b""
            idx = blob[arena + op[SPARSE_FIELDS[0]] : arena + op[SPARSE_FIELDS[0]] + rows_n * n_max * ib]
            x = rng.integers(-128, 128, op["in_h"] * op["in_w"] * op["in_c"], dtype=np.int8).tobytes()
            w = dense_w[outputs[j]].tobytes()
            pix = op["out_h"] * op["out_w"]
            if op["type"] in (c_arena.OP_SPARSE_CONV_2D, c_arena.OP_CONV_2D):
                geo = (op["in_h"], op["in_w"], op["in_c"], rows_n, op["k_h"], op["k_w"], op["stride_h"],
                       op["pad_h"], op["pad_w"], op["out_h"], op["out_w"])  # fmt: skip
                if op["stride_h"] != op["stride_w"]:
                    raise SystemExit(f"level {k} op {j}: the bench entry points take one stride")
                n_sp = sparse and _call(
                    m4, "bench_sparse_conv", vals, idx, x, i32(*geo, n_max, cnt, ib), out_bytes=pix * rows_n
                )
                n_de = _call(m4, "bench_conv", w, x, i32(*geo, op["in_c"]), out_bytes=pix * rows_n)
                what = f"conv {op['k_h']}x{op['k_w']} s{op['stride_h']} {op['in_c']}->{rows_n}"
            else:
                shape = i32(op["in_c"], rows_n, n_max, cnt, ib)
                n_sp = sparse and _call(m4, "bench_sparse_fc", vals, idx, x, shape, out_bytes=rows_n)
                m4.reset_heap()
                wa, xa, oa = m4.alloc(w), m4.alloc(x), m4.alloc(rows_n)
                status, n_de = m4.call("bench_fc", wa, xa, oa, op["in_c"], rows_n, op["in_c"])
                if status != 0:
                    raise RuntimeError(f"bench_fc returned {status}")
                what = f"fc {op['in_c']}->{rows_n}"
            kept, full = pix * rows_n * cnt, pix * rows_n * fan
            run = n_sp if sparse else n_de  # what the level executes for this layer
            rows.append({"level": k, "op": j, "layer": what, "kernel": "sparse" if sparse else "dense",
                         "fan_in": fan, "count": cnt, "index_bytes": ib, "kept_macs": kept,
                         "dense_macs": full,
                         "sparse_instructions": n_sp if sparse else None, "dense_instructions": n_de,
                         "instructions": run, "per_kept_mac": run / max(kept, 1),
                         "sparse_per_kept_mac": n_sp / max(kept, 1) if sparse else None,
                         "dense_per_kept_mac": n_de / max(kept, 1),
                         "dense_per_mac": n_de / full})  # fmt: skip
    return rows


def _before(baseline: dict | None, kind: str, key: tuple) -> dict | None:
    """The baseline run's row for (level) or (level, op), if any."""
    if baseline is None:
        return None
    for r in baseline[kind]:
        if (r["level"],) == key or (r["level"], r.get("op")) == key:
            return r
    return None


def _print(levels: list[dict], layers: list[dict], opt: str, baseline: dict | None = None) -> bool:
    b = baseline is not None
    print(f"\nDRESS levels on the Cortex-M4 (unicorn, {opt}): the DRESS blob vs the dense model (the same "
          "level packed densely)")  # fmt: skip
    print("| level | counts | kept MACs | switch |" + (" before instr | before/dense |" if b else "")
          + " instr | dense model instr | instr/dense | bit-exact |")  # fmt: skip
    print("|---|---|---|---|" + ("---|---|" if b else "") + "---|---|---|---|")
    for r in levels:
        ok = r["bit_exact_vs_tflm"] and r["dense_bit_exact_vs_tflm"]
        old = _before(baseline, "levels", (r["level"],))
        was = (f" {old['instructions']:,} | {old['instructions'] / old['dense_instructions']:.2f} |"
               if old else " - | - |") if b else ""  # fmt: skip
        print(f"| {r['level']} | {r['counts']} | {r['macs']:,} | {r['switch_instructions']} |{was} "
              f"{r['instructions']:,} | {r['dense_instructions']:,} | "
              f"{r['instructions'] / r['dense_instructions']:.2f} | {'yes' if ok else 'NO'} |")  # fmt: skip
    blobs = (levels[0]["blob_bytes"], levels[-1]["dense_blob_bytes"])
    print(f"blob {blobs[0]:,} B (DRESS, every level) vs {blobs[1]:,} B (the top level packed densely)")
    print("\nPer DRESS layer: the kernel the level runs, instructions per kept MAC, vs the dense kernel per "
          "MAC (zeros included)")  # fmt: skip
    print("| level | layer | count / fan-in | kernel |" + (" before instr/kept MAC |" if b else "")
          + " instr | instr/kept MAC | dense instr | dense instr/MAC | dense instr/kept MAC |")  # fmt: skip
    print("|---|---|---|---|" + ("---|" if b else "") + "---|---|---|---|---|")
    for r in layers:
        old = _before(baseline, "layers", (r["level"], r["op"]))
        was = ""
        if b:
            per = None if old is None else old.get("per_kept_mac", old.get("sparse_per_kept_mac"))
            was = f" {per:.2f} |" if per is not None else " - |"
        print(f"| {r['level']} | {r['layer']} | {r['count']}/{r['fan_in']} | {r['kernel']} |{was} "
              f"{r['instructions']:,} | {r['per_kept_mac']:.2f} | {r['dense_instructions']:,} | "
              f"{r['dense_per_mac']:.2f} | {r['dense_per_kept_mac']:.2f} |")  # fmt: skip
    ok = all(r["bit_exact_vs_tflm"] and r["dense_bit_exact_vs_tflm"] for r in levels)
    ok = ok and max(r["switch_instructions"] for r in levels) <= SWITCH_TARGET
    verdict = "OK" if ok else "FAILED"
    print(f"\n{verdict}: every level bit-exact with TFLM, switching <= {SWITCH_TARGET} instructions")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dress-dir", type=Path, help="a convert_dress output directory (else one is made)")
    ap.add_argument("--model", default="ds_cnn_fmnist", help="zoo model converted when --dress-dir is absent")
    ap.add_argument("--fractions", default="0.25,0.5,0.75,1.0", help="kept fraction of every row per level")
    ap.add_argument("--portable", action="store_true", help="the portable C kernels instead of the DSP ones")
    ap.add_argument("--opt", default="-O2", choices=("-O2", "-Os"), help="the Cortex-M4 build's optimisation")
    ap.add_argument("--baseline", type=Path, help="an earlier run's --json, printed in 'before' columns")
    ap.add_argument("--build-dir", type=Path, default=mcu_cycles.FIRMWARE / "build")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(mcu_cycles.ROOT))
    sub = "m4" + a.opt + ("-portable" if a.portable else "")
    m4 = mcu_cycles.M4(mcu_cycles.build(a.build_dir / sub, a.opt, a.portable))
    with tempfile.TemporaryDirectory() as tmp:
        out = a.dress_dir or magnitude_levels(
            a.model, tuple(float(f) for f in a.fractions.split(",")), Path(tmp) / "dress"
        )
        levels, layers = level_rows(m4, out), layer_rows(m4, out)
    baseline = json.loads(a.baseline.read_text()) if a.baseline else None
    ok = _print(levels, layers, a.opt + (" portable C" if a.portable else ""), baseline)
    if a.json:
        a.json.write_text(json.dumps({"levels": levels, "layers": layers}, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
