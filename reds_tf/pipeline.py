"""The end-to-end REDS pipeline driven by a recipe: one call per step, in the method's order.

    pretrain -> importance -> permute -> solve -> fine-tune -> evaluate -> (baselines) -> convert

Every artifact lands in one run directory (see ``runstore.RunDir``). Each step records completion in
``state.json``; training stages checkpoint every epoch, so ``resume=True`` skips finished steps and
continues an interrupted stage at its next epoch.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import costs, data, importance, nested, permute, plots, solve, topology, train, zoo
from ._keras import keras, tf
from .errors import NotARedsModelError, RedsError
from .evaluate import accuracy, level_accuracies, level_rows, write_results
from .plan import WidthPlan
from .recipe import Recipe
from .runstore import RunDir, atomic_write_bytes, atomic_write_text

BN_NOTE = (
    "Per-level BN columns are measured for comparison only: each level would need its own folded int8 "
    "weights on the device, so they cannot share one weight arena; model.keras and converted/ use the "
    "shared-BN model. 'recalibrated' re-estimates per-level statistics of the shared-BN fine-tuned "
    "weights (which were adapted to the frozen statistics); 'fine-tuned' trains a second copy with "
    "per-level statistics in training mode (slimmable networks), when bn.per_level_finetune is set."
)


class RunExistsError(RedsError, FileExistsError):
    """The run directory already holds a run and resume was not requested."""


def run(
    recipe: Recipe,
    run_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    resume: bool = False,
    strategy: str | None = None,
    progress: bool = True,
    max_epochs_this_call: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Run the whole pipeline for ``recipe`` into ``run_dir`` and return the results dict."""
    rd = RunDir(run_dir)
    if not resume and rd.state()["done"] or not resume and rd.state()["epochs"]:
        raise RunExistsError(
            f"Run directory {rd.root} already holds a run. Fix: pass --resume to continue it, or choose "
            "another --run-dir."
        )
    t0 = time.perf_counter()
    keras.utils.set_random_seed(recipe.seed)
    atomic_write_text(rd.path("recipe.yaml"), recipe.to_yaml())
    strat = make_strategy(strategy)
    ctx = dict(rd=rd, resume=resume, strategy=strat, progress=progress, stop=max_epochs_this_call, log=log)

    splits, batched = load_data(recipe, data_dir)
    pre = pretrain(recipe, splits, batched, **ctx)
    scores = rank(recipe, pre, batched, recipe.importance.method, rd)
    perm, sorted_scores = permute_model(pre, scores, batched, rd)
    graph, plan, report = solve_plan(recipe, perm, sorted_scores, rd, log)
    model = finetune(recipe, perm, plan, graph, batched, stage="finetune", **ctx)
    trained_plbn = None
    if recipe.bn.per_level_finetune and train.bn_variables(perm):
        trained_plbn = finetune_per_level_bn(recipe, perm, plan, graph, batched, **ctx)
    results = evaluate_run(recipe, splits, batched, pre, model, graph, plan, report, rd, log, trained_plbn)
    if recipe.baselines:
        results["baselines"] = baselines(recipe, pre, model, graph, plan, batched, **ctx)
    results["seconds"] = round(time.perf_counter() - t0 + rd.done_info("timing").get("seconds", 0.0), 1)
    write_results(rd.root, results)
    plots.accuracy_vs_macs(results, rd.path("plots", "accuracy_vs_macs.png"))
    plots.widths(plan, rd.path("plots", "widths.png"), f"{recipe.model}: per-layer widths")
    results["converted"] = convert_run(recipe, rd, batched, log)
    int8 = (results["converted"] or {}).get("int8_accuracy") or []
    if len(int8) == len(results["levels"]):
        for row, acc in zip(results["levels"], int8, strict=True):
            row["int8_test_accuracy"] = acc
    write_results(rd.root, results)
    rd.mark_done("timing", {"seconds": results["seconds"]})
    return results


