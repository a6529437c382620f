"""A greedy feasible plan for one level: the MILP's warm start.

CBC's own heuristics found poor or no incumbents on the larger flow models (MobileNetV1-1.0:
a 58 % gap after 40 s from a uniform start); the LP bound is nearly tight, so a good
incumbent lets it stop at the root. Greedy: start from the lower bounds and repeatedly
widen the group with the best kept-importance gain per added MAC while every budget
still holds (a uniform multiplier first left no room to trade widths: 50 % vs 76 %).
Costs here are a numpy twin of ``costs.py`` used only for speed;
the final plan is always re-checked with ``costs.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .problem import Level, Problem


class FastCost:
    """MACs, int8 weight bytes and per-op activation bytes of a width vector, vectorised."""

    def __init__(self, prob: Problem) -> None:
        g = prob.graph
        n = len(g.groups)
        self.prob = prob

        def bilinear(terms):
            coef = np.array([t.coef for _, t in terms], dtype=np.float64)
            a = np.array([n if t.a is None else t.a for _, t in terms], dtype=np.int64)
            b = np.array([n if t.b is None else t.b for _, t in terms], dtype=np.int64)
            return coef, a, b

        self.mac = bilinear(g.mac_terms())
        self.wb = bilinear(g.weight_byte_terms(1, 4))
        mem = g.memory_terms(1)
        self.mem = np.zeros((len(mem), n + 1))
        for r, (_, terms) in enumerate(mem):
            for t in terms:
                self.mem[r, n if t.g is None else t.g] += t.coef

    @staticmethod
    def _eval(terms, w: np.ndarray) -> float:
        coef, a, b = terms
        return float(np.sum(coef * w[a] * w[b]))

    def fits(self, widths: np.ndarray, lv: Level) -> bool:
        w = np.append(widths.astype(np.float64), 1.0)
        if self._eval(self.mac, w) > lv.macs:
            return False
        if lv.peak_memory is not None and float(np.max(self.mem @ w)) > lv.peak_memory:
            return False
        if lv.weight_bytes is not None and self._eval(self.wb, w) > lv.weight_bytes:
            return False
        return lv.cycles is None or self.prob.cycles([int(v) for v in widths]) <= lv.cycles

    def macs(self, widths: np.ndarray) -> float:
        return self._eval(self.mac, np.append(widths.astype(np.float64), 1.0))


def greedy_start(
    prob: Problem,
    lv: Level,
    lower: Sequence[int],
    fc: FastCost | None = None,
    upper: Sequence[int] | None = None,
) -> list[int] | None:
    """Feasible widths for level ``lv`` between grid indices ``lower`` and ``upper`` (default: the
    full widths); None if ``lower`` already breaks a budget."""
    fc = fc or FastCost(prob)
    grids = prob.grids
    idx = np.array(lower, dtype=np.int64)

    def widths(ix: np.ndarray) -> np.ndarray:
        return np.array([grids[g][i] for g, i in enumerate(ix)], dtype=np.int64)

    if not fc.fits(widths(idx), lv):
        return None
    top = np.array([len(g) - 1 for g in grids] if upper is None else upper)
    # Greedy fill: best importance gain per added MAC among the widenings that still fit.
    blocked = idx >= top
    cur_macs = fc.macs(widths(idx))
    while not blocked.all():
        best, best_ratio = -1, -np.inf
        for g in np.flatnonzero(~blocked):
            cand = idx.copy()
            cand[g] += 1
            w = widths(cand)
            if not fc.fits(w, lv):
                blocked[g] = True
                continue
            gain = prob.prefix[g][cand[g]] - prob.prefix[g][idx[g]]
            ratio = gain / max(fc.macs(w) - cur_macs, 1e-9)
            if ratio > best_ratio:
                best, best_ratio = g, ratio
        if best < 0:
            break
        idx[best] += 1
        blocked[best] = idx[best] >= top[best]
        cur_macs = fc.macs(widths(idx))
    return [int(x) for x in widths(idx)]


def narrow_to_fit(prob: Problem, widths: Sequence[int], lv: Level, lower: Sequence[int]) -> list[int] | None:
    """Step widths down (least kept importance lost per MAC saved) until ``costs.py`` accepts them.

    A MILP solution may break an exact integer cap by a solver tolerance (a few MACs on a
    ten-million-MAC cap); this turns it into a plan that truly fits without a safety margin
    on every other plan. Returns None when even the lower bounds (grid indices) break it.
    """
    fc = FastCost(prob)
    idx = np.array([int(np.searchsorted(g, w)) for g, w in zip(prob.grids, widths, strict=True)])
    grids = prob.grids

    def at(ix: np.ndarray) -> np.ndarray:
        return np.array([grids[g][i] for g, i in enumerate(ix)], dtype=np.int64)

    while prob.fits(at(idx), lv):
        cur = fc.macs(at(idx))
        best, best_ratio = -1, np.inf
        for g in np.flatnonzero(idx > np.asarray(lower)):
            cand = idx.copy()
            cand[g] -= 1
            loss = prob.prefix[g][idx[g]] - prob.prefix[g][cand[g]]
            ratio = loss / max(cur - fc.macs(at(cand)), 1e-9)
            if ratio < best_ratio:
                best, best_ratio = g, ratio
        if best < 0:
            return None
        idx[best] -= 1
    return [int(x) for x in at(idx)]
