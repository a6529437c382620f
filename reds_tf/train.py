"""Training: plain (pretraining, scratch baselines) and REDS joint fine-tuning of all nested levels.

Joint step (one per batch): run every level on the batch, loss ``sum_i a_i L_i`` with
``a_i = sqrt(p_i) / sum_j sqrt(p_j)`` (``p_i`` = share of parameters level i uses), then ONE
``optimizer.apply_gradients`` -- so the LR schedule and Adam's step count advance once per batch
(the published loop updated variables directly and froze both).

BatchNorm, reference behaviour: shared BN layers sliced per width keep frozen statistics during joint
fine-tuning (forward in inference mode, gamma/beta excluded), then a short stage trains only gamma/beta.
``recalibrate_bn`` re-estimates statistics per level on training data for nested models built with
``stats_per_level=True`` (the slimmable-networks improvement the pipeline measures against it).

Every stage checkpoints after each epoch (atomically, via ``runstore``) and resumes at the next epoch,
exactly: given ``seed`` and a data ``pass_key``, a stage's random numbers and data passes are functions of
(seed, stage, epoch) and of what its checkpoint holds (weights, optimizer, the layers' random generators),
never of what the process did before. Model selection uses the validation split only.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import nested
from ._keras import keras, tf
from .data.augment import set_pass
from .errors import RedsError
from .evaluate import accuracy, level_accuracies
from .runstore import RunDir, atomic_dir
from .topology import is_softmax

STOP_ENV = "REDS_STOP_AFTER_EPOCHS"


class TrainConfig(Protocol):
    """What a training stage reads from its settings (``recipe.TrainConfig`` satisfies it; train does
    not import recipe, which sits on the same layer)."""

    epochs: int
    learning_rate: float
    warmup_epochs: float
    final_lr_fraction: float
    patience: int | None


class TrainingInterrupted(RedsError, RuntimeError):
    """Training stopped on request (``max_epochs_this_call`` or $REDS_STOP_AFTER_EPOCHS); resume it."""


# --- loss weights and learning rate ------------------------------------------------------------------


def loss_weights(params: Sequence[float]) -> np.ndarray:
    """REDS level weights ``a_i = sqrt(p_i) / sum_j sqrt(p_j)`` from per-level parameter counts/shares."""
    p = np.asarray(params, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or np.any(p <= 0):
        raise ValueError(
            f"loss_weights needs positive parameter counts, one per level. Received: {p.tolist()}"
        )
    s = np.sqrt(p / p.max())
    return s / s.sum()


def lr_at(
    step: int, base_lr: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.05
) -> float:
    """Learning rate at optimizer step ``step``: linear warm-up, then cosine decay to ``final_fraction``.

    A pure function (nanoGPT's ``get_lr``); ``CosineSchedule`` is its TensorFlow twin.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, max(0.0, (step - warmup_steps) / span))
    return base_lr * (final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * t)))


class CosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``lr_at`` as a Keras schedule of the optimizer's step counter (so it survives checkpoints)."""

    def __init__(self, base_lr: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.05):
        super().__init__()
        self.base_lr, self.total_steps = float(base_lr), int(total_steps)
        self.warmup_steps, self.final_fraction = int(warmup_steps), float(final_fraction)

    def __call__(self, step: Any) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        lr, w, f = self.base_lr, float(self.warmup_steps), self.final_fraction
        t = tf.clip_by_value((step - w) / float(max(1, self.total_steps - self.warmup_steps)), 0.0, 1.0)
        decayed = lr * (f + (1.0 - f) * 0.5 * (1.0 + tf.cos(math.pi * t)))
        if self.warmup_steps <= 0:
            return decayed
        return tf.where(step < w, lr * (step + 1.0) / w, decayed)

    def get_config(self) -> dict[str, Any]:
        return {
            "base_lr": self.base_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "final_fraction": self.final_fraction,
        }


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int, learning_rate: float | None = None) -> Any:
    """Adam with ``CosineSchedule`` over ``cfg.epochs`` epochs."""
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = CosineSchedule(
        learning_rate or cfg.learning_rate,
        total,
        int(cfg.warmup_epochs * steps_per_epoch),
        cfg.final_lr_fraction,
    )
    return keras.optimizers.Adam(learning_rate=sched)