def make_strategy(name: str | None) -> tf.distribute.Strategy | None:
    """None (default device) or ``"mirrored"`` (tf.distribute.MirroredStrategy over local devices)."""
    if name in (None, "", "none", "default"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    raise ValueError(f"Unknown strategy. Received: strategy={name!r}. Fix: use 'mirrored' or leave it out.")


def _scope(strategy: tf.distribute.Strategy | None) -> Any:
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


# --- data --------------------------------------------------------------------------------------------


def load_data(recipe: Recipe, data_dir: str | Path | None) -> tuple[Any, dict[str, tf.data.Dataset]]:
    """Load the recipe's dataset; return the splits and their batched versions (train/val/test)."""
    d = recipe.data
    splits = data.load(
        recipe.dataset,
        data_dir,
        validation_fraction=d.validation_fraction,
        seed=recipe.seed,
        limit=d.limit,
        augment=d.augment,
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
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(str(tmp))
    os.replace(tmp, path)
    return path


def pretrain(
    recipe: Recipe,
    splits: Any,
    batched: dict,
    *,
    rd: RunDir,
    resume: bool,
    strategy: Any,
    progress: bool,
    stop: int | None,
    log: Any,
) -> keras.Model:
    """Train the dense zoo model (or load ``pretrained.keras`` when this step is already done)."""
    path = rd.path("pretrained.keras")
    with _scope(strategy):
        if rd.is_done("pretrain"):
            return keras.models.load_model(path, compile=False)
        shape = dict(num_classes=splits.num_classes, input_shape=splits.input_shape)
        model = zoo.build(recipe.model, **shape, **recipe.model_options)
    log(f"[pretrain] {model.name}: {model.count_params():,} params, {recipe.pretrain.epochs} epochs")
    hist = train.fit(
        model,
        batched["train"],
        batched["val"],
        recipe.pretrain,
        stage="pretrain",
        run=rd,
        resume=resume,
        strategy=strategy,
        max_epochs_this_call=stop,
        progress=progress,
    )
    # Short schedules leave BN moving statistics lagging (momentum 0.99): re-estimate them exactly
    # on training data, since joint fine-tuning freezes them (reference behaviour).
    if any(train.is_bn(layer) for layer in model.layers):
        train.recalibrate_bn(model, batched["train"], recipe.bn.recalibration_batches)
    _save_keras(model, path)
    rd.mark_done("pretrain", {"history": hist.to_dict()})
    return model


def _save_scores(path: Path, scores: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in scores.items()})
    atomic_write_bytes(path, buf.getvalue())


def _load_scores(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def rank(recipe: Recipe, model: keras.Model, batched: dict, method: str, rd: RunDir) -> dict[str, np.ndarray]:
    """Importance scores per unit group (Taylor, magnitude or random)."""
    path = rd.path("scores.npz")
    if rd.is_done("importance"):
        return _load_scores(path)
    if method == "taylor":
        scores = importance.taylor_scores(model, batched["train"], num_batches=recipe.importance.num_batches)
    elif method == "magnitude":
        scores = importance.magnitude_scores(model)
    else:
        scores = importance.random_scores(model, seed=recipe.seed)
    _save_scores(path, scores)
    rd.mark_done("importance", {"method": method})
    return scores


def permute_model(model: keras.Model, scores: dict, batched: dict, rd: RunDir) -> tuple[keras.Model, dict]:
    """Sort units by score (function-preserving); record the max output difference it caused."""
    path, spath = rd.path("permuted.keras"), rd.path("sorted_scores.npz")
    if rd.is_done("permute"):
        return keras.models.load_model(path, compile=False), _load_scores(spath)
    perm, sorted_scores = permute.sort_model(model, scores)
    x = next(iter(batched["val"]))[0]
    diff = float(np.max(np.abs(model(x, training=False).numpy() - perm(x, training=False).numpy())))
    _save_keras(perm, path)
    _save_scores(spath, sorted_scores)
    rd.mark_done("permute", {"max_abs_diff": diff})
    return perm, sorted_scores


def solve_plan(recipe: Recipe, model: keras.Model, sorted_scores: dict, rd: RunDir, log: Any) -> tuple:
    """Knapsack over widths for every budget; writes plan.json and solve_report.json."""
    graph = topology.graph_of(model)
    if rd.is_done("solve"):
        return graph, WidthPlan.load(rd.path("plan.json")), rd.done_info("solve")
    s = recipe.solve
    budgets = [solve.Budget(b, peak_memory=s.peak_memory_bytes) for b in s.budgets]
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
        progress=lambda line: log(f"[solve] {line}"),
    )
    rep = report.to_dict()
    report.plan.save(rd.path("plan.json"))
    atomic_write_text(rd.path("solve_report.json"), _json(rep))
    log(f"[solve] {_solver_summary(rep)}")
    log(report.plan.describe())
    rd.mark_done("solve", rep)
    return graph, report.plan, rep


def _solver_summary(rep: dict[str, Any]) -> str:
    keys = ("status", "solver", "strategy", "wall_s", "objective", "gap")
    return ", ".join(f"{k}={rep[k]}" for k in keys if k in rep) or "solved"


def _json(x: Any) -> str:
    import json

    return json.dumps(x, indent=2, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)) + "\n"


