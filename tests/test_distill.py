"""Distillation in joint fine-tuning: off by default, the in-place teacher's gradient stopped, the loss
as written down in numpy (in place and from a frozen teacher model), recipe validation, and tiny
pipeline runs with it on."""

from __future__ import annotations

import numpy as np
import pytest

from reds_tf import costs, nested, pipeline, topology, train, zoo
from reds_tf._keras import keras, tf
from reds_tf.plan import WidthPlan
from reds_tf.recipe import Recipe, RecipeError

RATIOS = (0.25, 0.5, 0.75, 1.0)


def _batch(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (n, 28, 28, 1)).astype(np.float32), rng.integers(0, 4, n).astype(np.int32)


def _nested(softmax=False):
    keras.utils.set_random_seed(1)
    model = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1, softmax=softmax)
    graph = topology.graph_of(model)
    full = graph.full_widths
    plan = WidthPlan(graph.group_names, full, tuple(tuple(max(1, int(f * r)) for f in full) for r in RATIOS))
    m = nested.make_nested(model, plan)
    return m, train.loss_weights([c.params for c in costs.plan_costs(graph, plan)]), plan


def _step_result(model, weights, x, y, **kw):
    """Losses of one SGD step and the variables after it."""
    variables = train.non_bn_variables(model)
    step = train.make_step(model, keras.optimizers.SGD(0.5), variables, range(4), weights, False, **kw)
    losses = step(x, y).numpy()
    return losses, [v.numpy() for v in variables]


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_weight_zero_is_the_plain_step():
    x, y = _batch()
    m1, a, _ = _nested()
    plain = _step_result(m1, a, x, y)
    m2, _, _ = _nested()
    off = _step_result(m2, a, x, y, distill_weight=0.0, distill_temperature=2.0)
    np.testing.assert_array_equal(plain[0], off[0])
    for p, o in zip(plain[1], off[1], strict=True):
        np.testing.assert_array_equal(p, o)


@pytest.mark.parametrize("softmax", [False, True], ids=["logits", "probabilities"])
def test_level_loss_matches_numpy(softmax):
    x, y = _batch()
    model, a, _ = _nested(softmax)
    w, t = 0.5, 3.0
    outs = []
    for k in range(4):
        with nested.level_scope(model, k):
            outs.append(model(x, training=False).numpy().astype(np.float64))
    logits = [np.log(np.clip(o, 1e-7, 1.0)) for o in outs] if softmax else outs
    losses, _ = _step_result(model, a, x, y, distill_weight=w, distill_temperature=t)
    ce = [-_log_softmax(z)[np.arange(len(y)), y].mean() for z in logits]
    log_pt = _log_softmax(logits[3] / t)
    for k in range(3):
        kl = (np.exp(log_pt) * (log_pt - _log_softmax(logits[k] / t))).sum(-1).mean()
        assert losses[k] == pytest.approx((1 - w) * ce[k] + w * t * t * kl, abs=1e-5)
    assert losses[3] == pytest.approx(ce[3], abs=1e-5)  # the full level learns the labels only


def test_distillation_does_not_pull_the_teacher():
    """Only the distillation term (w = 1, the full level's own loss weighted 0): weights that only the
    full level uses get no gradient, because the teacher's predictions are constants to the students."""
    x, y = _batch()
    model, _, plan = _nested()
    variables = train.non_bn_variables(model)
    before = [v.numpy() for v in variables]
    weights = [1.0, 1.0, 1.0, 0.0]
    _, after = _step_result(model, weights, x, y, distill_weight=1.0, distill_temperature=4.0)
    kept = plan.level(2)[plan.groups.index("pw1")]  # the widest student's units of the last pointwise layer
    full = plan.full[plan.groups.index("pw1")]
    assert kept < full
    # The last pointwise layer's output units beyond the widest student are the full level's alone.
    pw = next(i for i, v in enumerate(variables) if "pw1" in v.name and "kernel" in v.name)
    assert before[pw].shape[-1] == full
    np.testing.assert_array_equal(after[pw][..., kept:], before[pw][..., kept:])
    assert not np.array_equal(after[pw][..., :kept], before[pw][..., :kept])  # the students did learn
    # Without the stop-gradient the same step would move them: check the test can fail.
    with tf.GradientTape() as tape:
        outs = []
        for k in range(4):
            with nested.level_scope(model, k):
                outs.append(model(x, training=False))
        log_pt = tf.nn.log_softmax(outs[3] / 4)  # no stop_gradient here
        kd = sum(tf.reduce_sum(tf.exp(log_pt) * (log_pt - tf.nn.log_softmax(o / 4))) for o in outs[:3])
    g = tape.gradient(kd, variables[pw]).numpy()
    assert np.abs(g[..., kept:]).max() > 0


