"""The pipeline's steps, one function each, every one resumable from its run directory.

``pretrain``, ``rank`` (importance), ``permute_model``, ``solve_plan``, ``finetune`` (joint, shared BN),
the per-level BN variants, ``evaluate_run``, ``baselines`` (its scratch baseline is ``scratch_level``, one
level at a time, which ``reds scratch`` also runs after a run) and ``convert_run``. A step that
``state.json`` records as done loads its artifact instead of recomputing it; training steps resume at
the epoch after their last checkpoint. Each resumable step takes one ``StepContext`` (run directory,
resume, strategy, progress, epoch limit, log, seed, data pass key) as its last positional argument.
``reds_tf.pipeline.run`` calls them in the method's order.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import (
    convert,
    costs,
    data,
    device_cost,
    importance,
    model_source,
    multiworker,
    nested,
    permute,
    qat,
    solve,
    topology,
    train,
)
from ._keras import keras, tf
from .data import augment
from .errors import RunMismatchError
from .evaluate import accuracy, level_accuracies, level_max_abs_diff, level_rows
from .graph import Graph
from .plan import WidthPlan
from .recipe import Recipe
from .runstore import RunDir, atomic_path, atomic_write_bytes, atomic_write_text, fingerprint_diff


def make_strategy(name: str | None) -> tf.distribute.Strategy | None:
    """None (default device), ``"mirrored"`` (tf.distribute.MirroredStrategy over local devices) or
    ``"multiworker"`` (MultiWorkerMirroredStrategy over the workers in $TF_CONFIG, see ``multiworker``)."""
    if name in (None, "", "none", "default"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return multiworker.make_strategy(multiworker.read_tf_config())
    raise ValueError(
        f"Unknown strategy. Received: strategy={name!r}. Fix: use 'mirrored', 'multiworker' or leave it out."
    )


@dataclass(frozen=True)
class StepContext:
    """What every step of one run shares: where its artifacts go and how its training runs.

    Attributes:
        rd: the run directory (artifacts, ``state.json``, per-epoch checkpoints).
        resume: continue an interrupted training stage at its next epoch.
        strategy: a ``tf.distribute.Strategy`` (see ``make_strategy``) or None (default device).
        progress: show per-epoch progress bars.
        stop: train at most this many epochs in this call (None = no limit), for resumable chunks.
        log: called with one line of text per event.
        seed: the run's seed; each training stage reseeds from (seed, stage) (``train.stage_seed``).
        pass_key: the training data's pass key (``load_data``): passes are named, not counted.
    """

    rd: RunDir
    resume: bool = False
    strategy: tf.distribute.Strategy | None = None
    progress: bool = True
    stop: int | None = None
    log: Callable[[str], Any] = print
    seed: int | None = None
    pass_key: Any = None

    @property
    def fit_options(self) -> dict[str, Any]:
        """The keyword arguments of ``train.fit`` that come from the context."""
        return dict(
            run=self.rd,
            resume=self.resume,
            strategy=self.strategy,
            max_epochs_this_call=self.stop,
            progress=self.progress,
            seed=self.seed,
            pass_key=self.pass_key,
        )

    def scope(self) -> Any:
        """The strategy's variable scope (a no-op context without a strategy)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def in_dir(self, rd: RunDir) -> StepContext:
        """The same context writing into another run directory (a baseline's, say)."""
        return replace(self, rd=rd)


# --- data --------------------------------------------------------------------------------------------