# --- data --------------------------------------------------------------------------------------------


def batches(ds: tf.data.Dataset, batch_size: int, shuffle: int = 0, seed: int = 0) -> tf.data.Dataset:
    """Batch an unbatched (x, y) dataset; shuffle (seeded, reshuffled every epoch) when ``shuffle`` > 0."""
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def num_batches(ds: tf.data.Dataset) -> int | None:
    n = int(tf.data.experimental.cardinality(ds))
    return n if n >= 0 else None


# --- BatchNorm helpers -------------------------------------------------------------------------------


def is_bn(layer: Any) -> bool:
    return "BatchNormalization" in type(layer).__name__


def bn_variables(model: keras.Model) -> list[tf.Variable]:
    """Trainable BN parameters (gamma, beta) of every BN layer."""
    return [v for layer in model.layers if is_bn(layer) for v in layer.trainable_weights]


def non_bn_variables(model: keras.Model) -> list[tf.Variable]:
    bn = {id(v) for v in bn_variables(model)}
    return [v for v in model.trainable_variables if id(v) not in bn]


def _outputs_probabilities(model: keras.Model) -> bool:
    return is_softmax(model.layers[-1])


# --- the training step -------------------------------------------------------------------------------


def distillation_loss(
    teacher: tf.Tensor, student: tf.Tensor, temperature: float, probabilities: bool
) -> tf.Tensor:
    """Per-sample ``T^2 * KL(softmax(teacher/T) || softmax(student/T))``, the teacher's gradient stopped.

    In-place distillation (universally slimmable networks, Once-for-All): a smaller level learns the full
    level's softened predictions while the full level learns only the labels, so the teacher term must
    not pull the full level towards its students. ``T^2`` keeps the gradient scale independent of ``T``
    (Hinton et al. 2015). Models that end in a softmax give probabilities: their log (clipped away from
    0) serves as logits, which softmax maps back to the same distribution.
    """
    t, s = tf.stop_gradient(teacher), student
    if probabilities:
        t, s = (tf.math.log(tf.clip_by_value(v, 1e-7, 1.0)) for v in (t, s))
    log_pt = tf.nn.log_softmax(t / temperature, axis=-1)
    log_ps = tf.nn.log_softmax(s / temperature, axis=-1)
    kl = tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1)
    return temperature**2 * kl


