"""The ``reds`` command line: thin click commands over the pipeline modules.

This is the only module that prints tables. Each subcommand's docstring is its help.
Subcommands: solve, run, convert (added by their issues), eval, scratch, launch.
"""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="reds_tf")
def main() -> None:
    """REDS: nested resource-efficient subnetworks for TensorFlow and TFLite Micro."""


# --- run / eval (pipeline issue) ---------------------------------------------------------------------


def _level_table(rows: list, columns: list) -> str:
    """A plain-text table of per-level results (columns: (key, header, format or 'pct'))."""
    cols = [c for c in columns if any(r.get(c[0]) is not None for r in rows)]
    cell = lambda v, f: "-" if v is None else (f"{100 * v:.2f}" if f == "pct" else f.format(v))
    body = [[h for _, h, _ in cols]] + [[cell(r.get(k), f) for k, _, f in cols] for r in rows]
    width = [max(len(b[i]) for b in body) for i in range(len(cols))]
    return "\n".join("  ".join(x.rjust(w) for x, w in zip(b, width, strict=True)) for b in body)


_RUN_COLUMNS = [
    ("level", "level", "{}"),
    ("macs", "MACs", "{:,}"),
    ("macs_pct", "MACs%", "{:.1f}"),
    ("params", "params", "{:,}"),
    ("weight_bytes_int8", "int8 weights B", "{:,}"),
    ("peak_memory_int8", "peak act. B", "{:,}"),
    ("val_accuracy", "val acc%", "pct"),
    ("test_accuracy", "test acc% (shared BN)", "pct"),
    ("test_accuracy_per_level_bn", "test acc% (per-level BN recal.)", "pct"),
    ("test_accuracy_per_level_bn_trained", "test acc% (per-level BN trained)", "pct"),
    ("int8_test_accuracy", "int8 acc%", "pct"),
]


@main.command("run")
@click.option("--recipe", "recipe_path", required=True, type=click.Path(dir_okay=False), help="models/*.yaml")
@click.option(
    "--run-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Default: runs/<recipe file name>[-<schedule>][-seed<k>] (as make run).",
)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset root (see docs).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --run-dir.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Override the recipe's seed (weights init, data order, dropout); results record it.",
)
@click.option(
    "--strategy",
    type=click.Choice(["mirrored", "multiworker"]),
    default=None,
    help="tf.distribute strategy: mirrored (this process's devices) or multiworker (the workers in "
    "$TF_CONFIG; see reds launch).",
)
@click.option("--schedule", default=None, help="Schedule section of the recipe, e.g. short or full.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Keep at most N examples per split (smoke runs).",
)
@click.option(
    "--pretrained-from",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Adopt this finished run's pretrained model (same model, data, seed and pretrain settings): "
    "ablations of solving and fine-tuning share one pretraining.",
)
@click.option("--stop-after-epochs", type=int, default=None, hidden=True, help="Stop after N epochs (tests).")
@click.option(
    "--quiet", is_flag=True, help="No progress bars and no per-epoch lines (step lines and the table stay)."
)
def run_cmd(
    recipe_path,
    run_dir,
    data_dir,
    resume,
    seed,
    strategy,
    schedule,
    limit,
    pretrained_from,
    stop_after_epochs,
    quiet,
) -> None:
    """Run the REDS pipeline for a recipe: pretrain -> importance -> permute -> solve -> fine-tune ->
    evaluate -> convert. Every artifact goes under one run directory; --resume continues after an
    interruption at the next epoch."""
    import sys
    from pathlib import Path

    # as `make run`: one directory per recipe, and per schedule and seed when they are named
    suffix = (f"-{schedule}" if schedule else "") + (f"-seed{seed}" if seed is not None else "")
    run_dir = Path(run_dir or Path("runs") / (Path(recipe_path).stem + suffix))
    recipe = _checked_recipe(recipe_path, schedule, limit, data_dir, run_dir, seed)
    if strategy == "multiworker":
        _check_cluster()
    # TensorFlow is imported only now: every mistake above was reported within a second or two.
    from reds_tf import pipeline
    from reds_tf.errors import RedsError
    from reds_tf.train import TrainingInterrupted

    click.echo(f"reds run: recipe {recipe.name} ({recipe.schedule} schedule) -> {run_dir}")
    try:
        res = pipeline.run(
            recipe,
            run_dir,
            data_dir=data_dir,
            resume=resume,
            strategy=strategy,
            progress=not quiet,
            max_epochs_this_call=stop_after_epochs,
            log=click.echo,
            pretrained_from=pretrained_from,
        )
    except TrainingInterrupted as e:
        click.echo(f"interrupted: {e}", err=True)
        sys.exit(3)
    except RedsError as e:
        raise click.ClickException(str(e)) from e
    except Exception as e:
        if strategy != "multiworker" or not _is_peer_failure(e):
            raise
        raise click.ClickException(
            f"a collective with the other workers failed ({type(e).__name__}: {str(e).splitlines()[0]}): "
            "a worker stopped or cannot be reached. Fix: start every worker again with --resume "
            "(the chief's last epoch checkpoint is kept)."
        ) from e
    click.echo("")
    if res.get("synthetic_data"):
        click.echo("SYNTHETIC data: a demo of the pipeline, not accuracy on the real dataset.")
    click.echo(_level_table(res["levels"], _RUN_COLUMNS))
    click.echo(f"\nresults: {run_dir / 'results.json'}, {run_dir / 'results.md'}, {run_dir / 'plots'}")


