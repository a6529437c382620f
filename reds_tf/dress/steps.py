"""The DRESS pipeline's steps (``mode: dress``), each resumable from the run directory like REDS's.

    pretrained model -> per-weight importance -> row orders -> counts (MILP) -> joint fine-tune
    -> evaluate -> convert (``reds_tf.convert.dress``, when present)

Pretraining, data loading and the step context are REDS's (``reds_tf.steps``); fine-tuning is REDS's
trainer with REDS's loss weights over the row-sparse levels.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from .. import train
from .._keras import keras
from ..convert import verify
from ..data import augment
from ..evaluate import level_accuracies, level_max_abs_diff
from ..recipe import Recipe
from ..runstore import atomic_write_text, require_finished
from ..steps import StepContext, json_text, load_arrays, load_data, run_fields, save_arrays
from . import scores as weight_scores
from .costs import ModelCosts, model_costs
from .counts import solve_counts
from .export import expand_level, to_plain
from .model import candidate_layers, load_model, make_row_sparse, save_model
from .plan import RowPlan

CONVERTER = "reds_tf.convert.dress"


def rank_weights(
    recipe: Recipe, model: keras.Model, batched: dict, ctx: StepContext
) -> dict[str, np.ndarray]:
    """Per-weight importance of every Dense/Conv2D layer (``weight_scores.npz``)."""
    path = ctx.rd.path("weight_scores.npz")
    if ctx.rd.is_done("dress_importance"):
        return load_arrays(path)
    method = recipe.importance.method
    if method == "taylor":
        augment.set_pass(ctx.pass_key, "importance")
        s = weight_scores.taylor_scores(model, batched["train"], num_batches=recipe.importance.num_batches)
    elif method == "magnitude":
        s = weight_scores.magnitude_scores(model)
    else:
        s = weight_scores.random_scores(model, seed=recipe.seed)
    save_arrays(path, s)
    ctx.rd.mark_done("dress_importance", {"method": method, "layers": list(s)})
    return s


def orders(scores: dict[str, np.ndarray], ctx: StepContext) -> dict[str, np.ndarray]:
    """Per-row importance orders (``row_orders.npz``)."""
    path = ctx.rd.path("row_orders.npz")
    if ctx.rd.is_done("dress_orders"):
        return load_arrays(path)
    out = weight_scores.row_orders(scores)
    save_arrays(path, out)
    ctx.rd.mark_done("dress_orders")
    return out


def solve(
    recipe: Recipe, model: keras.Model, scores: dict[str, np.ndarray], ctx: StepContext
) -> tuple[ModelCosts, RowPlan, dict[str, Any]]:
    """Per-row counts under the recipe's MAC (and weight-byte) budgets (``row_plan.json``)."""
    names = [n for n, _ in candidate_layers(model)]
    mc = model_costs(model, names)
    if ctx.rd.is_done("dress_solve"):
        return mc, RowPlan.load(ctx.rd.path("row_plan.json")), ctx.rd.done_info("dress_solve")
    s = recipe.solve
    plan, report = solve_counts(
        mc,
        scores,
        list(s.budgets),
        weight_bytes=[int(b) for b in recipe.dress.weight_bytes] or None,
        include_full=s.include_full,
        min_count=recipe.dress.min_count,
        granularity=s.granularity,
        solver=s.solver,
        time_limit=s.time_limit,
        gap=s.gap,
        strategy=s.strategy,
    )
    plan.save(ctx.rd.path("row_plan.json"))
    atomic_write_text(ctx.rd.path("solve_report.json"), json_text(report))
    ctx.log(
        f"[dress solve] status={report['status']}, wall_s={report['wall_s']}, "
        f"objective={report['objective']:.4f}"
    )
    ctx.log(plan.describe())
    ctx.rd.mark_done("dress_solve", report)
    return mc, plan, report


def level_params(model: keras.Model, mc: ModelCosts, plan: RowPlan) -> list[int]:
    """Trainable parameters each level uses (kept row-sparse weights + everything else)."""
    dense = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    full = mc.kept_weights(plan.fan_in)
    return [dense - full + mc.kept_weights(row) for row in plan.counts]


