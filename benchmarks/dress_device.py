"""DRESS (nested row-sparse levels) on the Cortex-M4, counted in unicorn as ``mcu_cycles.py`` counts REDS.

For a ``convert_dress`` output (``level_k.tflite`` + ``reds_model.bin``), on the -O2 Cortex-M4 build (DSP
kernels; ``--portable`` for the portable C ones):

* every level of the sparse blob: ``reds_set_level`` (switching) and ``reds_invoke`` instructions, the
  output checked byte-equal with TFLM on the level's zero-expanded ``level_k.tflite``; beside it the
  same level packed as a dense blob (the stock dense kernels on the zero-expanded int8 weights);
* every sparse layer at every level: the sparse kernel (``bench_sparse_conv`` / ``bench_sparse_fc``) vs
  the dense kernel (``bench_conv`` / ``bench_fc``) on the same shapes, in instructions per kept MAC
  (the sparse kernel runs only kept MACs; the dense one runs all of them, zeros included).

    python benchmarks/dress_device.py                         # seeded zoo ds_cnn_fmnist, |w| orders
    python benchmarks/dress_device.py --model fc2 --fractions 0.1,0.3,0.6,1.0
    python benchmarks/dress_device.py --dress-dir DIR --json out.json   # a finished conversion
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
    rows = []
    for k, path in enumerate(paths):
        dense_blob, dense_summary = c_arena.build_blob([read_level(path)])
        dense = mcu_cycles._level_counts(m4, dense_blob, c_arena.read_blob(dense_blob), inputs[k : k + 1])[0]
        lv = info["levels"][k]
        rows.append(
            {
                "level": k,
                "counts": [op["count"] for op in lv["ops"] if op["type"] in c_arena.SPARSE_TYPES],
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
    """Per level and sparse layer: sparse kernel vs dense kernel instructions on the same shapes."""
    from reds_tf.convert import c_arena
    from reds_tf.convert.c_prepare import SPARSE_FIELDS, read_level

    blob = (out / "reds_model.bin").read_bytes()
    info = c_arena.read_blob(blob)
    arena = info["header"]["arena_off"]
    i32 = lambda *v: np.array(v, "<i4").tobytes()  # noqa: E731
    rng = np.random.default_rng(2)
    rows = []
    for k, lv in enumerate(info["levels"]):
        path = out / f"level_{k}.tflite"
        dense_w = _dense_weights(path)
        outputs = [e["output"] for e in read_level(path)["ops"]]
        for j, op in enumerate(lv["ops"]):
            if op["type"] not in c_arena.SPARSE_TYPES:
                continue
            rows_n, n_max, ib, cnt = op["out_c"], op["w_stride_o"], op[SPARSE_FIELDS[1]], op["count"]
            vals = blob[arena + op["w_off"] : arena + op["w_off"] + rows_n * n_max]
            idx = blob[arena + op[SPARSE_FIELDS[0]] : arena + op[SPARSE_FIELDS[0]] + rows_n * n_max * ib]
            x = rng.integers(-128, 128, op["in_h"] * op["in_w"] * op["in_c"], dtype=np.int8).tobytes()
            w = dense_w[outputs[j]].tobytes()
            pix = op["out_h"] * op["out_w"]
            if op["type"] == c_arena.OP_SPARSE_CONV_2D:
                geo = (op["in_h"], op["in_w"], op["in_c"], rows_n, op["k_h"], op["k_w"], op["stride_h"],
                       op["pad_h"], op["pad_w"], op["out_h"], op["out_w"])  # fmt: skip
                if op["stride_h"] != op["stride_w"]:
                    raise SystemExit(f"level {k} op {j}: the bench entry points take one stride")
                n_sp = _call(
                    m4, "bench_sparse_conv", vals, idx, x, i32(*geo, n_max, cnt, ib), out_bytes=pix * rows_n
                )
                n_de = _call(m4, "bench_conv", w, x, i32(*geo, op["in_c"]), out_bytes=pix * rows_n)
                what = f"conv {op['k_h']}x{op['k_w']} s{op['stride_h']} {op['in_c']}->{rows_n}"
            else:
                n_sp = _call(m4, "bench_sparse_fc", vals, idx, x, i32(op["in_c"], rows_n, n_max, cnt, ib),
                             out_bytes=rows_n)  # fmt: skip
                m4.reset_heap()
                wa, xa, oa = m4.alloc(w), m4.alloc(x), m4.alloc(rows_n)
                status, n_de = m4.call("bench_fc", wa, xa, oa, op["in_c"], rows_n, op["in_c"])
                if status != 0:
                    raise RuntimeError(f"bench_fc returned {status}")
                what = f"fc {op['in_c']}->{rows_n}"
            fan = op["k_h"] * op["k_w"] * op["in_c"]
            kept, full = pix * rows_n * cnt, pix * rows_n * fan
            rows.append({"level": k, "op": j, "layer": what, "fan_in": fan, "count": cnt,
                         "index_bytes": ib, "kept_macs": kept, "dense_macs": full,
                         "sparse_instructions": n_sp, "dense_instructions": n_de,
                         "sparse_per_kept_mac": n_sp / max(kept, 1),
                         "dense_per_kept_mac": n_de / max(kept, 1),
                         "dense_per_mac": n_de / full})  # fmt: skip
    return rows


def _print(levels: list[dict], layers: list[dict]) -> bool:
    print("\nDRESS levels on the Cortex-M4 (unicorn, -O2): sparse blob vs the same level packed densely")
    print("| level | counts | kept MACs | switch | sparse instr | dense instr | sparse/dense | bit-exact |")
    print("|---|---|---|---|---|---|---|---|")
    for r in levels:
        ok = r["bit_exact_vs_tflm"] and r["dense_bit_exact_vs_tflm"]
        print(f"| {r['level']} | {r['counts']} | {r['macs']:,} | {r['switch_instructions']} | "
              f"{r['instructions']:,} | {r['dense_instructions']:,} | "
              f"{r['instructions'] / r['dense_instructions']:.2f} | {'yes' if ok else 'NO'} |")  # fmt: skip
    blobs = (levels[0]["blob_bytes"], levels[-1]["dense_blob_bytes"])
    print(f"blob {blobs[0]:,} B (sparse, every level) vs {blobs[1]:,} B (the top level packed densely)")
    print("\nPer sparse layer: instructions per kept MAC, sparse kernel vs dense kernel (zeros included)")
    print("| level | layer | count / fan-in | idx B | sparse instr | dense instr | sparse/kept MAC | "
          "dense/kept MAC | dense/MAC |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in layers:
        print(f"| {r['level']} | {r['layer']} | {r['count']}/{r['fan_in']} | {r['index_bytes']} | "
              f"{r['sparse_instructions']:,} | {r['dense_instructions']:,} | "
              f"{r['sparse_per_kept_mac']:.2f} | {r['dense_per_kept_mac']:.2f} | "
              f"{r['dense_per_mac']:.2f} |")  # fmt: skip
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
    ap.add_argument("--build-dir", type=Path, default=mcu_cycles.FIRMWARE / "build")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(mcu_cycles.ROOT))
    sub = "m4-O2" + ("-portable" if a.portable else "")
    m4 = mcu_cycles.M4(mcu_cycles.build(a.build_dir / sub, "-O2", a.portable))
    with tempfile.TemporaryDirectory() as tmp:
        out = a.dress_dir or magnitude_levels(
            a.model, tuple(float(f) for f in a.fractions.split(",")), Path(tmp) / "dress"
        )
        levels, layers = level_rows(m4, out), layer_rows(m4, out)
    ok = _print(levels, layers)
    if a.json:
        a.json.write_text(json.dumps({"levels": levels, "layers": layers}, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