def _check_cluster() -> None:
    """--strategy multiworker: TF_CONFIG, the start-up timeout and this worker's port, checked before
    TensorFlow starts (a usage error, exit status 2)."""
    from reds_tf import multiworker

    try:
        multiworker.timeout_seconds()
        multiworker.check_port_free(multiworker.read_tf_config())
    except multiworker.ClusterConfigError as e:
        raise click.BadParameter(str(e), param_hint="'--strategy multiworker'") from e


def _is_peer_failure(e: BaseException) -> bool:
    """TensorFlow's errors for a collective whose peer died, timed out or was aborted."""
    from reds_tf._keras import tf

    kinds = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.AbortedError,
             tf.errors.CancelledError, tf.errors.InternalError)  # fmt: skip
    return isinstance(e, kinds)


def _checked_recipe(
    recipe_path: str,
    schedule: str | None,
    limit: int | None,
    data_dir: str | None,
    run_dir,
    seed: int | None = None,
):
    """The recipe, with everything a run needs checked before TensorFlow is imported: the recipe
    file and schedule, the model (zoo name and model_options, or model file), the dataset's name and
    layout, and that the run directory can be made and written. Each mistake is a usage error naming
    its option; nothing is written."""
    import os

    from reds_tf import data, model_source
    from reds_tf.errors import DatasetLayoutError, ModelFileError
    from reds_tf.recipe import Recipe, RecipeError, ScheduleError

    try:
        overrides = {
            **({"data.limit": limit} if limit else {}),
            **({"seed": seed} if seed is not None else {}),
        }
        recipe = Recipe.load(recipe_path, schedule=schedule, **overrides)
    except ScheduleError as e:
        raise click.BadParameter(str(e), param_hint="'--schedule'") from e
    except RecipeError as e:
        raise click.BadParameter(str(e), param_hint="'--recipe'") from e
    try:
        model_source.check(recipe.model, recipe.model_options)
    except ModelFileError as e:
        raise click.BadParameter(f"model: {e}", param_hint="'--recipe'") from e
    if recipe.dataset not in data.names():
        raise click.BadParameter(
            f"Unknown dataset. Received: dataset={recipe.dataset!r}. Fix: use one of {data.names()}.",
            param_hint="'--recipe'",
        )
    try:
        data.check_layout(recipe.dataset, data_dir)
    except DatasetLayoutError as e:
        raise click.BadParameter(str(e), param_hint="'--data-dir'") from e
    # The nearest existing ancestor decides whether the run directory can be made and written.
    probe = run_dir.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if (
        not probe.is_dir()
        or not os.access(probe, os.W_OK | os.X_OK)
        or str(probe).startswith(("/proc", "/sys"))
    ):
        raise click.BadParameter(
            f"Cannot write the run directory {run_dir}: {probe} is "
            f"{'a file' if probe.is_file() else 'not writable'}. Fix: choose another --run-dir.",
            param_hint="'--run-dir'",
        )
    return recipe