def load_data(recipe: Recipe, data_dir: str | Path | None) -> tuple[Any, dict[str, tf.data.Dataset]]:
    """Load the recipe's dataset; return the splits and their batched versions (train/val/test).

    ``splits.pass_key`` names each pass over the training data (``augment.set_pass``): steps set it
    before they read training data, so what a step reads does not depend on earlier reads.
    """
    d = recipe.data
    splits = data.load(
        recipe.dataset,
        data_dir,
        validation_fraction=d.validation_fraction,
        seed=recipe.seed,
        limit=d.limit,
        augment=d.augment,
        pass_key=augment.new_pass_key(),  # exact resume: every pass over train is named (set_pass)
        **d.options,
    )
    out = {}
    for name in ("train", "val", "test"):
        ds = getattr(splits, name)
        n = int(splits.sizes.get(name, -1)) if splits.sizes else -1
        if int(tf.data.experimental.cardinality(ds)) < 0 and n > 0:
            ds = ds.apply(tf.data.experimental.assert_cardinality(n))
        out[name] = train.batches(ds, d.batch_size)
    # Unaugmented training data for importance scores and BN recalibration would be ideal; the
    # augmented stream is what the statistics see during training, so it is used as is.
    return splits, out


# --- steps -------------------------------------------------------------------------------------------


def _save_keras(model: keras.Model, path: Path) -> Path:
    """Save a plain model as .keras atomically (temp file in the same directory, then rename)."""
    with atomic_path(path, suffix=".tmp.keras") as tmp:
        model.save(str(tmp))
    return path


def pretrain(
    recipe: Recipe,
    splits: Any,
    batched: dict,
    ctx: StepContext,
) -> keras.Model:
    """Train the recipe's model: a fresh zoo model, or a user's model file from its own weights (which
    ``pretrain.epochs: 0`` keeps as they are). Loads ``pretrained.keras`` when this step is already done."""
    path = ctx.rd.path("pretrained.keras")
    with ctx.scope():
        if ctx.rd.is_done("pretrain"):
            return keras.models.load_model(path, compile=False)
        shape = dict(num_classes=splits.num_classes, input_shape=splits.input_shape)
        keras.utils.set_random_seed(train.stage_seed(recipe.seed, "pretrain/init"))
        model = model_source.build(recipe.model, recipe.model_options, **shape)
    ctx.log(f"[pretrain] {model.name}: {model.count_params():,} params, {recipe.pretrain.epochs} epochs")
    hist = train.fit(
        model,
        batched["train"],
        batched["val"],
        recipe.pretrain,
        stage="pretrain",
        bn_batches=recipe.bn.recalibration_batches,
        **ctx.fit_options,
    )
    _save_keras(model, path)
    ctx.rd.mark_done("pretrain", {"history": hist.to_dict()})
    return model


#: recipe keys that decide the pretrained model (a run may adopt another's pretraining when they all match)
PRETRAIN_KEYS = ("model", "model_options", "dataset", "seed", "data", "pretrain")


def adopt_pretrained(source: str | Path, fingerprint: dict[str, Any], ctx: StepContext) -> None:
    """Start from another run's pretrained model instead of pretraining again (ablations of solving and
    fine-tuning share one pretraining). Refused unless the source run finished pretraining with the same
    model, data, seed and pretraining settings, so the adopted model is the one this run would train."""
    src = RunDir(source)
    theirs = src.fingerprint()
    if theirs is None or not src.is_done("pretrain") or not src.path("pretrained.keras").is_file():
        raise RunMismatchError(
            f"--pretrained-from {src.root}: no finished pretraining there (no fingerprint.json, or pretrain "
            "not done). Fix: name the run directory of a run that finished its pretraining."
        )
    mine = {k: fingerprint["recipe"].get(k) for k in PRETRAIN_KEYS}
    mine.update(data_dir=fingerprint["data_dir"], model_file_sha256=fingerprint["model_file_sha256"])
    other = {k: theirs["recipe"].get(k) for k in PRETRAIN_KEYS}
    other.update(data_dir=theirs.get("data_dir"), model_file_sha256=theirs.get("model_file_sha256"))
    diff = fingerprint_diff(other, mine)
    if diff:
        raise RunMismatchError(
            f"--pretrained-from {src.root}: its pretraining differs from this recipe's:\n  "
            + "\n  ".join(diff)
            + "\nFix: adopt a run with the same model, data, seed and pretraining, or drop --pretrained-from."
        )
    atomic_write_bytes(ctx.rd.path("pretrained.keras"), src.path("pretrained.keras").read_bytes())
    ctx.rd.mark_done("pretrain", {**src.done_info("pretrain"), "adopted_from": str(src.root.resolve())})
    ctx.log(f"[pretrain] adopted {src.path('pretrained.keras')} (same model, data, seed and pretraining)")