def finetune(
    recipe: Recipe,
    perm: keras.Model,
    plan: WidthPlan,
    graph: Any,
    batched: dict,
    *,
    stage: str,
    rd: RunDir,
    resume: bool,
    strategy: Any,
    progress: bool,
    stop: int | None,
    log: Any,
) -> keras.Model:
    """Joint fine-tuning of all levels (shared BN, frozen statistics), then the gamma/beta-only stage."""
    path = rd.path("model.keras")
    if rd.is_done(stage):
        with _scope(strategy):
            return nested.load_model(path)
    with _scope(strategy):
        model = nested.make_nested(perm, plan)
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    levels = list(range(plan.num_levels))
    log(f"[{stage}] {plan.num_levels} levels, loss weights {np.round(a, 4).tolist()}")
    ft = recipe.finetune
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
        run=rd,
        resume=resume,
        strategy=strategy,
        max_epochs_this_call=stop,
        progress=progress,
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
        run=rd,
        resume=resume,
        strategy=strategy,
        max_epochs_this_call=stop,
        progress=progress,
    )
    nested.save_model(model, path)
    rd.mark_done(stage, {"loss_weights": a.tolist(), "history": h1.to_dict(), "bn_history": h2.to_dict()})
    return model


def finetune_per_level_bn(
    recipe: Recipe,
    perm: keras.Model,
    plan: WidthPlan,
    graph: Any,
    batched: dict,
    *,
    rd: RunDir,
    resume: bool,
    strategy: Any,
    progress: bool,
    stop: int | None,
    log: Any,
) -> keras.Model:
    """The slimmable-networks comparison: joint fine-tuning with per-level BN statistics in training
    mode (all variables, gamma/beta included), then exact per-level re-estimation of the statistics."""
    stage, path = "finetune_plbn", rd.path("model_per_level_bn.keras")
    if rd.is_done(stage):
        with _scope(strategy):
            return nested.load_model(path)
    with _scope(strategy):
        model = nested.make_nested(perm, plan, stats_per_level=True)
    a = train.loss_weights([c.params for c in costs.plan_costs(graph, plan)])
    log(f"[{stage}] joint fine-tuning with per-level BN statistics (training-mode BN)")
    hist = train.fit(
        model,
        batched["train"],
        batched["val"],
        recipe.finetune,
        stage=stage,
        levels=list(range(plan.num_levels)),
        weights=a,
        training=True,
        run=rd,
        resume=resume,
        strategy=strategy,
        max_epochs_this_call=stop,
        progress=progress,
    )
    train.recalibrate_bn(model, batched["train"], recipe.bn.recalibration_batches)
    nested.save_model(model, path)
    rd.mark_done(stage, {"history": hist.to_dict()})
    return model