@main.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["test", "val"]), default=None, help="Re-measure on this split.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset root for --split.")
def eval_cmd(run_dir, split, data_dir) -> None:
    """Show the per-level results of a finished run (or re-measure accuracy on --split)."""
    from reds_tf.errors import RedsError
    from reds_tf.runstore import RunDir

    try:
        if split is None:
            RunDir(run_dir).check_complete()
            from reds_tf.evaluate import load_results

            res = load_results(run_dir)
            rows, title = (
                res["levels"],
                f"{res.get('recipe')} ({res.get('schedule')} schedule, seed {res.get('seed')})",
            )
        else:
            from reds_tf import pipeline

            rows = pipeline.evaluate_dir(run_dir, split=split, data_dir=data_dir)
            title = f"{run_dir}: {split} split"
    except RedsError as e:
        raise click.ClickException(str(e)) from e
    click.echo(title)
    click.echo(_level_table(rows, _RUN_COLUMNS))


_SCRATCH_COLUMNS = [
    ("level", "level", "{}"),
    ("macs", "MACs", "{:,}"),
    ("macs_pct", "MACs%", "{:.1f}"),
    ("reds", "REDS test acc%", "pct"),
    ("test_accuracy", "scratch test acc%", "pct"),
    ("epochs", "epochs", "{}"),
    ("wall_seconds", "wall s", "{:.0f}"),
]


@main.command("scratch")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--levels", required=True, help="'all' or level indices of the run's plan, e.g. 0 or 0,2.")
@click.option(
    "--epochs", type=click.IntRange(min=1), default=None,
    help="Training epochs per level. Default: the run's pretrain + finetune epochs (the paper's budget).",
)  # fmt: skip
@click.option("--resume", is_flag=True, help="Continue an interrupted level at its next epoch.")
@click.option(
    "--data-dir", type=click.Path(file_okay=False), default=None,
    help="Dataset root. Default: the run's own (its fingerprint.json).",
)  # fmt: skip
@click.option("--stop-after-epochs", type=int, default=None, hidden=True, help="Stop after N epochs (tests).")
@click.option("--quiet", is_flag=True, help="No progress bars and no per-epoch lines.")
def scratch_cmd(run_dir, levels, epochs, resume, data_dir, stop_after_epochs, quiet) -> None:
    """Train chosen levels of a finished REDS run from scratch: the paper's baseline, after the run.

    Each level's architecture (from the run's model.keras and plan) is trained from a fresh
    initialisation with the run's recipe, data and seed under RUN_DIR/baselines/scratch/; its test
    accuracy is merged into RUN_DIR/results.json under baselines.scratch.levels (other levels' rows
    stay). A level already recorded with the same epochs is skipped. One level of the paper schedule
    takes about 20 minutes on 2 cores."""
    import sys

    from reds_tf import pipeline
    from reds_tf.errors import PlanError, RedsError
    from reds_tf.train import TrainingInterrupted

    try:
        chosen = pipeline.check_scratch_run(run_dir, levels)
    except PlanError as e:
        raise click.BadParameter(str(e), param_hint="'--levels'") from e
    except RedsError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"reds scratch: {run_dir}, level(s) {', '.join(map(str, chosen))}")
    try:
        out = pipeline.scratch(run_dir, chosen, epochs=epochs, data_dir=data_dir, resume=resume,
                               progress=not quiet, max_epochs_this_call=stop_after_epochs,
                               log=click.echo)  # fmt: skip
    except TrainingInterrupted as e:
        click.echo(f"interrupted: {e}", err=True)
        sys.exit(3)
    except RedsError as e:
        raise click.ClickException(str(e)) from e
    from reds_tf.evaluate import load_results

    reds = {r["level"]: r.get("test_accuracy") for r in load_results(run_dir)["levels"]}
    rows = [{**r, "reds": reds.get(r["level"])} for r in out["levels"]]
    click.echo("")
    click.echo(_level_table(rows, _SCRATCH_COLUMNS))
    click.echo(f"\nresults: {run_dir}/results.json (baselines.scratch.levels)")


