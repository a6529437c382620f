"""The ``reds`` command line: thin click commands over the pipeline modules.

This is the only module that prints tables. Each subcommand's docstring is its help.
Subcommands: solve, run, convert (added by their issues), eval, info.
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
    help="Default: runs/<recipe file name>[-<schedule>] (as make run).",
)
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset root (see docs).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --run-dir.")
@click.option("--strategy", type=click.Choice(["mirrored"]), default=None, help="tf.distribute strategy.")
@click.option("--schedule", default=None, help="Schedule section of the recipe, e.g. short or full.")
@click.option("--limit", type=int, default=None, help="Keep at most N examples per split (smoke runs).")
@click.option("--stop-after-epochs", type=int, default=None, hidden=True, help="Stop after N epochs (tests).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run_cmd(
    recipe_path, run_dir, data_dir, resume, strategy, schedule, limit, stop_after_epochs, quiet
) -> None:
    """Run the REDS pipeline for a recipe: pretrain -> importance -> permute -> solve -> fine-tune ->
    evaluate -> convert. Every artifact goes under one run directory; --resume continues after an
    interruption at the next epoch."""
    import sys
    from pathlib import Path

    from reds_tf import pipeline
    from reds_tf.errors import RedsError
    from reds_tf.recipe import Recipe, RecipeError
    from reds_tf.train import TrainingInterrupted

    try:
        recipe = Recipe.load(recipe_path, schedule=schedule, **({"data.limit": limit} if limit else {}))
    except RecipeError as e:
        raise click.BadParameter(str(e), param_hint="--recipe") from e
    # as `make run`: one directory per recipe, and per schedule when one is named
    run_dir = Path(run_dir or Path("runs") / (Path(recipe_path).stem + (f"-{schedule}" if schedule else "")))
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
        )
    except TrainingInterrupted as e:
        click.echo(f"interrupted: {e}", err=True)
        sys.exit(3)
    except RedsError as e:
        raise click.ClickException(str(e)) from e
    click.echo("")
    click.echo(_level_table(res["levels"], _RUN_COLUMNS))
    click.echo(f"\nresults: {run_dir / 'results.json'}, {run_dir / 'results.md'}, {run_dir / 'plots'}")


@main.command("eval")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--split", type=click.Choice(["test", "val"]), default=None, help="Re-measure on this split.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset root for --split.")
def eval_cmd(run_dir, split, data_dir) -> None:
    """Show the per-level results of a finished run (or re-measure accuracy on --split)."""
    from reds_tf.errors import RedsError

    try:
        if split is None:
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


# --- solve (knapsack issue) --------------------------------------------------------------------------


_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 1000**2, "mib": 1024**2}


def parse_size(text: str) -> int:
    """Bytes from '200000', '200KB' (= 200*1000, SI) or '200KiB' (= 200*1024); case-insensitive."""
    import re

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _SIZE_UNITS:
        raise click.BadParameter(
            f"Not a size. Received: {text!r}. Fix: bytes, or a number with KB/MB (x1000) or KiB/MiB (x1024)."
        )
    return int(round(float(m.group(1)) * _SIZE_UNITS[unit]))


class _FloatList(click.ParamType):
    """A comma-separated list of MACs budgets: fractions (<= 1) or absolute MACs."""

    name = "float,float,..."

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        try:
            out = [float(v) for v in str(value).split(",") if v.strip()]
        except ValueError:
            self.fail(
                f"Expected comma-separated numbers such as 0.25,0.5,0.75. Received: {value!r}", param, ctx
            )
        if not out or any(v <= 0 for v in out):
            self.fail(f"MACs budgets must be > 0. Received: {value!r}", param, ctx)
        return out


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


_SOLVE_COLUMNS = [
    ("level", "level", "{}"),
    ("macs_pct", "MACs%", "{:.2f}"),
    ("macs", "MACs", "{:,}"),
    ("params", "params", "{:,}"),
    ("peak_memory", "peak act. B", "{:,}"),
    ("weight_bytes", "int8 weights B", "{:,}"),
    ("importance_pct", "kept imp.%", "{:.2f}"),
]


@main.command("solve")
@click.option(
    "--model",
    required=True,
    help="Zoo name (mobilenet_v1:alpha=0.25), a model file (.keras, .h5, SavedModel dir) or graph .json.",
)
@click.option("--macs", "macs_budgets", required=True, type=_FloatList(), help="0.25,0.5,0.75 (>1: MACs)")
@click.option("--peak-mem", default=None, help="Peak int8 activations cap: 200KB (x1000), 200KiB (x1024).")
@click.option("--weight-bytes", default=None, help="int8 weight-bytes cap, same units as --peak-mem.")
@click.option("--solver", type=click.Choice(["cbc", "highs"]), default="cbc", show_default=True)
@click.option("--time-limit", type=float, default=60.0, show_default=True, help="Seconds in all.")
@click.option("--gap", type=float, default=0.01, show_default=True, help="Relative optimality gap.")
@click.option("--granularity", type=int, default=1, show_default=True, help="Width multiple.")
@click.option("--min-width", type=int, default=1, show_default=True, help="Smallest width.")
@click.option("--strategy", type=click.Choice(["bottom_up", "joint"]), default="bottom_up")
@click.option("--full/--no-full", default=True, show_default=True, help="Full model as top level.")
@click.option("--scores", "scores_path", default=None, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="Write plan + report JSON here.")
@click.option("-v", "--verbose", is_flag=True, help="Show the solver's log.")
def solve_cmd(
    model,
    macs_budgets,
    peak_mem,
    weight_bytes,
    solver,
    time_limit,
    gap,
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

    from reds_tf.errors import RedsError
    from reds_tf.runstore import atomic_write_text
    from reds_tf.solve import Budget, solve

    mem = parse_size(peak_mem) if peak_mem else None
    wb = parse_size(weight_bytes) if weight_bytes else None
    try:
        graph, scores, source = _solve_inputs(model, scores_path)
        click.echo(f"reds solve: {graph.name}, {len(graph.groups)} unit groups; {source}", err=True)
        report = solve(
            graph,
            scores,
            [Budget(m, mem, wb) for m in macs_budgets],
            min_width=min_width,
            granularity=granularity,
            strategy=strategy,
            solver=solver,
            time_limit=time_limit,
            gap=gap,
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


@main.command("convert")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output directory.")
@click.option("--levels", default="all", show_default=True, help="'all' or level indices, e.g. 0,2.")
@click.option("--calibration", "samples", type=int, default=200, show_default=True, help="Calibration N.")
@click.option(
    "--calibration-data", type=click.Path(exists=True, dir_okay=False), default=None,
    help="NPZ with arrays x (and y); required when SOURCE records no dataset.",
)  # fmt: skip
@click.option("--test-data", type=click.Path(exists=True, dir_okay=False), default=None, help="NPZ x, y.")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None, help="Dataset root of a run dir.")
@click.option("--strategy", type=click.Choice(["auto", "slice", "copy"]), default="auto", show_default=True,
              help="Bundle storage of weights that are not a prefix of the full tensor.")  # fmt: skip
@click.option("--no-verify", is_flag=True, help="Skip the interpreter checks.")
def convert_cmd(
    source, out_dir, levels, samples, calibration_data, test_data, data_dir, strategy, no_verify
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

    try:
        from reds_tf.convert import convert

        cal = npz(calibration_data) if calibration_data else None
        test = npz(test_data) if test_data else None
        src = Path(source)
        if cal is None and src.is_dir() and (src / "recipe.yaml").is_file():
            from reds_tf import pipeline
            from reds_tf.recipe import Recipe

            _, batched = pipeline.load_data(Recipe.load(src / "recipe.yaml"), data_dir)
            cal = batched["train"]
            test = test if test is not None else batched["test"]
        if cal is None:
            raise click.UsageError(
                f"{source} records no dataset (no recipe.yaml). Fix: pass --calibration-data PATH.npz with "
                "arrays x (inputs) and y (labels)."
            )
        rep = convert(source, out_dir, levels=levels, calibration=cal, calibration_samples=samples,
                      test_data=test, verify=not no_verify, strategy=strategy)  # fmt: skip
    except RedsError as e:
        raise click.ClickException(str(e)) from e
    click.echo(rep.markdown())
    click.echo(f"wrote {out_dir}")
