"""Fine width grids on wide nets: solve on coarse cells with an optimistic value, refine where it matters.

The flow MILP grows with (choices per group)^2 per bilinear product: every width of a
1024-wide layer is a million arcs per product, beyond any memory or time budget. So each
group's grid is cut into cells of consecutive widths and a relaxation is solved in which a
cell costs what its narrowest width costs and is worth what its widest width keeps. Costs
are monotone in every width and kept importance grows with width, hence

* every plan on the fine grid maps to the plan of its cells, which meets the same budgets
  and is worth at least as much: the relaxation's proven bound bounds the fine optimum;
* the narrowest widths of the cells the relaxation picks are a fine plan with exactly the
  relaxation's costs, so it fits: an incumbent, then widened greedily on the fine grid.

The picked cells are split and the relaxation solved again, until the incumbent is within the
gap of the best bound, the picked cells are single widths (the relaxation is then the fine
problem itself) or the deadline passes. Small grids need no cells: one exact solve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from .backends import Limits
from .greedy import FastCost, greedy_start
from .milp import solve_levels
from .problem import Level, Problem

# Cells per group in the first relaxation: 32 x 32 arcs per product keeps a MobileNetV1-1.0
# level to ~15k arcs (a few seconds for PuLP and CBC); split picked cells 8 ways.
FIRST_CELLS = 32
SPLIT = 8


@dataclass
class Refined:
    """Widths per level on the fine grid, a valid upper bound on their summed importance."""

    widths: list[list[int]]
    status: str  # optimal | time_limit | node_limit | infeasible | no solution
    bound: float | None
    rounds: int


def _idx(prob: Problem, widths: list[int]) -> list[int]:
    return [int(np.searchsorted(g, w)) for g, w in zip(prob.grids, widths, strict=True)]


def _cells(prob: Problem, bps: list[np.ndarray]) -> Problem:
    """The relaxation: each cell at its narrowest width's cost and its widest width's value."""
    grids, prefix = [], []
    for g, b in enumerate(bps):
        ends = np.append(b[1:] - 1, b[-1])
        grids.append(prob.grids[g][b])
        prefix.append(prob.prefix[g][ends])
    return Problem(
        prob.graph, grids, prefix, prob.levels, prob.full_macs, prob.full_weight_bytes, prob.cycle_terms
    )


def _nested_greedy(
    prob: Problem, levels: list[Level], lower: list[int], base: list[list[int]] | None, fc: FastCost
) -> list[list[int]] | None:
    """Widen each level greedily on the fine grid, top level first, staying under the level above."""
    if base is None:
        rows: list[list[int]] = []
        low = list(lower)
        for lv in levels:
            w = greedy_start(prob, lv, low, fc)
            if w is None:
                return None
            rows.append(w)
            low = _idx(prob, w)
        return rows
    out = [list(w) for w in base]
    upper = None
    for k in reversed(range(len(levels))):
        w = greedy_start(prob, levels[k], _idx(prob, out[k]), fc, upper)
        out[k] = w if w is not None else out[k]
        upper = _idx(prob, out[k])
    return out


def _picked_wide(rel: Problem, arrays: list[np.ndarray], row: list[int]) -> bool:
    """Whether any picked cell of ``row`` holds more than one width."""
    return any(j + 1 < len(b) and b[j + 1] - b[j] > 1 for b, j in zip(arrays, _idx(rel, row), strict=True))


def _split(b: np.ndarray, j: int, parts: int) -> set[int]:
    """New breakpoints that cut cell ``j`` into ``parts`` (single widths once it is that small)."""
    lo, size = int(b[j]), int(b[j + 1] - b[j])
    if size <= parts:
        return set(range(lo + 1, lo + size))
    return {lo + (size * t) // parts for t in range(1, parts)}


def first_cells(n_levels: int) -> int:
    """Cells per group in the first relaxation: fewer when many levels share one model."""
    return min(FIRST_CELLS, max(8, int(FIRST_CELLS * (4 / max(n_levels, 1)) ** 0.5)))


def solve_refined(
    prob: Problem,
    levels: list[Level],
    *,
    lower: list[int],
    start: list[list[int]] | None,
    deadline: float,
    limits: Limits,
) -> Refined:
    """Nested widths for ``levels`` at or above grid indices ``lower``, by cell refinement."""
    fc = FastCost(prob)
    top = [len(g) - 1 for g in prob.grids]
    inc = _nested_greedy(prob, levels, lower, start, fc)
    inc_val = -np.inf if inc is None else sum(prob.importance(w) for w in inc)
    # Cell breakpoints (grid indices) per group: a cell runs from one to the next, minus one.
    bps = [
        {int(i) for i in np.round(np.linspace(lo, hi, min(first_cells(len(levels)), hi - lo + 1)))}
        for lo, hi in zip(lower, top, strict=True)
    ]
    bound, status, rounds = np.inf, "no solution", 0
    # The MILP must prove a tighter gap than asked: the relaxation's own slack comes on top.
    gap = limits.gap
    milp_limits = replace(limits, gap=gap / 2)
    while time.monotonic() < deadline:
        if inc is not None:  # the incumbent must lie on the relaxation's grid (warm start)
            for row in inc:
                for g, i in enumerate(_idx(prob, row)):
                    bps[g].add(i)
        arrays = [np.array(sorted(p), dtype=np.int64) for p in bps]
        rel = _cells(prob, arrays)
        r = solve_levels(
            rel,
            levels,
            limits=milp_limits,
            deadline=deadline,
            lower=[0] * len(arrays),
            start=inc,
        )
        rounds += 1
        if r.status == "infeasible":
            return Refined([], "infeasible", None, rounds)
        if r.bound is not None:
            bound = min(bound, r.bound)
        if not r.widths:
            status = "time_limit"
            break
        cand = _nested_greedy(prob, levels, lower, r.widths, fc)
        val = sum(prob.importance(w) for w in cand)
        if val > inc_val:
            inc, inc_val = cand, val
        status = r.status
        if np.isfinite(bound) and bound - inc_val <= gap * max(inc_val, 1e-12):
            status = "optimal"
            break
        # Split the cells the relaxation picked, and their neighbours (where the fine optimum
        # often lies); picked single widths are exact already, so all-single picks end the loop.
        if not any(_picked_wide(rel, arrays, row) for row in r.widths):
            break
        # With many levels the picks spread over many cells: split each more coarsely so a
        # group's cells at most double per round (the model grows with their square).
        reach = (-1, 0, 1) if len(levels) <= 4 else (0,)
        for g, b in enumerate(arrays):
            cells = {j + d for row in r.widths for j in _idx(rel, row)[g : g + 1] for d in reach}
            cells = {j for j in cells if 0 <= j < len(b) - 1 and b[j + 1] - b[j] > 1}
            parts = max(2, min(SPLIT, len(b) // max(len(cells), 1) + 1))
            for j in cells:
                bps[g] |= _split(b, j, parts)
    if inc is None:
        return Refined([], "no solution", None, rounds)
    if status == "no solution":
        status = "time_limit"
    return Refined(inc, status, bound if np.isfinite(bound) else None, rounds)