def finetune(
    recipe: Recipe,
    pre: keras.Model,
    row_orders: dict[str, np.ndarray],
    plan: RowPlan,
    mc: ModelCosts,
    batched: dict,
    ctx: StepContext,
) -> keras.Model:
    """Joint fine-tuning of all row-sparse levels with REDS's trainer, loss weights and BN handling
    (shared BN with frozen statistics, then the gamma/beta-only stage)."""
    stage, path = "dress_finetune", ctx.rd.path("model.keras")
    if ctx.rd.is_done(stage):
        with ctx.scope():
            return load_model(path)
    with ctx.scope():
        model = make_row_sparse(pre, row_orders, plan)
    a = train.loss_weights(level_params(model, mc, plan))
    levels = list(range(plan.num_levels))
    ft = recipe.finetune
    ctx.log(f"[{stage}] {plan.num_levels} row-sparse levels, loss weights {np.round(a, 4).tolist()}")
    common = dict(levels=levels, weights=a, training=False, **ctx.fit_options)
    distill = {"distill_weight": ft.distill_weight, "distill_temperature": ft.distill_temperature}
    h1 = train.fit(
        model, batched["train"], batched["val"], ft, stage=stage,
        variables=train.non_bn_variables(model), **distill, **common,
    )  # fmt: skip
    has_bn = bool(train.bn_variables(model))
    h2 = train.fit(
        model, batched["train"], batched["val"], ft, stage=stage + "_bn",
        variables=train.bn_variables(model), epochs=ft.bn_epochs if has_bn else 0,
        learning_rate=ft.bn_learning_rate, **distill, **common,
    )  # fmt: skip
    save_model(model, path)
    ctx.rd.mark_done(stage, {"loss_weights": a.tolist(), "history": h1.to_dict(), "bn_history": h2.to_dict()})
    return model


def level_rows(
    model: keras.Model, mc: ModelCosts, plan: RowPlan, **accuracy_columns: list[float]
) -> list[dict[str, Any]]:
    """One row per level: counts, true MACs, parameters, int8 weight bytes incl. indices, peak
    activation memory (the full model's: row sparsity keeps every activation) and accuracies."""
    params = level_params(model, mc, plan)
    rows = []
    for k, row in enumerate(plan.counts):
        m = mc.macs(row)
        r: dict[str, Any] = {
            "level": k,
            "counts": list(row),
            "density_pct": round(100.0 * mc.kept_weights(row) / mc.kept_weights(plan.fan_in), 2),
            "macs": int(m),
            "macs_pct": round(100.0 * m / mc.full_macs, 2),
            "params": int(params[k]),
            "params_pct": round(100.0 * params[k] / params[-1], 2)
            if plan.counts[-1] == plan.fan_in
            else None,
            "weight_bytes_int8": int(mc.weight_bytes(row)),
            "peak_memory_int8": int(mc.peak_memory),
        }
        for name, values in accuracy_columns.items():
            r[name] = float(values[k])
        rows.append(r)
    return rows


NOTE = (
    "DRESS levels: every row (output unit) of each Dense/Conv2D layer keeps its `counts` most important "
    "weights (row-balanced, nested); depthwise layers stay dense. MACs are true MACs of the whole model. "
    "'Weights int8 (B)' of a level includes one column index per kept weight (uint8 for fan_in <= 256, "
    "else uint16; a whole row needs none); `shared_weight_bytes_int8` is the flash of the one weight set "
    "serving every level."
)


def evaluate(
    recipe: Recipe,
    splits: Any,
    batched: dict,
    pre: keras.Model,
    model: keras.Model,
    mc: ModelCosts,
    plan: RowPlan,
    report: dict,
    ctx: StepContext,
) -> dict[str, Any]:
    """Per-level validation/test accuracy and costs, plus the row-sparse vs zero-expanded dense check."""

    def progress(what: str) -> Any:
        return lambda line: ctx.log(f"[evaluate] {what} {line}")

    val = level_accuracies(model, batched["val"], log=progress("validation"))
    test = level_accuracies(model, batched["test"], log=progress("test"))
    plain, row_orders, counts, names = to_plain(model)
    x = next(iter(batched["test"]))[0]
    agree = level_max_abs_diff(model, x, lambda k: expand_level(plain, row_orders, counts, names, k))
    return {
        "recipe": recipe.name,
        "method": "DRESS",
        "mode": "dress",
        **run_fields(recipe, splits, pre, batched),
        "levels": level_rows(model, mc, plan, val_accuracy=val, test_accuracy=test),
        "row_plan": plan.to_dict(),
        "shared_weight_bytes_int8": mc.shared_weight_bytes(plan),
        "dense_weight_bytes_int8": mc.full_weight_bytes,
        "expanded_level_max_abs_diff": agree,
        "loss_weights": ctx.rd.done_info("dress_finetune").get("loss_weights"),
        "solver": {k: v for k, v in report.items() if k != "per_level"},
        "notes": [NOTE],
    }


