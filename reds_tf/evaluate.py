"""Per-level evaluation: accuracy of each nested submodel next to its exact costs, as JSON and markdown.

Costs come from ``costs.plan_costs`` (true MACs of the solved widths, never the budget labels).
Accuracy is measured on whatever split the caller passes: validation for model selection, the test
split only for the final report.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import costs, nested
from ._keras import keras, tf
from .errors import NotARedsModelError
from .graph import Graph
from .plan import WidthPlan
from .runstore import atomic_write_text


def accuracy(model: keras.Model, ds: tf.data.Dataset, level: int | None = None) -> float:
    """Top-1 accuracy of ``model`` (at nested ``level`` when given) over a batched dataset of (x, y)."""
    if level is not None:
        nested.set_level(model, level)
    # A fresh tf.function per call: nested layers read their level at trace time.
    predict = tf.function(lambda x: model(x, training=False))
    correct = total = 0
    for x, y in ds:
        pred = tf.argmax(predict(x), axis=-1, output_type=tf.int32)
        y = tf.cast(tf.reshape(y, [-1]), tf.int32)
        correct += int(tf.reduce_sum(tf.cast(pred == y, tf.int32)))
        total += int(tf.size(y))
    if total == 0:
        raise ValueError("accuracy() received an empty dataset. Fix: check the split and --limit.")
    return correct / total


def level_accuracies(
    model: keras.Model,
    ds: tf.data.Dataset,
    levels: Sequence[int] | None = None,
    log: Callable[[str], Any] | None = None,
) -> list[float]:
    """Accuracy of every level (default: all levels of the nested model), smallest first.

    ``log`` gets one line per level as it is measured (a pass over a test set takes seconds).
    """
    levels = range(nested.num_levels(model)) if levels is None else levels
    out = []
    for k in levels:
        out.append(accuracy(model, ds, k))
        if log is not None:
            log(f"level {k}: {100 * out[-1]:.2f} %")
    nested.set_level(model, nested.num_levels(model) - 1)
    return out


def level_max_abs_diff(model: keras.Model, x: Any, standalone: Callable[[int], keras.Model]) -> list[float]:
    """Per level k, the largest |output of ``model`` at level k - output of ``standalone(k)``| on batch ``x``.

    Checks that a standalone per-level model (the one that is exported) computes what the shared model
    does at that level. Leaves ``model`` at its top level.
    """
    out = []
    for k in range(nested.num_levels(model)):
        nested.set_level(model, k)
        ref = model(x, training=False).numpy()
        out.append(float(np.max(np.abs(ref - standalone(k)(x, training=False).numpy()))))
    nested.set_level(model, nested.num_levels(model) - 1)
    return out


def level_rows(
    graph: Graph, plan: WidthPlan, **accuracy_columns: Sequence[float | None]
) -> list[dict[str, Any]]:
    """One row per level: widths, true MACs (count and % of the full model), params, int8 weight bytes,
    int8 peak activation memory, plus one column per keyword (e.g. ``test_accuracy=[...]``)."""
    rows = []
    for k, c in enumerate(costs.plan_costs(graph, plan)):
        row: dict[str, Any] = {
            "level": k,
            "widths": list(plan.level(k)),
            "macs": int(c.macs),
            "macs_pct": round(100.0 * c.macs_fraction, 2),
            "params": int(c.params),
            "params_pct": round(100.0 * c.params_fraction, 2),
            "weight_bytes_int8": int(c.weight_bytes_int8),
            "peak_memory_int8": int(c.peak_memory_int8),
        }
        for name, values in accuracy_columns.items():
            if len(values) != plan.num_levels:
                raise ValueError(
                    f"Column '{name}' has {len(values)} values for {plan.num_levels} levels. "
                    "Fix: pass one accuracy per level, smallest level first."
                )
            row[name] = None if values[k] is None else float(values[k])
        rows.append(row)
    return rows


_COLUMNS = [
    ("level", "Level", "{}"),
    ("macs", "MACs", "{:,}"),
    ("macs_pct", "MACs %", "{:.1f}"),
    ("params", "Params", "{:,}"),
    ("weight_bytes_int8", "Weights int8 (B)", "{:,}"),
    ("peak_memory_int8", "Peak act. int8 (B)", "{:,}"),
    ("val_accuracy", "Val acc %", "pct"),
    ("test_accuracy", "Test acc % (shared BN)", "pct"),
    ("test_accuracy_per_level_bn", "Test acc % (per-level BN, recalibrated)", "pct"),
    ("test_accuracy_per_level_bn_trained", "Test acc % (per-level BN, fine-tuned)", "pct"),
    ("int8_test_accuracy", "Int8 TFLM test acc %", "pct"),
]


def _fmt(v: Any, fmt: str) -> str:
    if v is None:
        return "-"
    return f"{100.0 * v:.2f}" if fmt == "pct" else fmt.format(v)


SYNTHETIC_NOTE = (
    "**SYNTHETIC data** (generated speech, see the data folder's README): these numbers are a demo of "
    "the pipeline, never accuracy on the real dataset."
)


def to_markdown(results: dict[str, Any]) -> str:
    """A markdown report: the per-level table, baselines (when run) and the run's settings."""
    rows = results["levels"]
    cols = [c for c in _COLUMNS if any(c[0] in r for r in rows)]
    base = results.get("baselines") or {}
    lines = [f"# {results.get('recipe', 'REDS run')}: results", ""]
    if results.get("synthetic_data"):
        lines = [f"# SYNTHETIC DATA -- {results.get('recipe', 'REDS run')}: results", "", SYNTHETIC_NOTE, ""]
    lines.append(
        f"Model `{results.get('model')}` on `{results.get('dataset')}`, "
        f"schedule `{results.get('schedule')}`, "
        f"seed {results.get('seed')}. MACs are exact (true) MACs of the solved "
        f"{'per-row counts' if results.get('mode') == 'dress' else 'widths'}."
    )
    lines += ["", "| " + " | ".join(h for _, h, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(key), f) for key, _, f in cols) + " |")
    if base:
        lines += ["", "## Baselines (test accuracy %)", ""]
        lines.append("| Method | " + " | ".join(f"L{r['level']}" for r in rows) + " |")
        lines.append("|---|" + "---|" * len(rows))
        lines.append(
            "| REDS ("
            + results.get("importance", "taylor")
            + ") | "
            + " | ".join(_fmt(r.get("test_accuracy"), "pct") for r in rows)
            + " |"
        )
        for name, b in base.items():
            by_level = {x.get("level"): x for x in b["levels"]}  # `reds scratch` may train some levels only
            got = [by_level.get(r["level"]) for r in rows]
            cells = [
                "-" if x is None else f"{_fmt(x.get('test_accuracy'), 'pct')} @ {x.get('macs_pct', 0):.0f} %"
                for x in got
            ]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if results.get("pretrained"):
        p = results["pretrained"]
        lines += ["", f"Pretrained dense model: test accuracy {_fmt(p.get('test_accuracy'), 'pct')} %."]
    for note in results.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_results(out_dir: str | Path, results: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md`` atomically; return their paths."""
    out_dir = Path(out_dir)
    j = atomic_write_text(out_dir / "results.json", json.dumps(_jsonable(results), indent=2) + "\n")
    m = atomic_write_text(out_dir / "results.md", to_markdown(results))
    return j, m


def load_results(path: str | Path) -> dict[str, Any]:
    """Read ``results.json`` from a file or a run directory."""
    p = Path(path)
    p = p / "results.json" if p.is_dir() else p
    if not p.is_file():
        raise NotARedsModelError(
            f"No results.json at {p}. Fix: pass a finished run directory (reds run ...)."
        )
    return json.loads(p.read_text())
