"""Counts under budgets: the MILP respects every budget exactly, nests, matches brute force on a tiny
problem; the counted MACs equal the formula and the project's cost model on a real zoo model."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from reds_tf import costs, nested, topology, zoo
from reds_tf.dress import magnitude_scores, make_row_sparse, model_costs, row_orders, solve_counts
from reds_tf.dress.costs import index_bytes
from reds_tf.errors import InfeasibleBudgetError
from reds_tf.solve.rows import RowBudget, make_layer, solve_rows


@pytest.fixture(scope="module")
def ds_cnn():
    return zoo.build("ds_cnn_fmnist", num_classes=10, input_shape=(28, 28, 1), filters=16, blocks=2)


@pytest.mark.parametrize("options", [{"filters": 16, "blocks": 2}, {}], ids=["narrow", "default"])
def test_full_counts_reproduce_the_cost_model_and_formula(options):
    ds_cnn = zoo.build("ds_cnn_fmnist", num_classes=10, input_shape=(28, 28, 1), **options)
    names = [layer.name for layer in ds_cnn.layers if type(layer).__name__ in ("Conv2D", "Dense")]
    mc = model_costs(ds_cnn, names)
    graph = topology.graph_of(ds_cnn)
    op = costs.op_macs(graph, graph.full_widths)
    assert mc.full_macs == costs.macs(graph, graph.full_widths)
    for c in mc.layers:  # Conv2D Ho*Wo*C_out*n, Dense out*n, at n = fan_in equal to the cost model's
        layer = ds_cnn.get_layer(c.name)
        ho_wo = int(np.prod(layer.output_shape[1:-1])) if len(layer.output_shape) > 2 else 1
        assert c.macs_per_count == ho_wo * layer.output_shape[-1]
        assert c.macs(c.fan_in) == op[c.name]
    assert mc.macs([c.fan_in for c in mc.layers]) == mc.full_macs
    assert mc.fixed_macs == sum(v for k, v in op.items() if k.startswith("dw"))  # only depthwise stays dense
    assert mc.weight_bytes([c.fan_in for c in mc.layers]) == costs.weight_bytes(graph, graph.full_widths)


def test_masked_model_macs_equal_the_counted_macs(ds_cnn):
    """Count nonzero kernel entries of every level of a real row-sparse model: MACs per output position
    times positions, plus the dense layers, must equal ModelCosts.macs of the plan's counts."""
    scores = magnitude_scores(ds_cnn)
    mc = model_costs(ds_cnn, list(scores))
    plan, _ = solve_counts(mc, scores, [0.45, 0.7], time_limit=20)
    m = make_row_sparse(ds_cnn, row_orders(scores), plan)
    for k, row in enumerate(plan.counts):
        total = mc.fixed_macs
        for c, n in zip(mc.layers, row, strict=True):
            layer = m.get_layer(c.name)
            kept = np.count_nonzero(layer.row_mask(n).numpy())
            assert kept == c.rows * n
            positions = c.macs_per_count // c.rows
            total += kept * positions
        assert total == mc.macs(row)
        with nested.level_scope(m, k):
            assert all(
                layer.active_count() == n for layer, n in zip(nested.switched_layers(m), row, strict=True)
            )


def test_solved_counts_respect_budgets_and_nest(ds_cnn):
    scores = magnitude_scores(ds_cnn)
    mc = model_costs(ds_cnn, list(scores))
    budgets = [0.4, 0.6, 0.8]
    for strategy in ("joint", "bottom_up"):
        plan, rep = solve_counts(mc, scores, budgets, strategy=strategy, time_limit=20)
        assert plan.num_levels == 4 and plan.counts[-1] == plan.fan_in
        for k, b in enumerate(budgets):
            assert mc.macs(plan.counts[k]) <= b * mc.full_macs
            assert rep["per_level"][k]["macs"] == mc.macs(plan.counts[k])
        for lo, hi in zip(plan.counts, plan.counts[1:], strict=False):
            assert all(a <= c for a, c in zip(lo, hi, strict=True))
        assert rep["status"] == "optimal"


def test_weight_byte_caps_include_indices(ds_cnn):
    scores = magnitude_scores(ds_cnn)
    mc = model_costs(ds_cnn, list(scores))
    free, _ = solve_counts(mc, scores, [0.6], include_full=False, time_limit=20)
    cap = mc.weight_bytes(free.counts[0]) - 200
    capped, _ = solve_counts(mc, scores, [0.6], weight_bytes=[cap], include_full=False, time_limit=20)
    assert mc.weight_bytes(capped.counts[0]) <= cap
    c = mc.layers[1]
    assert (
        c.weight_bytes(3) == c.rows * 3 * (1 + index_bytes(c.fan_in))
        and c.weight_bytes(c.fan_in) == c.rows * c.fan_in
    )
    assert index_bytes(256) == 1 and index_bytes(257) == 2


def test_granularity_and_min_count(ds_cnn):
    scores = magnitude_scores(ds_cnn)
    mc = model_costs(ds_cnn, list(scores))
    plan, _ = solve_counts(mc, scores, [0.6, 0.8], granularity=4, min_count=2, time_limit=20)
    for row in plan.counts:
        for n, f in zip(row, plan.fan_in, strict=True):
            assert n >= 2 and (n % 4 == 0 or n == f)


def test_budget_below_the_dense_layers_is_refused(ds_cnn):
    scores = magnitude_scores(ds_cnn)
    mc = model_costs(ds_cnn, list(scores))
    with pytest.raises(
        InfeasibleBudgetError, match=r"does not even cover .* Fix: use a budget above 30\.5 %"
    ):
        solve_counts(mc, scores, [0.25, 0.5])


def _brute(layers, budgets):
    best, best_val = None, -1.0
    per_level = [list(itertools.product(*[range(len(lay.grid)) for lay in layers])) for _ in budgets]
    for combo in itertools.product(*per_level):
        if any(
            any(a > b for a, b in zip(lo, hi, strict=True)) for lo, hi in zip(combo, combo[1:], strict=False)
        ):
            continue
        ok = all(
            sum(int(lay.macs[i]) for lay, i in zip(layers, idx, strict=True)) <= b.macs
            for idx, b in zip(combo, budgets, strict=True)
        )
        if not ok:
            continue
        val = sum(float(lay.importance[i]) for idx in combo for lay, i in zip(layers, idx, strict=True))
        if val > best_val:
            best, best_val = combo, val
    return [[int(lay.grid[i]) for lay, i in zip(layers, idx, strict=True)] for idx in best], best_val


def test_milp_matches_brute_force_on_a_small_problem():
    rng = np.random.default_rng(3)
    layers = []
    for name, fan_in, coef in (("a", 4, 7), ("b", 5, 3), ("c", 3, 11)):
        s = rng.random((2, fan_in))
        top = -np.sort(-s, axis=1)
        prefix = np.concatenate([[0.0], np.cumsum(top.sum(axis=0))])
        layers.append(make_layer(name, prefix, 10.0, coef, np.arange(fan_in + 1) * 2))
    budgets = [RowBudget(40), RowBudget(70)]
    want, val = _brute(layers, budgets)
    got = solve_rows(layers, budgets, gap=0.0, time_limit=20)
    assert got.counts == want and got.objective == pytest.approx(val)
