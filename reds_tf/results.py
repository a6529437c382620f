"""Committed results: the numbers README shows come from ``results/*.json`` through this module.

``python -m reds_tf.results add RUN_DIR`` copies a finished run's ``results.json`` to
``results/<recipe>-<schedule>-seed<k>.json``; ``python -m reds_tf.results table`` prints one markdown
table per recipe and schedule: every level's true MACs and its float and int8 (TFLM) test accuracy as
mean +- std over the seeds present, with the seeds, git revisions and wall time the numbers came from.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .errors import NotARedsModelError
from .runstore import atomic_write_text

DEFAULT_DIR = Path("results")


def file_name(results: dict[str, Any]) -> str:
    """``<recipe>-<schedule>-seed<k>.json``: one file per run, so seeds add up instead of overwriting."""
    return f"{results['recipe']}-{results['schedule']}-seed{results['seed']}.json"


def add(run_dir: str | Path, out_dir: str | Path = DEFAULT_DIR) -> Path:
    """Copy a finished run's results.json into the registry; refuse an unfinished run."""
    src = Path(run_dir) / "results.json"
    if not src.is_file():
        raise NotARedsModelError(
            f"No results.json in {run_dir}. Fix: pass the directory of a finished reds run."
        )
    res = json.loads(src.read_text())
    if "wall_seconds_this_call" not in res:
        raise NotARedsModelError(
            f"{src} is from a run that did not finish (no wall time). "
            "Fix: complete it with reds run --resume."
        )
    return atomic_write_text(Path(out_dir) / file_name(res), json.dumps(res, indent=2) + "\n")


def _mean_std(values: list[float]) -> str:
    pct = 100 * np.asarray(values, dtype=float)
    return f"{pct.mean():.2f}" if len(pct) == 1 else f"{pct.mean():.2f} +- {pct.std(ddof=1):.2f}"


def tables(out_dir: str | Path = DEFAULT_DIR) -> str:
    """Markdown tables of every recipe and schedule in the registry (see the module docstring)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for p in sorted(Path(out_dir).glob("*.json")):
        res = json.loads(p.read_text())
        groups[(res["recipe"], res["schedule"])].append(res)
    if not groups:
        raise NotARedsModelError(f"No result files in {out_dir}. Fix: python -m reds_tf.results add RUN_DIR.")
    out = []
    for (recipe, schedule), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r["seed"])
        seeds = ", ".join(str(r["seed"]) for r in runs)
        revs = sorted({(r.get("reds_tf") or {}).get("git_revision") or "unknown" for r in runs})
        wall = ", ".join(f"{r['wall_seconds_this_call'] / 60:.0f}" for r in runs)
        out += [
            f"### {recipe}, {schedule} schedule (seeds {seeds})",
            "",
            f"Revision {', '.join(rev[:12] for rev in revs)}; wall time per seed {wall} min.",
            "",
            "| level | MACs | MACs % | test % float | test % int8 (TFLM) |",
            "|---|---|---|---|---|",
        ]
        for k, row in enumerate(runs[0]["levels"]):
            float_acc = [r["levels"][k]["test_accuracy"] for r in runs]
            int8 = [r["levels"][k].get("int8_test_accuracy") for r in runs]
            int8_cell = _mean_std(int8) if all(v is not None for v in int8) else "-"
            macs = {r["levels"][k]["macs"] for r in runs}
            out.append(
                f"| {k} | {'/'.join(f'{m:,}' for m in sorted(macs))} | {row['macs_pct']:.1f} | "
                f"{_mean_std(float_acc)} | {int8_cell} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reds_tf.results", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("add", help="copy a finished run's results.json into the registry")
    a.add_argument("run_dir")
    a.add_argument("--dir", default=str(DEFAULT_DIR))
    t = sub.add_parser("table", help="print the markdown tables README shows")
    t.add_argument("--dir", default=str(DEFAULT_DIR))
    args = p.parse_args(argv)
    try:
        if args.cmd == "add":
            print(f"wrote {add(args.run_dir, args.dir)}")
        else:
            print(tables(args.dir))
    except NotARedsModelError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