# --- solve (knapsack issue) --------------------------------------------------------------------------


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def parse_size(text: str) -> int:
    """Bytes from '200000', '200KB' (= 200*1000, SI) or '200KiB' (= 200*1024); case-insensitive."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _SIZE_UNITS or int(round(float(m.group(1)) * _SIZE_UNITS[unit])) < 1:
        raise click.BadParameter(
            f"Not a size. Received: {text!r}. Fix: bytes >= 1, or a number with KB/MB (x1000) or "
            "KiB/MiB (x1024), e.g. 200KB."
        )
    return int(round(float(m.group(1)) * _SIZE_UNITS[unit]))


class _Size(click.ParamType):
    """A byte count option (parse_size), so errors name the option."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except click.BadParameter as e:
            self.fail(e.message, param, ctx)


class _Seconds(click.ParamType):
    """A finite number of seconds > 0."""

    name = "seconds"

    def convert(self, value, param, ctx):
        import math

        try:
            v = float(value)
        except ValueError:
            v = math.nan
        if not (v > 0 and math.isfinite(v)):
            self.fail(f"Expected a finite number of seconds > 0, e.g. 60. Received: {value!r}", param, ctx)
        return v


# Absolute MACs budgets start here: anything smaller above 1 is more likely a mistyped fraction.
_MIN_ABSOLUTE_MACS = 1000


class _MacsList(click.ParamType):
    """Comma-separated MACs budgets, smallest first: fractions in (0, 1] or absolute integer MACs."""

    name = "float,float,..."

    def convert(self, value, param, ctx):
        import math

        if isinstance(value, list):
            return value
        items = str(value).split(",")
        if any(not v.strip() for v in items):
            self.fail(
                f"Empty item in {value!r}. Fix: comma-separated numbers such as 0.25,0.5,0.75.", param, ctx
            )
        try:
            out = [float(v) for v in items]
        except ValueError:
            self.fail(
                f"Expected comma-separated numbers such as 0.25,0.5,0.75. Received: {value!r}", param, ctx
            )
        for v, text in zip(out, items, strict=True):
            if not (v > 0 and math.isfinite(v)):
                self.fail(
                    f"{text.strip()!r} is not a budget. Fix: a fraction in (0, 1] such as 0.5.", param, ctx
                )
            if v > 1 and (v != int(v) or v < _MIN_ABSOLUTE_MACS):
                self.fail(
                    f"{text.strip()!r}: a budget above 1 means absolute MACs and must be an integer >= "
                    f"{_MIN_ABSOLUTE_MACS}. Fix: a fraction in (0, 1] (1.0: the full model) or a MACs count.",
                    param,
                    ctx,
                )
        if len({v <= 1 for v in out}) == 1:
            _fail_unless_ascending(self, out, value, param, ctx)
        return [int(v) if v > 1 else v for v in out]


def _fail_unless_ascending(ptype: click.ParamType, out: list, value, param, ctx) -> None:
    """Per-level budgets must be listed once each, smallest first."""
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        ptype.fail(
            f"Budgets must be distinct and ascending (one per level, smallest first). "
            f"Received: {value!r}. Fix: {param.opts[0] if param else ''} "
            f"{','.join(f'{v:g}' for v in sorted(set(out)))}",
            param,
            ctx,
        )


class _PositiveList(click.ParamType):
    """Comma-separated finite numbers > 0, ascending (one per level, smallest first)."""

    name = "float,float,..."

    def convert(self, value, param, ctx):
        import math

        if isinstance(value, list):
            return value
        try:
            out = [float(v) for v in str(value).split(",")]
        except ValueError:
            self.fail(f"Expected comma-separated numbers such as 40,80,120. Received: {value!r}", param, ctx)
        if not all(v > 0 and math.isfinite(v) for v in out):
            self.fail(f"Every budget must be a finite number > 0. Received: {value!r}", param, ctx)
        _fail_unless_ascending(self, out, value, param, ctx)
        return out