def save_arrays(path: Path, scores: dict[str, np.ndarray]) -> None:
    """Write named arrays as one .npz, atomically."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in scores.items()})
    atomic_write_bytes(path, buf.getvalue())


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """Read the named arrays ``save_arrays`` wrote."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def rank(
    recipe: Recipe, model: keras.Model, batched: dict, method: str, ctx: StepContext
) -> dict[str, np.ndarray]:
    """Importance scores per unit group (Taylor, magnitude or random)."""
    path = ctx.rd.path("scores.npz")
    if ctx.rd.is_done("importance"):
        return load_arrays(path)
    if method == "taylor":
        augment.set_pass(ctx.pass_key, "importance")
        scores = importance.taylor_scores(model, batched["train"], num_batches=recipe.importance.num_batches)
    elif method == "magnitude":
        scores = importance.magnitude_scores(model)
    else:
        scores = importance.random_scores(model, seed=recipe.seed)
    save_arrays(path, scores)
    ctx.rd.mark_done("importance", {"method": method})
    return scores


def permute_model(
    model: keras.Model, scores: dict, batched: dict, ctx: StepContext
) -> tuple[keras.Model, dict]:
    """Sort units by score (function-preserving); record the max output difference it caused."""
    path, spath = ctx.rd.path("permuted.keras"), ctx.rd.path("sorted_scores.npz")
    if ctx.rd.is_done("permute"):
        return keras.models.load_model(path, compile=False), load_arrays(spath)
    perm, sorted_scores = permute.sort_model(model, scores)
    x = next(iter(batched["val"]))[0]
    diff = float(np.max(np.abs(model(x, training=False).numpy() - perm(x, training=False).numpy())))
    _save_keras(perm, path)
    save_arrays(spath, sorted_scores)
    ctx.rd.mark_done("permute", {"max_abs_diff": diff})
    return perm, sorted_scores


def solve_plan(recipe: Recipe, model: keras.Model, sorted_scores: dict, ctx: StepContext) -> tuple:
    """Knapsack over widths for every budget; writes plan.json and solve_report.json."""
    graph = topology.graph_of(model)
    if ctx.rd.is_done("solve"):
        return graph, WidthPlan.load(ctx.rd.path("plan.json")), ctx.rd.done_info("solve")
    s = recipe.solve
    device, cycles = None, [None] * len(s.budgets)
    if s.latency_ms:  # latency budgets: the device cost model's cycles at the recipe's clock
        device = device_cost.load("dsp")
        cycles = [device_cost.PowerModel(clock_mhz=s.clock_mhz).cycles_for_ms(ms) for ms in s.latency_ms]
    macs = s.budgets or [1.0] * len(cycles)
    budgets = [solve.Budget(b, s.peak_memory_bytes, None, c) for b, c in zip(macs, cycles, strict=True)]
    report = solve.solve(
        graph,
        sorted_scores,
        budgets,
        include_full=s.include_full,
        solver=s.solver,
        time_limit=s.time_limit,
        gap=s.gap,
        strategy=s.strategy,
        granularity=s.granularity,
        min_width=min_widths(graph, s.min_width),
        device=device,
        progress=lambda line: ctx.log(f"[solve] {line}"),
    )
    rep = report.to_dict()
    report.plan.save(ctx.rd.path("plan.json"))
    atomic_write_text(ctx.rd.path("solve_report.json"), json_text(rep))
    ctx.log(f"[solve] {_solver_summary(rep)}")
    ctx.log(report.plan.describe())
    ctx.rd.mark_done("solve", rep)
    return graph, report.plan, rep


