"""Joint DRESS (masked, row-sparse) train step vs the joint REDS step vs a plain full-model step.

    python benchmarks/dress_train_step.py [--model ds_cnn_fmnist] [--batch 128] [--steps 20] [--repeats 5]

All three steps come from ``reds_tf.train.make_step`` with the pipeline's settings (frozen BN, non-BN
variables) and the same MAC budgets, and are timed in alternating blocks (median block reported). A
REDS level slices smaller dense tensors, so its step costs about the sum of the levels' MAC fractions
in full-model steps; a DRESS level multiplies the full kernel by its mask and runs the full dense
convolution (zeros included), so its step costs about K full-model steps plus the masking. Masking
alone is measured by a DRESS step whose levels all keep whole rows (no mask is built).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from reds_tf import costs, dress, importance, nested, permute, solve, topology, train, zoo
from reds_tf._keras import keras
from reds_tf.dress.steps import level_params

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import random_batch, time_step  # noqa: E402  (the REDS benchmark's timer and batch)


def _joint(model, a) -> object:
    return train.make_step(
        model, keras.optimizers.Adam(1e-4), train.non_bn_variables(model), range(len(a)), a, False
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ds_cnn_fmnist")
    ap.add_argument("--budgets", default="0.25,0.5,0.75")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    keras.utils.set_random_seed(0)
    plain = zoo.build(args.model)
    budgets = [float(b) for b in args.budgets.split(",")]
    perm, scores = permute.sort_model(plain, importance.magnitude_scores(plain))
    graph = topology.graph_of(perm)
    plan = solve.solve(graph, scores, budgets, include_full=True).plan
    reds = nested.make_nested(perm, plan)
    a_reds = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])

    w = dress.magnitude_scores(plain)
    mc = dress.model_costs(plain, list(w))
    rplan, _ = dress.solve_counts(mc, w, budgets)
    sparse = dress.make_row_sparse(plain, dress.row_orders(w), rplan)
    a_dress = train.loss_weights(level_params(sparse, mc, rplan))
    dense_levels = dress.RowPlan(rplan.layers, rplan.fan_in, (rplan.fan_in,) * rplan.num_levels)
    unmasked = dress.make_row_sparse(plain, dress.row_orders(w), dense_levels)

    x, y = random_batch(plain, args.batch)
    steps = {
        "plain full-model step": train.make_step(
            plain, keras.optimizers.Adam(1e-4), train.non_bn_variables(plain), None, None, False
        ),
        "joint REDS step": _joint(reds, a_reds),
        "joint DRESS step": _joint(sparse, a_dress),
        "DRESS step, no masks": _joint(unmasked, a_dress),
    }
    for step in steps.values():  # trace and warm up
        time_step(step, x, y, 3)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_step(step, x, y, args.steps))
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["plain full-model step"]
    print(f"model {args.model}, batch {args.batch}, {plan.num_levels} levels, budgets {budgets} + full")
    print(f"REDS true MAC fractions : {[round(c.macs_fraction, 3) for c in costs.plan_costs(graph, plan)]}")
    print(f"DRESS true MAC fractions: {[round(mc.macs(r) / mc.full_macs, 3) for r in rplan.counts]}")
    for name, t in med.items():
        print(f"{name:24s}: {1e3 * t:8.2f} ms  ({t / base:5.2f} x plain)")
    mask = med["joint DRESS step"] / med["DRESS step, no masks"]
    print(f"masking overhead        : {100 * (mask - 1):+.1f} % of a DRESS step without masks")
    print(f"DRESS / REDS joint step : {med['joint DRESS step'] / med['joint REDS step']:5.2f}")


if __name__ == "__main__":
    main()