def _device_budgets(macs_budgets, latency_ms, energy_mj, power) -> tuple[list, list | None]:
    """(MACs budgets, cycles budgets or None) per level from the solve command's options."""
    given = {"--latency-ms": latency_ms, "--energy-mj": energy_mj}
    if macs_budgets:
        given["--macs"] = macs_budgets
    given = {k: v for k, v in given.items() if v}
    if not given:
        raise click.UsageError("Give the levels' budgets: --macs, --latency-ms or --energy-mj.")
    n = {len(v) for v in given.values()}
    if len(n) > 1:
        counts = ", ".join(f"{k} {len(v)}" for k, v in given.items())
        raise click.UsageError(f"Budget options must list one value per level. Received: {counts}.")
    levels = n.pop()
    cycles = None
    if latency_ms or energy_mj:
        per = [
            [power.cycles_for_ms(v) for v in latency_ms or []],
            [power.cycles_for_mj(v) for v in energy_mj or []],
        ]
        cycles = [min(c) for c in zip(*(p for p in per if p), strict=True)]
    return list(macs_budgets or [1.0] * levels), cycles


def _solve_inputs(model: str, scores_path: str | None) -> tuple:
    """(Graph, scores, where the scores came from) for a zoo name, a model file or a graph JSON."""
    import ast
    import json
    from pathlib import Path

    import numpy as np

    from reds_tf.graph import Graph

    if model.endswith(".json"):
        graph, keras_model = Graph.from_json(Path(model).read_text()), None
    else:
        from reds_tf import model_source, topology
        from reds_tf._keras import keras

        if model_source.is_file_name(model):
            keras_model = model_source.load_file(model)
        else:
            from reds_tf import zoo

            name, _, rest = model.partition(":")
            kwargs = {}
            for item in filter(None, rest.split(",")):
                key, _, val = item.partition("=")
                try:
                    kwargs[key.strip()] = ast.literal_eval(val.strip())
                except (ValueError, SyntaxError):
                    kwargs[key.strip()] = val.strip()
            # Magnitude scores of a fresh model must be reproducible: fixed seed.
            keras.utils.set_random_seed(0)
            keras_model = zoo.build(name, **kwargs)
        graph = topology.graph_of(keras_model)
    if scores_path:
        raw = json.loads(Path(scores_path).read_text())
        raw = raw.get("scores", raw)
        return graph, {k: np.asarray(v, dtype=float) for k, v in raw.items()}, f"scores from {scores_path}"
    if keras_model is None:
        raise click.UsageError("A graph JSON carries no weights. Fix: pass --scores scores.json.")
    from reds_tf import importance, model_source

    # Without data there are no Taylor scores: the weights' L1 magnitudes rank the units instead.
    scores = {g: np.sort(s)[::-1] for g, s in importance.magnitude_scores(keras_model).items()}
    seeded = "" if model_source.is_file_name(model) else " (fresh init, seed 0)"
    return (
        graph,
        scores,
        (
            f"no --scores and no data: L1-magnitude scores of the model's weights{seeded} (not Taylor), "
            "sorted descending (widths mean the top-scoring units, as after permutation)"
        ),
    )


def _check_solve_options(graph, macs_budgets: list, min_width: int) -> None:
    """Checks that need the graph, worded for the command line."""
    from fractions import Fraction

    from reds_tf.costs import macs

    narrow = min(graph.groups, key=lambda g: g.full)
    if min_width > narrow.full:
        raise click.BadParameter(
            f"{min_width} is above the width of unit group '{narrow.name}' ({narrow.full}). "
            f"Fix: --min-width {narrow.full} or less.",
            param_hint="'--min-width'",
        )
    full = macs(graph, graph.full_widths)
    resolved = [int(Fraction(str(m)) * full) if m <= 1 else m for m in macs_budgets]
    if any(b <= a for a, b in zip(resolved, resolved[1:], strict=False)):
        raise click.BadParameter(
            f"Budgets must be distinct and ascending once fractions are turned into MACs (full model: "
            f"{full:,} MACs). Received: {','.join(map(str, macs_budgets))} = {resolved} MACs. "
            "Fix: list each level once, smallest first.",
            param_hint="'--macs'",
        )


