"""The knapsack problem in plain numbers: budgets, width grids, importance, cheap checks.

Everything here is solver-independent: the MILP (``milp.py``) and the brute-force
reference (``brute.py``) read the same ``Problem``, so they optimise the same thing.

Costs are monotone in every width (all cost coefficients are non-negative), which
gives two exact shortcuts used throughout:

* the minimum widths give the minimum MACs / peak memory / weight bytes, so a
  budget the minimum widths break is infeasible, and a nested plan with every level
  at the minimum widths is feasible whenever each budget is;
* a width that breaks a budget with every other group at its minimum can never be
  chosen, so each level's grid is a prefix of the group's grid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ..costs import eval_bilinear, op_memory, weight_bytes
from ..costs import macs as true_macs
from ..errors import InfeasibleBudgetError
from ..graph import BilinearTerm, Graph


@dataclass(frozen=True)
class Budget:
    """Budgets of one level.

    Args:
        macs: fraction of the full model's MACs if <= 1.0, else absolute MACs.
        peak_memory: cap on peak activation memory in bytes (int8 activations), or None.
        weight_bytes: cap on deployed int8 weight bytes (int32 biases), or None.
        cycles: cap on the device cost model's predicted Cortex-M4 cycles per inference, or None
            (milliseconds and millijoules become cycles through ``device_cost.PowerModel``).
    """

    macs: float | int
    peak_memory: int | None = None
    weight_bytes: int | None = None
    cycles: int | None = None

    def __post_init__(self) -> None:
        if not (self.macs > 0 and math.isfinite(self.macs)):
            raise ValueError(
                f"A MACs budget must be a finite number > 0. Received: macs={self.macs!r}. "
                "Fix: a fraction of the full model's MACs in (0, 1], or an absolute MACs count."
            )
        if self.macs > 1 and self.macs != int(self.macs):
            raise ValueError(
                f"A MACs budget above 1 is an absolute MACs count and must be a whole number. "
                f"Received: macs={self.macs!r}. Fix: a fraction in (0, 1] or an integer MACs count."
            )
        for name in ("peak_memory", "weight_bytes", "cycles"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"Budget.{name} must be a positive count or None. Received: {name}={v!r}")


@dataclass(frozen=True)
class Level:
    """One level's budgets in absolute units (integers, as the costs are)."""

    macs: int
    peak_memory: int | None
    weight_bytes: int | None
    label: str
    cycles: int | None = None


def _fmt(n: float) -> str:
    return f"{int(n):,}"


@dataclass
class Problem:
    """A graph, its per-group width grids and importance, and absolute level budgets."""

    graph: Graph
    grids: list[np.ndarray]  # per group, ascending allowed widths
    prefix: list[np.ndarray]  # per group, normalised kept importance at each grid width
    levels: list[Level]
    full_macs: int
    full_weight_bytes: int
    #: predicted device cycles as terms over the widths (``device_cost``); empty without a cost model
    cycle_terms: list[BilinearTerm] = field(default_factory=list)

    def cycles(self, widths: Sequence[int]) -> float:
        """Predicted device cycles of ``widths`` (0 without a cost model)."""
        return float(sum(eval_bilinear(t, widths) for t in self.cycle_terms))

    @property
    def min_widths(self) -> list[int]:
        return [int(g[0]) for g in self.grids]

    def importance(self, widths: Sequence[int]) -> float:
        """Kept importance of a width vector as a fraction of the full model's (0..1)."""
        total = 0.0
        for g, w in enumerate(widths):
            total += float(self.prefix[g][int(np.searchsorted(self.grids[g], w))])
        return total

    def fits(self, widths: Sequence[int], level: Level) -> list[str]:
        """Names of the budgets ``widths`` breaks under the independent cost model."""
        broken = []
        m = true_macs(self.graph, widths)
        if m > level.macs:
            broken.append(f"MACs {_fmt(m)} > {_fmt(level.macs)}")
        if level.peak_memory is not None:
            peak = max(op_memory(self.graph, widths).values())
            if peak > level.peak_memory:
                broken.append(f"peak memory {_fmt(peak)} B > {_fmt(level.peak_memory)} B")
        if level.weight_bytes is not None:
            wb = weight_bytes(self.graph, widths)
            if wb > level.weight_bytes:
                broken.append(f"int8 weight bytes {_fmt(wb)} > {_fmt(level.weight_bytes)}")
        if level.cycles is not None:
            cy = self.cycles(widths)
            if cy > level.cycles:
                broken.append(f"predicted cycles {_fmt(cy)} > {_fmt(level.cycles)}")
        return broken


