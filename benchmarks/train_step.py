"""Joint REDS train step vs a plain full-model step, measured side by side in one process.

    python benchmarks/train_step.py [--model ds_cnn_fmnist] [--batch 128] [--steps 30] [--repeats 5]

Prints the joint step time (every level forward + backward, one apply_gradients), the plain
full-model step time, their ratio, and the sum of the levels' true MAC fractions. Ideal scaling makes
the ratio equal that sum; the target is ratio <= 1.25 x sum. Also the joint step with in-place
distillation (w = 0.5) and with distillation from the frozen dense model (``distill_teacher:
pretrained``), whose extra inference forward pass costs about one full-model forward. All steps are built by
``reds_tf.train.make_step`` with the pipeline's settings (frozen BN, non-BN variables), and timed in
alternating blocks so machine load affects both alike; the median block is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from reds_tf import costs, importance, nested, permute, solve, topology, train, zoo
from reds_tf._keras import keras, tf


def time_step(step, x, y, n: int) -> float:
    """Seconds per call of ``step(x, y)``, averaged over ``n`` calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        loss = step(x, y)
    float(tf.reduce_sum(loss))  # wait for the last step
    return (time.perf_counter() - t0) / n


def random_batch(model, batch: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A fixed random batch of inputs and labels shaped for ``model``."""
    shape = (batch, *model.input_shape[1:])
    x = tf.constant(np.random.default_rng(0).random(shape, dtype=np.float32))
    y = tf.constant(np.random.default_rng(1).integers(0, model.output_shape[-1], batch), tf.int32)
    return x, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ds_cnn_fmnist")
    ap.add_argument("--budgets", default="0.25,0.5,0.75")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    keras.utils.set_random_seed(0)
    plain = zoo.build(args.model)
    perm, scores = permute.sort_model(plain, importance.magnitude_scores(plain))
    graph = topology.graph_of(perm)
    budgets = [float(b) for b in args.budgets.split(",")]
    plan = solve.solve(graph, scores, budgets, include_full=True).plan
    model = nested.make_nested(perm, plan)
    fractions = [c.macs_fraction for c in costs.plan_costs(graph, plan)]
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])

    x, y = random_batch(plain, args.batch)
    joint = train.make_step(
        model, keras.optimizers.Adam(1e-4), train.non_bn_variables(model), range(plan.num_levels), a, False
    )
    full = train.make_step(perm, keras.optimizers.Adam(1e-4), train.non_bn_variables(perm), None, None, False)
    levels, variables = range(plan.num_levels), train.non_bn_variables(model)
    kd = dict(distill_weight=0.5, distill_temperature=4.0)
    in_place = train.make_step(model, keras.optimizers.Adam(1e-4), variables, levels, a, False, **kd)
    frozen = train.make_step(
        model, keras.optimizers.Adam(1e-4), variables, levels, a, False, **kd, teacher=perm
    )
    steps = {"plain": full, "joint": joint, "in_place": in_place, "teacher": frozen}
    for step in steps.values():  # trace and warm up
        time_step(step, x, y, 3)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            times[name].append(time_step(step, x, y, args.steps))
    med = {name: statistics.median(t) for name, t in times.items()}
    j, p = med["joint"], med["plain"]
    ratio, total = j / p, sum(fractions)
    print(
        f"model {args.model}, batch {args.batch}, {plan.num_levels} levels, MAC fractions "
        f"{[round(f, 3) for f in fractions]}"
    )
    print(f"plain full-model step : {1e3 * p:8.2f} ms (median of {args.repeats} x {args.steps} steps)")
    print(f"joint REDS step       : {1e3 * j:8.2f} ms")
    print(f"ratio joint / plain   : {ratio:8.2f}")
    print(f"joint, in-place KD    : {1e3 * med['in_place']:8.2f} ms")
    print(
        f"joint, frozen teacher : {1e3 * med['teacher']:8.2f} ms   ratio to in-place KD "
        f"{med['teacher'] / med['in_place']:.2f} (one more full-model forward, inference mode)"
    )
    print(
        f"sum of MAC fractions  : {total:8.2f}   target ratio <= 1.25 x sum = {1.25 * total:.2f} "
        f"-> {'OK' if ratio <= 1.25 * total else 'ABOVE TARGET'}"
    )


if __name__ == "__main__":
    main()