def make_step(
    model: keras.Model,
    optimizer: Any,
    variables: Sequence[tf.Variable],
    levels: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    training: bool = True,
    strategy: tf.distribute.Strategy | None = None,
    distill_weight: float = 0.0,
    distill_temperature: float = 4.0,
    teacher: keras.Model | None = None,
) -> Callable[[Any, Any], tf.Tensor]:
    """A compiled train step ``step(x, y) -> per-level losses``.

    ``levels=None`` trains the model as is (one forward pass); otherwise every listed level runs on
    the batch and the weighted sum of their losses gets one ``apply_gradients``. ``training=False``
    runs BN in inference mode (frozen statistics). Under a ``strategy`` pass a distributed dataset.

    ``distill_weight`` w > 0 (nested levels only): the largest listed level (the teacher) learns the
    labels; every other level's loss is ``(1 - w) * CE + w * distillation_loss(teacher, level, T)``.
    With a frozen ``teacher`` model (e.g. the dense pretrained model, which is more accurate than the
    jointly fine-tuned full level) every level, the largest too, distils from it instead; it runs in
    inference mode outside the gradient tape.
    """
    probabilities = _outputs_probabilities(model)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=not probabilities, reduction=keras.losses.Reduction.NONE
    )
    lv = [None] if levels is None else list(levels)
    w = [1.0] if levels is None else [float(a) for a in (weights if weights is not None else [1.0] * len(lv))]
    if len(w) != len(lv):
        raise ValueError(
            f"make_step needs one weight per level. Received: {len(w)} weights, {len(lv)} levels"
        )
    if not 0.0 <= distill_weight <= 1.0 or distill_temperature <= 0:
        raise ValueError(
            "make_step needs 0 <= distill_weight <= 1 and distill_temperature > 0. Received: "
            f"distill_weight={distill_weight}, distill_temperature={distill_temperature}"
        )
    external = teacher is not None and distill_weight > 0 and levels is not None
    if external and _outputs_probabilities(teacher) != probabilities:
        raise ValueError(
            f"make_step: the teacher {teacher.name!r} and the model {model.name!r} must both end in a "
            "softmax or both give logits. Fix: distil from a model with the same output layer."
        )
    distill = external or (distill_weight > 0 and levels is not None and len(lv) > 1)
    top = None if external or not distill else max(lv)  # the in-place teacher level
    order = [top] + [k for k in lv if k != top] if top is not None else lv  # the teacher runs first
    variables = list(variables)

    def replica_step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        target = teacher(x, training=False) if external else None
        with tf.GradientTape() as tape:
            outs, by_level = {}, {}
            for k in order:
                if k is not None:
                    nested.set_level(model, k)  # read at trace time: one static graph per level
                outs[k] = model(x, training=training)
                per_sample = loss_fn(y, outs[k])
                if distill and k != top:
                    t = target if external else outs[top]
                    kd = distillation_loss(t, outs[k], distill_temperature, probabilities)
                    per_sample = (1.0 - distill_weight) * per_sample + distill_weight * kd
                by_level[k] = tf.nn.compute_average_loss(per_sample)
            losses = [by_level[k] for k in lv]
            total = tf.add_n([a * loss for a, loss in zip(w, losses, strict=True)])
            if model.losses:
                total += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        grads = tape.gradient(total, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return tf.stack(losses)

    if strategy is None:
        return tf.function(replica_step)

    @tf.function
    def dist_step(x: Any, y: Any) -> tf.Tensor:
        per_replica = strategy.run(replica_step, args=(x, y))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return dist_step


# --- the epoch loop with checkpoints -----------------------------------------------------------------


@dataclass
class History:
    """What a stage did: per-epoch train losses and validation scores, the best epoch, timings."""

    stage: str
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -1.0
    resumed_from: int = 0
    iterations: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def fit(
    model: keras.Model,
    train: tf.data.Dataset,
    val: tf.data.Dataset | None,
    cfg: TrainConfig,
    *,
    stage: str,
    levels: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    variables: Sequence[tf.Variable] | None = None,
    training: bool = True,
    learning_rate: float | None = None,
    epochs: int | None = None,
    run: RunDir | None = None,
    resume: bool = False,
    strategy: tf.distribute.Strategy | None = None,
    max_epochs_this_call: int | None = None,
    progress: bool = True,
    bn_batches: int = 0,
    seed: int | None = None,
    pass_key: tf.Variable | None = None,
    distill_weight: float = 0.0,
    distill_temperature: float = 4.0,
    teacher: keras.Model | None = None,
) -> History:
    """Train ``model`` for ``epochs`` (default ``cfg.epochs``) epochs on batched ``train``.

    After every epoch: validation score (mean level accuracy for nested levels, else accuracy), an
    atomic checkpoint of model + optimizer under ``run`` and its record in ``state.json``. With
    ``resume`` it restores the last checkpoint and continues at the next epoch. The weights of the
    best validation epoch are restored at the end (early stopping after ``cfg.patience`` epochs
    without improvement). Raises ``TrainingInterrupted`` after ``max_epochs_this_call`` epochs (or
    $REDS_STOP_AFTER_EPOCHS) when epochs remain.

    ``bn_batches > 0`` (plain models trained with BN in training mode): BN moving statistics are
    re-estimated on that many training batches before every validation. The moving averages lag the
    weights by far more than an epoch on short schedules (momentum 0.99; BN makes the preceding
    weights' scale drift quickly), which put validation at chance while the loss fell, so early
    stopping kept the wrong epoch. The re-estimated statistics are also the ones checkpointed.

    Exact resume: with ``seed`` the stage reseeds Python, NumPy and TensorFlow from (seed, stage) before
    anything random happens, and the layers' random generators are checkpointed with the weights; with
    ``pass_key`` (the loaders' option) every epoch's data pass is named (stage, epoch) by ``set_pass``.
    A stage killed after any epoch and resumed then trains exactly as an uninterrupted one.

    ``distill_weight`` / ``distill_temperature`` / ``teacher``: distillation of the nested levels, in
    place or from a frozen teacher model (``make_step``).
    """
    epochs = cfg.epochs if epochs is None else epochs
    hist = History(stage)
    if epochs <= 0:
        return hist
    t0 = time.perf_counter()
    if seed is not None:
        keras.utils.set_random_seed(stage_seed(seed, stage))
    steps = num_batches(train) or 1
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        optimizer = make_optimizer(cfg, steps, learning_rate)
        variables = list(variables if variables is not None else model.trainable_variables)
        optimizer.build(variables)
        generators = random_generators(model)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer, rng=generators)
    best = tf.train.Checkpoint(model=model)
    start = 0
    if run is not None and resume:
        start, rec = run.last_epoch(stage)
        if start:
            ckpt.read(str(run.checkpoint_dir(stage, start) / "ckpt")).assert_existing_objects_matched()
            hist.epochs = list(rec.get("history", []))
            hist.best_epoch, hist.best_score = int(rec.get("best_epoch", 0)), float(rec.get("best_score", -1))
            hist.resumed_from = start
    step = make_step(
        model,
        optimizer,
        variables,
        levels,
        weights,
        training,
        strategy,
        distill_weight,
        distill_temperature,
        teacher,
    )
    data = strategy.experimental_distribute_dataset(_shardable(train, strategy)) if strategy else train
    stop_after = max_epochs_this_call or (int(os.environ[STOP_ENV]) if os.environ.get(STOP_ENV) else None)
    done_now = 0
    best_weights: list[np.ndarray] | None = None
    for epoch in range(start + 1, epochs + 1):
        set_pass(pass_key, stage, epoch)
        losses = _run_epoch(step, data, steps, f"{stage} {epoch}/{epochs}", progress)
        if bn_batches and training and levels is None and any(is_bn(layer) for layer in model.layers):
            set_pass(pass_key, stage, epoch, "bn")
            recalibrate_bn(model, train, bn_batches)
        score = _score(model, val, levels)
        rec = {"epoch": epoch, "loss": losses, "val": score, "lr": float(_lr(optimizer))}
        hist.epochs.append(rec)
        if score is None:  # no validation data: nothing to select on, keep the latest epoch
            hist.best_epoch = epoch
        elif float(np.mean(score)) > hist.best_score:
            val_score = float(np.mean(score))
            hist.best_epoch, hist.best_score = epoch, val_score
            if run is not None:
                with atomic_dir(run.root / "checkpoints" / stage / "best") as d:
                    best.write(str(d / "ckpt"))
            else:
                best_weights = [v.numpy() for v in model.weights]
        if run is not None:
            with atomic_dir(run.checkpoint_dir(stage, epoch)) as d:
                ckpt.write(str(d / "ckpt"))
            run.record_epoch(
                stage,
                epoch,
                {"history": hist.epochs, "best_epoch": hist.best_epoch, "best_score": hist.best_score},
            )
        done_now += 1
        if progress:
            print(f"[{stage}] epoch {epoch}: loss {np.round(losses, 4).tolist()} val {score}", flush=True)
        if cfg.patience is not None and epoch - hist.best_epoch >= cfg.patience:
            break
        if stop_after is not None and done_now >= stop_after and epoch < epochs:
            raise TrainingInterrupted(
                f"Stage '{stage}' stopped after epoch {epoch} of {epochs} as requested. "
                "Fix: rerun with --resume."
            )
    if hist.epochs and hist.best_epoch != hist.epochs[-1]["epoch"]:
        # Model selection on the validation split: go back to the best epoch's weights.
        if run is not None:
            best.read(
                str(run.root / "checkpoints" / stage / "best" / "ckpt")
            ).assert_existing_objects_matched()
        elif best_weights is not None:
            for v, b in zip(model.weights, best_weights, strict=True):
                v.assign(b)
    if levels is not None:
        nested.set_level(model, nested.num_levels(model) - 1)
    hist.iterations = int(optimizer.iterations.numpy())
    hist.seconds = time.perf_counter() - t0
    return hist


