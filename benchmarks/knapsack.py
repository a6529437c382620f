"""Knapsack solver benchmark: solve time, peak RSS, status and gap on the reference nets.

Usage: python benchmarks/knapsack.py [--solver cbc|highs] [--only SUBSTRING]

Scores: L1 magnitude of each unit's producing kernel in a freshly initialised model
(``keras.utils.set_random_seed(0)``), sorted descending, exactly what ``reds solve``
uses without ``--scores``. Graphs and scores are exported once (this process imports
TensorFlow); every problem then runs in its own subprocess that imports only
``reds_tf.solve``, so the peak RSS reported is the solver's own: the larger of that
process and its children (the CBC binary runs as a child).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = {
    "DS-CNN-S": ("ds_cnn_s", {}),
    "DS-CNN-L": ("ds_cnn_l", {}),
    "MobileNetV1-0.25": ("mobilenet_v1", {"alpha": 0.25}),
    "MobileNetV1-1.0": ("mobilenet_v1", {"alpha": 1.0}),
    "Autoencoder": ("autoencoder", {}),  # dense 640-128x4-8-128x4-640 (built below)
}
CAP = 200_000  # 200 KB (decimal) int8 peak activation memory
FOUR = [0.25, 0.5, 0.75]
TEN = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SIXTEEN = [k / 16 for k in range(1, 16)]
BOTH = ("bottom_up", "joint")

# (label, model, MACs levels below full, peak-memory cap, granularity, time limit, strategies)
PROBLEMS = [
    ("DS-CNN-S 4 levels", "DS-CNN-S", FOUR, None, 1, 60, BOTH),
    ("DS-CNN-S 10 levels", "DS-CNN-S", TEN, None, 1, 60, BOTH),
    ("DS-CNN-L 4 levels", "DS-CNN-L", FOUR, None, 1, 60, BOTH),
    ("MobileNetV1-0.25 4 levels", "MobileNetV1-0.25", FOUR, None, 1, 60, BOTH),
    ("MobileNetV1-0.25 200 KB cap", "MobileNetV1-0.25", FOUR, CAP, 1, 60, BOTH),
    ("MobileNetV1-1.0 4 levels", "MobileNetV1-1.0", FOUR, None, 1, 60, BOTH),
    ("MobileNetV1-1.0 200 KB cap", "MobileNetV1-1.0", FOUR, CAP, 1, 60, BOTH),
    ("MobileNetV1-1.0 16 levels", "MobileNetV1-1.0", SIXTEEN, None, 1, 60, BOTH),
    ("MobileNetV1-1.0 4 levels, 10 s", "MobileNetV1-1.0", FOUR, None, 1, 10, BOTH),
    ("Autoencoder 4 levels, 30 s", "Autoencoder", FOUR, None, 1, 30, BOTH),
]


def _autoencoder():
    """Dense 640-128x4-8-128x4-640 (an anomaly-detection autoencoder), ReLU between layers."""
    from reds_tf._keras import keras

    inputs = keras.Input((640,), name="input")
    x = inputs
    for i, width in enumerate([128] * 4 + [8] + [128] * 4):
        x = keras.layers.Dense(width, activation="relu", name=f"fc{i + 1}")(x)
    return keras.Model(inputs, keras.layers.Dense(640, name="out")(x), name="autoencoder")


def export(workdir: Path) -> None:
    """Write <model>.graph.json and <model>.scores.json for every model (needs TensorFlow)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from reds_tf import topology, zoo
    from reds_tf._keras import keras

    for label, (name, kw) in MODELS.items():
        keras.utils.set_random_seed(0)
        model = _autoencoder() if name == "autoencoder" else zoo.build(name, **kw)
        graph = topology.graph_of(model)
        scores = {}
        for grp in topology.unit_groups(model):
            kernel = np.abs(model.get_layer(grp.producer).get_weights()[0])
            scores[grp.name] = np.sort(kernel.reshape(-1, kernel.shape[-1]).sum(axis=0))[::-1].tolist()
        (workdir / f"{label}.graph.json").write_text(graph.to_json())
        (workdir / f"{label}.scores.json").write_text(json.dumps(scores))


