"""Nested-width knapsack: choose every level's per-group widths under exact budgets.

``solve(graph, scores, budgets)`` maximises kept importance (prefix sums of the sorted
per-group scores) subject to, per level, the TRUE bilinear MACs, optional per-op peak
activation memory (int8) and int8 weight bytes, and nesting ``w[k] <= w[k+1]``. It
builds a PuLP MILP (``milp.py``) solved by CBC (bundled) or HiGHS (``highspy``); wide grids
are solved on refined cells (``refine.py``) so granularity 1 fits any net. Budgets are exact
integers: every plan is re-checked with ``costs.py`` and a plan that breaks one is never
returned. ``time_limit`` is a deadline for the whole call; solver files live in a private
temp directory removed on exit, error, Ctrl-C and SIGTERM (``backends.py``).

Strategies: ``joint`` puts all levels in one model (nesting as constraints, maximising
the summed importance); ``bottom_up`` is the paper's rule: smallest level first, each
later level at least as wide as the one below.

``rows.py`` holds DRESS's per-row count MILP (``reds_tf.dress.counts`` builds its inputs).

No TensorFlow here: this module and its parts import only numpy and pulp.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..costs import cost
from ..device_cost import NRF52840, CostModel, PowerModel
from ..errors import InfeasibleBudgetError, RedsError
from ..graph import Graph
from ..plan import WidthPlan
from .backends import Limits, scratch_dir
from .brute import brute_force
from .milp import SOLVERS
from .problem import Budget, Level, Problem, make_problem
from .refine import Refined, solve_refined

STRATEGIES = ("bottom_up", "joint")

__all__ = ["Budget", "SolveReport", "brute_force", "solve", "STRATEGIES", "SOLVERS"]


@dataclass(frozen=True)
class SolveReport:
    """The plan and how it was found.

    ``objective`` is the kept importance summed over levels (each level 0..1 of the full
    model's importance). ``bound`` is a proven upper bound on it (for ``bottom_up``: the sum
    of each level's bound given the levels below), ``gap`` the relative distance
    ``(bound - objective) / objective``. ``status`` is ``optimal`` when every solve proved its
    plan within the requested gap, ``time_limit`` (or ``node_limit``) when that limit stopped a
    solve first: the plan is the best found, ``gap`` what is proven about it (None: no bound).
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


def _level_row(
    prob: Problem, k: int, widths: Sequence[int], extra: dict[str, Any], power: PowerModel | None
) -> dict[str, Any]:
    c = cost(prob.graph, widths)
    lv = prob.levels[k]
    if power is not None:  # the device cost model's prediction for this level
        cy = prob.cycles(widths)
        extra = {**extra, "cycles_pred": round(cy), "ms_pred": power.ms(cy), "mj_pred": power.mj(cy)}
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


def _rounds(r: Refined) -> str:
    if r.bound is None:
        # The deadline came before any MILP proved a bound: say what the plan is instead.
        return "no MILP finished before the deadline: greedy plan, no proven bound"
    return f"{r.rounds} MILP round(s)"


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


@dataclass
class _Run:
    """What the strategies share: the problem, the deadline and the scratch directory."""

    prob: Problem
    deadline: float  # time.monotonic()
    limits: Limits


def _bottom_up(
    run: _Run, levels: list[Level], progress: Callable[[str], None] | None, quiet: bool = False
) -> tuple[list, list, list, list, list]:
    """The paper's rule: each level alone, smallest first, at least as wide as the one below.

    Level k of n gets 2 / (n - k + 1) of the time left (the lowest levels, with the most room to
    choose, get the most), so time a level does not use passes on to the next.
    """
    prob = run.prob
    lower = [0] * len(prob.grids)
    widths, statuses, bounds, gaps, extras = [], [], [], [], []
    for k, lv in enumerate(levels):
        t0 = time.monotonic()
        share = t0 + (run.deadline - t0) * 2 / (len(levels) - k + 1)
        r = solve_refined(
            prob,
            [lv],
            lower=lower,
            start=None,
            deadline=share,
            limits=replace(run.limits, msg=run.limits.msg and not quiet),
        )
        if r.status in ("infeasible", "no solution"):
            raise _fail(prob, k, r.status, "bottom_up")
        w = r.widths[0]
        value = prob.importance(w)
        lvl_gap = None if r.bound is None else max(0.0, r.bound - value) / max(value, 1e-12)
        wall = time.monotonic() - t0
        widths.append(w)
        statuses.append(r.status)
        bounds.append(r.bound)
        gaps.append(lvl_gap)
        extras.append({"status": r.status, "gap": lvl_gap, "wall_s": wall, "rounds": r.rounds})
        if not quiet:
            gap_txt = "n/a" if lvl_gap is None else f"{100 * lvl_gap:.3f} %"
            _say(
                progress,
                run.limits.msg,
                f"level {k}: {r.status}, gap {gap_txt}, {wall:.1f} s, {_rounds(r)}, "
                f"kept importance {100 * value:.2f} %",
            )
        lower = [int(np.searchsorted(g, x)) for g, x in zip(prob.grids, w, strict=True)]
    return widths, statuses, bounds, gaps, extras


def _joint(
    run: _Run, levels: list[Level], progress: Callable[[str], None] | None
) -> tuple[list, list, list, list]:
    """All levels in one model, maximising their summed importance under nesting."""
    t0 = time.monotonic()
    # Bottom-up first, on a quarter of the time: a feasible nested start, so the joint solve can
    # only improve on it (without one, CBC found no incumbent in 60 s on DS-CNN-S, 10 levels).
    quarter = replace(run, deadline=t0 + (run.deadline - t0) / 4)
    try:
        start = _bottom_up(quarter, levels, None, quiet=True)[0]
    except RedsError:  # bottom-up can fail where joint succeeds (caps not monotone)
        start = None
    r = solve_refined(
        run.prob,
        levels,
        lower=[0] * len(run.prob.grids),
        start=start,
        deadline=run.deadline,
        limits=run.limits,
    )
    if r.status in ("infeasible", "no solution"):
        raise _fail(run.prob, None, r.status, "joint")
    _say(
        progress,
        run.limits.msg,
        f"joint, {len(levels)} levels: {r.status}, {time.monotonic() - t0:.1f} s, {_rounds(r)}",
    )
    return r.widths, [r.status], [r.bound], [{} for _ in levels]


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
    node_limit: int = 10_000,
    msg: bool = False,
    progress: Callable[[str], None] | None = None,
    device: CostModel | None = None,
    power: PowerModel = NRF52840,
    cycle_margin: float = 0.01,
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
        time_limit: seconds for the whole call, model building included (levels share it; time
            one does not use passes on). On expiry the best plan found so far is returned with
            status ``time_limit`` and its proven gap.
        gap: relative optimality gap at which the solver may stop.
        node_limit: branch-and-bound nodes per MILP: a limit that does not depend on machine
            load (status ``node_limit``), beside the wall-clock ``time_limit``.
        include_full: append the full-width model as the top level.
        msg: show the solver's log and a status line per level on stderr.
        progress: called with a short status line per solve (instead of printing).
        device: the device cost model (``device_cost.load("dsp")``): needed by budgets in
            cycles; with it every level's row gives predicted ``cycles_pred`` / ``ms_pred`` / ``mj_pred``.
        power: clock and power of the device, for the predicted ms / mJ.
        cycle_margin: headroom for the cost model's error: a cycles budget is planned at
            ``budget * (1 - cycle_margin)`` predicted cycles (held-out per-level error on the DSP
            build is well under 1 %; see the model file's ``heldout_error``).

    Raises:
        InfeasibleBudgetError: a budget cannot be met (checked before the MILP when the
            minimum widths already break it, with the smallest feasible value).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy. Received: strategy={strategy!r}; expected one of {STRATEGIES}")
    if solver not in SOLVERS:
        raise ValueError(f"Unknown solver. Received: solver={solver!r}; expected one of {SOLVERS}")
    if not (time_limit > 0 and math.isfinite(time_limit)):
        raise ValueError(
            f"time_limit must be a finite number of seconds > 0. Received: time_limit={time_limit!r}"
        )
    if not (0 <= gap < 1):
        raise ValueError(f"gap must be a relative gap in [0, 1), e.g. 0.01. Received: gap={gap!r}")
    if int(node_limit) < 1:
        raise ValueError(f"node_limit must be >= 1. Received: node_limit={node_limit!r}")
    t0 = time.perf_counter()
    deadline = time.monotonic() + time_limit
    prob = make_problem(
        graph,
        scores,
        budgets,
        min_width=min_width,
        granularity=granularity,
        include_full=include_full,
        cycle_terms=[t for _, t in device.terms(graph)] if device is not None else (),
        cycle_margin=cycle_margin,
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
    with scratch_dir() as workdir:
        run = _Run(prob, deadline, Limits(workdir, solver, gap, int(node_limit), msg))
        if strategy == "joint" and levels:
            widths, statuses, bounds, extras = _joint(run, levels, progress)
        elif levels:
            widths, statuses, bounds, gaps, extras = _bottom_up(run, levels, progress)
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
    status = next((s for s in ("time_limit", "node_limit") if s in statuses), "optimal")
    return SolveReport(
        plan=plan,
        status=status,
        objective=objective,
        bound=bound,
        gap=gap_val,
        wall_s=time.perf_counter() - t0,
        solver=solver,
        strategy=strategy,
        per_level=[
            _level_row(prob, k, w, e, power if device is not None else None)
            for k, (w, e) in enumerate(zip(widths, extras, strict=True))
        ],
        settings={
            "granularity": int(granularity),
            "min_width": dict(min_width) if isinstance(min_width, Mapping) else int(min_width),
            "time_limit": time_limit,
            "gap": gap,
            "include_full": include_full,
            "node_limit": int(node_limit),
        },
    )
