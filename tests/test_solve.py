"""The knapsack solver against brute force on hand-built nets (no TensorFlow needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from reds_tf.costs import macs, op_memory, peak_memory, weight_bytes
from reds_tf.errors import InfeasibleBudgetError
from reds_tf.graph import Graph, Group, Op
from reds_tf.solve import Budget, SolveReport, brute_force, solve


def ds_net(f0: int = 6, f1: int = 5, f2: int = 6, hw: tuple[int, int] = (5, 4)) -> Graph:
    """Conv, two depthwise-separable blocks, global pool, classifier: 3 groups."""
    h, w = hw
    groups = (Group("conv0", f0), Group("pw1", f1), Group("pw2", f2))
    ops = (
        Op("conv0", "conv2d", ("input",), None, 0, 1, f0, (2 * h, 2 * w), hw, (3, 3), True),
        Op("bn0", "batchnorm", ("conv0",), 0, 0, f0, f0, hw, hw),
        Op("relu0", "activation", ("bn0",), 0, 0, f0, f0, hw, hw),
        Op("dw1", "depthwise", ("relu0",), 0, 0, f0, f0, hw, hw, (3, 3), True),
        Op("pw1", "conv2d", ("dw1",), 0, 1, f0, f1, hw, hw, (1, 1), True),
        Op("dw2", "depthwise", ("pw1",), 1, 1, f1, f1, hw, hw, (3, 3), True),
        Op("pw2", "conv2d", ("dw2",), 1, 2, f1, f2, hw, hw, (1, 1), True),
        Op("gap", "global_pool", ("pw2",), 2, 2, f2, f2, hw, (1, 1)),
        Op("fc", "dense", ("gap",), 2, None, f2, 3, (1, 1), (1, 1), (1, 1), True),
    )
    return Graph("ds_net", groups, ops, input_hw=(2 * h, 2 * w), input_channels=1)


def res_net() -> Graph:
    """Residual add (pw2 tied to conv0's group), Flatten into two Dense layers: 4 groups."""
    hw = (2, 2)
    groups = (Group("conv0", 6), Group("pw1", 5), Group("fc1", 6), Group("fc2", 4))
    ops = (
        Op("conv0", "conv2d", ("input",), None, 0, 2, 6, (4, 4), hw, (3, 3), True),
        Op("pw1", "conv2d", ("conv0",), 0, 1, 6, 5, hw, hw, (1, 1), True),
        Op("pw2", "conv2d", ("pw1",), 1, 0, 5, 6, hw, hw, (1, 1), True),
        Op("add", "add", ("pw2", "conv0"), 0, 0, 6, 6, hw, hw),
        Op("flat", "flatten", ("add",), 0, 0, 6, 6, hw, hw),
        Op("fc1", "dense", ("flat",), 0, 2, 6, 6, hw, (1, 1), (1, 1), True),
        Op("fc2", "dense", ("fc1",), 2, 3, 6, 4, (1, 1), (1, 1), (1, 1), True),
        Op("fc3", "dense", ("fc2",), 3, None, 4, 3, (1, 1), (1, 1), (1, 1), True),
    )
    return Graph("res_net", groups, ops, input_hw=(4, 4), input_channels=2)


def random_scores(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {g.name: np.sort(rng.random(g.full))[::-1] for g in graph.groups}


def kept(graph: Graph, scores: dict[str, np.ndarray], widths) -> float:
    total = sum(s.sum() for s in scores.values())
    return sum(scores[g.name][:w].sum() for g, w in zip(graph.groups, widths, strict=True)) / total


def assert_fits(graph: Graph, report: SolveReport, budgets: list[Budget]) -> None:
    full = macs(graph, graph.full_widths)
    for row, b in zip(report.plan.widths, sorted(budgets, key=lambda b: b.macs), strict=True):
        assert macs(graph, row) <= (b.macs * full if b.macs <= 1 else b.macs)
        if b.peak_memory is not None:
            assert peak_memory(graph, row) <= b.peak_memory
        if b.weight_bytes is not None:
            assert weight_bytes(graph, row) <= b.weight_bytes


CASES = [
    ("ds", [Budget(0.25), Budget(0.5), Budget(0.75)]),
    ("ds", [Budget(0.3, peak_memory=150), Budget(0.6, peak_memory=180), Budget(0.9, peak_memory=200)]),
    ("res", [Budget(0.2), Budget(0.45), Budget(0.7)]),
    ("res", [Budget(0.3, peak_memory=36), Budget(0.6, peak_memory=40), Budget(0.8, weight_bytes=330)]),
]


@pytest.mark.parametrize("strategy", ["joint", "bottom_up"])
@pytest.mark.parametrize("net,budgets", CASES, ids=["ds", "ds-mem", "res", "res-mem-bytes"])
def test_milp_equals_brute_force(net, budgets, strategy):
    graph = ds_net() if net == "ds" else res_net()
    scores = random_scores(graph, seed=len(budgets) + len(net))
    report = solve(graph, scores, budgets, strategy=strategy, gap=0.0)
    best = brute_force(graph, scores, budgets, strategy=strategy)
    want = sum(kept(graph, scores, w) for w in best.widths)
    assert report.status == "optimal"
    assert report.objective == pytest.approx(want, rel=1e-9)
    assert report.plan.widths == best.widths
    assert_fits(graph, report, budgets)
    # The report's numbers are the independent cost model's.
    for row, lvl in zip(report.plan.widths, report.per_level, strict=True):
        assert lvl["macs"] == macs(graph, row)
        assert lvl["peak_memory"] == peak_memory(graph, row)
        assert lvl["importance_pct"] == pytest.approx(100 * kept(graph, scores, row))


def test_memory_cap_binds_and_is_met():
    graph = ds_net()
    scores = random_scores(graph, 3)
    free = solve(graph, scores, [0.9], gap=0.0)
    assert peak_memory(graph, free.plan.level(0)) > 170  # the cap below really cuts
    capped = solve(graph, scores, [Budget(0.9, peak_memory=170)], gap=0.0)
    assert max(op_memory(graph, capped.plan.level(0)).values()) <= 170
    assert capped.objective < free.objective


def test_joint_is_at_least_bottom_up():
    graph = res_net()
    scores = random_scores(graph, 11)
    budgets = [0.15, 0.3, 0.5, 0.7]
    joint = solve(graph, scores, budgets, strategy="joint", gap=0.0)
    bottom = solve(graph, scores, budgets, strategy="bottom_up", gap=0.0)
    assert joint.objective >= bottom.objective - 1e-12
    # Bottom-up's smallest level is the best single level: joint cannot beat it there.
    assert bottom.per_level[0]["importance_pct"] >= joint.per_level[0]["importance_pct"] - 1e-9


@pytest.mark.parametrize("strategy", ["joint", "bottom_up"])
def test_granularity_and_min_width(strategy):
    graph = ds_net(f0=10, f1=8, f2=9)
    scores = random_scores(graph, 5)
    report = solve(
        graph, scores, [0.4, 0.6, 0.85], granularity=4, min_width={"pw1": 4}, strategy=strategy, gap=0
    )
    best = brute_force(
        graph, scores, [0.4, 0.6, 0.85], granularity=4, min_width={"pw1": 4}, strategy=strategy
    )
    assert report.plan.widths == best.widths
    for row in report.plan.widths:
        for w, full in zip(row, graph.full_widths, strict=True):
            assert w % 4 == 0 or w == full
        assert row[1] >= 4


def test_highs_and_cbc_agree():
    graph = res_net()
    scores = random_scores(graph, 7)
    budgets = [Budget(0.25, peak_memory=80), Budget(0.5, peak_memory=90), Budget(0.75)]
    a = solve(graph, scores, budgets, strategy="joint", solver="cbc", gap=0.0)
    b = solve(graph, scores, budgets, strategy="joint", solver="highs", gap=0.0)
    assert a.objective == pytest.approx(b.objective, rel=1e-9)
    assert a.plan == b.plan
    assert (a.solver, b.solver) == ("cbc", "highs")


def test_levels_sorted_absolute_macs_and_full_level():
    graph = ds_net()
    scores = random_scores(graph, 2)
    full = macs(graph, graph.full_widths)
    report = solve(graph, scores, [0.7, int(0.3 * full) + 1, 0.5], include_full=True)
    assert report.plan.num_levels == 4
    assert report.plan.level(-1) == graph.full_widths
    pct = [lvl["macs_pct"] for lvl in report.per_level]
    assert pct == sorted(pct) and pct[-1] == 100.0
    assert pct[0] <= 100 * (int(0.3 * full) + 1) / full


def test_report_is_json_and_gap_is_honest():
    graph = ds_net()
    report = solve(graph, random_scores(graph, 4), [0.25, 0.5], strategy="joint", gap=0.0)
    d = json.loads(json.dumps(report.to_dict()))
    assert d["plan"]["widths"] == [list(r) for r in report.plan.widths]
    assert d["status"] == "optimal" and d["gap"] == pytest.approx(0.0, abs=1e-6)
    assert d["bound"] >= d["objective"] - 1e-9


def test_infeasible_memory_cap_names_op_and_smallest_value():
    graph = ds_net()
    need = max(op_memory(graph, [1, 1, 1]).values())
    with pytest.raises(
        InfeasibleBudgetError, match=rf"peak memory cap 50 B is below the {need} B .* op 'conv0'"
    ):
        solve(graph, random_scores(graph, 0), [Budget(0.5, peak_memory=50)])


def test_infeasible_macs_and_weight_bytes():
    graph = ds_net()
    scores = random_scores(graph, 0)
    low = macs(graph, [1, 1, 1])
    with pytest.raises(InfeasibleBudgetError, match=rf"below the {low:,} MACs the minimum widths need"):
        solve(graph, scores, [0.01])
    wb = weight_bytes(graph, [1, 1, 1])
    with pytest.raises(InfeasibleBudgetError, match=rf"weight-bytes cap 10 is below the {wb}"):
        solve(graph, scores, [Budget(0.5, weight_bytes=10)])


def test_full_level_that_breaks_the_cap_says_so():
    graph = ds_net()
    full_peak = peak_memory(graph, graph.full_widths)
    with pytest.raises(InfeasibleBudgetError, match=rf"full-width model peaks at {full_peak} B .* 'dw1'"):
        solve(graph, random_scores(graph, 0), [Budget(0.5, peak_memory=200)], include_full=True)
    # The way out the message names: a 100 % MACs level under the cap.
    r = solve(graph, random_scores(graph, 0), [Budget(0.5, peak_memory=200), Budget(1.0, peak_memory=200)])
    assert peak_memory(graph, r.plan.level(-1)) <= 200 < full_peak


def test_bad_inputs_raise():
    graph = ds_net()
    scores = random_scores(graph, 0)
    with pytest.raises(ValueError, match="No importance scores for group 'pw2'"):
        solve(graph, {"conv0": scores["conv0"], "pw1": scores["pw1"]}, [0.5])
    with pytest.raises(ValueError, match="Unknown strategy"):
        solve(graph, scores, [0.5], strategy="greedy")
    with pytest.raises(ValueError, match="Unknown solver"):
        solve(graph, scores, [0.5], solver="gurobi")
    with pytest.raises(ValueError, match="have 4 entries; the group has 6 units"):
        solve(graph, {**scores, "conv0": np.ones(4)}, [0.5])


def test_progress_lines():
    graph = ds_net()
    lines: list[str] = []
    solve(graph, random_scores(graph, 0), [0.3, 0.6], progress=lines.append)
    assert len(lines) == 2 and lines[0].startswith("level 0: optimal")


def test_solver_imports_no_tensorflow():
    code = (
        "import sys, reds_tf.solve; "
        "assert not any(m.startswith(('tensorflow', 'tf_keras')) for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_greedy_start_is_feasible_and_not_better_than_the_optimum():
    from reds_tf.solve.greedy import greedy_start
    from reds_tf.solve.problem import make_problem

    graph = res_net()
    scores = random_scores(graph, 9)
    budgets = [Budget(0.3, peak_memory=40), Budget(0.6)]
    prob = make_problem(graph, scores, budgets)
    for budget, lv in zip(budgets, prob.levels, strict=True):
        w = greedy_start(prob, lv, [0] * len(prob.grids))
        assert prob.fits(w, lv) == []
        assert prob.importance(w) <= solve(graph, scores, [budget], gap=0.0).objective + 1e-12
    # Nothing fits when the lower bounds already break the budget.
    assert greedy_start(prob, prob.levels[0], [len(g) - 1 for g in prob.grids]) is None


@pytest.mark.parametrize("strategy", ["joint", "bottom_up"])
def test_budgets_are_exact_integers_without_margin(strategy):
    """A level may spend its whole budget, and a budget of 100 % returns the full widths."""
    graph = ds_net(hw=(300, 300))  # ~1e7 MACs: a 2 ppm margin would be ~40 MACs
    scores = random_scores(graph, 6)
    full = macs(graph, graph.full_widths)
    exact = brute_force(graph, scores, [0.3, 0.6], strategy=strategy)
    spent = [macs(graph, w) for w in exact.widths]
    report = solve(graph, scores, [*spent, 1.0], strategy=strategy, gap=0.0)
    assert [lvl["macs"] for lvl in report.per_level] == [*spent, full]
    assert report.plan.widths == (*exact.widths, graph.full_widths)
    assert report.status == "optimal"
    # One MAC short of the full model is not the full model.
    below = solve(graph, scores, [full - 1], strategy=strategy, gap=0.0)
    assert below.plan.level(0) != graph.full_widths and below.per_level[0]["macs"] <= full - 1


def test_fraction_budgets_are_read_as_written():
    from reds_tf.solve.problem import make_problem

    graph = ds_net(hw=(300, 300))
    full = macs(graph, graph.full_widths)
    prob = make_problem(graph, random_scores(graph, 0), [0.3, 0.7, 1.0])
    assert [lv.macs for lv in prob.levels] == [(3 * full) // 10, (7 * full) // 10, full]


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 0.0, -1.0, 1.5])
def test_bad_macs_budget_values(bad):
    with pytest.raises(ValueError, match="MACs budget"):
        Budget(bad)


@pytest.mark.parametrize("strategy", ["joint", "bottom_up"])
@pytest.mark.parametrize("net,budgets", CASES[::3], ids=["ds", "res-mem-bytes"])
def test_cell_refinement_equals_brute_force(net, budgets, strategy, monkeypatch):
    """With 3 cells per group the relaxation must split its way down to the exact optimum."""
    from reds_tf.solve import refine

    monkeypatch.setattr(refine, "FIRST_CELLS", 3)
    monkeypatch.setattr(refine, "SPLIT", 2)
    graph = ds_net(f0=9, f1=8, f2=9) if net == "ds" else res_net()
    scores = random_scores(graph, seed=21)
    report = solve(graph, scores, budgets, strategy=strategy, gap=0.0)
    best = brute_force(graph, scores, budgets, strategy=strategy)
    assert report.status == "optimal"
    assert report.plan.widths == best.widths
    assert report.bound >= report.objective - 1e-9


def wide_chain(width: int = 512, blocks: int = 6, hw: int = 24) -> Graph:
    """Conv then depthwise-separable blocks of one width: a MobileNet-sized solve, no TF needed."""
    groups = tuple(Group(f"g{i}", width) for i in range(blocks + 1))
    ops = [Op("conv0", "conv2d", ("input",), None, 0, 3, width, (hw, hw), (hw, hw), (3, 3), True)]
    prev = "conv0"
    for i in range(1, blocks + 1):
        ops.append(
            Op(f"dw{i}", "depthwise", (prev,), i - 1, i - 1, width, width, (hw, hw), (hw, hw), (3, 3), True)
        )
        ops.append(
            Op(f"pw{i}", "conv2d", (f"dw{i}",), i - 1, i, width, width, (hw, hw), (hw, hw), (1, 1), True)
        )
        prev = f"pw{i}"
    ops.append(Op("gap", "global_pool", (prev,), blocks, blocks, width, width, (hw, hw), (1, 1)))
    ops.append(Op("fc", "dense", ("gap",), blocks, None, width, 10, (1, 1), (1, 1), (1, 1), True))
    return Graph("wide_chain", groups, tuple(ops), input_hw=(hw, hw), input_channels=3)


@pytest.mark.parametrize("strategy", ["joint", "bottom_up"])
def test_time_limit_bounds_the_whole_call_at_granularity_one(strategy):
    """Every width of seven 512-wide groups (a 262k-arc product each at g = 1) within the limit."""
    import time

    graph = wide_chain()
    scores = random_scores(graph, 3)
    budgets = [0.2, 0.4, 0.6, 0.8]
    t0 = time.monotonic()
    report = solve(graph, scores, budgets, strategy=strategy, time_limit=3.0)
    wall = time.monotonic() - t0
    assert wall <= 3.0 * 1.1 + 2.5  # CBC gets 1 s after SIGINT to write its answer
    assert report.status in ("optimal", "time_limit")
    assert_fits(graph, report, [Budget(b) for b in budgets])
    if report.gap is not None:
        assert report.bound >= report.objective


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_interrupted_solve_leaves_no_temp_files(tmp_path, sig):
    """Ctrl-C or a kill during CBC: the process ends and its private temp directory is gone."""
    import os
    import signal
    import time

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = (
        # A shell's background job (`make test &`) starts with SIGINT ignored: restore Python's handler.
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from tests.test_solve import wide_chain, random_scores; from reds_tf.solve import solve; "
        "g = wide_chain(); solve(g, random_scores(g, 1), [0.2, 0.4, 0.6, 0.8], strategy='joint', "
        "gap=0.0, time_limit=120)"
    )
    env = {**os.environ, "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    while not list(tmp.glob("reds_solve_*/model.mps")):
        assert proc.poll() is None and time.monotonic() - t0 < 60, "no CBC model was written"
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(getattr(signal, sig))
    err = proc.communicate(timeout=30)[1].decode()
    assert proc.returncode != 0
    if sig == "SIGINT":
        assert "KeyboardInterrupt" in err
    else:
        assert proc.returncode == -signal.SIGTERM
    assert list(tmp.iterdir()) == []


def test_deadline_before_any_milp_returns_the_greedy_plan_and_says_so():
    graph = wide_chain(width=1024)
    lines: list[str] = []
    report = solve(graph, random_scores(graph, 2), [0.3, 0.6], time_limit=0.01, progress=lines.append)
    assert report.status == "time_limit" and report.gap is None
    assert "no MILP finished before the deadline: greedy plan, no proven bound" in lines[0]
    assert_fits(graph, report, [Budget(0.3), Budget(0.6)])


def test_recipe_min_width_fraction_keeps_every_layer_at_its_share():
    """A recipe's ``min_width: 0.4`` means 40 % of each full width (rounded up), and plans respect it."""
    from reds_tf.steps import min_widths

    graph = ds_net(f0=6, f1=5, f2=10)
    assert min_widths(graph, 0.4) == {"conv0": 3, "pw1": 2, "pw2": 4}
    assert min_widths(graph, 7) == {"conv0": 6, "pw1": 5, "pw2": 7}
    scores = random_scores(graph, 3)
    free = solve(graph, scores, [0.4, 0.7], gap=0).plan.widths
    floor = solve(graph, scores, [0.4, 0.7], gap=0, min_width=min_widths(graph, 0.4)).plan.widths
    assert free[0][0] < 3  # without the floor the MILP starves conv0
    assert all(w >= m for row in floor for w, m in zip(row, (3, 2, 4), strict=True))
