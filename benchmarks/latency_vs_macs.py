"""REDS levels planned by MACs against levels planned by device time, at the same measured latencies.

Two steps around one extra training run:

    # 1. measure a finished MAC-planned run's levels in the emulated Cortex-M4 (-O2 SIMD build, bit-exact
    #    with TFLM) and write the same recipe with those latencies (ms at 64 MHz) as its level budgets
    python benchmarks/latency_vs_macs.py plan runs/ds_cnn_s-fashion_mnist --out /tmp/latency.yaml
    reds run --recipe /tmp/latency.yaml --run-dir runs/ds_cnn_s-fashion_mnist-latency
    # 2. measure both runs' levels and print them side by side (accuracy, measured ms, knapsack objective)
    python benchmarks/latency_vs_macs.py compare runs/ds_cnn_s-fashion_mnist \\
        runs/ds_cnn_s-fashion_mnist-latency --json results/bench/latency_vs_macs-short-seed0.json

The knapsack objective is the share of the full model's importance a level keeps
(``solve_report.json``: ``importance_pct``); at the same latency a plan that knows device cost should
keep at least as much as the MAC plan, whose narrow layers cost more per MAC than its budget assumed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

from reds_tf.device_cost.power import PowerModel
from reds_tf.runstore import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mcu_cycles as mc  # noqa: E402

CLOCK_MHZ = 64.0  # nRF52840 (Arduino Nano 33 BLE)
POWER = PowerModel(clock_mhz=CLOCK_MHZ)  # CPU only: the board's own idle power is not in it
#: the paper's energy per inference on the Nano 33 BLE (whole board, TFLM), levels 18 / 41 / 63 / 100 % MACs
PAPER_MJ = (20, 34, 44, 61)


def measure(run_dir: Path) -> list[dict]:
    """Cycles of every converted level of a finished run in the -O2 SIMD build, bit-exact with TFLM."""
    with tempfile.TemporaryDirectory() as tmp:
        m4s = {mc.PRIMARY: mc.M4(mc.build(Path(tmp) / "m4", "-O2", False))}
        rows = mc.run_dir_rows(m4s, run_dir, Path(tmp))
    if not all(r["bit_exact_vs_tflm"] for r in rows):
        raise SystemExit(f"{run_dir}: a level is not bit-exact with TFLM in the emulator; not measuring it.")
    return [{"level": r["level"], "cycles": r["cycles"], "ms": r["cycles"] / (CLOCK_MHZ * 1e3)} for r in rows]


def plan_recipe(mac_run: Path, out: Path) -> dict:
    """The MAC run's resolved recipe with its measured level latencies as budgets."""
    rows = measure(mac_run)
    recipe = yaml.safe_load((mac_run / "recipe.yaml").read_text())
    recipe["name"] = f"{recipe['name']}-latency"
    recipe["solve"]["budgets"] = []
    # floor to 1 us so rounding never makes the MAC plan's own latency infeasible by a hair
    recipe["solve"]["latency_ms"] = [round(int(r["ms"] * 1e3) / 1e3 + 1e-3, 3) for r in rows[:-1]]
    recipe["solve"]["clock_mhz"] = CLOCK_MHZ
    out.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return {"latency_ms": recipe["solve"]["latency_ms"], "measured": rows}


def _levels(run_dir: Path) -> list[dict]:
    res = json.loads((run_dir / "results.json").read_text())
    rep = json.loads((run_dir / "solve_report.json").read_text())
    return [
        {
            "level": r["level"],
            "widths": r.get("widths"),
            "macs": r["macs"],
            "test_accuracy": r["test_accuracy"],
            "int8_test_accuracy": r.get("int8_test_accuracy"),
            "importance_pct": p["importance_pct"],
        }
        for r, p in zip(res["levels"], rep["per_level"], strict=True)
    ]


def compare(mac_run: Path, lat_run: Path) -> dict:
    out = {"clock_mhz": CLOCK_MHZ, "power_mw_cpu": POWER.power_mw, "paper_mj": list(PAPER_MJ), "runs": {}}
    for label, run in (("macs", mac_run), ("latency", lat_run)):
        levels = _levels(run)
        for lv, m in zip(levels, measure(run), strict=True):
            lv.update(cycles=m["cycles"], ms=round(m["ms"], 3), mj_cpu=round(POWER.mj(m["cycles"]), 4))
        res = json.loads((run / "results.json").read_text())
        out["runs"][label] = {
            "run_dir": str(run),
            "seed": res["seed"],
            "schedule": res["schedule"],
            "git_revision": (res.get("reds_tf") or {}).get("git_revision"),
            "levels": levels,
        }
    return out


def table(cmp: dict) -> str:
    lines = [
        "| level | planned by | widths | MACs | measured ms @ 64 MHz | CPU mJ | importance kept % "
        "| test % float | test % int8 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    mac, lat = cmp["runs"]["macs"]["levels"], cmp["runs"]["latency"]["levels"]
    for a, b in zip(mac, lat, strict=True):
        for label, r in (("MACs", a), ("latency", b)):
            w = "/".join(str(v) for v in r["widths"]) if r["widths"] else ""
            i8 = "" if r["int8_test_accuracy"] is None else f"{100 * r['int8_test_accuracy']:.2f}"
            lines.append(
                f"| {r['level']} | {label} | {w} | {r['macs']:,} | {r['ms']:.2f} | {r['mj_cpu']:.3f} | "
                f"{r['importance_pct']:.2f} | {100 * r['test_accuracy']:.2f} | {i8} |"
            )
    full = mac[-1]["mj_cpu"]
    lines.append("")
    lines.append(
        "Energy per level as a share of the full level's, CPU model (nRF52840, "
        f"{cmp['power_mw_cpu']:.1f} mW): MAC plan "
        + " / ".join(f"{100 * r['mj_cpu'] / full:.0f} %" for r in mac)
        + "; the paper, whole board measured at 18 / 41 / 63 / 100 % MACs: "
        + " / ".join(f"{100 * v / PAPER_MJ[-1]:.0f} %" for v in PAPER_MJ)
        + f" ({' / '.join(str(v) for v in PAPER_MJ)} mJ)."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan", help="write the latency-budget recipe from a MAC-planned run")
    p.add_argument("mac_run", type=Path)
    p.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare", help="measure both runs and print them side by side")
    c.add_argument("mac_run", type=Path)
    c.add_argument("lat_run", type=Path)
    c.add_argument("--json", type=Path)
    c.add_argument("--table", action="store_true", help="only print the table from --json (no emulation)")
    args = ap.parse_args(argv)
    if args.cmd == "plan":
        info = plan_recipe(args.mac_run, args.out)
        print(f"measured: {[round(r['ms'], 3) for r in info['measured']]} ms; wrote {args.out} with latency "
              f"budgets {info['latency_ms']} ms")  # fmt: skip
        return 0
    if args.table:
        print(table(json.loads(args.json.read_text())))
        return 0
    cmp = compare(args.mac_run, args.lat_run)
    if args.json:
        atomic_write_text(args.json, json.dumps(cmp, indent=2) + "\n")
    print(table(cmp))
    ok = all(b["importance_pct"] >= a["importance_pct"] - 1e-9 for a, b in
             zip(cmp["runs"]["macs"]["levels"], cmp["runs"]["latency"]["levels"], strict=True))  # fmt: skip
    print(f"latency plan keeps at least the MAC plan's importance at every level: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