_SOLVE_COLUMNS = [
    ("level", "level", "{}"),
    ("macs_pct", "MACs%", "{:.2f}"),
    ("macs", "MACs", "{:,}"),
    ("params", "params", "{:,}"),
    ("peak_memory", "peak act. B", "{:,}"),
    ("weight_bytes", "int8 weights B", "{:,}"),
    ("importance_pct", "kept imp.%", "{:.2f}"),
    ("cycles_pred", "pred. cycles", "{:,}"),
    ("ms_pred", "pred. ms", "{:.2f}"),
    ("mj_pred", "pred. mJ", "{:.3f}"),
]


@main.command("solve")
@click.option(
    "--model",
    required=True,
    help="Zoo name (mobilenet_v1:alpha=0.25), a model file (.keras, .h5, SavedModel dir) or graph .json.",
)
@click.option(
    "--macs", "macs_budgets", default=None, type=_MacsList(),
    help="Ascending budgets: fractions 0.25,0.5,0.75 (1.0 = full) or integer MACs >= 1000.",
)  # fmt: skip
@click.option(
    "--latency-ms", type=_PositiveList(), default=None,
    help="Ascending per-level latency budgets in ms at --clock-mhz (device cost model's prediction).",
)  # fmt: skip
@click.option(
    "--energy-mj", type=_PositiveList(), default=None,
    help="Ascending per-level energy budgets in mJ per inference (nRF52840 power model).",
)  # fmt: skip
@click.option(
    "--clock-mhz", type=click.FloatRange(min=0, min_open=True, max=1000), default=64.0, show_default=True,
    help="CPU clock for --latency-ms / --energy-mj.",
)  # fmt: skip
@click.option(
    "--idle-mw", type=click.FloatRange(min=0), default=0.0, show_default=True,
    help="Board power besides the CPU, added to --energy-mj's power model.",
)  # fmt: skip
@click.option(
    "--device", "device_target", type=click.Choice(["dsp", "portable"]), default="dsp", show_default=True,
    help="Which runtime build the cost model describes: SIMD kernels or portable C.",
)  # fmt: skip
@click.option(
    "--peak-mem", type=_Size(), default=None, help="Peak int8 activations cap: 200KB (x1000), 200KiB."
)
@click.option(
    "--weight-bytes", type=_Size(), default=None, help="int8 weight-bytes cap, same units as --peak-mem."
)
@click.option("--solver", type=click.Choice(["cbc", "highs"]), default="cbc", show_default=True)
@click.option(
    "--time-limit", type=_Seconds(), default=60.0, show_default=True, help="Seconds for the whole solve."
)
@click.option(
    "--gap", type=click.FloatRange(0, 1, max_open=True), default=0.01, show_default=True,
    help="Relative optimality gap, 0 <= gap < 1.",
)  # fmt: skip
@click.option(
    "--node-limit", type=click.IntRange(min=1), default=10_000, show_default=True,
    help="Branch-and-bound nodes per MILP (a limit independent of machine load).",
)  # fmt: skip
@click.option(
    "--granularity", type=click.IntRange(min=1), default=1, show_default=True, help="Width multiple."
)
@click.option("--min-width", type=click.IntRange(min=1), default=1, show_default=True, help="Smallest width.")
@click.option("--strategy", type=click.Choice(["bottom_up", "joint"]), default="bottom_up")
@click.option("--full/--no-full", default=True, show_default=True, help="Full model as top level.")
@click.option("--scores", "scores_path", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write plan + report JSON here.")
@click.option("-v", "--verbose", is_flag=True, help="Show the solver's log.")
def solve_cmd(
    model,
    macs_budgets,
    latency_ms,
    energy_mj,
    clock_mhz,
    idle_mw,
    device_target,
    peak_mem,
    weight_bytes,
    solver,
    time_limit,
    gap,
    node_limit,
    granularity,
    min_width,
    strategy,
    full,
    scores_path,
    out,
    verbose,
) -> None:
    """Choose nested per-layer widths (a WidthPlan) for MACs / memory budgets with the knapsack MILP.

    Sizes: KB/MB are decimal (200KB = 200,000 B), KiB/MiB binary (200KiB = 204,800 B)."""
    import json

    from reds_tf import device_cost
    from reds_tf.errors import RedsError
    from reds_tf.runstore import atomic_write_text
    from reds_tf.solve import Budget, solve

    power = device_cost.PowerModel(clock_mhz=clock_mhz, idle_mw=idle_mw)
    macs_budgets, cycles = _device_budgets(macs_budgets, latency_ms, energy_mj, power)
    try:
        graph, scores, source = _solve_inputs(model, scores_path)
        if not cycles:
            _check_solve_options(graph, macs_budgets, min_width)
        device = device_cost.load(device_target)
        try:
            device.terms(graph)
        except ValueError:
            if cycles:
                raise
            device = None  # a kernel the cost model lacks: plan by MACs without predictions
        click.echo(f"reds solve: {graph.name}, {len(graph.groups)} unit groups; {source}", err=True)
        report = solve(
            graph,
            scores,
            [
                Budget(m, peak_mem, weight_bytes, None if cycles is None else c)
                for m, c in zip(macs_budgets, cycles or [None] * len(macs_budgets), strict=True)
            ],
            device=device,
            power=power,
            min_width=min_width,
            granularity=granularity,
            strategy=strategy,
            solver=solver,
            time_limit=time_limit,
            gap=gap,
            node_limit=node_limit,
            include_full=full,
            msg=verbose,
            progress=lambda s: click.echo(f"  {s}", err=True),
        )
    except (RedsError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    gap_txt = "n/a" if report.gap is None else f"{100 * report.gap:.3f} %"
    click.echo(
        f"{report.strategy} / {report.solver}: {report.status}, gap {gap_txt}, {report.wall_s:.1f} s, "
        f"kept importance summed over levels {report.objective:.4f}"
    )
    click.echo(_level_table(report.per_level, _SOLVE_COLUMNS))
    click.echo("\nwidths per unit group:")
    click.echo(report.plan.describe())
    if out:
        doc = {**report.to_dict(), "model": model, "scores_source": source}
        atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
        click.echo(f"\nplan + report: {out}")


# --- convert (convert issue) -------------------------------------------------------------------------


def _prepare_out(out, overwrite: bool) -> None:
    """Create --out, or refuse one that cannot hold the conversion or already holds files."""
    import os

    if out.exists() and not out.is_dir():
        raise click.ClickException(f"--out {out} is a file, not a directory. Fix: pass a directory path.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.ClickException(
            f"--out {out} cannot be created ({e.strerror}). Fix: pass a writable path."
        ) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise click.ClickException(f"--out {out} is not writable. Fix: pass a writable directory.")
    held = sorted(p.name for p in out.iterdir())
    if held and not overwrite:
        raise click.ClickException(
            f"--out {out} already holds {len(held)} file(s) ({', '.join(held[:4])}"
            f"{', ...' if len(held) > 4 else ''}). "
            "Fix: pass an empty or new directory, or --overwrite to replace an earlier conversion."
        )


@main.command("convert")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--levels", default="all", show_default=True, help="'all' or level indices, e.g. 0,2.")
@click.option("--calibration", "samples", type=int, default=None,
              help="Calibration samples. Default: the run's recipe, else 200.")  # fmt: skip
@click.option(
    "--calibration-data", type=click.Path(exists=True, dir_okay=False), default=None,
    help="NPZ with arrays x (and y); required when SOURCE records no dataset.",
)  # fmt: skip
@click.option("--test-data", type=click.Path(exists=True, dir_okay=False), default=None, help="NPZ x, y.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset root of a run dir.")
@click.option("--strategy", type=click.Choice(["auto", "slice", "copy"]), default="auto", show_default=True,
              help="Bundle storage of weights that are not a prefix of the full tensor.")  # fmt: skip
@click.option("--no-verify", is_flag=True, help="Skip the interpreter checks.")
@click.option("--overwrite", is_flag=True,
              help="Replace an earlier conversion in --out (only once the new one is complete).")  # fmt: skip
@click.option("--calibration-mode", type=click.Choice(["shared", "per_level"]), default=None,
              help="Activation calibration: the full level's for all levels (shared) or per level. "
              "Default: the run's recipe, else shared.")  # fmt: skip
@click.option("--equalize/--no-equalize", default=None,
              help="Rescale channels (function-preserving) so they share each int8 activation range "
              "evenly before quantising. Default: the run's recipe, else off.")  # fmt: skip
@click.option("--activation-ranges", type=click.Choice(["minmax", "mse", "percentile"]), default=None,
              help="Activation int8 ranges: min..max seen (minmax), clipped for least squared error (mse) "
              "or to the 0.01 %% tails (percentile). Default: the run's recipe, else minmax.")  # fmt: skip
def convert_cmd(
    source,
    out_dir,
    levels,
    samples,
    calibration_data,
    test_data,
    data_dir,
    strategy,
    no_verify,
    overwrite,
    calibration_mode,
    equalize,
    activation_ranges,
) -> None:
    """Convert a REDS run directory or nested .keras model to per-level int8 .tflite files, a
    shared-weight TFLite Micro bundle, the firmware's C arena and report.json / report.md."""
    from pathlib import Path

    import numpy as np

    from reds_tf.errors import RedsError

    def npz(path: str) -> tuple:
        with np.load(path) as d:
            if "x" not in d:
                raise click.BadParameter(f"{path} has no array 'x' (found {list(d)}).")
            return d["x"], (d["y"] if "y" in d else None)

    src, out = Path(source), Path(out_dir)
    if src.is_dir() and not (src / "model.keras").is_file():
        raise click.ClickException(
            f"{source} has no model.keras, so it is not a reds run directory. Fix: pass a run directory "
            "written by `reds run` (finished) or the path of a nested .keras model."
        )
    if levels != "all" and not all(p.strip().isdigit() for p in levels.split(",")):
        raise click.ClickException(
            f"--levels must be 'all' or comma-separated level indices such as 0,2. Received: {levels!r}"
        )
    if samples is not None and samples < 1:
        raise click.ClickException(f"--calibration must be >= 1 samples. Received: {samples}")
    _prepare_out(out, overwrite)
    try:
        from reds_tf.convert import convert

        cal = npz(calibration_data) if calibration_data else None
        test = npz(test_data) if test_data else None
        if cal is None and src.is_dir() and (src / "recipe.yaml").is_file():
            from reds_tf import pipeline
            from reds_tf.recipe import Recipe

            recipe = Recipe.load(src / "recipe.yaml")
            _, batched = pipeline.load_data(recipe, data_dir)
            cal = batched["val"]  # as the pipeline's own conversion: the same files byte for byte
            calibration_mode = calibration_mode or recipe.convert.calibration_mode
            equalize = recipe.convert.equalize if equalize is None else equalize
            activation_ranges = activation_ranges or recipe.convert.activation_ranges
            samples = samples or recipe.convert.calibration_samples
            test = test if test is not None else batched["test"]
        if cal is None:
            raise click.UsageError(
                f"{source} records no dataset (no recipe.yaml). Fix: pass --calibration-data PATH.npz with "
                "arrays x (inputs) and y (labels)."
            )
        rep = convert(source, out_dir, levels=levels, calibration=cal, calibration_samples=samples or 200,
                      test_data=test, verify=not no_verify, strategy=strategy,
                      calibration_mode=calibration_mode or "shared", equalize=bool(equalize),
                      activation_ranges=activation_ranges or "minmax", log=click.echo)  # fmt: skip
    except RedsError as e:
        raise click.ClickException(str(e)) from e
    click.echo(rep.markdown())
    click.echo(f"wrote {out_dir}")


@main.command("launch", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True, help="Local workers.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def launch_cmd(workers, command) -> None:
    """Start WORKERS local processes of COMMAND (e.g. -- reds run ... --strategy multiworker) on free
    localhost ports, each with its TF_CONFIG; show the chief's output; when one fails, stop the others
    and exit non-zero."""
    import sys

    from reds_tf import launch

    sys.exit(launch.launch(list(command), workers))


if __name__ == "__main__":
    main()
