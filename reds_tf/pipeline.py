"""The end-to-end REDS pipeline driven by a recipe: one call per step, in the method's order.

    pretrain -> importance -> permute -> solve -> fine-tune -> evaluate -> (baselines) -> convert

The steps themselves live in ``reds_tf.steps``. Every artifact lands in one run directory (see
``runstore.RunDir``). Each step records completion in
``state.json``; training stages checkpoint every epoch, so ``resume=True`` skips finished steps and
continues an interrupted stage at its next epoch.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, convert, model_source, nested, plots, topology, train
from ._keras import keras
from .data import augment
from .errors import NotARedsModelError, RunExistsError
from .evaluate import accuracy, level_accuracies, level_rows, write_results
from .plan import WidthPlan
from .recipe import Recipe
from .runstore import FINGERPRINT_FILE, RunDir, atomic_write_text
from .steps import (
    StepContext,
    finetune,
    finetune_per_level_bn,
    load_data,
    make_strategy,
    per_level_bn,
    permute_model,
    pretrain,
    rank,
    solve_plan,
)

__all__ = ["RunExistsError", "evaluate_dir", "load_data", "make_strategy", "run"]

BN_NOTE = (
    "Per-level BN columns are measured for comparison only: each level would need its own folded int8 "
    "weights on the device, so they cannot share one weight arena; model.keras and converted/ use the "
    "shared-BN model. 'recalibrated' re-estimates per-level statistics of the shared-BN fine-tuned "
    "weights (which were adapted to the frozen statistics); 'fine-tuned' trains a second copy with "
    "per-level statistics in training mode (slimmable networks), when bn.per_level_finetune is set."
)


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
    """Run the whole pipeline for ``recipe`` into ``run_dir`` and return the results dict.

    ``resume`` continues the run started in ``run_dir`` only if it was started with the same
    fingerprint (resolved recipe incl. schedule, seed and limit; data source; package version);
    resuming a finished run returns its results and changes no file.
    """
    model_source.check(recipe.model, recipe.model_options)  # a bad model name fails before data loads
    if model_source.is_file_name(recipe.model) and not (Path(run_dir) / FINGERPRINT_FILE).exists():
        model_source.load_file(recipe.model)  # an unreadable file fails before the run directory exists
    rd = RunDir(run_dir)
    rd.claim(fingerprint(recipe, data_dir), resume)
    if resume and rd.is_done("results"):
        log(f"{rd.root} is already complete; nothing to do.")
        return json.loads(rd.path("results.json").read_text())
    t0 = time.perf_counter()
    keras.utils.set_random_seed(recipe.seed)
    atomic_write_text(rd.path("recipe.yaml"), recipe.to_yaml())
    strat = make_strategy(strategy)
    splits, batched = load_data(recipe, data_dir)
    ctx = StepContext(
        rd,
        resume=resume,
        strategy=strat,
        progress=progress,
        stop=max_epochs_this_call,
        log=log,
        seed=recipe.seed,
        pass_key=splits.pass_key,
    )

    pre = pretrain(recipe, splits, batched, ctx)
    scores = rank(recipe, pre, batched, recipe.importance.method, ctx)
    perm, sorted_scores = permute_model(pre, scores, batched, ctx)
    graph, plan, report = solve_plan(recipe, perm, sorted_scores, ctx)
    model = finetune(recipe, perm, plan, graph, batched, ctx, stage="finetune")
    trained_plbn = None
    if recipe.bn.per_level_finetune and train.bn_variables(perm):
        trained_plbn = finetune_per_level_bn(recipe, perm, plan, graph, batched, ctx)
    results = evaluate_run(recipe, splits, batched, pre, model, graph, plan, report, ctx, trained_plbn)
    if recipe.baselines:
        results["baselines"] = baselines(recipe, pre, model, graph, plan, batched, ctx)
    write_results(rd.root, results)
    plots.accuracy_vs_macs(results, rd.path("plots", "accuracy_vs_macs.png"))
    plots.widths(plan, rd.path("plots", "widths.png"), f"{recipe.model}: per-layer widths")
    results["converted"] = convert_run(recipe, batched, ctx)
    int8 = (results["converted"] or {}).get("int8_accuracy") or []
    if len(int8) == len(results["levels"]):
        for row, acc in zip(results["levels"], int8, strict=True):
            row["int8_test_accuracy"] = acc
    # Wall time of this call (a resumed run counts only what it redid); stage timings are in state.json.
    results["wall_seconds_this_call"] = round(time.perf_counter() - t0, 1)
    results["reds_tf"] = {"version": __version__, "git_revision": _git_revision()}
    write_results(rd.root, results)
    rd.mark_done("results")
    return results


def _git_revision() -> str | None:
    """The checkout's commit (with ``+dirty`` for uncommitted changes), so results name their code."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
    except OSError:
        return None
    if rev.returncode != 0:
        return None
    return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def fingerprint(recipe: Recipe, data_dir: str | Path | None) -> dict[str, Any]:
    """What defines a run: a resumed run must match it exactly (see ``RunDir.claim``)."""
    return {
        "recipe": recipe.to_dict(),
        "data_dir": str(Path(data_dir).resolve()) if data_dir is not None else None,
        "model_file_sha256": model_source.digest(recipe.model),
        "reds_tf": __version__,
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
        "synthetic_data": bool(splits.info.get("synthetic")),
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
            rows = []
            for k in range(plan.num_levels):
                arch = nested.extract_level(reds_model, k)
                keras.utils.set_random_seed(train.stage_seed(recipe.seed, f"scratch_level{k}/init"))
                with ctx.scope():
                    m = keras.models.clone_model(arch)  # same architecture, fresh initial weights
                epochs = recipe.pretrain.epochs + recipe.finetune.epochs
                train.fit(
                    m,
                    batched["train"],
                    batched["val"],
                    recipe.pretrain,
                    stage=f"scratch_level{k}",
                    epochs=epochs,
                    **sub.fit_options,
                )
                if any(train.is_bn(layer) for layer in m.layers):  # as for the pretrained model
                    augment.set_pass(ctx.pass_key, f"scratch_level{k}", "bn")
                    train.recalibrate_bn(m, batched["train"], recipe.bn.recalibration_batches)
                rows.append(accuracy(m, batched["test"]))
            lv = level_rows(graph, plan, test_accuracy=rows)
        else:
            scores = rank(recipe, pre, batched, name, sub)
            perm, sorted_scores = permute_model(pre, scores, batched, sub)
            g, p, _ = solve_plan(recipe, perm, sorted_scores, sub)
            m = finetune(recipe, perm, p, g, batched, sub, stage="finetune")
            lv = level_rows(g, p, test_accuracy=level_accuracies(m, batched["test"]))
        out[name] = {
            "levels": [{k: r[k] for k in ("level", "macs", "macs_pct", "test_accuracy")} for r in lv]
        }
        ctx.log(f"[baseline {name}] " + ", ".join(f"{100 * r['test_accuracy']:.2f}%" for r in lv))
    return out


def convert_run(recipe: Recipe, batched: dict, ctx: StepContext) -> dict[str, Any] | None:
    """Convert the shared-BN nested model to int8 TFLite (when the recipe enables it)."""
    rd, log = ctx.rd, ctx.log
    if not recipe.convert.enabled:
        return None
    if rd.is_done("convert"):
        return rd.done_info("convert")
    report = convert.convert(
        rd.path("model.keras"),
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
        log=log,
    )
    rep = report.to_dict()
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
    needed = ("recipe.yaml", "plan.json", "permuted.keras", "model.keras")
    missing = [name for name in needed if not (rd.root / name).is_file()]
    if not rd.is_done("finetune") or missing:
        raise NotARedsModelError(
            f"{rd.root} has no complete fine-tuned model (missing: "
            f"{', '.join(missing) or 'finished fine-tuning'}). Fix: finish the run with reds run --recipe "
            f"{rd.root / 'recipe.yaml'} --run-dir {rd.root} --resume."
        )
    recipe = Recipe.load(rd.path("recipe.yaml"))
    _, batched = load_data(recipe, data_dir)
    model = nested.load_model(rd.path("model.keras"))
    plan = WidthPlan.load(rd.path("plan.json"))
    graph = topology.graph_of(keras.models.load_model(rd.path("permuted.keras"), compile=False))
    return level_rows(graph, plan, **{f"{split}_accuracy": level_accuracies(model, batched[split])})
