"""REDS widths vs DRESS row-sparse levels on one model, side by side: accuracy, flash and device instructions.

Takes a finished REDS run and a finished DRESS run of the same model and data (e.g. ``make run`` and
``reds run --recipe models/ds_cnn_s-fashion_mnist-dress.yaml``) and prints per level:

* true MACs (% of the full model) and test accuracy, float and int8 under TFLM, from each run's
  ``results.json``;
* flash: the firmware blob holding every level (``reds_model.bin``; REDS: the run's per-level int8 files
  packed by ``c_arena``, one weight arena; DRESS: ``converted/reds_model.bin`` with values, indices and
  counts) and the level's own int8 weight bytes (DRESS: including its indices);
* executed Cortex-M4 instructions of ``reds_invoke`` per level in unicorn (-O2, DSP kernels), every
  output checked byte-equal with TFLM (REDS: the level's .tflite; DRESS: its zero-expanded level file),
  and the dense model's instructions beside them.

It writes the rows as JSON and one figure: test accuracy against true MACs and against device
instructions, both methods.

    python benchmarks/reds_vs_dress.py --reds runs/ds_cnn_s-fashion_mnist \
        --dress runs/ds_cnn_s-fashion_mnist-dress --json results/bench/reds_vs_dress-short-seed0.json \
        --plot results/bench/reds_vs_dress-short-seed0.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dress_device  # noqa: E402
import mcu_cycles  # noqa: E402


def _results(run_dir: Path) -> dict:
    path = run_dir / "results.json"
    if not path.is_file():
        raise SystemExit(f"{run_dir}: no results.json. Fix: finish the run (reds run ... --resume).")
    return json.loads(path.read_text())


def reds_rows(m4: mcu_cycles.M4, run_dir: Path, work: Path) -> list[dict]:
    res = _results(run_dir)
    device = mcu_cycles.run_dir_rows({"-O2": m4}, run_dir, work)
    return [
        _row("REDS", lv, d["instructions"], d["bit_exact_vs_tflm"], d["blob_bytes"], d["switch_instructions"])
        for lv, d in zip(res["levels"], device, strict=True)
    ]


def dress_rows(m4: mcu_cycles.M4, run_dir: Path) -> list[dict]:
    res = _results(run_dir)
    conv = run_dir / "converted"
    if not (conv / "reds_model.bin").is_file():
        raise SystemExit(
            f"{run_dir}: no converted/reds_model.bin. Fix: finish the DRESS run with conversion."
        )
    device = dress_device.level_rows(m4, conv)
    rows = []
    for lv, d in zip(res["levels"], device, strict=True):
        ok = d["bit_exact_vs_tflm"] and d["dense_bit_exact_vs_tflm"]
        rows.append(_row("DRESS", lv, d["instructions"], ok, d["blob_bytes"], d["switch_instructions"]))
        rows[-1]["dense_model_instructions"] = d["dense_instructions"]
    return rows


def _row(method: str, lv: dict, instructions: int, exact: bool, blob: int, switch: int) -> dict:
    return {
        "method": method,
        "level": lv["level"],
        "macs": lv["macs"],
        "macs_pct": lv["macs_pct"],
        "test_accuracy": lv["test_accuracy"],
        "int8_test_accuracy": lv.get("int8_test_accuracy"),
        "weight_bytes_int8": lv["weight_bytes_int8"],
        "blob_bytes": blob,
        "instructions": instructions,
        "switch_instructions": switch,
        "bit_exact_vs_tflm": bool(exact),
    }


def table(rows: list[dict]) -> str:
    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    out = [
        "| method | level | MACs % | test % float | test % int8 (TFLM) | level weights B "
        "| blob B (all levels) | Cortex-M4 instructions | switch | bit-exact |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['method']} | {r['level']} | {r['macs_pct']:.1f} | {pct(r['test_accuracy'])} | "
            f"{pct(r['int8_test_accuracy'])} | {r['weight_bytes_int8']:,} | {r['blob_bytes']:,} | "
            f"{r['instructions']:,} | {r['switch_instructions']} | "
            f"{'yes' if r['bit_exact_vs_tflm'] else 'NO'} |"
        )
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from reds_tf.runstore import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for method, style in (("REDS", "o-"), ("DRESS", "s--")):
        rs = [r for r in rows if r["method"] == method]
        acc = [100 * r["test_accuracy"] for r in rs]
        axes[0].plot([r["macs_pct"] for r in rs], acc, style, label=method)
        axes[1].plot([r["instructions"] / 1e6 for r in rs], acc, style, label=method)
    axes[0].set_xlabel("true MACs (% of the full model)")
    axes[1].set_xlabel("Cortex-M4 instructions per inference (millions, unicorn, -O2)")
    axes[0].set_ylabel("test accuracy (%)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("REDS (nested widths) vs DRESS (nested row-sparse weights), same model and data")
    fig.tight_layout()
    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reds", type=Path, help="a finished REDS run directory")
    ap.add_argument("--dress", type=Path, help="a finished DRESS run directory")
    ap.add_argument("--table", action="store_true", help="only print the table of --json (no emulation)")
    ap.add_argument("--build-dir", type=Path, default=mcu_cycles.FIRMWARE / "build")
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--plot", type=Path, help="write the figure here (PNG)")
    a = ap.parse_args(argv)
    if a.table:
        if a.json is None or not a.json.is_file():
            ap.error("--table prints an earlier run's --json FILE: name an existing file")
        print(table(json.loads(a.json.read_text())["rows"]))
        return 0
    if a.reds is None or a.dress is None:
        ap.error("--reds RUN_DIR and --dress RUN_DIR are needed (or --table --json FILE)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(mcu_cycles.ROOT))
    from reds_tf.runstore import atomic_write_text

    m4 = mcu_cycles.M4(mcu_cycles.build(a.build_dir / "m4-O2", "-O2"))
    with tempfile.TemporaryDirectory() as tmp:
        rows = reds_rows(m4, a.reds, Path(tmp)) + dress_rows(m4, a.dress)
    print(table(rows))
    runs = {m: _results(d) for m, d in (("REDS", a.reds), ("DRESS", a.dress))}
    seeds = {m: r["seed"] for m, r in runs.items()}
    if a.json:
        doc = {
            "rows": rows,
            "runs": {m: {"run_dir": str(d), "recipe": runs[m]["recipe"], "schedule": runs[m]["schedule"],
                         "seed": seeds[m], "git_revision": (runs[m].get("reds_tf") or {}).get("git_revision")}
                     for m, d in (("REDS", a.reds), ("DRESS", a.dress))},
            "build": "arm-none-eabi-gcc -mcpu=cortex-m4 -O2, DSP kernels, counted in unicorn",
        }  # fmt: skip
        atomic_write_text(a.json, json.dumps(doc, indent=2) + "\n")
        print(f"wrote {a.json}")
    if a.plot:
        print(f"wrote {plot(rows, a.plot)}")
    ok = all(r["bit_exact_vs_tflm"] for r in rows) and max(r["switch_instructions"] for r in rows) <= 16
    print(
        ("OK" if ok else "FAILED")
        + ": every level of both blobs bit-exact with TFLM, switching <= 16 instructions"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
