"""The nested-width knapsack as a PuLP MILP ("flow" formulation), solved by CBC or HiGHS.

Per level k and group g, binaries ``s[k,g,i]`` mean "width >= grid[g][i]". The width,
the concave kept-importance prefix sum and any function of the width are linear in
them (telescoping over the grid), and the one-hot choice is ``x_i = s_i - s_{i+1}``.
Each bilinear cost ``c * w[a] * w[b]`` is carried by continuous arc variables
``y[i,j]`` between the two groups' choices, whose row and column sums equal the one-hot
choices; the product is then exact and linear: ``c * sum grid_a[i] grid_b[j] y[i,j]``.
Its LP relaxation is nearly tight (knapsack-notes: root gaps 1e-5..3e-4). Arcs and
widths that break a budget even with every other group at its minimum are never
created (costs are monotone), which is where the per-op memory caps do most work.
Nesting is ``s[k,g,i] <= s[k+1,g,i]``.

Device-time budgets (``Level.cycles``) use the same variables: the cost model's terms are
``coef * fa(w[a]) * fb(w[b])`` with ``fa``/``fb`` the width or a function of it (``graph.WIDTH_FUNCS``:
channel pairs, blocks of 8 / 4, the mod-4 tail). A term of one group is linear in the ``s`` binaries
at any function of the width (telescoping over the grid values ``f(grid[i])``); a term of two
adjacent groups rides on the same arcs as that pair's MAC term, with arc coefficient
``coef * fa(grid_a[i]) * fb(grid_b[j])`` instead of ``grid_a[i] * grid_b[j]``. So a cycles row is one
more linear row over the existing variables (energy = cycles * a constant, so mJ budgets are cycles).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pulp

from ..graph import BilinearTerm
from . import backends
from .greedy import narrow_to_fit
from .problem import Level, Problem, eval_pair

SOLVERS = ("cbc", "highs")


@dataclass
class LevelModel:
    """Variables of one level: per group the grid slice [lo, hi) and its ``s`` binaries."""

    lo: list[int]
    hi: list[int]
    s: list[dict[int, pulp.LpVariable]]  # s[g][i] for lo < i < hi


@dataclass
class SolveResult:
    """What one MILP solve returns, in the problem's normalised objective units."""

    widths: list[list[int]]
    status: str  # optimal (proven within the gap) | time_limit | node_limit | infeasible | no solution
    objective: float | None
    bound: float | None
    wall_s: float
    n_vars: int
    n_cons: int