def width_grid(full: int, min_width: int, granularity: int) -> np.ndarray:
    """Allowed widths: multiples of ``granularity`` from ``min_width`` up, plus the full width."""
    lo = min(max(1, min_width), full)
    first = -(-lo // granularity) * granularity
    vals = set(range(first, full + 1, granularity)) | {full}
    return np.array(sorted(v for v in vals if v >= lo), dtype=np.int64)


def _min_width_of(graph: Graph, min_width: int | Mapping[str, int]) -> list[int]:
    if isinstance(min_width, Mapping):
        unknown = set(min_width) - set(graph.group_names)
        if unknown:
            raise ValueError(
                f"min_width names groups the graph does not have. Received: {sorted(unknown)}; "
                f"groups are {list(graph.group_names)}"
            )
        asked = [int(min_width.get(g.name, 1)) for g in graph.groups]
    else:
        asked = [int(min_width)] * len(graph.groups)
    for a, g in zip(asked, graph.groups, strict=True):
        if not 1 <= a <= g.full:
            raise ValueError(
                f"min_width {a} is outside 1..{g.full}, the widths of group '{g.name}'. "
                f"Fix: min_width between 1 and {g.full} (or a per-group mapping)."
            )
    return [max(a, g.min_width) for a, g in zip(asked, graph.groups, strict=True)]


def _prefix_importance(
    graph: Graph, scores: Mapping[str, np.ndarray], grids: list[np.ndarray]
) -> list[np.ndarray]:
    """Kept importance at each grid width, normalised so the full model keeps 1.0."""
    sums = []
    for g in graph.groups:
        if g.name not in scores:
            raise ValueError(
                f"No importance scores for group '{g.name}'. Received scores for: {sorted(scores)}. "
                "Fix: give one score array per group (reds_tf.importance)."
            )
        s = np.asarray(scores[g.name], dtype=np.float64).ravel()
        if s.shape[0] != g.full:
            raise ValueError(
                f"Scores of group '{g.name}' have {s.shape[0]} entries; the group has {g.full} units."
            )
        if not np.all(np.isfinite(s)) or np.any(s < 0):
            raise ValueError(f"Scores of group '{g.name}' must be finite and >= 0.")
        sums.append(np.concatenate([[0.0], np.cumsum(s)]))
    total = sum(float(c[-1]) for c in sums)
    # Equal scores everywhere (e.g. all zero) still need a well-posed objective.
    if total <= 0:
        sums = [np.arange(g.full + 1, dtype=np.float64) for g in graph.groups]
        total = float(sum(g.full for g in graph.groups))
    return [c[grid] / total for c, grid in zip(sums, grids, strict=True)]


def _label(b: Budget, level: Level, full_macs: int) -> str:
    parts = [f"MACs <= {_fmt(level.macs)} ({100 * level.macs / full_macs:.1f} %)"]
    if b.peak_memory is not None:
        parts.append(f"peak memory <= {_fmt(b.peak_memory)} B")
    if b.weight_bytes is not None:
        parts.append(f"int8 weight bytes <= {_fmt(b.weight_bytes)}")
    if b.cycles is not None:
        parts.append(f"cycles <= {_fmt(b.cycles)} (planned to {_fmt(level.cycles)} predicted)")
    return ", ".join(parts)


def make_problem(
    graph: Graph,
    scores: Mapping[str, np.ndarray],
    budgets: Sequence[Budget | float],
    *,
    min_width: int | Mapping[str, int] = 1,
    granularity: int = 1,
    include_full: bool = False,
    cycle_terms: Sequence[BilinearTerm] = (),
    cycle_margin: float = 0.01,
) -> Problem:
    """Validate inputs, resolve budgets to absolute units and sort levels ascending by MACs, then cycles.

    ``cycle_terms``: the device cost model's cycles of ``graph`` (``CostModel.terms``); needed by
    any budget in cycles. ``cycle_margin``: headroom for the model's error: a level plans to
    ``budget * (1 - cycle_margin)`` predicted cycles, so the device meets the budget itself.
    """
    if not 0 <= cycle_margin < 1:
        raise ValueError(
            f"cycle_margin must be in [0, 1), e.g. 0.01. Received: cycle_margin={cycle_margin!r}"
        )
    if int(granularity) < 1:
        raise ValueError(f"granularity must be >= 1. Received: granularity={granularity!r}")
    if not budgets and not include_full:
        raise ValueError("Give at least one budget. Received: budgets=[]")
    mins = _min_width_of(graph, min_width)
    grids = [width_grid(g.full, m, int(granularity)) for g, m in zip(graph.groups, mins, strict=True)]
    prefix = _prefix_importance(graph, scores, grids)
    full = list(graph.full_widths)
    full_macs = true_macs(graph, full)
    bs = [b if isinstance(b, Budget) else Budget(macs=b) for b in budgets]
    if any(b.cycles is not None for b in bs) and not cycle_terms:
        raise ValueError(
            "A budget in cycles needs the device cost model. Fix: pass "
            "cycle_terms=[t for _, t in reds_tf.device_cost.load().terms(graph)] (solve(..., device=...))."
        )
    levels = []
    for b in bs:
        # Exact integer budget: the fraction as written (0.1 is 1/10, not the float just above it),
        # floored, so a level may spend every MAC of it and 1.0 is exactly the full model.
        m = math.floor(Fraction(str(b.macs)) * full_macs) if b.macs <= 1 else int(b.macs)
        cy = None if b.cycles is None else math.floor(b.cycles * (1 - cycle_margin))
        lv = Level(min(m, full_macs), b.peak_memory, b.weight_bytes, "", cy)
        levels.append(Level(lv.macs, lv.peak_memory, lv.weight_bytes, _label(b, lv, full_macs), lv.cycles))
    levels.sort(key=lambda lv: (lv.macs, math.inf if lv.cycles is None else lv.cycles))
    prob = Problem(graph, grids, prefix, levels, full_macs, weight_bytes(graph, full), list(cycle_terms))
    check_min_widths(prob)
    if include_full:
        _append_full(prob)
    return prob


def _append_full(prob: Problem) -> None:
    """Add the full-width model as the top level; it must meet the caps of the largest level.

    A memory or weight-byte cap describes the device, so it binds the full model too. When
    the full model breaks it, say so and name the way out instead of failing in the MILP.
    """
    g, full = prob.graph, list(prob.graph.full_widths)
    caps = prob.levels[-1] if prob.levels else Level(prob.full_macs, None, None, "")
    top = Level(prob.full_macs, caps.peak_memory, caps.weight_bytes, "full width")
    mem = op_memory(g, full)
    worst = max(mem, key=mem.get)
    if caps.peak_memory is not None and mem[worst] > caps.peak_memory:
        raise InfeasibleBudgetError(
            f"The full-width model peaks at {_fmt(mem[worst])} B of activations at op '{worst}', above "
            f"the peak memory cap {_fmt(caps.peak_memory)} B, so a 100 % level cannot meet it. Fix: drop "
            "the full level (include_full=False, --no-full) and add a 100 % MACs level under the cap "
            "(a budget of 1.0, e.g. --macs 0.25,0.5,1.0), which keeps the most important widths that fit, "
            f"or raise the cap to >= {_fmt(mem[worst])} B."
        )
    wb = weight_bytes(g, full)
    if caps.weight_bytes is not None and wb > caps.weight_bytes:
        raise InfeasibleBudgetError(
            f"The full-width model needs {_fmt(wb)} int8 weight bytes, above the cap "
            f"{_fmt(caps.weight_bytes)}, so a 100 % level cannot meet it. Fix: drop the full level "
            "(include_full=False, --no-full) and add a 100 % MACs level under the cap (a budget of 1.0), "
            f"or raise the cap to >= {_fmt(wb)}."
        )
    prob.levels.append(top)


def check_min_widths(prob: Problem) -> None:
    """Raise InfeasibleBudgetError when the minimum widths already break a budget."""
    g = prob.graph
    w = prob.min_widths
    m = true_macs(g, w)
    mem = op_memory(g, w)
    worst_op = max(mem, key=mem.get)
    wb = weight_bytes(g, w)
    for k, lv in enumerate(prob.levels):
        if m > lv.macs:
            raise InfeasibleBudgetError(
                f"Level {k}: MACs budget {_fmt(lv.macs)} ({100 * lv.macs / prob.full_macs:.2f} % of "
                f"{_fmt(prob.full_macs)}) is below the {_fmt(m)} MACs the minimum widths need. "
                f"Fix: use a MACs budget >= {_fmt(m)} ({100 * m / prob.full_macs:.2f} %), or lower "
                "min_width / granularity (--min-width / --granularity)."
            )
        if lv.peak_memory is not None and mem[worst_op] > lv.peak_memory:
            raise InfeasibleBudgetError(
                f"Level {k}: peak memory cap {_fmt(lv.peak_memory)} B is below the "
                f"{_fmt(mem[worst_op])} B the minimum widths need at op '{worst_op}'. "
                f"Fix: use a cap >= {_fmt(mem[worst_op])} B (the smallest feasible value)."
            )
        if lv.weight_bytes is not None and wb > lv.weight_bytes:
            raise InfeasibleBudgetError(
                f"Level {k}: int8 weight-bytes cap {_fmt(lv.weight_bytes)} is below the {_fmt(wb)} "
                f"bytes the minimum widths need. Fix: use a cap >= {_fmt(wb)} (the smallest feasible value)."
            )
        if lv.cycles is not None and prob.cycles(w) > lv.cycles:
            cy = math.ceil(prob.cycles(w))
            raise InfeasibleBudgetError(
                f"Level {k}: cycles budget {_fmt(lv.cycles)} is below the {_fmt(cy)} cycles the device "
                f"cost model predicts at the minimum widths. Fix: a budget >= {_fmt(cy)} cycles (the "
                "same in ms / mJ at your clock), or lower min_width / granularity."
            )


def eval_pair(
    terms: Sequence[BilinearTerm], base: Sequence[int], a: int, va: np.ndarray, b: int, vb: np.ndarray
) -> np.ndarray:
    """Sum of bilinear terms over a grid of (w[a], w[b]) with every other group at ``base``.

    Returns an array of shape (len(va), len(vb)).
    """
    out = np.zeros((len(va), len(vb)), dtype=np.float64)
    for t in terms:
        f = np.ones((1, 1))
        for side, g in (("a", t.a), ("b", t.b)):
            if g is None:
                continue
            if g == a:
                f = f * t.factor(side, va[:, None]).astype(np.float64)
            elif g == b:
                f = f * t.factor(side, vb[None, :]).astype(np.float64)
            else:
                f = f * float(t.factor(side, int(base[g])))
        out = out + t.coef * f
    return out
