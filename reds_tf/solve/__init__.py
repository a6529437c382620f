"""Nested-width knapsack: choose every level's per-group widths under exact budgets.

``solve(graph, scores, budgets)`` maximises kept importance (prefix sums of the sorted
per-group scores) subject to, per level, the TRUE bilinear MACs, optional per-op peak
activation memory (int8) and int8 weight bytes, and nesting ``w[k] <= w[k+1]``. It
builds a PuLP MILP (``milp.py``) solved by CBC (bundled) or HiGHS (``highspy``), then
re-checks the plan with ``costs.py`` and refuses to return a plan that breaks a budget.

Strategies: ``joint`` puts all levels in one model (nesting as constraints, maximising
the summed importance); ``bottom_up`` is the paper's rule: smallest level first, each
later level at least as wide as the one below.

No TensorFlow here: this module and its parts import only numpy and pulp.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..costs import cost
from ..errors import InfeasibleBudgetError, RedsError
from ..graph import Graph
from ..plan import WidthPlan
from .brute import brute_force
from .greedy import greedy_start
from .milp import SOLVERS, solve_levels
from .problem import Budget, Level, Problem, make_problem

STRATEGIES = ("bottom_up", "joint")

__all__ = ["Budget", "SolveReport", "brute_force", "solve", "STRATEGIES", "SOLVERS"]


@dataclass(frozen=True)
class SolveReport:
    """The plan and how it was found.

    ``objective`` is the kept importance summed over levels (each level 0..1 of the full
    model's importance). ``bound`` is the solver's proven upper bound on it (for
    ``bottom_up``: the sum of each level's bound given the levels below), ``gap`` the
    relative distance ``(bound - objective) / objective``. ``status`` is ``optimal`` when
    every solve proved its solution within the requested gap, ``feasible`` when a time
    limit stopped a solve with a solution that is not proven.
    """

    plan: WidthPlan
    status: str
    objective: float
    bound: float | None
    gap: float | None
    wall_s: float
    solver: str
    strategy: str
    per_level: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_dict(),
            "status": self.status,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "wall_s": self.wall_s,
            "solver": self.solver,
            "strategy": self.strategy,
            "per_level": self.per_level,
            "settings": self.settings,
        }


def _level_row(prob: Problem, k: int, widths: Sequence[int], extra: dict[str, Any]) -> dict[str, Any]:
    c = cost(prob.graph, widths)
    lv = prob.levels[k]
    return {
        "level": k,
        "budget": lv.label,
        "macs": c.macs,
        "macs_pct": 100.0 * c.macs_fraction,
        "params": c.params,
        "params_pct": 100.0 * c.params_fraction,
        "peak_memory": c.peak_memory_int8,
        "weight_bytes": c.weight_bytes_int8,
        "importance_pct": 100.0 * prob.importance(widths),
        "widths": dict(zip(prob.graph.group_names, (int(w) for w in widths), strict=True)),
        **extra,
    }


def _say(progress: Callable[[str], None] | None, msg: bool, text: str) -> None:
    if progress is not None:
        progress(text)
    elif msg:
        print(f"[reds solve] {text}", file=sys.stderr)


def _fail(prob: Problem, k: int | None, status: str, strategy: str) -> RedsError:
    where = "the joint model" if k is None else f"level {k} ({prob.levels[k].label})"
    if status == "infeasible":
        hint = (
            " Bottom-up fixed the widths of the levels below; try strategy='joint'."
            if strategy == "bottom_up" and k
            else ""
        )
        return InfeasibleBudgetError(f"The solver proved {where} infeasible.{hint}")
    return RedsError(
        f"The solver found no solution for {where} within the time limit (status: {status}). "
        "Fix: raise time_limit, use a coarser granularity or solver='highs'."
    )


def _verify(prob: Problem, widths: list[list[int]]) -> None:
    """Re-check every level with the independent cost model; never return a broken plan."""
    for k, (w, lv) in enumerate(zip(widths, prob.levels, strict=True)):
        broken = prob.fits(w, lv)
        if broken:
            raise RedsError(
                f"The solver's plan breaks level {k}'s budgets under costs.py: {'; '.join(broken)}. "
                f"Widths: {w}. This is a solver tolerance problem; please report it."
            )


def _bottom_up(
    prob: Problem,
    levels: list[Level],
    solver: str,
    time_limit: float,
    gap: float,
    msg: bool,
    progress: Callable[[str], None] | None,
) -> tuple[list, list, list, list, list]:
    """The paper's rule: each level alone, smallest first, at least as wide as the one below."""
    t0 = time.perf_counter()
    lower = [0] * len(prob.grids)
    widths, statuses, bounds, gaps, extras = [], [], [], [], []
    for k, lv in enumerate(levels):
        left = max(1.0, time_limit - (time.perf_counter() - t0))
        # A greedy start gives CBC a good incumbent at once (from a uniform start it ended at a
        # 58 % gap on MobileNetV1-1.0); the MILP can only improve on it.
        w0 = greedy_start(prob, lv, lower)
        r = solve_levels(
            prob,
            [lv],
            lower=lower,
            solver=solver,
            time_limit=left / (len(levels) - k),
            gap=gap,
            msg=msg,
            start=None if w0 is None else [w0],
        )
        if r.status == "no solution" and w0 is not None:
            r.widths, r.status, r.bound, r.objective = [w0], "feasible", None, prob.importance(w0)
        if r.status in ("infeasible", "no solution"):
            raise _fail(prob, k, r.status, "bottom_up")
        w = r.widths[0]
        lvl_gap = None if r.bound is None else (r.bound - r.objective) / max(r.objective, 1e-12)
        widths.append(w)
        statuses.append(r.status)
        bounds.append(r.bound)
        gaps.append(lvl_gap)
        extras.append({"status": r.status, "gap": lvl_gap, "wall_s": r.wall_s})
        _say(
            progress,
            msg,
            f"level {k}: {r.status}, {r.wall_s:.1f} s, kept importance {100 * r.objective:.2f} %",
        )
        lower = [int(np.searchsorted(g, x)) for g, x in zip(prob.grids, w, strict=True)]
    return widths, statuses, bounds, gaps, extras


def solve(
    graph: Graph,
    scores: Mapping[str, np.ndarray],
    budgets: Sequence[Budget | float],
    *,
    min_width: int | Mapping[str, int] = 1,
    granularity: int = 1,
    strategy: str = "bottom_up",
    solver: str = "cbc",
    time_limit: float = 60.0,
    gap: float = 0.01,
    include_full: bool = False,
    msg: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SolveReport:
    """Solve the nested-width knapsack and return the plan with its report.

    Args:
        graph: the network (``topology.graph_of(model)`` or a hand-built ``Graph``).
        scores: per group name, unit scores sorted descending (units already permuted).
        budgets: one ``Budget`` (or a bare MACs fraction / count) per level; sorted ascending.
        min_width: smallest width of every group, or per group name.
        granularity: widths are multiples of it (plus the full width).
        strategy: ``bottom_up`` (paper) or ``joint``.
        solver: ``cbc`` (bundled with PuLP) or ``highs``.
        time_limit: seconds for the whole solve (bottom-up shares it among levels).
        gap: relative optimality gap at which the solver may stop.
        include_full: append the full-width model as the top level.
        msg: show the solver's log and a status line per level on stderr.
        progress: called with a short status line per solve (instead of printing).

    Raises:
        InfeasibleBudgetError: a budget cannot be met (checked before the MILP when the
            minimum widths already break it, with the smallest feasible value).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy. Received: strategy={strategy!r}; expected one of {STRATEGIES}")
    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver. Received: solver={solver!r}; expected one of {SOLVERS}")
    t0 = time.perf_counter()
    prob = make_problem(
        graph, scores, budgets, min_width=min_width, granularity=granularity, include_full=include_full
    )
    # Top levels whose budgets the full widths meet keep the full widths: importance only grows
    # with width, so that is their optimum, and the levels below stay nested under it. Only the
    # levels below go into the MILP.
    full = [int(g[-1]) for g in prob.grids]
    n_solve = len(prob.levels)
    while n_solve and not prob.fits(full, prob.levels[n_solve - 1]):
        n_solve -= 1
    levels: list[Level] = prob.levels[:n_solve]
    widths: list[list[int]] = []
    statuses, gaps, bounds, extras = [], [], [], []
    if strategy == "joint" and levels:
        # Bottom-up first (seconds): a feasible nested start, so the joint solve can only improve
        # on it (without one, CBC found no incumbent in 60 s on DS-CNN-S with 10 levels).
        try:
            start = _bottom_up(prob, levels, solver, time_limit / 4, gap, False, None)[0]
        except RedsError:  # bottom-up can fail where joint succeeds (caps not monotone)
            start = None
        left = max(1.0, time_limit - (time.perf_counter() - t0))
        r = solve_levels(prob, levels, solver=solver, time_limit=left, gap=gap, msg=msg, start=start)
        if r.status == "no solution" and start is not None:
            # Out of time without an incumbent of its own: the start is a proven-feasible plan.
            r.widths, r.status, r.bound = start, "feasible", None
        if r.status in ("infeasible", "no solution"):
            raise _fail(prob, None, r.status, strategy)
        widths, statuses, bounds = r.widths, [r.status], [r.bound]
        _say(
            progress, msg, f"joint, {len(levels)} levels: {r.status}, {r.wall_s:.1f} s, {r.n_vars} variables"
        )
        extras = [{} for _ in levels]
    else:
        widths, statuses, bounds, gaps, extras = _bottom_up(
            prob, levels, solver, time_limit, gap, msg, progress
        )
    for _ in prob.levels[n_solve:]:
        widths.append(list(full))
        extras.append({"status": "optimal", "gap": 0.0} if strategy == "bottom_up" else {})
    _verify(prob, widths)
    plan = WidthPlan(graph.group_names, graph.full_widths, tuple(tuple(w) for w in widths))
    objective = sum(prob.importance(w) for w in widths)
    bound = None
    if all(b is not None for b in bounds):
        bound = sum(bounds) + float(len(prob.levels) - n_solve)
    gap_val = None if bound is None else max(0.0, bound - objective) / max(objective, 1e-12)
    if strategy == "bottom_up" and gaps and all(g is not None for g in gaps):
        gap_val = max(gaps)
    status = "optimal" if all(s == "optimal" for s in statuses) else "feasible"
    return SolveReport(
        plan=plan,
        status=status,
        objective=objective,
        bound=bound,
        gap=gap_val,
        wall_s=time.perf_counter() - t0,
        solver=solver,
        strategy=strategy,
        per_level=[_level_row(prob, k, w, e) for k, (w, e) in enumerate(zip(widths, extras, strict=True))],
        settings={
            "granularity": int(granularity),
            "min_width": dict(min_width) if isinstance(min_width, Mapping) else int(min_width),
            "time_limit": time_limit,
            "gap": gap,
            "include_full": include_full,
        },
    )
