"""Joint fine-tuning steps/s with 1 and 2 local workers (MultiWorkerMirroredStrategy) on the default recipe.

    python benchmarks/multiworker.py [--workers 1,2] [--steps 30] [--out results/bench/multiworker.json]

Each count of workers is started by ``reds_tf.launch`` on localhost; every worker builds the default
recipe's nested model (ds_cnn_fmnist, levels at 25/50/75/100 % MACs from magnitude scores), and the
chief times ``--steps`` joint steps (all levels forward + backward, one all-reduce, one update) of the
recipe's global batch (128, split across the workers) after a warm-up. Inputs are random tensors of
Fashion-MNIST's shape: this measures the step and its communication, not the data pipeline.

On a machine with 2 cores, 2 workers share the cores that 1 worker already uses, so this is not a
scaling measurement: the ratio mixes the cost of the cluster (gRPC all-reduce, two runtimes) with how
well one process alone keeps both cores busy at this small batch, under whatever else the machine runs
(the load average is recorded). A speed-up needs a core set, a GPU or a machine per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from reds_tf.runstore import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "models" / "ds_cnn_s-fashion_mnist.yaml"


def worker(steps: int) -> None:
    """One worker: build the model and data under the strategy, time the joint steps (chief prints)."""
    from reds_tf import costs, importance, multiworker, nested, permute, solve, topology, train, zoo
    from reds_tf._keras import keras, tf
    from reds_tf.recipe import Recipe

    cluster = multiworker.read_tf_config()
    strategy = multiworker.make_strategy(cluster)
    recipe = Recipe.load(RECIPE)
    keras.utils.set_random_seed(0)
    with strategy.scope():
        plain = zoo.build(recipe.model, num_classes=10, input_shape=(28, 28, 1))
        perm, scores = permute.sort_model(plain, importance.magnitude_scores(plain))
        graph = topology.graph_of(perm)
        plan = solve.solve(graph, scores, list(recipe.solve.budgets), include_full=True).plan
        model = nested.make_nested(perm, plan)
        opt = keras.optimizers.Adam(1e-4)
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    batch = recipe.data.batch_size
    x = tf.random.stateless_uniform((batch * 4, 28, 28, 1), seed=(0, 1))
    y = tf.random.stateless_uniform((batch * 4,), seed=(0, 2), maxval=10, dtype=tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch).repeat()
    it = iter(strategy.experimental_distribute_dataset(train._shardable(ds, strategy)))
    levels = range(plan.num_levels)
    step = train.make_step(model, opt, train.non_bn_variables(model), levels, a, False, strategy)
    for _ in range(3):  # trace and warm up
        float(tf.reduce_sum(step(*next(it))))
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step(*next(it))
    float(tf.reduce_sum(loss))  # wait for the last step
    seconds = time.perf_counter() - t0
    if cluster.is_chief:
        row = {"workers": cluster.num_workers, "replicas": strategy.num_replicas_in_sync,
               "global_batch": batch, "steps": steps, "steps_per_s": round(steps / seconds, 3)}  # fmt: skip
        print("ROW " + json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", default=None, help="also write the rows (and the machine's core count) here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.steps)
        return
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    rows = []
    for n in [int(v) for v in args.workers.split(",")]:
        cmd = [sys.executable, "-m", "reds_tf.launch", "--workers", str(n), "--",
               sys.executable, __file__, "--worker", "--steps", str(args.steps)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("ROW ")]
        if out.returncode != 0 or not lines:
            sys.exit(f"{n} worker(s) failed (status {out.returncode}):\n{out.stderr[-2000:]}")
        rows.append(json.loads(lines[-1][4:]))
    cores = os.cpu_count()
    load = round(os.getloadavg()[0], 2)
    base, batch = rows[0]["steps_per_s"], rows[0]["global_batch"]
    print(f"joint fine-tuning steps/s, default recipe ({RECIPE.name}), global batch {batch}, {cores} cores, "
          f"load average {load}")  # fmt: skip
    for r in rows:
        rate = r["steps_per_s"]
        print(f"  {r['workers']} local worker(s): {rate:7.2f} steps/s  ({rate / base:.2f}x)")
    note = ("local workers share this machine's cores: with few cores the ratio mixes the cluster's "
            "overhead with how well one process uses the cores; not a speed-up measurement")  # fmt: skip
    print(f"  ({note})")
    if args.out:
        res = {"cpu_count": cores, "load_average_1min": load, "rows": rows, "note": note}
        atomic_write_text(Path(args.out), json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