def _calibration_images(batched: dict, samples: int) -> np.ndarray:
    xs, n = [], 0
    for x, _ in batched["val"]:
        xs.append(np.asarray(x))
        n += len(xs[-1])
        if n >= samples:
            break
    return np.concatenate(xs)[:samples]


def int8_accuracies(out_dir: Path, test: Any, levels: int) -> list[float] | None:
    """Test accuracy of every converted level (``level_{k}.tflite``, int8 in and out) under TFLite Micro;
    None when a level's file is missing."""
    files = [Path(out_dir) / f"level_{k}.tflite" for k in range(levels)]
    if not all(f.is_file() for f in files):
        return None
    xs, ys = zip(*((np.asarray(x), np.asarray(y).reshape(-1)) for x, y in test), strict=True)
    x, y = np.concatenate(xs), np.concatenate(ys)
    out = []
    for f in files:
        data = f.read_bytes()
        pred = verify.run_tflm(data, verify.quantize_input(x, verify.io_quant(data))).argmax(axis=1)
        out.append(float(np.mean(pred == y)))  # int8 outputs: dequantising keeps the argmax
    return out


def convert(recipe: Recipe, model: keras.Model, batched: dict, ctx: StepContext) -> dict[str, Any] | None:
    """Hand the fine-tuned model to ``reds_tf.convert.dress.convert_dress`` (int8, device blob,
    per-level checks) and measure every converted level's int8 test accuracy under TFLite Micro; a
    checkout without that module records why nothing was converted."""
    rd, log = ctx.rd, ctx.log
    if not recipe.convert.enabled:
        return None
    if rd.is_done("dress_convert"):
        return rd.done_info("dress_convert")
    if importlib.util.find_spec(CONVERTER) is None:
        msg = (
            f"{CONVERTER} is not in this checkout, so the DRESS model was not converted (model.keras and "
            "the float results are complete). Fix: with the DRESS converter installed, run the recipe again, "
            f"or call {CONVERTER}.convert_dress(*reds_tf.dress.to_plain(reds_tf.dress.load_model("
            "'RUN_DIR/model.keras')), calibration_images, out_dir)."
        )
        log(f"[dress convert] skipped: {msg}")
        return {"skipped": msg}
    convert_dress = importlib.import_module(CONVERTER).convert_dress
    plain, row_orders, counts, names = to_plain(model)
    out = convert_dress(
        plain, row_orders, counts, names, _calibration_images(batched, recipe.convert.calibration_samples),
        rd.path("converted"),
    )  # fmt: skip
    summary = out.to_dict() if hasattr(out, "to_dict") else out if isinstance(out, dict) else {}
    summary = {"out_dir": str(rd.path("converted")), **summary}
    summary["int8_accuracy"] = int8_accuracies(rd.path("converted"), batched["test"], len(counts))
    rd.mark_done("dress_convert", summary)
    log(f"[dress convert] wrote {rd.path('converted')}")
    return summary


def run_steps(
    recipe: Recipe, splits: Any, batched: dict, pre: keras.Model, ctx: StepContext
) -> tuple[dict[str, Any], keras.Model]:
    """The DRESS steps from importance to evaluation: (results dict, fine-tuned row-sparse model)."""
    s = rank_weights(recipe, pre, batched, ctx)
    row_orders = orders(s, ctx)
    mc, plan, report = solve(recipe, pre, s, ctx)
    model = finetune(recipe, pre, row_orders, plan, mc, batched, ctx)
    return evaluate(recipe, splits, batched, pre, model, mc, plan, report, ctx), model


def evaluate_dir(rd: Any, split: str, data_dir: Any) -> list[dict[str, Any]]:
    """Re-measure every level of a finished DRESS run's ``model.keras`` on ``split`` (rows as in results)."""
    needed = ("row_plan.json", "pretrained.keras", "model.keras")
    require_finished(rd, "dress_finetune", needed, "fine-tuned DRESS model")
    recipe = Recipe.load(rd.path("recipe.yaml"))
    _, batched = load_data(recipe, data_dir)
    model = load_model(rd.path("model.keras"))
    plan = RowPlan.load(rd.path("row_plan.json"))
    mc = model_costs(keras.models.load_model(rd.path("pretrained.keras"), compile=False), plan.layers)
    return level_rows(model, mc, plan, **{f"{split}_accuracy": level_accuracies(model, batched[split])})
