"""The end-to-end REDS pipeline driven by a recipe: one call per step, in the method's order.

    pretrain -> importance -> permute -> solve -> fine-tune -> evaluate -> (baselines) -> (qat) -> convert

A recipe with ``mode: dress`` runs DRESS's nested row-sparse levels instead (``reds_tf.dress.steps``):

    pretrain -> per-weight importance -> row orders -> counts -> fine-tune -> evaluate -> convert

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

from . import __version__, model_source, multiworker, nested, plots, topology, train
from ._keras import keras
from .convert import VerificationError
from .dress import steps as dress_steps
from .errors import NotARedsModelError, RunExistsError
from .evaluate import level_accuracies, level_rows, write_results
from .plan import WidthPlan, parse_levels
from .recipe import Recipe
from .runstore import FINGERPRINT_FILE, RunDir, atomic_write_text, require_finished
from .steps import (
    StepContext,
    adopt_pretrained,
    baselines,
    convert_run,
    evaluate_run,
    finetune,
    finetune_per_level_bn,
    load_data,
    make_strategy,
    permute_model,
    pretrain,
    qat_finetune,
    rank,
    scratch_level,
    scratch_stage,
    solve_plan,
)

__all__ = [
    "RunExistsError",
    "check_scratch_run",
    "evaluate_dir",
    "git_revision",
    "load_data",
    "make_strategy",
    "run",
    "scratch",
]


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
    pretrained_from: str | Path | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline for ``recipe`` into ``run_dir`` and return the results dict.

    ``resume`` continues the run started in ``run_dir`` only if it was started with the same
    fingerprint (resolved recipe incl. schedule, seed and limit; data source; package version);
    resuming a finished run returns its results and changes no file. ``pretrained_from`` names a run
    whose pretrained model this run adopts (same model, data, seed and pretraining settings required).
    """
    cluster = multiworker.read_tf_config() if strategy == "multiworker" else None
    # First: MultiWorkerMirroredStrategy configures TensorFlow's runtime, so it must come before any op.
    strat = make_strategy(strategy)
    # Only the chief writes run_dir; other workers write a temporary copy (see reds_tf.multiworker).
    with multiworker.worker_run_dir(cluster, run_dir, resume) as own_dir:
        return _run(
            recipe,
            own_dir,
            data_dir,
            resume,
            strat,
            progress,
            max_epochs_this_call,
            log,
            cluster,
            pretrained_from,
        )


def _run(
    recipe: Recipe,
    run_dir: Path,
    data_dir: str | Path | None,
    resume: bool,
    strat: Any,
    progress: bool,
    max_epochs_this_call: int | None,
    log: Any,
    cluster: multiworker.Cluster | None,
    pretrained_from: str | Path | None = None,
) -> dict[str, Any]:
    model_source.check(recipe.model, recipe.model_options)  # a bad model name fails before data loads
    if model_source.is_file_name(recipe.model) and not (Path(run_dir) / FINGERPRINT_FILE).exists():
        model_source.load_file(recipe.model)  # an unreadable file fails before the run directory exists
    rd = RunDir(run_dir)
    fp = fingerprint(recipe, data_dir, pretrained_from)
    changed = rd.claim(fp, resume)
    earlier = None  # wall time of the finished call whose conversion this call redoes
    if changed:
        if rd.path("results.json").is_file():  # without a wall time: written before conversion
            old = json.loads(rd.path("results.json").read_text())
            earlier = old.get("wall_seconds_run", old.get("wall_seconds_this_call"))
        rd.record_takeover(changed, earlier)
        then = "the run continues with them" if earlier is None else "converting again"
        log(f"--resume with other post-training settings ({'; '.join(changed)}): {then}")
    elif resume:  # an earlier call took the run over and stopped before its results
        changed, earlier = rd.takeover()
    if resume and rd.is_done("results"):
        log(f"{rd.root} is already complete; nothing to do.")
        return json.loads(rd.path("results.json").read_text())
    t0 = time.perf_counter()
    before = rd.begin_call()  # what earlier calls of this run recorded (0 for a new run)
    keras.utils.set_random_seed(recipe.seed)
    atomic_write_text(rd.path("recipe.yaml"), recipe.to_yaml())
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

    if pretrained_from is not None and not rd.is_done("pretrain"):
        adopt_pretrained(pretrained_from, fp, ctx)
    pre = pretrain(recipe, splits, batched, ctx)
    if recipe.mode == "dress":
        results, model = dress_steps.run_steps(recipe, splits, batched, pre, ctx)
        write_results(rd.root, results)
        plots.accuracy_vs_macs(results, rd.path("plots", "accuracy_vs_macs.png"))
        results["converted"] = dress_steps.convert(recipe, model, batched, ctx)
    else:
        results = _reds_steps(recipe, splits, batched, pre, ctx)
    int8 = (results["converted"] or {}).get("int8_accuracy") or []
    if len(int8) == len(results["levels"]):
        for row, acc in zip(results["levels"], int8, strict=True):
            row["int8_test_accuracy"] = acc
    # Wall time of this call, and of the whole run: every call's time up to its last finished step or
    # epoch (state.json's "calls"; a takeover counts the earlier call's conversion too, conservatively).
    # Runs started before calls were recorded only know a takeover's earlier call, from its results.
    this_call = round(time.perf_counter() - t0, 1)
    results["wall_seconds_this_call"] = this_call
    results["wall_seconds_run"] = round(this_call + (before or earlier or 0.0), 1)
    if earlier is not None:
        results["reconverted"] = changed
    if strat is not None:
        results["distribution"] = multiworker.topology(strat, cluster, recipe.data.batch_size)
    results["reds_tf"] = {"version": __version__, "git_revision": git_revision()}
    write_results(rd.root, results)
    failed = (results["converted"] or {}).get("verification_failed")
    if failed:  # the numbers of a long run are on disk; the run is not marked complete
        raise VerificationError(failed)
    rd.mark_done("results")
    return results


