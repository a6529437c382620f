"""Joint fine-tuning: loss weights, LR schedule, one update per batch, checkpoints/resume, BN, strategy."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from reds_tf import costs, nested, topology, train, zoo
from reds_tf._keras import keras, tf
from reds_tf.plan import WidthPlan
from reds_tf.recipe import FinetuneConfig, TrainConfig
from reds_tf.runstore import RunDir

RATIOS = (0.25, 0.5, 0.75, 1.0)


def _data(n=96, seed=0, batch=32):
    # Learnable synthetic images: the class sets the mean brightness of one image quadrant.
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n).astype(np.int32)
    x = rng.normal(0.0, 0.3, (n, 28, 28, 1)).astype(np.float32)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, 14 * r : 14 * r + 14, 14 * q : 14 * q + 14] += 1.0
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


def _nested_model(stats_per_level=False):
    keras.utils.set_random_seed(1)
    model = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1)
    graph = topology.graph_of(model)
    full = graph.full_widths
    plan = WidthPlan(graph.group_names, full, tuple(tuple(max(1, int(f * r)) for f in full) for r in RATIOS))
    return model, nested.make_nested(model, plan, stats_per_level=stats_per_level), graph, plan


def test_loss_weights_follow_sqrt_param_share():
    a = train.loss_weights([100, 400, 900, 1600])
    np.testing.assert_allclose(a, np.array([1, 2, 3, 4]) / 10.0)
    assert math.isclose(a.sum(), 1.0)
    # Shares or counts give the same weights.
    np.testing.assert_allclose(train.loss_weights([0.0625, 0.25, 0.5625, 1.0]), a)
    with pytest.raises(ValueError, match="positive parameter counts"):
        train.loss_weights([0, 10])


def test_lr_schedule_pure_function_matches_keras_twin():
    sched = train.CosineSchedule(1e-2, total_steps=100, warmup_steps=10, final_fraction=0.1)
    for step in [0, 1, 5, 9, 10, 11, 50, 99, 100, 150]:
        assert math.isclose(float(sched(step)), train.lr_at(step, 1e-2, 100, 10, 0.1), rel_tol=1e-5)
    assert train.lr_at(0, 1e-2, 100, 10) == pytest.approx(1e-3)  # warm-up starts low
    assert train.lr_at(10, 1e-2, 100, 10) == pytest.approx(1e-2)  # peak after warm-up
    assert train.lr_at(100, 1e-2, 100, 10, 0.1) == pytest.approx(1e-3)  # decays to final fraction
    assert train.CosineSchedule.from_config(sched.get_config()).get_config() == sched.get_config()


def test_joint_step_applies_weighted_sum_of_level_gradients_once():
    _, model, graph, plan = _nested_model()
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    variables = train.non_bn_variables(model)
    x, y = next(iter(_data()))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        total = 0.0
        for k in range(4):
            with nested.level_scope(model, k):
                total += a[k] * loss_fn(y, model(x, training=False))
    expected = tape.gradient(total, variables)
    before = [v.numpy() for v in variables]
    opt = keras.optimizers.SGD(learning_rate=0.5)
    step = train.make_step(model, opt, variables, levels=range(4), weights=a, training=False)
    losses = step(x, y).numpy()
    assert losses.shape == (4,)
    assert int(opt.iterations) == 1  # ONE apply_gradients for all four levels
    for v, b, g in zip(variables, before, expected, strict=True):
        np.testing.assert_allclose(v.numpy(), b - 0.5 * g.numpy(), atol=1e-5)


def test_fit_advances_adam_and_lr_every_batch_and_learns():
    _, model, graph, plan = _nested_model()
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    data = _data(192)
    cfg = FinetuneConfig(epochs=3, learning_rate=1e-2, final_lr_fraction=0.1)
    h = train.fit(model, data, data, cfg, stage="ft", levels=range(4), weights=a, progress=False)
    steps = 192 // 32
    assert h.iterations == 3 * steps
    lrs = [e["lr"] for e in h.epochs]
    assert lrs[0] > lrs[1] > lrs[2]
    # "lr" is the rate of the epoch's last update, i.e. at step iterations - 1.
    assert lrs[-1] == pytest.approx(train.lr_at(3 * steps - 1, 1e-2, 3 * steps, 0, 0.1), rel=1e-4)
    assert np.mean(h.epochs[-1]["loss"]) < np.mean(h.epochs[0]["loss"])
    assert nested.get_level(model) == 3  # left at the full level


def test_checkpoint_resume_continues_at_next_epoch(tmp_path):
    model = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1)
    data = _data(64)
    cfg = TrainConfig(epochs=3, learning_rate=1e-2)
    run = RunDir(tmp_path / "run")
    with pytest.raises(train.TrainingInterrupted, match=r"after epoch 1 of 3.*--resume"):
        train.fit(model, data, data, cfg, stage="pre", run=run, max_epochs_this_call=1, progress=False)
    assert run.last_epoch("pre")[0] == 1
    assert (run.checkpoint_dir("pre", 1) / "ckpt.index").exists()
    # A fresh process would build a fresh model: resume restores it and runs epochs 2 and 3 only.
    fresh = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1)
    h = train.fit(fresh, data, data, cfg, stage="pre", run=run, resume=True, progress=False)
    assert h.resumed_from == 1
    assert [e["epoch"] for e in h.epochs] == [1, 2, 3]
    assert h.iterations == 3 * 2


def test_resume_restores_weights_and_optimizer_state(tmp_path):
    data = _data(64)
    cfg = TrainConfig(epochs=2, learning_rate=1e-2)
    run = RunDir(tmp_path / "run")
    keras.utils.set_random_seed(3)
    model = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1)
    os.environ[train.STOP_ENV] = "1"
    try:
        with pytest.raises(train.TrainingInterrupted):
            train.fit(model, data, None, cfg, stage="pre", run=run, progress=False)
    finally:
        del os.environ[train.STOP_ENV]
    after_epoch1 = [v.numpy() for v in model.trainable_weights]
    fresh = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1)
    h = train.fit(fresh, data, None, cfg, stage="pre", run=run, resume=True, progress=False, epochs=1)
    # epochs=1 means the stage is already complete: nothing trains, weights are the checkpoint's.
    assert h.resumed_from == 1 and [e["epoch"] for e in h.epochs] == [1]
    for v, w in zip(fresh.trainable_weights, after_epoch1, strict=True):
        np.testing.assert_array_equal(v.numpy(), w)
    h = train.fit(fresh, data, None, cfg, stage="pre", run=run, resume=True, progress=False)
    assert [e["epoch"] for e in h.epochs] == [1, 2]
    assert h.iterations == 2 * 2  # Adam's step count came back from the checkpoint
    state = json.loads((run.root / "state.json").read_text())
    assert state["epochs"]["pre"]["epoch"] == 2


def test_recalibrate_bn_gives_exact_mean_of_batch_statistics():
    model = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1)
    data = _data(96)
    conv = keras.Model(model.input, model.get_layer("conv1").output)
    means = [tf.reduce_mean(conv(x), axis=[0, 1, 2]).numpy() for x, _ in data]
    train.recalibrate_bn(model, data, num_batches=3)
    bn = model.get_layer("bn_conv1")
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(means, axis=0), rtol=1e-4, atol=1e-6)
    assert bn.momentum == 0.99  # restored


def test_recalibrate_bn_per_level_rows_and_shared_refusal():
    _, shared, _, plan = _nested_model()
    with pytest.raises(ValueError, match="stats_per_level=True"):
        train.recalibrate_bn(shared, _data(), 2)
    _, model, _, plan = _nested_model(stats_per_level=True)
    data = _data(96)
    conv = keras.Model(model.input, model.get_layer("conv1").output)
    with nested.level_scope(model, None):
        full_mean = np.mean([tf.reduce_mean(conv(x), axis=[0, 1, 2]).numpy() for x, _ in data], axis=0)
    train.recalibrate_bn(model, data, num_batches=3)
    mm = model.get_layer("bn_conv1").moving_mean.numpy()
    g = plan.groups.index("conv1")
    for k in range(4):
        w = plan.widths[k][g]
        # conv1 reads the image, so level k's output is the first w channels of the full output.
        np.testing.assert_allclose(mm[k, :w], full_mean[:w], rtol=1e-4, atol=1e-6)


MIRRORED = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    from test_train import _data, _nested_model
    from reds_tf import costs, train
    from reds_tf.recipe import FinetuneConfig
    strategy = tf.distribute.MirroredStrategy()
    with strategy.scope():
        _, model, graph, plan = _nested_model()
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    data = _data(64)
    h = train.fit(model, data, None, FinetuneConfig(epochs=2, learning_rate=1e-2), stage="ft",
                  levels=range(4), weights=a, strategy=strategy, progress=False)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "iterations": h.iterations,
                      "loss": [e["loss"] for e in h.epochs],
                      "mirrored": type(model.trainable_variables[0]).__name__}))
    """
)


