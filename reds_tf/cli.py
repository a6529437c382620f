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
    ("test_accuracy_per_level_bn", "test acc% (per-level BN)", "pct"),
]


@main.command("run")
@click.option("--recipe", "recipe_path", required=True, type=click.Path(dir_okay=False), help="models/*.yaml")
@click.option(
    "--run-dir", type=click.Path(file_okay=False), default=None, help="Default: runs/<recipe name>."
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
    run_dir = Path(run_dir or Path("runs") / Path(recipe_path).stem)
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
    except (RedsError, pipeline.RunExistsError) as e:
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
