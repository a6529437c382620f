"""Figures from evaluation results: accuracy vs true MACs, and per-layer widths of every level.

The only module that imports matplotlib (with the non-interactive Agg backend, so it works headless).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .plan import WidthPlan  # noqa: E402
from .runstore import atomic_write_bytes  # noqa: E402


def _save(fig: Any, path: str | Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def accuracy_vs_macs(results: dict[str, Any], path: str | Path) -> Path:
    """Test accuracy of every level against its true MACs, with baselines and the dense model."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    rows = results["levels"]
    x = [r["macs"] for r in rows]
    label = f"{results.get('method', 'REDS')} (shared BN)"
    ax.plot(x, [100 * r["test_accuracy"] for r in rows], "o-", label=label, zorder=3)
    if any(r.get("test_accuracy_per_level_bn") is not None for r in rows):
        y = [100 * r["test_accuracy_per_level_bn"] for r in rows]
        ax.plot(x, y, "s--", label="REDS (per-level BN, recalibrated)")
    if any(r.get("test_accuracy_per_level_bn_trained") is not None for r in rows):
        y = [100 * r["test_accuracy_per_level_bn_trained"] for r in rows]
        ax.plot(x, y, "D-.", label="REDS (per-level BN, fine-tuned)")
    markers = iter("^v<>dP*")
    for name, b in (results.get("baselines") or {}).items():
        pts = [p for p in b["levels"] if p.get("test_accuracy") is not None]
        if pts:
            xs, ys = [p["macs"] for p in pts], [100 * p["test_accuracy"] for p in pts]
            ax.plot(xs, ys, next(markers, "x") + ":", label=name)
    pre = results.get("pretrained") or {}
    if pre.get("test_accuracy") is not None:
        ax.axhline(100 * pre["test_accuracy"], color="grey", lw=0.8, ls="--", label="dense (pretrained)")
    for r in rows:
        ax.annotate(
            f"{r['macs_pct']:.0f}%",
            (r["macs"], 100 * r["test_accuracy"]),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
    ax.set_xlabel("true MACs per inference")
    ax.set_ylabel("test accuracy (%)")
    title = f"{results.get('model')} on {results.get('dataset')} ({results.get('schedule')} schedule)"
    ax.set_title(("SYNTHETIC data: " if results.get("synthetic_data") else "") + title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def registry_accuracy_vs_macs(series: list[dict[str, Any]], path: str | Path) -> Path:
    """Float test accuracy vs true MACs (% of each recipe's full model) of every series from
    ``reds_tf.results.series``: mean with +- std error bars over seeds, and each recipe's paper points."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    papers_drawn = set()
    for s in series:
        ax.errorbar(s["macs_pct"], s["mean"], yerr=s["std"], fmt="o-", capsize=3, label=s["label"], zorder=3)
        if s["paper"] and s["recipe"] not in papers_drawn:
            papers_drawn.add(s["recipe"])
            xs, ys = zip(*s["paper"], strict=True)
            ax.plot(xs, ys, "k*--", ms=9, lw=0.8, label=f"paper ({s['recipe']})", zorder=4)
    ax.set_xlabel("true MACs (% of the full model)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("accuracy vs true MACs (mean +- std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def widths(plan: WidthPlan, path: str | Path, title: str = "") -> Path:
    """Grouped bars: kept units per unit group (layer) for every level, with the full width as outline."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * plan.num_groups + 2), 4.0))
    g = range(plan.num_groups)
    n = plan.num_levels
    bar = 0.8 / n
    ax.bar(g, plan.full, width=0.85, fill=False, edgecolor="grey", label="full")
    for k in range(n):
        ax.bar([i - 0.4 + bar * (k + 0.5) for i in g], plan.level(k), width=bar, label=f"level {k}")
    ax.set_xticks(list(g))
    ax.set_xticklabels(plan.groups, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("units kept")
    ax.set_title(title or "per-layer widths of every level")
    ax.set_ylim(0, 1.25 * max(plan.full))  # room for the legend above the tallest bar
    ax.legend(fontsize=8, ncol=min(n + 1, 5), loc="upper left")
    return _save(fig, path)