class _Builder:
    def __init__(self, prob: Problem, levels: list[Level], lower: list[int] | None) -> None:
        self.prob, self.levels = prob, levels
        g = prob.graph
        self.mac_terms = [t for _, t in g.mac_terms()]
        self.wb_terms = [t for _, t in g.weight_byte_terms(1, 4)]
        self.mem_ops = [
            (name, [BilinearTerm(t.coef, t.g, None) for t in terms]) for name, terms in g.memory_terms(1)
        ]
        # Lower bounds (grid indices) for bottom-up: the previous level's choice.
        self.lower = lower or [0] * len(g.groups)
        self.base = [int(prob.grids[i][self.lower[i]]) for i in range(len(g.groups))]
        terms = self.mac_terms + self.wb_terms + prob.cycle_terms
        pairs = {(min(t.a, t.b), max(t.a, t.b)) for t in terms if t.a is not None and t.b is not None}
        self.pairs = sorted(p for p in pairs if p[0] != p[1])
        self.lp = pulp.LpProblem("reds_knapsack", pulp.LpMaximize)
        self.n_cons = 0
        self.arcs: list[dict] = []  # per level: {(a, b): {(i, j): y}}

    # -- budgets as (terms, cap) rows ----------------------------------------------------
    def rows(self, lv: Level) -> list[tuple[str, list[BilinearTerm], float]]:
        out = [("macs", self.mac_terms, float(lv.macs))]
        if lv.weight_bytes is not None:
            out.append(("weight_bytes", self.wb_terms, float(lv.weight_bytes)))
        if lv.peak_memory is not None:
            out += [(f"mem_{name}", terms, float(lv.peak_memory)) for name, terms in self.mem_ops]
        if lv.cycles is not None:
            out.append(("cycles", self.prob.cycle_terms, float(lv.cycles)))
        return out

    def _grid_hi(self, lv: Level) -> list[int]:
        """Per group, one past the largest grid index that fits with the others at the base."""
        hi = []
        dummy = np.zeros(1, dtype=np.int64)
        for gi, grid in enumerate(self.prob.grids):
            ok = np.ones(len(grid), dtype=bool)
            for _, terms, cap in self.rows(lv):
                if any(gi in (t.a, t.b) for t in terms):
                    ok &= eval_pair(terms, self.base, gi, grid, -1, dummy)[:, 0] <= cap
            # Monotone costs: the feasible widths are a prefix; keep at least the lower bound
            # (if even that breaks a budget, the MILP reports the level infeasible).
            tail = ok[self.lower[gi] :]
            n_ok = len(tail) if tail.all() else int(np.argmin(tail))
            hi.append(self.lower[gi] + max(1, n_ok))
        return hi

    def add_level(self, k: int, lv: Level, hi_cap: list[int] | None) -> LevelModel:
        hi = self._grid_hi(lv)
        if hi_cap is not None:
            # Nesting: a level may not use widths the level above cannot reach.
            hi = [min(h, c) for h, c in zip(hi, hi_cap, strict=True)]
        lo = list(self.lower)
        s = []
        for gi, _name in enumerate(self.prob.graph.group_names):
            s.append({i: pulp.LpVariable(f"s_{k}_{gi}_{i}", cat="Binary") for i in range(lo[gi] + 1, hi[gi])})
            for i in range(lo[gi] + 2, hi[gi]):
                self._con(s[gi][i] - s[gi][i - 1] <= 0)
        return LevelModel(lo, hi, s)

    def _con(self, c: pulp.LpConstraint) -> None:
        self.lp += c
        self.n_cons += 1

    # -- linear pieces --------------------------------------------------------------------
    def fexpr(self, m: LevelModel, gi: int, values: np.ndarray) -> tuple[float, dict]:
        """``sum_i values[i] x_i`` as constant + coefficients on the ``s`` binaries."""
        lo = m.lo[gi]
        coefs = {m.s[gi][i]: float(values[i] - values[i - 1]) for i in m.s[gi]}
        return float(values[lo]), coefs

    def x_expr(self, m: LevelModel, gi: int, i: int) -> pulp.LpAffineExpression:
        e = pulp.LpAffineExpression()
        e += m.s[gi][i] if i in m.s[gi] else (1 if i == m.lo[gi] else 0)
        if i + 1 in m.s[gi]:
            e -= m.s[gi][i + 1]
        return e

    def add_costs(self, k: int, m: LevelModel, lv: Level) -> None:
        grids = self.prob.grids
        arcs: dict[tuple[int, int], dict[tuple[int, int], pulp.LpVariable]] = {}
        # Arcs: created only where every budget holds with the other groups at the base.
        for a, b in self.pairs:
            va, vb = grids[a][m.lo[a] : m.hi[a]], grids[b][m.lo[b] : m.hi[b]]
            ok = np.ones((len(va), len(vb)), dtype=bool)
            for _, terms, cap in self.rows(lv):
                if any(t.a in (a, b) or t.b in (a, b) for t in terms):
                    ok &= eval_pair(terms, self.base, a, va, b, vb) <= cap
            ij = np.argwhere(ok)
            y = {
                (int(i) + m.lo[a], int(j) + m.lo[b]): pulp.LpVariable(f"y_{k}_{a}_{b}_{i}_{j}", 0, 1)
                for i, j in ij
            }
            arcs[(a, b)] = y
            rows, cols = defaultdict(list), defaultdict(list)
            for (i, j), v in y.items():
                rows[i].append(v)
                cols[j].append(v)
            for i in range(m.lo[a], m.hi[a]):
                self._con(pulp.lpSum(rows[i]) == self.x_expr(m, a, i))
            for j in range(m.lo[b], m.hi[b]):
                self._con(pulp.lpSum(cols[j]) == self.x_expr(m, b, j))
        self.arcs.append(arcs)
        for name, terms, cap in self.rows(lv):
            coefs: dict = defaultdict(float)
            const = 0.0
            for t in terms:
                ga, gb = t.a, t.b
                if ga is None and gb is None:
                    const += t.coef
                    continue
                if ga is None or gb is None or ga == gb:
                    gi = ga if gb is None else gb if ga is None else ga
                    vals = np.ones(len(grids[gi]))
                    for side, g in (("a", ga), ("b", gb)):
                        if g is not None:
                            vals = vals * t.factor(side, grids[gi]).astype(np.float64)
                    c0, cs = self.fexpr(m, gi, vals)
                    const += t.coef * c0
                    for v, c in cs.items():
                        coefs[v] += t.coef * c
                    continue
                a, b = min(ga, gb), max(ga, gb)
                for (i, j), v in arcs[(a, b)].items():
                    wa, wb = (
                        (int(grids[a][i]), int(grids[b][j]))
                        if ga == a
                        else (int(grids[b][j]), int(grids[a][i]))
                    )
                    coefs[v] += t.coef * float(t.factor("a", wa)) * float(t.factor("b", wb))
            # Rows are scaled by the cap so coefficients stay near 1 for the solver.
            scale = max(cap, 1.0)
            expr = pulp.LpAffineExpression([(v, c / scale) for v, c in coefs.items() if c != 0])
            self._con(pulp.LpConstraint(expr, pulp.LpConstraintLE, f"{name}_{k}", (cap - const) / scale))

    def set_start(self, models: list[LevelModel], start: list[list[int]]) -> None:
        """Give the solver a known feasible plan (e.g. bottom-up's) as its first incumbent."""
        for m, arcs, row in zip(models, self.arcs, start, strict=True):
            idx = [int(np.searchsorted(g, w)) for g, w in zip(self.prob.grids, row, strict=True)]
            for gi, sv in enumerate(m.s):
                for i, v in sv.items():
                    v.setInitialValue(1 if i <= idx[gi] else 0)
            for (a, b), y in arcs.items():
                for (i, j), v in y.items():
                    v.setInitialValue(1 if (i, j) == (idx[a], idx[b]) else 0)

    def objective_terms(self, m: LevelModel) -> tuple[float, dict]:
        const, coefs = 0.0, {}
        for gi in range(len(self.prob.grids)):
            c0, cs = self.fexpr(m, gi, self.prob.prefix[gi])
            const += c0
            coefs.update(cs)
        return const, coefs


