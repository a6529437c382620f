"""Choose DRESS's per-row counts under MAC (and optional weight-byte) budgets: model -> RowPlan.

Budgets are fractions of the full model's TRUE MACs (the depthwise and other dense ops included,
which do not shrink); the row-sparse layers get what is left. The objective is the kept per-weight
importance (``scores.kept_importance``), normalised so the dense model keeps 1 per level. The MILP
itself is ``reds_tf.solve.rows`` (pure, PuLP).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import InfeasibleBudgetError
from ..solve.rows import RowBudget, make_layer, solve_rows
from .costs import ModelCosts
from .plan import RowPlan
from .scores import kept_importance


def solve_counts(
    costs: ModelCosts,
    scores: Mapping[str, np.ndarray],
    budgets: Sequence[float],
    *,
    weight_bytes: Sequence[int] | None = None,
    include_full: bool = True,
    min_count: int = 1,
    granularity: int = 1,
    solver: str = "cbc",
    time_limit: float = 60.0,
    gap: float = 0.01,
    strategy: str = "joint",
) -> tuple[RowPlan, dict[str, Any]]:
    """The nested RowPlan maximising kept importance per level, and a report of how it was found.

    Args:
        costs: ``costs.model_costs(model, layers)``; its layers are the plan's layers.
        scores: per-weight scores per layer, ``(rows, fan_in)``.
        budgets: ascending MACs fractions in (0, 1] of the full model's true MACs, one per level.
        weight_bytes: optional int8 weight-byte caps (indices included), one per budget.
        include_full: append the dense model as the top level.
        min_count, granularity: allowed counts are multiples of ``granularity`` from ``min_count``
            up, plus the whole row.
    """
    budgets = [float(b) for b in budgets]
    if not budgets or any(not 0 < b <= 1 for b in budgets) or budgets != sorted(budgets):
        raise ValueError(f"budgets must be ascending MACs fractions in (0, 1]. Received: {budgets}")
    if weight_bytes is not None and len(weight_bytes) != len(budgets):
        raise ValueError(
            f"Give one weight-byte cap per budget. Received: {len(weight_bytes)} caps, {len(budgets)} budgets"
        )
    prefix = kept_importance(scores)
    total = sum(float(prefix[c.name][-1]) for c in costs.layers)
    layers = []
    for c in costs.layers:
        if prefix[c.name].shape[0] != c.fan_in + 1:
            raise ValueError(
                f"Scores of layer '{c.name}' have {prefix[c.name].shape[0] - 1} columns; "
                f"its fan_in is {c.fan_in}."
            )
        bytes_at = [c.weight_bytes(n) for n in range(c.fan_in + 1)]
        layers.append(
            make_layer(
                c.name, prefix[c.name], total, c.macs_per_count, bytes_at,
                min_count=min_count, granularity=granularity,
            )
        )  # fmt: skip
    macs_caps = [math.floor(Fraction(str(b)) * costs.full_macs) for b in budgets]
    rows = []
    for k, m in enumerate(macs_caps):
        if m <= costs.fixed_macs:
            raise InfeasibleBudgetError(
                f"Level {k}: a MACs budget of {m:,} ({100 * budgets[k]:.1f} %) does not even cover the "
                f"{costs.fixed_macs:,} MACs of the layers that stay dense (depthwise and others). Fix: "
                f"use a budget above {100 * costs.fixed_macs / costs.full_macs:.1f} %."
            )
        wb = None if weight_bytes is None else int(weight_bytes[k]) - costs.fixed_weight_bytes
        rows.append(RowBudget(m - costs.fixed_macs, wb))
    res = solve_rows(layers, rows, solver=solver, time_limit=time_limit, gap=gap, strategy=strategy)
    counts = [tuple(r) for r in res.counts]
    fan_in = tuple(c.fan_in for c in costs.layers)
    if include_full:
        counts.append(fan_in)
    plan = RowPlan(costs.names, fan_in, tuple(counts))
    per_level = []
    for k, row in enumerate(plan.counts):
        m = costs.macs(row)
        per_level.append(
            {
                "level": k,
                "budget": budgets[k] if k < len(budgets) else 1.0,
                "macs": m,
                "macs_pct": 100.0 * m / costs.full_macs,
                "weight_bytes": costs.weight_bytes(row),
                "importance_pct": 100.0
                * sum(
                    float(lay.importance[int(np.searchsorted(lay.grid, n))])
                    for lay, n in zip(layers, row, strict=True)
                ),
                "counts": dict(zip(plan.layers, row, strict=True)),
            }
        )
    report = {
        "status": res.status,
        "solver": solver,
        "strategy": strategy,
        "objective": res.objective,
        "bound": res.bound,
        "gap": None
        if res.bound is None or res.objective <= 0
        else (res.bound - res.objective) / res.objective,
        "wall_s": round(res.wall_s, 3),
        "per_level": per_level,
        "settings": {
            "budgets": budgets,
            "weight_bytes": None if weight_bytes is None else [int(b) for b in weight_bytes],
            "include_full": include_full,
            "min_count": min_count,
            "granularity": granularity,
            "time_limit": time_limit,
            "gap": gap,
        },
    }
    return plan, report