def per_level_bn(recipe: Recipe, model: keras.Model, plan: WidthPlan, batched: dict) -> keras.Model:
    """A copy of the fine-tuned model with per-level BN statistics re-estimated on training data."""
    full = nested.extract_level(model, plan.num_levels - 1)
    pl = nested.make_nested(full, plan, stats_per_level=True)
    train.recalibrate_bn(pl, batched["train"], recipe.bn.recalibration_batches)
    return pl


def evaluate_run(
    recipe: Recipe,
    splits: Any,
    batched: dict,
    pre: keras.Model,
    model: keras.Model,
    graph: Any,
    plan: WidthPlan,
    report: dict,
    rd: RunDir,
    log: Any,
    trained_plbn: keras.Model | None = None,
) -> dict[str, Any]:
    """Per-level validation and test accuracy plus exact costs; the nested vs extracted-model check."""
    val = level_accuracies(model, batched["val"])
    test = level_accuracies(model, batched["test"])
    cols: dict[str, Any] = {"val_accuracy": val, "test_accuracy": test}
    notes = []
    if recipe.bn.recalibrate and any(train.is_bn(layer) for layer in model.layers):
        pl = per_level_bn(recipe, model, plan, batched)
        cols["test_accuracy_per_level_bn"] = level_accuracies(pl, batched["test"])
    if trained_plbn is not None:
        cols["test_accuracy_per_level_bn_trained"] = level_accuracies(trained_plbn, batched["test"])
    if len(cols) > 2:
        notes.append(BN_NOTE)
    x = next(iter(batched["test"]))[0]
    agree = []
    for k in range(plan.num_levels):
        nested.set_level(model, k)
        ref = model(x, training=False).numpy()
        agree.append(float(np.max(np.abs(ref - nested.extract_level(model, k)(x, training=False).numpy()))))
    nested.set_level(model, plan.num_levels - 1)
    results = {
        "recipe": recipe.name,
        "model": recipe.model,
        "dataset": recipe.dataset,
        "schedule": recipe.schedule,
        "seed": recipe.seed,
        "importance": recipe.importance.method,
        "data": {"sizes": dict(splits.sizes), "num_classes": splits.num_classes, "info": splits.info},
        "pretrained": {
            "test_accuracy": accuracy(pre, batched["test"]),
            "val_accuracy": accuracy(pre, batched["val"]),
        },
        "levels": level_rows(graph, plan, **cols),
        "extract_level_max_abs_diff": agree,
        "permute_max_abs_diff": rd.done_info("permute").get("max_abs_diff"),
        "loss_weights": rd.done_info("finetune").get("loss_weights"),
        "solver": {k: v for k, v in report.items() if k != "plan"},
        "notes": notes,
    }
    for r in results["levels"]:
        acc = 100 * r["test_accuracy"]
        log(f"[evaluate] level {r['level']}: {r['macs_pct']:.1f}% MACs, test acc {acc:.2f}%")
    return results