def min_widths(graph: Graph, min_width: float) -> dict[str, int]:
    """Per group: the recipe's ``min_width`` in units (a fraction in (0, 1) of the full width, rounded up)."""
    if min_width >= 1:
        return {g.name: min(int(min_width), g.full) for g in graph.groups}
    return {g.name: max(1, math.ceil(min_width * g.full)) for g in graph.groups}


def _solver_summary(rep: dict[str, Any]) -> str:
    keys = ("status", "solver", "strategy", "wall_s", "objective", "gap")
    return ", ".join(f"{k}={rep[k]}" for k in keys if k in rep) or "solved"


def json_text(x: Any) -> str:
    """Indented JSON with NumPy values as lists, one trailing newline."""
    return json.dumps(x, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n"


def _distill(ft: Any, pretrained: keras.Model | None) -> dict[str, Any]:
    """``train.fit``'s distillation options from the recipe's ``finetune`` section; ``pretrained`` (the
    permuted dense model) is the teacher under ``distill_teacher: pretrained``."""
    teacher = pretrained if ft.distill_weight and ft.distill_teacher == "pretrained" else None
    return {
        "distill_weight": ft.distill_weight,
        "distill_temperature": ft.distill_temperature,
        "teacher": teacher,
    }


def _distill_note(ft: Any) -> str:
    if not ft.distill_weight:
        return ""
    dense = ft.distill_teacher == "pretrained"
    source = "the dense pretrained model" if dense else "the full level (in place)"
    return f", distillation from {source} w={ft.distill_weight:g} T={ft.distill_temperature:g}"


def finetune(
    recipe: Recipe,
    perm: keras.Model,
    plan: WidthPlan,
    graph: Any,
    batched: dict,
    ctx: StepContext,
    *,
    stage: str,
) -> keras.Model:
    """Joint fine-tuning of all levels (shared BN, frozen statistics), then the gamma/beta-only stage."""
    path = ctx.rd.path("model.keras")
    if ctx.rd.is_done(stage):
        with ctx.scope():
            return nested.load_model(path)
    if isinstance(ctx.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        multiworker.check_same_plan(ctx.strategy, [w for row in plan.widths for w in row])
    with ctx.scope():
        model = nested.make_nested(perm, plan)
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    levels = list(range(plan.num_levels))
    ft = recipe.finetune
    ctx.log(f"[{stage}] {plan.num_levels} levels, loss weights {np.round(a, 4).tolist()}{_distill_note(ft)}")
    h1 = train.fit(
        model,
        batched["train"],
        batched["val"],
        ft,
        stage=stage,
        levels=levels,
        weights=a,
        variables=train.non_bn_variables(model),
        training=False,
        **_distill(ft, perm),
        **ctx.fit_options,
    )
    has_bn = bool(train.bn_variables(model))
    h2 = train.fit(
        model,
        batched["train"],
        batched["val"],
        ft,
        stage=stage + "_bn",
        levels=levels,
        weights=a,
        variables=train.bn_variables(model),
        training=False,
        epochs=ft.bn_epochs if has_bn else 0,
        learning_rate=ft.bn_learning_rate,
        **_distill(ft, perm),
        **ctx.fit_options,
    )
    nested.save_model(model, path)
    ctx.rd.mark_done(stage, {"loss_weights": a.tolist(), "history": h1.to_dict(), "bn_history": h2.to_dict()})
    return model


def finetune_per_level_bn(
    recipe: Recipe,
    perm: keras.Model,
    plan: WidthPlan,
    graph: Any,
    batched: dict,
    ctx: StepContext,
) -> keras.Model:
    """The slimmable-networks comparison: joint fine-tuning with per-level BN statistics in training
    mode (all variables, gamma/beta included), then exact per-level re-estimation of the statistics."""
    stage, path = "finetune_plbn", ctx.rd.path("model_per_level_bn.keras")
    if ctx.rd.is_done(stage):
        with ctx.scope():
            return nested.load_model(path)
    with ctx.scope():
        model = nested.make_nested(perm, plan, stats_per_level=True)
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    ctx.log(f"[{stage}] joint fine-tuning with per-level BN statistics (training-mode BN)")
    hist = train.fit(
        model,
        batched["train"],
        batched["val"],
        recipe.finetune,
        stage=stage,
        levels=list(range(plan.num_levels)),
        weights=a,
        training=True,
        **_distill(recipe.finetune, perm),
        **ctx.fit_options,
    )
    augment.set_pass(ctx.pass_key, stage, "bn")
    train.recalibrate_bn(model, batched["train"], recipe.bn.recalibration_batches)
    nested.save_model(model, path)
    ctx.rd.mark_done(stage, {"history": hist.to_dict()})
    return model


def per_level_bn(
    recipe: Recipe, model: keras.Model, plan: WidthPlan, batched: dict, pass_key: Any = None
) -> keras.Model:
    """A copy of the fine-tuned model with per-level BN statistics re-estimated on training data."""
    keras.utils.set_random_seed(train.stage_seed(recipe.seed, "per_level_bn"))
    full = nested.extract_level(model, plan.num_levels - 1)
    pl = nested.make_nested(full, plan, stats_per_level=True)
    augment.set_pass(pass_key, "per_level_bn")
    train.recalibrate_bn(pl, batched["train"], recipe.bn.recalibration_batches)
    return pl


# --- evaluate, baselines, convert ----------------------------------------------------------------


BN_NOTE = (
    "Per-level BN columns are measured for comparison only: each level would need its own folded int8 "
    "weights on the device, so they cannot share one weight arena; model.keras and converted/ use the "
    "shared-BN model. 'recalibrated' re-estimates per-level statistics of the shared-BN fine-tuned "
    "weights (which were adapted to the frozen statistics); 'fine-tuned' trains a second copy with "
    "per-level statistics in training mode (slimmable networks), when bn.per_level_finetune is set."
)


def qat_finetune(recipe: Recipe, batched: dict, ctx: StepContext) -> dict[str, Any] | None:
    """Quantisation-aware fine-tuning of the fine-tuned levels (``recipe.qat``; ``reds_tf.qat``).

    Trains a copy of ``model.keras`` through its simulated int8 rounding, with activation ranges
    measured on the converter's calibration inputs, and writes ``model_qat.keras`` for the converter;
    ``model.keras`` (the float model the results report) is left as it is. The epoch with the best
    simulated int8 validation accuracy is kept, or the fine-tuned weights when no epoch beats them.
    Returns the summary for results.json (None when ``qat.epochs`` is 0).
    """
    rd, q = ctx.rd, recipe.qat
    if q.epochs <= 0:
        rd.path("model_qat.keras").unlink(missing_ok=True)  # qat turned off by a resume: convert model.keras
        return None
    if rd.is_done("qat"):
        return rd.done_info("qat")
    with ctx.scope():
        model = nested.load_model(rd.path("model.keras"))
        teacher = None  # the frozen dense teacher, only when the fine-tuning distilled from it
        if recipe.finetune.distill_weight and recipe.finetune.distill_teacher == "pretrained":
            teacher = keras.models.load_model(rd.path("permuted.keras"), compile=False)
    levels = list(range(nested.num_levels(model)))
    input_rank = len(model.inputs[0].shape) - 1  # without the batch axis
    cal_x, _ = convert.as_arrays(batched["val"], input_rank, recipe.convert.calibration_samples)
    per_level = recipe.convert.calibration_mode == "per_level"
    method = recipe.convert.activation_ranges
    ranges = qat.calibrate(model, cal_x, method=method, levels=levels if per_level else [None])
    weights = rd.done_info("finetune")["loss_weights"]
    ctx.log(
        f"[qat] {q.epochs} epochs through simulated int8 ({method} activation ranges on "
        f"{len(cal_x)} calibration samples, {recipe.convert.calibration_mode} calibration)"
    )
    with qat.simulated_int8(model, ranges) as twin:
        before = level_accuracies(twin, batched["val"], levels)
        ctx.log(f"[qat] simulated int8 validation before: {np.round(np.multiply(before, 100), 2).tolist()} %")
        hist = train.fit(
            twin,
            batched["train"],
            batched["val"],
            q,
            stage="qat",
            levels=levels,
            weights=weights,
            variables=train.non_bn_variables(model),
            training=False,
            **_distill(recipe.finetune, teacher),
            **ctx.fit_options,
        )
        kept = hist.best_score > float(np.mean(before))
        if not kept:
            model.set_weights(nested.load_model(rd.path("model.keras")).get_weights())
        after = level_accuracies(twin, batched["val"], levels)
    nested.save_model(model, rd.path("model_qat.keras"))
    summary = {
        "epochs": q.epochs,
        "learning_rate": q.learning_rate,
        "activation_ranges": method,
        "simulated_int8_val_before": before,
        "simulated_int8_val_after": after,
        "kept": "qat" if kept else "fine-tuned (no qat epoch beat it)",
        # the activation ranges trained with ("all" = the full level's, shared by every level)
        "ranges": {
            ("all" if k is None else str(k)): {n: [round(a, 5), round(b, 5)] for n, (a, b) in r.items()}
            for k, r in ranges.items()
        },
        "float_test_accuracy": level_accuracies(model, batched["test"], levels),
        "history": hist.to_dict(),
    }
    ctx.log(
        f"[qat] simulated int8 validation after: {np.round(np.multiply(after, 100), 2).tolist()} % "
        f"(kept: {summary['kept']})"
    )
    rd.mark_done("qat", summary)
    return summary


def run_fields(recipe: Recipe, splits: Any, pre: keras.Model, batched: dict) -> dict[str, Any]:
    """The results fields every mode shares: the recipe's settings, the data and the pretrained accuracy."""
    return {
        "model": recipe.model,
        "dataset": recipe.dataset,
        "synthetic_data": bool(splits.info.get("synthetic")),
        "schedule": recipe.schedule,
        "seed": recipe.seed,
        "importance": recipe.importance.method,
        "data": {"sizes": dict(splits.sizes), "num_classes": splits.num_classes, "info": splits.info},
        "pretrained": {
            "test_accuracy": accuracy(pre, batched["test"]),
            "val_accuracy": accuracy(pre, batched["val"]),
        },
    }


def evaluate_run(
    recipe: Recipe,
    splits: Any,
    batched: dict,
    pre: keras.Model,
    model: keras.Model,
    graph: Any,
    plan: WidthPlan,
    report: dict,
    ctx: StepContext,
    trained_plbn: keras.Model | None = None,
) -> dict[str, Any]:
    """Per-level validation and test accuracy plus exact costs; the nested vs extracted-model check."""

    def progress(what: str) -> Any:
        return lambda line: ctx.log(f"[evaluate] {what} {line}")

    val = level_accuracies(model, batched["val"], log=progress("validation"))
    test = level_accuracies(model, batched["test"], log=progress("test"))
    cols: dict[str, Any] = {"val_accuracy": val, "test_accuracy": test}
    notes = []
    if recipe.bn.recalibrate and any(train.is_bn(layer) for layer in model.layers):
        ctx.log("[evaluate] re-estimating per-level BN statistics (comparison only)")
        pl = per_level_bn(recipe, model, plan, batched, ctx.pass_key)
        cols["test_accuracy_per_level_bn"] = level_accuracies(
            pl, batched["test"], log=progress("per-level BN")
        )
    if trained_plbn is not None:
        cols["test_accuracy_per_level_bn_trained"] = level_accuracies(
            trained_plbn, batched["test"], log=progress("per-level BN fine-tuned")
        )
    if len(cols) > 2:
        notes.append(BN_NOTE)
    x = next(iter(batched["test"]))[0]
    agree = level_max_abs_diff(model, x, lambda k: nested.extract_level(model, k))
    results = {
        "recipe": recipe.name,
        **run_fields(recipe, splits, pre, batched),
        "levels": level_rows(graph, plan, **cols),
        "extract_level_max_abs_diff": agree,
        "permute_max_abs_diff": ctx.rd.done_info("permute").get("max_abs_diff"),
        "loss_weights": ctx.rd.done_info("finetune").get("loss_weights"),
        "solver": {k: v for k, v in report.items() if k != "plan"},
        "notes": notes,
    }
    return results


def baselines(
    recipe: Recipe,
    pre: keras.Model,
    reds_model: keras.Model,
    graph: Any,
    plan: WidthPlan,
    batched: dict,
    ctx: StepContext,
) -> dict[str, Any]:
    """The paper's comparisons: REDS with magnitude / random ranking, and each level trained from scratch."""
    out: dict[str, Any] = {}
    for name in recipe.baselines:
        sub = ctx.in_dir(RunDir(ctx.rd.root / "baselines" / name))
        if name == "scratch":
            levels = range(plan.num_levels)
            lv = [scratch_level(recipe, reds_model, graph, plan, k, batched, sub) for k in levels]
        else:
            scores = rank(recipe, pre, batched, name, sub)
            perm, sorted_scores = permute_model(pre, scores, batched, sub)
            g, p, _ = solve_plan(recipe, perm, sorted_scores, sub)
            m = finetune(recipe, perm, p, g, batched, sub, stage="finetune")
            lv = level_rows(g, p, test_accuracy=level_accuracies(m, batched["test"]))
            lv = [{k: r[k] for k in ("level", "macs", "macs_pct", "test_accuracy")} for r in lv]
        out[name] = {"levels": lv}
        ctx.log(f"[baseline {name}] " + ", ".join(f"{100 * r['test_accuracy']:.2f}%" for r in lv))
    return out


def scratch_stage(k: int, epochs: int, default_epochs: int) -> str:
    """The training stage of level ``k``'s scratch baseline: ``scratch_level<k>`` for the recipe's
    epochs (the pipeline's), ``scratch_level<k>_e<N>`` for another count, so the two never mix."""
    return f"scratch_level{k}" if epochs == default_epochs else f"scratch_level{k}_e{epochs}"


def scratch_level(
    recipe: Recipe,
    reds_model: keras.Model,
    graph: Graph,
    plan: WidthPlan,
    k: int,
    batched: dict,
    ctx: StepContext,
    *,
    epochs: int | None = None,
) -> dict[str, Any]:
    """Level ``k``'s architecture trained from scratch: the baseline REDS's nested level is compared with.

    The level is extracted from the nested model and re-initialised from (seed, level), trained for
    ``epochs`` (default: pretraining + fine-tuning epochs, the REDS model's training budget) with the
    pretraining settings, its BN statistics re-estimated, then measured on the test split. ``ctx``
    writes into the baseline's own run directory (``baselines/scratch``): each epoch is checkpointed
    (``ctx.resume`` continues an interrupted level) and a finished level is recorded in its
    ``state.json``, so asking for it again returns the recorded row without training.

    Returns the results row: level, macs, macs_pct, test_accuracy, epochs, seed, wall_seconds.
    """
    default = recipe.pretrain.epochs + recipe.finetune.epochs
    epochs = default if epochs is None else int(epochs)
    stage = scratch_stage(k, epochs, default)
    if ctx.rd.is_done(stage):
        return dict(ctx.rd.done_info(stage)["row"])
    t0 = time.perf_counter()
    arch = nested.extract_level(reds_model, k)
    keras.utils.set_random_seed(train.stage_seed(recipe.seed, f"scratch_level{k}/init"))
    with ctx.scope():
        m = keras.models.clone_model(arch)  # same architecture, fresh initial weights
    ctx.log(f"[scratch] level {k}: {m.count_params():,} params, {epochs} epochs")
    hist = train.fit(m, batched["train"], batched["val"], recipe.pretrain, stage=stage, epochs=epochs,
                     **ctx.fit_options)  # fmt: skip
    if any(train.is_bn(layer) for layer in m.layers):  # as for the pretrained model
        augment.set_pass(ctx.pass_key, stage, "bn")
        train.recalibrate_bn(m, batched["train"], recipe.bn.recalibration_batches)
    cost = level_rows(graph, plan)[k]
    row = {
        "level": k,
        "macs": cost["macs"],
        "macs_pct": cost["macs_pct"],
        "test_accuracy": accuracy(m, batched["test"]),
        "epochs": epochs,
        "seed": recipe.seed,
        # this call's time: a resumed level counts only the epochs it trained now
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if hist.resumed_from:
        row["resumed_from_epoch"] = hist.resumed_from
    ctx.rd.mark_done(stage, {"row": row, "history": hist.to_dict()})
    return row


def convert_run(recipe: Recipe, batched: dict, ctx: StepContext) -> dict[str, Any] | None:
    """Convert the shared-BN nested model to int8 TFLite (when the recipe enables it).

    Returns the summary for results.json: bundle sizes, per-level int8 accuracy and, when the firmware
    runtime cannot run a model's ops, ``firmware_blob_error`` (the TFLite files are written anyway).
    When a verification check fails the summary carries ``verification_failed`` (the error's text) and
    the step is not marked done: the caller records the numbers, then raises (``pipeline.run``).
    """
    rd, log = ctx.rd, ctx.log
    if not recipe.convert.enabled:
        return None
    if rd.is_done("convert"):
        return rd.done_info("convert")
    failed = None
    try:
        report = convert.convert(
            rd.root,  # the model the run deploys: model_qat.keras after qat_finetune, else model.keras
            rd.path("converted"),
            levels="all",
            # The validation split: a fixed, seeded, unaugmented sample read from its start, so that
            # `reds convert RUN_DIR` calibrates on exactly these inputs too (the training stream is
            # reshuffled and augmented on every pass).
            calibration=batched["val"],
            calibration_samples=recipe.convert.calibration_samples,
            test_data=batched["test"],
            verify=recipe.convert.verify,
            calibration_mode=recipe.convert.calibration_mode,
            equalize=recipe.convert.equalize,
            activation_ranges=recipe.convert.activation_ranges,
            log=log,
        )
    except convert.VerificationError as e:
        if e.report is None:
            raise
        report, failed = e.report, str(e)
    rep = report.to_dict()
    summary = {
        "out_dir": str(rd.path("converted")),
        "bundle_bytes": rep.get("bundle_bytes"),
        "naive_sum_bytes": rep.get("naive_sum_bytes"),
        "full_standalone_bytes": rep.get("full_standalone_bytes"),
        "int8_accuracy": [lv.get("int8_accuracy") for lv in rep.get("levels", [])],
    }
    if (rep.get("firmware") or {}).get("error"):
        summary["firmware_blob_error"] = rep["firmware"]["error"]
        log(f"[convert] no firmware blob: {summary['firmware_blob_error']}")
    if failed is not None:
        summary["verification_failed"] = failed
        log(f"[convert] VERIFICATION FAILED: {failed}")
        return summary
    rd.mark_done("convert", summary)
    log(f"[convert] wrote {rd.path('converted')}: bundle {summary['bundle_bytes']} B")
    return summary