def _reds_steps(recipe: Recipe, splits: Any, batched: dict, pre: Any, ctx: StepContext) -> dict[str, Any]:
    """REDS after pretraining: importance -> permute -> solve -> fine-tune -> evaluate -> (baselines)
    -> plots -> (quantisation-aware fine-tuning) -> convert; returns the results dict (``converted``
    included)."""
    rd = ctx.rd
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
    qat_summary = qat_finetune(recipe, batched, ctx)
    if qat_summary is not None:
        results["qat"] = {k: v for k, v in qat_summary.items() if k != "history"}
    results["converted"] = convert_run(recipe, batched, ctx)
    return results


def git_revision() -> str | None:
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


def fingerprint(
    recipe: Recipe, data_dir: str | Path | None, pretrained_from: str | Path | None = None
) -> dict[str, Any]:
    """What defines a run: a resumed run must match it exactly (see ``RunDir.claim``)."""
    fp = {
        "recipe": recipe.to_dict(),
        "data_dir": str(Path(data_dir).resolve()) if data_dir is not None else None,
        "model_file_sha256": model_source.digest(recipe.model),
        "reds_tf": __version__,
    }
    if pretrained_from is not None:
        fp["pretrained_from"] = str(Path(pretrained_from).resolve())
    return fp


def evaluate_dir(run_dir: str | Path, split: str = "test", data_dir: str | Path | None = None) -> list[dict]:
    """Re-measure every level of a finished run's ``model.keras`` on ``split`` (rows as in results)."""
    rd = RunDir(run_dir)
    if (rd.root / "recipe.yaml").is_file() and Recipe.load(rd.path("recipe.yaml")).mode == "dress":
        return dress_steps.evaluate_dir(rd, split, data_dir)
    needed = ("recipe.yaml", "plan.json", "permuted.keras", "model.keras")
    require_finished(rd, "finetune", needed, "fine-tuned model")
    recipe = Recipe.load(rd.path("recipe.yaml"))
    _, batched = load_data(recipe, data_dir)
    model = nested.load_model(rd.path("model.keras"))
    plan = WidthPlan.load(rd.path("plan.json"))
    graph = topology.graph_of(keras.models.load_model(rd.path("permuted.keras"), compile=False))
    return level_rows(graph, plan, **{f"{split}_accuracy": level_accuracies(model, batched[split])})


# --- scratch baselines after a run -------------------------------------------------------------------

#: what ``scratch`` reads from a finished REDS run directory
SCRATCH_NEEDS = ("recipe.yaml", "plan.json", "permuted.keras", "model.keras", "results.json")


def check_scratch_run(run_dir: str | Path, levels: str | list[int] = "all") -> list[int]:
    """The chosen level indices of a finished REDS run (``"all"``, ``"0,2"`` or ints).

    Raises ``NotARedsModelError`` when ``run_dir`` is not a finished REDS run (a DRESS run has no nested
    levels to extract) and ``PlanError`` when a level index is not one of the run's plan.
    """
    rd = RunDir(run_dir)
    if not rd.path("recipe.yaml").is_file():
        raise NotARedsModelError(
            f"{rd.root} is not a reds run directory (no recipe.yaml). Fix: pass the directory of a finished "
            "reds run (reds run --recipe models/X.yaml --run-dir DIR)."
        )
    require_finished(rd, "finetune", SCRATCH_NEEDS, "REDS run")
    res = json.loads(rd.path("results.json").read_text())
    if "wall_seconds_this_call" not in res:  # as `results add`: written only when the run has finished
        raise NotARedsModelError(
            f"{rd.root} is a run that did not finish (its results.json has no wall time). Fix: complete "
            f"it with reds run --recipe {rd.root / 'recipe.yaml'} --run-dir {rd.root} --resume."
        )
    if res.get("mode") == "dress":
        raise NotARedsModelError(
            f"{rd.root} is a DRESS run: its levels are row-sparse, not narrower architectures. Fix: pass "
            "the directory of a REDS run."
        )
    return parse_levels(levels, WidthPlan.load(rd.path("plan.json")).num_levels)