@pytest.mark.parametrize("softmax", [False, True], ids=["logits", "probabilities"])
def test_frozen_teacher_loss_matches_numpy(softmax):
    """With a teacher model every level, the full one too, distils from it; the teacher is not trained."""
    x, y = _batch()
    model, a, _ = _nested(softmax)
    keras.utils.set_random_seed(7)
    teacher = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1, softmax=softmax)
    frozen = [v.numpy() for v in teacher.weights]
    w, t = 0.25, 2.0
    outs = []
    for k in range(4):
        with nested.level_scope(model, k):
            outs.append(model(x, training=False).numpy().astype(np.float64))
    z_t = teacher(x, training=False).numpy().astype(np.float64)
    if softmax:
        outs, z_t = [np.log(np.clip(o, 1e-7, 1.0)) for o in outs], np.log(np.clip(z_t, 1e-7, 1.0))
    losses, _ = _step_result(model, a, x, y, distill_weight=w, distill_temperature=t, teacher=teacher)
    log_pt = _log_softmax(z_t / t)
    for k in range(4):
        ce = -_log_softmax(outs[k])[np.arange(len(y)), y].mean()
        kl = (np.exp(log_pt) * (log_pt - _log_softmax(outs[k] / t))).sum(-1).mean()
        assert losses[k] == pytest.approx((1 - w) * ce + w * t * t * kl, abs=1e-5)
    for before, after in zip(frozen, teacher.weights, strict=True):
        np.testing.assert_array_equal(before, after.numpy())


def test_teacher_with_another_output_layer_is_refused():
    model, a, _ = _nested(softmax=False)
    teacher = zoo.build("ds_cnn_fmnist", num_classes=4, filters=8, blocks=1, softmax=True)
    with pytest.raises(ValueError, match="must both end in a softmax or both give logits"):
        train.make_step(model, keras.optimizers.SGD(0.1), model.trainable_variables, range(4), a,
                        distill_weight=0.5, teacher=teacher)  # fmt: skip


@pytest.mark.parametrize(
    ("finetune", "match"),
    [
        ({"distill_teacher": "dense"}, r"distill_teacher must be one of full, pretrained.*Received: 'dense'"),
        ({"distill_weight": 1.5}, r"distill_weight must be in \[0, 1\].*Received: 1.5"),
        ({"distill_weight": -0.1}, r"distill_weight must be in \[0, 1\]"),
        ({"distill_temperature": 0}, r"distill_temperature must be a number > 0.*Received: 0"),
        ({"distill_weight": "half"}, r"'finetune.distill_weight' must be a float"),
    ],
)
def test_recipe_rejects_bad_distillation_values(finetune, match):
    base = {"name": "t", "model": "ds_cnn_fmnist", "dataset": "fashion_mnist"}
    with pytest.raises(RecipeError, match=match):
        Recipe.from_dict({**base, "finetune": finetune})


def _tiny_run(tmp_path, **settings):
    """A tiny real Fashion-MNIST run with in-place or frozen-teacher distillation: (recipe, results, log)."""
    base = {"data.limit": 300, "solve.budgets": [0.3, 0.6], "bn.recalibrate": False}
    base["finetune.distill_weight"] = 0.5
    recipe = Recipe.load("models/tiny-fashion_mnist.yaml", **{**base, **settings})
    lines = []
    res = pipeline.run(recipe, tmp_path / "run", progress=False, log=lines.append)
    return recipe, res, lines


def test_tiny_run_with_distillation_finishes(tmp_path):
    recipe, res, lines = _tiny_run(tmp_path, **{"finetune.distill_temperature": 2.0})
    assert recipe.finetune.distill_weight == 0.5
    assert any("distillation from the full level (in place) w=0.5 T=2" in line for line in lines)
    assert len(res["levels"]) == 3
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in res["levels"])
    assert "distill_teacher" not in recipe.to_dict()["finetune"]  # runs from before the key still resume


def test_tiny_run_distilling_from_the_pretrained_model_finishes(tmp_path):
    """Fine-tuning and quantisation-aware fine-tuning both distil from the frozen dense model."""
    settings = {"finetune.distill_teacher": "pretrained", "qat.epochs": 1, "convert.enabled": True,
                "convert.calibration_samples": 64}  # fmt: skip
    recipe, res, lines = _tiny_run(tmp_path, **settings)
    assert any("distillation from the dense pretrained model w=0.5 T=4" in line for line in lines)
    assert recipe.to_dict()["finetune"]["distill_teacher"] == "pretrained"
    assert res["qat"]["epochs"] == 1
    assert len(res["levels"]) == 3 and len(res["converted"]["int8_accuracy"]) == 3
