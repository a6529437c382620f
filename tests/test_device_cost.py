"""The device cost model against the emulated runtime it describes, and budgets in device time.

These measure the CURRENT firmware in the emulator (arm-none-eabi-gcc + unicorn), so a kernel change
without `python -m reds_tf.device_cost fit` fails them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from reds_tf import device_cost
from reds_tf.cli import main
from reds_tf.device_cost import fit
from reds_tf.graph import Graph
from reds_tf.solve import Budget, solve

GRAPH = Path(__file__).parent / "data" / "ds_cnn_fmnist_graph.json"

needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="needs arm-none-eabi-gcc")


@pytest.fixture(scope="module")
def m4(tmp_path_factory):
    return fit.build_emulator("dsp", tmp_path_factory.mktemp("m4"))


@pytest.fixture(scope="module")
def graph() -> Graph:
    return Graph.from_json(GRAPH.read_text())


def _scores(graph: Graph) -> dict:
    rng = np.random.default_rng(0)
    return {g.name: np.sort(rng.random(g.full))[::-1] for g in graph.groups}


@needs_arm
@pytest.mark.parametrize("kind", list(device_cost.FEATURES))
def test_fit_error_per_layer_on_random_held_out_shapes(m4, kind):
    model = device_cost.load("dsp")
    shapes = fit.random_shapes(kind, 12, seed=7)
    cycles = [fit.measure(m4, s, i) for i, s in enumerate(shapes)]
    err = np.abs(fit.rel_errors(model, shapes, cycles))
    assert err.max() <= 0.05, f"{kind}: held-out error {100 * err.max():.2f} % > 5 %: refit the cost model"


@needs_arm
def test_fit_error_per_level_on_random_widths(m4, graph):
    model = device_cost.load("dsp")
    rng = np.random.default_rng(3)
    for _ in range(4):
        widths = [int(rng.integers(1, g.full + 1)) for g in graph.groups]
        measured = sum(fit.measure_level(m4, graph, widths).values())
        pred = model.cycles(graph, widths)
        assert abs(pred / measured - 1) <= 0.03, (widths, pred, measured)


@needs_arm
def test_latency_plan_fits_its_budgets_when_emulated(m4, graph):
    """Budgets at 25/50/75/100 % of the full level's cycles: each level's emulated kernels fit and match."""
    model = device_cost.load("dsp")
    full = model.cycles(graph, graph.full_widths)
    fracs = (0.25, 0.5, 0.75, 1.0)
    budgets = [Budget(1.0, cycles=int(f * full)) for f in fracs]
    report = solve(graph, _scores(graph), budgets, device=model, granularity=2)
    for f, row, widths in zip(fracs, report.per_level, report.plan.widths, strict=True):
        measured = sum(fit.measure_level(m4, graph, widths).values())
        assert measured <= int(f * full), (f, widths, measured)
        assert abs(row["cycles_pred"] / measured - 1) <= 0.03, (f, widths, row["cycles_pred"], measured)
        assert row["ms_pred"] == pytest.approx(row["cycles_pred"] / 64e3, rel=1e-6)


def test_latency_budget_is_kept_and_beats_mac_planning_on_time(graph):
    """Planned by cycles, a level meets its cycle budget; the MACs plan at the same MACs may not."""
    model = device_cost.load("dsp")
    scores = _scores(graph)
    by_macs = solve(graph, scores, [0.25], device=model, granularity=4)
    budget = by_macs.per_level[0]["cycles_pred"]
    by_time = solve(graph, scores, [Budget(1.0, cycles=budget)], device=model, granularity=4, cycle_margin=0)
    assert by_time.per_level[0]["cycles_pred"] <= budget
    # Same time budget, MACs free: the knapsack keeps at least as much importance.
    assert by_time.objective >= by_macs.objective - 1e-9


def test_dense_on_a_flattened_input_is_refused_not_extrapolated():
    """A dense layer on a flattened image (DNN-S's first layer) is outside the dense fit (one-pixel
    inputs): its fitted terms would give negative cycles, so the cost model names the op instead."""
    from reds_tf import topology, zoo

    graph = topology.graph_of(zoo.build("dnn_s"))
    with pytest.raises(ValueError, match=r"Op 'fc1' \(dense on a flattened 25x10x1 input\).*by MACs"):
        device_cost.load("dsp").cycles(graph, graph.full_widths)


def test_cycle_budget_below_minimum_names_the_smallest_feasible(graph):
    from reds_tf.errors import InfeasibleBudgetError

    with pytest.raises(InfeasibleBudgetError, match="cycles the device cost model predicts"):
        solve(graph, _scores(graph), [Budget(1.0, cycles=1000)], device=device_cost.load("dsp"))
    with pytest.raises(ValueError, match="needs the device cost model"):
        solve(graph, _scores(graph), [Budget(1.0, cycles=10**6)])


def test_power_model_nrf52840():
    p = device_cost.NRF52840
    assert p.ms(64_000) == pytest.approx(1.0)
    assert p.mj(64_000) == pytest.approx(3.0 * 3.3e-3)  # 1 ms at 3.0 V * 3.3 mA
    assert p.cycles_for_mj(p.mj(1_000_000)) in (999_999, 1_000_000)
    with pytest.raises(ValueError, match="clock_mhz"):
        device_cost.PowerModel(clock_mhz=0)


@pytest.fixture(scope="module")
def scores_file(tmp_path_factory, graph):
    p = tmp_path_factory.mktemp("s") / "scores.json"
    p.write_text(json.dumps({k: v.tolist() for k, v in _scores(graph).items()}))
    return str(p)


def test_cli_latency_and_energy(scores_file, tmp_path):
    out = tmp_path / "plan.json"
    r = CliRunner().invoke(main, ["solve", "--model", str(GRAPH), "--scores", scores_file,
                                  "--latency-ms", "40,80,120", "--clock-mhz", "64", "--granularity", "4",
                                  "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["per_level"]
    assert [row["ms_pred"] <= b for row, b in zip(rows[:3], (40, 80, 120), strict=True)] == [True] * 3
    r = CliRunner().invoke(
        main, ["solve", "--model", str(GRAPH), "--scores", scores_file, "--energy-mj", "0.5,1"]
    )
    assert r.exit_code == 0, r.output
    assert "pred. mJ" in r.output


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--latency-ms", "40,-3"], "--latency-ms"),
        (["--latency-ms", "80,40"], "--latency-ms"),
        (["--energy-mj", "abc"], "--energy-mj"),
        (["--latency-ms", "40", "--clock-mhz", "0"], "--clock-mhz"),
        (["--latency-ms", "40,80", "--macs", "0.5"], "--latency-ms 2"),
    ],
)
def test_cli_bad_device_budgets_name_the_option(scores_file, args, option):
    r = CliRunner().invoke(main, ["solve", "--model", str(GRAPH), "--scores", scores_file, *args])
    assert r.exit_code != 0
    assert "Error:" in r.output and option in r.output, r.output


@needs_arm
@pytest.mark.slow
def test_latency_plan_of_the_default_model_fits_when_its_blob_runs(tmp_path):
    """The whole path: sorted default model, latency budgets at 25/50/75/100 % of the full level's predicted
    cycles, per-level int8 conversion, one blob, reds_invoke in the emulator (bit-exact with TFLM)."""
    from reds_tf import importance, permute, topology

    mc = fit._mcu()
    model = mc._seeded_model("ds_cnn_fmnist", 0)
    sorted_model, scores = permute.sort_model(model, importance.magnitude_scores(model))
    graph = topology.graph_of(sorted_model)
    dev = device_cost.load("dsp")
    full = dev.cycles(graph, graph.full_widths)
    fracs = (0.25, 0.5, 0.75, 1.0)
    report = solve(graph, scores, [Budget(1.0, cycles=int(f * full)) for f in fracs], device=dev)
    m4s = {mc.PRIMARY: fit.build_emulator("dsp", tmp_path)}
    rows = mc.model_rows(m4s, graph.name, "reds", sorted_model, report.plan, tmp_path)
    for f, row, pred in zip(fracs, rows, report.per_level, strict=True):
        assert row["bit_exact_vs_tflm"]
        assert row["cycles"] <= int(f * full), (f, row["widths"], row["cycles"])
        assert abs(pred["cycles_pred"] / row["cycles"] - 1) <= 0.03, (f, pred["cycles_pred"], row["cycles"])


def test_recipe_latency_budgets_plan_the_solve_step(tmp_path):
    """`solve: {budgets: [], latency_ms: [...]}` in a recipe: the run's plan meets the latencies."""
    from reds_tf import importance, permute, steps, zoo
    from reds_tf.recipe import Recipe
    from reds_tf.runstore import RunDir

    recipe = Recipe.from_dict(
        {"name": "t", "model": "ds_cnn_fmnist", "dataset": "fashion_mnist",
         "solve": {"budgets": [], "latency_ms": [50, 100, 150], "clock_mhz": 64, "granularity": 4}}
    )  # fmt: skip
    model = zoo.build("ds_cnn_fmnist", dropout=False)
    sorted_model, scores = permute.sort_model(model, importance.magnitude_scores(model))
    ctx = steps.StepContext(RunDir(tmp_path), log=lambda _line: None)
    _, plan, rep = steps.solve_plan(recipe, sorted_model, scores, ctx)
    assert len(plan.widths) == recipe.levels == 4
    assert [row["ms_pred"] <= ms for row, ms in zip(rep["per_level"][:3], (50, 100, 150), strict=True)] == [
        True
    ] * 3
    assert json.loads((tmp_path / "solve_report.json").read_text())["per_level"][0]["cycles_pred"] > 0
