"""``python -m reds_tf.device_cost fit [--target dsp|portable]``: re-measure the kernels and refit."""

from __future__ import annotations

import argparse

from .fit import fit_all
from .model import TARGETS


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reds_tf.device_cost", description=__doc__)
    ap.add_argument("command", choices=("fit",))
    ap.add_argument("--target", choices=TARGETS, action="append", help="default: every target")
    a = ap.parse_args(argv)
    report = fit_all(a.target or TARGETS)
    for target, kinds in report.items():
        print(f"{target}: held-out error per kernel (max / mean %)")
        for kind, r in kinds.items():
            print(f"  {kind:12s} {r['max_abs_err_pct']:6.2f} / {r['mean_abs_err_pct']:5.2f}  "
                  f"({r['fit_shapes']} fit shapes, {r['heldout_shapes']} held out)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
