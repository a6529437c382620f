"""Brute-force reference for tiny nets: enumerate every width combination on the grid.

Used by the tests to check the MILP's optimum. Costs come from ``costs.py`` (the
independent model), not from the MILP's terms.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InfeasibleBudgetError
from ..graph import Graph
from ..plan import WidthPlan
from .problem import Budget, make_problem

MAX_COMBINATIONS = 200_000


def brute_force(
    graph: Graph,
    scores: Mapping[str, np.ndarray],
    budgets: Sequence[Budget | float],
    min_width: int | Mapping[str, int] = 1,
    granularity: int = 1,
    *,
    strategy: str = "joint",
    include_full: bool = False,
) -> WidthPlan:
    """The optimal nested plan by enumeration (``joint``) or the paper's level-by-level rule (``bottom_up``).

    ``joint`` maximises the summed kept importance of all levels under nesting;
    ``bottom_up`` maximises each level's kept importance in turn, smallest first, with
    widths at least those of the level below.
    """
    prob = make_problem(
        graph, scores, budgets, min_width=min_width, granularity=granularity, include_full=include_full
    )
    n = int(np.prod([len(g) for g in prob.grids]))
    if n > MAX_COMBINATIONS:
        raise ValueError(
            f"brute_force enumerates {n:,} width combinations (limit {MAX_COMBINATIONS:,}). "
            "Fix: use solve() for real models, or a larger granularity."
        )
    combos = np.array(list(itertools.product(*prob.grids)), dtype=np.int64)
    value = np.array([prob.importance(c) for c in combos])
    feasible = np.array([[not prob.fits(c, lv) for c in combos] for lv in prob.levels])
    rows: list[int] = []
    if strategy == "bottom_up":
        below = np.ones(len(combos), dtype=bool)
        for k in range(len(prob.levels)):
            ok = feasible[k] & below
            if not ok.any():
                raise InfeasibleBudgetError(f"Level {k} has no feasible widths above level {k - 1}'s.")
            i = int(np.argmax(np.where(ok, value, -np.inf)))
            rows.append(i)
            below = np.all(combos >= combos[i], axis=1)
    elif strategy == "joint":
        # dominated[i, j]: combination j fits under combination i in every group.
        dominated = np.all(combos[None, :, :] <= combos[:, None, :], axis=2)
        best = np.where(feasible[0], value, -np.inf)
        choice = []
        for k in range(1, len(prob.levels)):
            cand = np.where(dominated, best[None, :], -np.inf)
            arg = np.argmax(cand, axis=1)
            best = np.where(feasible[k], value + cand[np.arange(len(combos)), arg], -np.inf)
            choice.append(arg)
        if not np.isfinite(best.max()):
            raise InfeasibleBudgetError("No nested plan satisfies every level's budgets.")
        i = int(np.argmax(best))
        rows = [i]
        for arg in reversed(choice):
            i = int(arg[i])
            rows.append(i)
        rows.reverse()
    else:
        raise ValueError(
            f"Unknown strategy. Received: strategy={strategy!r}; expected 'joint' or 'bottom_up'"
        )
    return WidthPlan(graph.group_names, graph.full_widths, tuple(tuple(combos[i]) for i in rows))