def _shardable(ds: tf.data.Dataset, strategy: tf.distribute.Strategy) -> tf.data.Dataset:
    """Several workers shard by DATA: every worker reads the same stream and keeps its part of each
    global batch, so the global batches are exactly the one-process run's (sharding by FILE would give
    each worker other files, and in-memory datasets have no files to shard)."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return ds
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def stage_seed(seed: int, stage: str) -> int:
    """The seed of one training stage: a function of the run's seed and the stage's name only."""
    digest = hashlib.sha256(f"{seed}|{stage}".encode()).digest()
    return int.from_bytes(digest[:4], "little") >> 1


def random_generators(model: keras.Model) -> dict[str, tf.random.Generator]:
    """The ``tf.random.Generator`` of every layer that draws random numbers (dropout), created now (Keras
    makes them lazily, on the first call) so that a checkpoint can restore them before training starts."""
    out = {}
    for layer in model.submodules:
        rng = getattr(layer, "_random_generator", None)
        if rng is None or not hasattr(rng, "_maybe_init"):
            continue
        rng._maybe_init()
        if getattr(rng, "_generator", None) is not None:
            out[f"{len(out)}_{layer.name}"] = rng._generator
    return out


def _lr(optimizer: Any) -> float:
    lr = optimizer.learning_rate  # with a schedule: the rate of the latest update
    return float(np.asarray(tf.convert_to_tensor(lr)))


def _run_epoch(step: Callable, data: Any, steps: int, desc: str, progress: bool) -> list[float]:
    from tqdm.auto import tqdm

    total = None
    n = 0
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress, leave=False, mininterval=1.0)
    for x, y in data:
        loss = step(x, y)
        total = loss if total is None else total + loss
        n += 1
        bar.update(1)
        if n % 20 == 0:
            bar.set_postfix(loss=f"{float(tf.reduce_mean(loss)):.4f}")
    bar.close()
    if total is None:
        raise ValueError(f"{desc}: the training dataset is empty. Fix: check the data split and --limit.")
    return [round(float(v), 6) for v in np.atleast_1d((total / n).numpy())]


def _score(model: keras.Model, val: tf.data.Dataset | None, levels: Sequence[int] | None) -> Any:
    if val is None:
        return None
    if levels is None:
        return round(accuracy(model, val), 6)
    return [round(a, 6) for a in level_accuracies(model, val, levels)]


# --- per-level BN recalibration -----------------------------------------------------------------------


def recalibrate_bn(model: keras.Model, data: tf.data.Dataset, num_batches: int = 50) -> None:
    """Re-estimate BN moving statistics from training data as the exact mean over ``num_batches``.

    Plain model: its statistics. Nested model built with ``stats_per_level=True``: every level's own
    statistics. A shared-BN nested model is refused (each level would overwrite the shared statistics).
    Runs eagerly in training mode with momentum ``i / (i + 1)`` at batch i, which makes the moving
    statistics the mean of the per-batch statistics; no gradients are computed.
    """
    bns = [layer for layer in model.layers if is_bn(layer)]
    is_nested = bool(nested.nested_layers(model))
    if is_nested and not any(getattr(b, "stats_per_level", False) for b in bns):
        raise ValueError(
            "recalibrate_bn needs per-level BN statistics on a nested model: recalibrating shared BN "
            "would keep only the last level's statistics. "
            "Fix: nested.make_nested(model, plan, stats_per_level=True)."
        )
    saved = [b.momentum for b in bns]
    try:
        for k in range(nested.num_levels(model)) if is_nested else [None]:
            if k is not None:
                nested.set_level(model, k)
            for i, (x, _) in enumerate(data.take(num_batches)):
                for b in bns:
                    b.momentum = i / (i + 1.0)  # i = 0 replaces the old statistics entirely
                model(x, training=True)
    finally:
        for b, m in zip(bns, saved, strict=True):
            b.momentum = m
        if is_nested:
            nested.set_level(model, nested.num_levels(model) - 1)