def baselines(
    recipe: Recipe,
    pre: keras.Model,
    reds_model: keras.Model,
    graph: Any,
    plan: WidthPlan,
    batched: dict,
    *,
    rd: RunDir,
    resume: bool,
    strategy: Any,
    progress: bool,
    stop: int | None,
    log: Any,
) -> dict[str, Any]:
    """The paper's comparisons: REDS with magnitude / random ranking, and each level trained from scratch."""
    out: dict[str, Any] = {}
    for name in recipe.baselines:
        sub = RunDir(rd.root / "baselines" / name)
        if name == "scratch":
            rows = []
            for k in range(plan.num_levels):
                arch = nested.extract_level(reds_model, k)
                with _scope(strategy):
                    m = keras.models.clone_model(arch)  # same architecture, fresh initial weights
                epochs = recipe.pretrain.epochs + recipe.finetune.epochs
                train.fit(
                    m,
                    batched["train"],
                    batched["val"],
                    recipe.pretrain,
                    stage=f"scratch_level{k}",
                    epochs=epochs,
                    run=sub,
                    resume=resume,
                    strategy=strategy,
                    max_epochs_this_call=stop,
                    progress=progress,
                )
                if any(train.is_bn(layer) for layer in m.layers):  # as for the pretrained model
                    train.recalibrate_bn(m, batched["train"], recipe.bn.recalibration_batches)
                rows.append(accuracy(m, batched["test"]))
            lv = level_rows(graph, plan, test_accuracy=rows)
        else:
            scores = rank(recipe, pre, batched, name, sub)
            perm, sorted_scores = permute_model(pre, scores, batched, sub)
            g, p, _ = solve_plan(recipe, perm, sorted_scores, sub, log)
            m = finetune(
                recipe,
                perm,
                p,
                g,
                batched,
                stage="finetune",
                rd=sub,
                resume=resume,
                strategy=strategy,
                progress=progress,
                stop=stop,
                log=log,
            )
            lv = level_rows(g, p, test_accuracy=level_accuracies(m, batched["test"]))
        out[name] = {
            "levels": [{k: r[k] for k in ("level", "macs", "macs_pct", "test_accuracy")} for r in lv]
        }
        log(f"[baseline {name}] " + ", ".join(f"{100 * r['test_accuracy']:.2f}%" for r in lv))
    return out


def convert_run(recipe: Recipe, rd: RunDir, batched: dict, log: Any) -> dict[str, Any] | None:
    """Convert the shared-BN nested model to int8 TFLite (when enabled and reds_tf.convert is present)."""
    if not recipe.convert.enabled:
        return None
    if rd.is_done("convert"):
        return rd.done_info("convert")
    try:
        from . import convert
    except ImportError as e:
        log(f"[convert] skipped: reds_tf.convert is not available ({e})")
        return {"skipped": str(e)}
    if not hasattr(convert, "convert"):
        return {"skipped": "reds_tf.convert has no convert() yet"}
    report = convert.convert(
        rd.path("model.keras"),
        rd.path("converted"),
        levels="all",
        calibration=batched["train"],
        calibration_samples=recipe.convert.calibration_samples,
        test_data=batched["test"],
        verify=recipe.convert.verify,
    )
    rep = report.to_dict() if hasattr(report, "to_dict") else {}
    summary = {
        "out_dir": str(rd.path("converted")),
        "bundle_bytes": rep.get("bundle_bytes"),
        "naive_sum_bytes": rep.get("naive_sum_bytes"),
        "full_standalone_bytes": rep.get("full_standalone_bytes"),
        "int8_accuracy": [lv.get("int8_accuracy") for lv in rep.get("levels", [])],
    }
    rd.mark_done("convert", summary)
    log(f"[convert] wrote {rd.path('converted')}: bundle {summary['bundle_bytes']} B")
    return summary


def evaluate_dir(run_dir: str | Path, split: str = "test", data_dir: str | Path | None = None) -> list[dict]:
    """Re-measure every level of a finished run's ``model.keras`` on ``split`` (rows as in results)."""
    rd = RunDir(run_dir)
    if not rd.is_done("finetune"):
        raise NotARedsModelError(
            f"{rd.root} has no fine-tuned model (model.keras). Fix: finish the run with reds run --resume."
        )
    recipe = Recipe.load(rd.path("recipe.yaml"))
    _, batched = load_data(recipe, data_dir)
    model = nested.load_model(rd.path("model.keras"))
    plan = WidthPlan.load(rd.path("plan.json"))
    graph = topology.graph_of(keras.models.load_model(rd.path("permuted.keras"), compile=False))
    return level_rows(graph, plan, **{f"{split}_accuracy": level_accuracies(model, batched[split])})