def child(args: argparse.Namespace) -> None:
    """Solve one problem and print one JSON line (runs in its own process)."""
    from reds_tf.errors import InfeasibleBudgetError
    from reds_tf.graph import Graph
    from reds_tf.solve import Budget, solve

    graph = Graph.from_json(Path(args.graph).read_text())
    scores = {k: np.asarray(v) for k, v in json.loads(Path(args.scores).read_text()).items()}
    cap = args.cap or None
    budgets = [Budget(m, cap) for m in args.macs]
    note = ""
    t0 = time.perf_counter()
    try:
        rep = solve(graph, scores, budgets, include_full=True, **_kw(args))
    except InfeasibleBudgetError as e:
        # The full model breaks the cap: say so, and keep the widest plan that fits instead.
        note = str(e)
        rep = solve(graph, scores, budgets + [Budget(1.0, cap)], **_kw(args))
    wall = time.perf_counter() - t0
    rss = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    print(
        json.dumps(
            {
                "status": rep.status,
                "gap": rep.gap,
                "wall_s": wall,
                "rss_mb": rss / 1024,
                "objective": rep.objective,
                "macs_pct": [round(r["macs_pct"], 2) for r in rep.per_level],
                "peak": [r["peak_memory"] for r in rep.per_level],
                "note": note,
            }
        )
    )


def _kw(args: argparse.Namespace) -> dict:
    return {
        "granularity": args.granularity,
        "strategy": args.strategy,
        "solver": args.solver,
        "time_limit": args.time_limit,
        "gap": args.gap,
        "node_limit": args.node_limit,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--solver", default="cbc", choices=["cbc", "highs"])
    p.add_argument("--gap", type=float, default=0.01)
    p.add_argument("--node-limit", type=int, default=10_000, help="Branch-and-bound nodes per MILP.")
    p.add_argument("--only", default="", help="Run only problems whose label contains this.")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--export", default=None, help=argparse.SUPPRESS)
    p.add_argument("--graph", help=argparse.SUPPRESS)
    p.add_argument("--scores", help=argparse.SUPPRESS)
    p.add_argument("--macs", type=float, nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--cap", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--granularity", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="bottom_up", help=argparse.SUPPRESS)
    p.add_argument("--time-limit", type=float, default=60, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.export:
        return export(Path(args.export))
    print(
        f"knapsack benchmark: solver {args.solver}, gap {100 * args.gap:g} %, node limit {args.node_limit:,} "
        f"per MILP, {os.cpu_count()} CPUs; the authors' Gurobi code: hours and up to 50 GB per problem"
    )
    print("scores: L1 magnitude of seeded (seed 0) random-init weights, sorted descending")
    print("time s: the whole call (model building included); wall/limit must stay <= 1.1 (+5 s)\n")
    head = (
        f"{'problem':31s} {'strategy':9s} {'g':>2s} {'status':10s} {'gap %':>7s} {'limit':>5s} "
        f"{'time s':>7s} {'wall/limit':>10s} {'RSS MB':>7s}"
    )
    head += "  MACs % per level"
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Export in a subprocess: Linux keeps a parent's peak RSS in children it forks, so
        # this process must never hold TensorFlow or every child would report its size.
        subprocess.run([sys.executable, __file__, "--export", tmp], check=True)
        for label, model, macs, cap, g, limit, strategies in PROBLEMS:
            if args.only not in label:
                continue
            for strategy in strategies:
                cmd = [sys.executable, __file__, "--child", "--graph", str(work / f"{model}.graph.json")]
                cmd += ["--scores", str(work / f"{model}.scores.json"), "--macs", *map(str, macs)]
                cmd += ["--cap", str(cap or 0), "--granularity", str(g), "--strategy", strategy]
                cmd += ["--time-limit", str(limit), "--solver", args.solver, "--gap", str(args.gap)]
                cmd += ["--node-limit", str(args.node_limit)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    print(f"{label:31s} {strategy:9s} FAILED: {out.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                gap = "-" if r["gap"] is None else f"{100 * r['gap']:.3f}"
                pct = "/".join(f"{m:.1f}" for m in r["macs_pct"])
                if len(r["macs_pct"]) > 6:
                    pct = f"{pct.split('/')[0]}/.../{pct.split('/')[-1]}"
                print(
                    f"{label:31s} {strategy:9s} {g:2d} {r['status']:10s} {gap:>7s} {limit:5d} "
                    f"{r['wall_s']:7.1f} {r['wall_s'] / limit:10.2f} {r['rss_mb']:7.0f}  {pct}",
                    flush=True,
                )
                if r["note"]:
                    print(f"    note: {r['note']}")
                    print(
                        f"    top level under the cap: {r['macs_pct'][-1]:.1f} % MACs, "
                        f"peak {r['peak'][-1]:,} B"
                    )


if __name__ == "__main__":
    main()
