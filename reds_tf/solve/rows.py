"""Per-row counts of nested row-sparse levels (DRESS) as a small PuLP MILP.

Unlike REDS widths, a row-sparse layer's costs depend on its own count only (MACs ``coef * n``,
storage a function of n), so the problem separates by layer: per level k and layer l, binaries
``s[k,l,i]`` mean "count >= grid[l][i]"; any function of the count is linear in them (telescoping
over the grid), the kept importance (concave prefix sums of every row's sorted scores) too, and
nesting is ``s[k,l,i] <= s[k+1,l,i]``. Budgets are exact integers: each level's counts are recounted
after the solve, and a tolerance-sized overrun is mended by lowering the count that loses the least
importance per unit of cost. Runs through ``backends`` (CBC child process under a deadline, or
HiGHS), as the width knapsack. No TensorFlow here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pulp

from ..errors import InfeasibleBudgetError
from . import backends
from .milp import SOLVERS
from .problem import width_grid

STRATEGIES = ("joint", "bottom_up")


@dataclass(frozen=True)
class RowLayer:
    """One layer in plain numbers: allowed counts and, at each, kept importance, MACs and bytes."""

    name: str
    grid: np.ndarray  # ascending allowed counts
    importance: np.ndarray  # kept importance at each grid count (normalised over all layers)
    macs: np.ndarray  # MACs at each grid count
    weight_bytes: np.ndarray  # stored bytes at each grid count


@dataclass(frozen=True)
class RowBudget:
    """One level's caps in absolute units for the row-sparse layers' share (fixed costs subtracted)."""

    macs: int
    weight_bytes: int | None = None


@dataclass
class RowsResult:
    counts: list[list[int]]  # K x L, level 0 smallest
    status: str  # optimal | time_limit | node_limit
    objective: float  # summed kept importance over levels
    bound: float | None
    wall_s: float


def make_layer(
    name: str,
    prefix: np.ndarray,
    total: float,
    macs_per_count: int,
    bytes_at: Sequence[int] | np.ndarray,
    *,
    min_count: int = 1,
    granularity: int = 1,
) -> RowLayer:
    """A layer from its prefix importance ``prefix[n]`` (n = 0..fan_in), normalised by ``total``.

    ``bytes_at[n]`` is its storage at count n (n = 0..fan_in). Counts are multiples of
    ``granularity`` from ``min_count`` up, plus the whole row.
    """
    fan_in = len(prefix) - 1
    grid = width_grid(fan_in, min_count, granularity)
    scale = total if total > 0 else 1.0
    p = np.asarray(prefix, dtype=np.float64)[grid] / scale
    return RowLayer(name, grid, p, macs_per_count * grid, np.asarray(bytes_at, dtype=np.int64)[grid])


def _fits(layers: Sequence[RowLayer], idx: Sequence[int], b: RowBudget) -> bool:
    m = sum(int(lay.macs[i]) for lay, i in zip(layers, idx, strict=True))
    wb = sum(int(lay.weight_bytes[i]) for lay, i in zip(layers, idx, strict=True))
    return m <= b.macs and (b.weight_bytes is None or wb <= b.weight_bytes)


def _check_minimum(layers: Sequence[RowLayer], budgets: Sequence[RowBudget]) -> None:
    lo = [0] * len(layers)
    m = sum(int(lay.macs[0]) for lay in layers)
    wb = sum(int(lay.weight_bytes[0]) for lay in layers)
    for k, b in enumerate(budgets):
        if not _fits(layers, lo, b):
            what = f"MACs {m:,} > {b.macs:,}" if m > b.macs else f"weight bytes {wb:,} > {b.weight_bytes:,}"
            raise InfeasibleBudgetError(
                f"Level {k}: the smallest counts already break the budget of the row-sparse layers "
                f"({what}). Fix: raise the level's budget, or lower min_count / granularity."
            )


def _mend(layers: Sequence[RowLayer], idx: list[int], b: RowBudget, floor: Sequence[int]) -> list[int]:
    """Lower counts (never below ``floor``) until ``idx`` meets ``b``: each step drops the layer whose
    next lower grid count loses the least importance per MAC saved."""
    idx = list(idx)
    while not _fits(layers, idx, b):
        best, best_rate = None, np.inf
        for l_, lay in enumerate(layers):
            i = idx[l_]
            if i <= floor[l_]:
                continue
            saved = max(1, int(lay.macs[i] - lay.macs[i - 1]))
            rate = float(lay.importance[i] - lay.importance[i - 1]) / saved
            if rate < best_rate:
                best, best_rate = l_, rate
        if best is None:
            raise InfeasibleBudgetError("No counts meet the budget above the lower level's counts.")
        idx[best] -= 1
    return idx


def _solve(
    layers: Sequence[RowLayer],
    budgets: Sequence[RowBudget],
    lower: Sequence[int],
    limits: backends.Limits,
    deadline: float,
) -> tuple[list[list[int]], str, float | None]:
    """One MILP over ``budgets`` (nested), counts at grid indices >= ``lower``; grid indices out."""
    lp = pulp.LpProblem("dress_counts", pulp.LpMaximize)
    s: list[list[dict[int, pulp.LpVariable]]] = []
    obj = pulp.LpAffineExpression()
    const = 0.0
    for k, b in enumerate(budgets):
        sk = []
        macs, wbytes = pulp.LpAffineExpression(), pulp.LpAffineExpression()
        m0 = wb0 = 0
        for l_, lay in enumerate(layers):
            lo = lower[l_]
            sv = {i: pulp.LpVariable(f"s_{k}_{l_}_{i}", cat="Binary") for i in range(lo + 1, len(lay.grid))}
            for i in sv:
                if i - 1 in sv:
                    lp += sv[i] <= sv[i - 1]
                if k > 0 and i in s[k - 1][l_]:
                    lp += s[k - 1][l_][i] <= sv[i]
                obj += float(lay.importance[i] - lay.importance[i - 1]) * sv[i]
                macs += float(lay.macs[i] - lay.macs[i - 1]) * sv[i]
                wbytes += float(lay.weight_bytes[i] - lay.weight_bytes[i - 1]) * sv[i]
            const += float(lay.importance[lo])
            m0 += int(lay.macs[lo])
            wb0 += int(lay.weight_bytes[lo])
            sk.append(sv)
        s.append(sk)
        # Rows scaled by their cap so coefficients stay near 1 for the solver.
        scale = max(b.macs, 1)
        lp += pulp.LpConstraint(macs * (1.0 / scale), pulp.LpConstraintLE, f"macs_{k}", (b.macs - m0) / scale)
        if b.weight_bytes is not None:
            scale = max(b.weight_bytes, 1)
            lp += pulp.LpConstraint(
                wbytes * (1.0 / scale), pulp.LpConstraintLE, f"bytes_{k}", (b.weight_bytes - wb0) / scale
            )
    one = pulp.LpVariable("objective_constant", 1, 1)  # MPS drops objective constants
    lp += obj + const * one
    if len(lp.variables()) <= 1:
        return [list(lower) for _ in budgets], "optimal", 0.0
    res = backends.run(lp, limits, deadline, warm=False)
    if res.status in ("infeasible", "no solution"):
        raise InfeasibleBudgetError(
            f"The count MILP found no plan ({res.status}). Fix: raise the budgets or the time limit."
        )
    idx = [
        [lower[l_] + sum(1 for v in sv.values() if (v.varValue or 0.0) > 0.5) for l_, sv in enumerate(sk)]
        for sk in s
    ]
    return idx, res.status, res.gap_abs


def solve_rows(
    layers: Sequence[RowLayer],
    budgets: Sequence[RowBudget],
    *,
    solver: str = "cbc",
    time_limit: float = 60.0,
    gap: float = 0.01,
    strategy: str = "joint",
) -> RowsResult:
    """Counts per level (budgets ascending) maximising kept importance under the caps, nested.

    ``joint`` solves all levels in one MILP; ``bottom_up`` (REDS's rule) solves the smallest level
    first and keeps every later level at least as dense. Raises ``InfeasibleBudgetError`` when even
    the smallest counts break a budget.
    """
    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver. Received: solver={solver!r}; expected one of {SOLVERS}")
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy. Received: strategy={strategy!r}; expected one of {STRATEGIES}")
    if not budgets:
        raise ValueError("Give at least one budget. Received: budgets=[]")
    _check_minimum(layers, budgets)
    t0 = time.perf_counter()
    deadline = time.monotonic() + time_limit
    statuses, gaps = [], []
    with backends.scratch_dir() as work:
        limits = backends.Limits(work, solver, gap)
        if strategy == "joint":
            idx, st, g = _solve(layers, budgets, [0] * len(layers), limits, deadline)
            statuses.append(st)
            gaps.append(g)
        else:
            idx, lower = [], [0] * len(layers)
            for b in budgets:
                one, st, g = _solve(layers, [b], lower, limits, deadline)
                idx.append(one[0])
                lower = one[0]
                statuses.append(st)
                gaps.append(g)
    solved = sum(float(lay.importance[i]) for row in idx for lay, i in zip(layers, row, strict=True))
    # Exact recount, top level down; a mended level caps the levels below it (nesting).
    for k in reversed(range(len(budgets))):
        floor = [0] * len(layers)
        idx[k] = _mend(layers, idx[k], budgets[k], floor)
        for j in range(k):
            idx[j] = [min(a, c) for a, c in zip(idx[j], idx[k], strict=True)]
    counts = [[int(lay.grid[i]) for lay, i in zip(layers, row, strict=True)] for row in idx]
    objective = sum(float(lay.importance[i]) for row in idx for lay, i in zip(layers, row, strict=True))
    bound = None if any(g is None for g in gaps) else solved + sum(gaps)
    status = next((st for st in statuses if st != "optimal"), "optimal")
    return RowsResult(counts, status, objective, bound, time.perf_counter() - t0)