def scratch(
    run_dir: str | Path,
    levels: str | list[int] = "all",
    *,
    epochs: int | None = None,
    data_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    max_epochs_this_call: int | None = None,
    log: Any = print,
) -> dict[str, Any]:
    """Train chosen levels of a finished REDS run from scratch, after the run (``reds scratch``).

    The run's own ``recipe.yaml`` (its schedule and model options as run), ``model.keras`` and
    ``plan.json`` decide each level's architecture, data and training (``steps.scratch_level``; default
    epochs: pretraining + fine-tuning). Training goes under ``RUN_DIR/baselines/scratch/``; after each
    level its row is merged into ``results.json`` (and ``results.md``) under ``baselines.scratch.levels``,
    replacing that level's earlier row and keeping the others. A level already recorded with the same
    epochs is skipped; ``resume`` continues an interrupted level at its next epoch. Returns
    ``baselines.scratch``. ``data_dir`` defaults to the run's own (its fingerprint).
    """
    chosen = check_scratch_run(run_dir, levels)
    rd = RunDir(run_dir)
    recipe = Recipe.load(rd.path("recipe.yaml"))
    default = recipe.pretrain.epochs + recipe.finetune.epochs
    epochs = default if epochs is None else int(epochs)
    sub = RunDir(rd.root / "baselines" / "scratch")
    todo = [k for k in chosen if not _scratch_recorded(rd, sub, k, epochs, default)]
    for k in todo:
        stage = scratch_stage(k, epochs, default)
        started = sub.last_epoch(stage)[0]
        if started and not resume:
            raise RunExistsError(
                f"{sub.root}: level {k}'s scratch training ({epochs} epochs) was interrupted after epoch "
                f"{started}. Fix: pass --resume to continue it."
            )
    for k in sorted(set(chosen) - set(todo)):
        log(f"[scratch] level {k}: already recorded ({epochs} epochs), skipped")
    if todo:
        if data_dir is None:
            data_dir = (rd.fingerprint() or {}).get("data_dir")
        keras.utils.set_random_seed(recipe.seed)
        splits, batched = load_data(recipe, data_dir)
        model = nested.load_model(rd.path("model.keras"))
        plan = WidthPlan.load(rd.path("plan.json"))
        graph = topology.graph_of(keras.models.load_model(rd.path("permuted.keras"), compile=False))
        ctx = StepContext(sub, resume=resume, progress=progress, stop=max_epochs_this_call, log=log,
                          seed=recipe.seed, pass_key=splits.pass_key)  # fmt: skip
        for k in todo:
            row = scratch_level(recipe, model, graph, plan, k, batched, ctx, epochs=epochs)
            _merge_scratch_row(rd, row)
            log(f"[scratch] level {k}: test accuracy {100 * row['test_accuracy']:.2f} % "
                f"({row['macs_pct']:.1f} % MACs, {row['wall_seconds']:.0f} s)")  # fmt: skip
    return json.loads(rd.path("results.json").read_text())["baselines"]["scratch"]


def _scratch_recorded(rd: RunDir, sub: RunDir, k: int, epochs: int, default: int) -> bool:
    """Level ``k`` trained from scratch for ``epochs`` is recorded: done in ``baselines/scratch`` and in
    results.json, or (a run's own scratch baseline from before levels were recorded) in results.json."""
    res = json.loads(rd.path("results.json").read_text())
    rows = ((res.get("baselines") or {}).get("scratch") or {}).get("levels") or []
    row = next((r for r in rows if r.get("level") == k), None)
    if row is not None and row.get("epochs", default) == epochs:
        return True
    stage = scratch_stage(k, epochs, default)
    if sub.is_done(stage):  # trained, then interrupted before results.json was rewritten: merge it now
        _merge_scratch_row(rd, sub.done_info(stage)["row"])
        return True
    return False


def _merge_scratch_row(rd: RunDir, row: dict[str, Any]) -> None:
    """Put ``row`` into results.json's ``baselines.scratch.levels`` (replacing its level's row; the others
    stay), then rewrite results.json and results.md atomically."""
    res = json.loads(rd.path("results.json").read_text())
    if not res.get("baselines"):
        res["baselines"] = {}
    scratch = res["baselines"].setdefault("scratch", {})
    rows = [r for r in scratch.get("levels") or [] if r.get("level") != row["level"]]
    scratch["levels"] = sorted(rows + [row], key=lambda r: r["level"])
    write_results(rd.root, res)
    plots.accuracy_vs_macs(res, rd.path("plots", "accuracy_vs_macs.png"))