def test_fit_under_mirrored_strategy_with_two_logical_cpus(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    here = os.path.dirname(__file__)
    out = subprocess.run(
        [sys.executable, str(script), here], capture_output=True, text=True, env=env, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["replicas"] == 2
    assert res["mirrored"] == "MirroredVariable"
    assert res["iterations"] == 2 * 2  # one update per global batch, not per replica
    assert np.mean(res["loss"][1]) < np.mean(res["loss"][0])


def test_pretraining_validation_tracks_training_on_fashion_mnist():
    # Default recipe's model and pretraining settings on 6,000 real images (42 steps per epoch): with
    # lagging BN moving statistics validation stayed at chance (0.10) after epoch 1 while the loss fell.
    from reds_tf import data
    from reds_tf.recipe import Recipe

    recipe = Recipe.load("models/ds_cnn_s-fashion_mnist.yaml")
    keras.utils.set_random_seed(0)
    splits = data.load("fashion_mnist", None, limit=6000, seed=0)
    model = zoo.build(recipe.model, num_classes=splits.num_classes, input_shape=splits.input_shape)
    cfg = TrainConfig(**{**recipe.pretrain.__dict__, "epochs": 1})
    hist = train.fit(
        model,
        splits.train.batch(128),
        splits.val.batch(256),
        cfg,
        stage="pretrain",
        progress=False,
        bn_batches=recipe.bn.recalibration_batches,
    )
    assert hist.epochs[0]["val"] > 0.5
    assert train.accuracy(model, splits.val.batch(256)) == pytest.approx(hist.epochs[0]["val"], abs=1e-6)