def solve_levels(
    prob: Problem,
    levels: list[Level],
    *,
    limits: backends.Limits,
    deadline: float,
    lower: list[int] | None = None,
    start: list[list[int]] | None = None,
) -> SolveResult:
    """Solve the levels jointly (nested); ``lower`` fixes grid-index lower bounds (bottom-up).

    ``deadline`` (``time.monotonic()``) bounds building and solving; a build that reaches it
    returns status ``no solution`` at once. ``start``: a feasible nested plan (widths per
    level) to warm-start CBC from; it must lie on ``prob``'s grids.
    """
    if limits.solver not in SOLVERS:
        raise ValueError(f"Unknown solver. Received: solver={limits.solver!r}; expected one of {SOLVERS}")
    t0 = time.perf_counter()
    bld = _Builder(prob, levels, lower)
    models: list[LevelModel | None] = [None] * len(levels)
    hi_cap = None
    # Build from the top level down so each level's grid is capped by the one above.
    for k in reversed(range(len(levels))):
        models[k] = bld.add_level(k, levels[k], hi_cap)
        hi_cap = models[k].hi
    obj_const, obj = 0.0, pulp.LpAffineExpression()
    for k, m in enumerate(models):
        if time.monotonic() >= deadline:
            return SolveResult([], "no solution", None, None, time.perf_counter() - t0, 0, bld.n_cons)
        bld.add_costs(k, m, levels[k])
        c0, cs = bld.objective_terms(m)
        obj_const += c0
        obj += pulp.LpAffineExpression(list(cs.items()))
        if k + 1 < len(models):
            up = models[k + 1]
            for gi, sv in enumerate(m.s):
                for i, v in sv.items():
                    if i in up.s[gi]:
                        bld._con(v - up.s[gi][i] <= 0)
    # The MPS file PuLP writes drops objective constants, and the solvers' relative gap is
    # measured on the objective they see: carry the constant on a variable fixed at 1.
    one = pulp.LpVariable("objective_constant", 1, 1)
    obj += obj_const * one
    bld.lp += obj
    n_vars = len(bld.lp.variables()) - 1
    if n_vars == 0:  # every width is forced: nothing to optimise
        widths = [[int(prob.grids[g][m.lo[g]]) for g in range(len(prob.grids))] for m in models]
        return SolveResult(widths, "optimal", obj_const, obj_const, time.perf_counter() - t0, 0, bld.n_cons)
    if limits.msg:
        print(f"[reds solve] MILP: {n_vars} variables, {bld.n_cons} constraints", file=sys.stderr)
    if start is not None:
        bld.set_start(models, start)
    if time.monotonic() >= deadline:
        return SolveResult([], "no solution", None, None, time.perf_counter() - t0, n_vars, bld.n_cons)
    res = backends.run(bld.lp, limits, deadline, warm=start is not None)
    status, gap_abs = res.status, res.gap_abs
    if status in ("infeasible", "no solution"):
        return SolveResult([], status, None, None, time.perf_counter() - t0, n_vars, bld.n_cons)
    widths = []
    for m in models:
        row = []
        for g, sv in enumerate(m.s):
            top = m.lo[g] + sum(1 for v in sv.values() if (v.varValue or 0.0) > 0.5)
            row.append(int(prob.grids[g][top]))
        widths.append(row)
    # The solvers' bound and incumbent share any constant offset of the objective: report the
    # bound as the solver's plan's own objective plus the solver's absolute gap.
    bound = None if gap_abs is None else sum(prob.importance(w) for w in widths) + gap_abs
    widths = _exact(prob, levels, widths, bld.lower)
    if widths is None:
        return SolveResult([], "no solution", None, bound, time.perf_counter() - t0, n_vars, bld.n_cons)
    obj_val = sum(prob.importance(w) for w in widths)
    return SolveResult(widths, status, obj_val, bound, time.perf_counter() - t0, n_vars, bld.n_cons)


def _exact(
    prob: Problem, levels: list[Level], widths: list[list[int]], lower: list[int]
) -> list[list[int]] | None:
    """Recount every level with ``costs.py`` (integers); mend a tolerance-sized overrun.

    The caps in the MILP are the exact integer budgets, with no margin, so a solver's
    feasibility tolerance can let a plan overrun one by a few units. Narrow such a level
    and keep the levels below nested under it (narrowing only lowers their costs).
    """
    out = [list(w) for w in widths]
    for k in reversed(range(len(levels))):
        if prob.fits(out[k], levels[k]):
            mended = narrow_to_fit(prob, out[k], levels[k], lower)
            if mended is None:
                return None
            out[k] = mended
            for j in range(k):
                out[j] = [min(a, b) for a, b in zip(out[j], mended, strict=True)]
    return out
