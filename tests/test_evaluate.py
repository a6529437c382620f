"""Per-level rows, accuracy, JSON/markdown reports and plots from real models and graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reds_tf import costs, evaluate, nested, plots, topology, zoo
from reds_tf._keras import keras, tf
from reds_tf.errors import NotARedsModelError
from reds_tf.plan import WidthPlan


@pytest.fixture(scope="module")
def model_graph_plan():
    keras.utils.set_random_seed(0)
    model = zoo.build("ds_cnn_fmnist", filters=8, blocks=1)
    graph = topology.graph_of(model)
    full = graph.full_widths
    plan = WidthPlan(
        graph.group_names, full, tuple(tuple(max(1, f * k // 4) for f in full) for k in (1, 2, 3, 4))
    )
    return model, graph, plan


def test_accuracy_matches_numpy_argmax(model_graph_plan):
    model, _, _ = model_graph_plan
    rng = np.random.default_rng(0)
    x = rng.random((70, 28, 28, 1), dtype=np.float32)
    pred = model.predict(x, verbose=0).argmax(-1)
    y = np.where(np.arange(70) % 3 == 0, pred, (pred + 1) % 10).astype(np.int32)  # 24 of 70 correct
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    assert evaluate.accuracy(model, ds) == pytest.approx(24 / 70)
    with pytest.raises(ValueError, match="empty dataset"):
        evaluate.accuracy(model, ds.take(0))


def test_level_accuracies_use_each_level(model_graph_plan):
    model, _, plan = model_graph_plan
    nm = nested.make_nested(model, plan)
    x = np.random.default_rng(1).random((40, 28, 28, 1), dtype=np.float32)
    ds_for = {}
    for k in range(4):
        with nested.level_scope(nm, k):
            ds_for[k] = nm.predict(x, verbose=0).argmax(-1).astype(np.int32)
    # Labels = level 1's own predictions: level 1 scores 100 %, and the call leaves the full level set.
    ds = tf.data.Dataset.from_tensor_slices((x, ds_for[1])).batch(16)
    acc = evaluate.level_accuracies(nm, ds)
    assert acc[1] == 1.0
    for k in (0, 2, 3):
        assert acc[k] == pytest.approx(np.mean(ds_for[k] == ds_for[1]))
    assert nested.get_level(nm) == 3


def test_level_rows_report_exact_costs(model_graph_plan):
    _, graph, plan = model_graph_plan
    rows = evaluate.level_rows(graph, plan, test_accuracy=[0.5, 0.6, 0.7, 0.8])
    c = costs.plan_costs(graph, plan)
    assert [r["macs"] for r in rows] == [x.macs for x in c]
    assert [r["weight_bytes_int8"] for r in rows] == [x.weight_bytes_int8 for x in c]
    assert [r["peak_memory_int8"] for r in rows] == [x.peak_memory_int8 for x in c]
    assert rows[-1]["macs_pct"] == 100.0 and rows[0]["widths"] == list(plan.level(0))
    with pytest.raises(ValueError, match="one accuracy per level"):
        evaluate.level_rows(graph, plan, test_accuracy=[0.5])


def test_results_json_markdown_and_plots(tmp_path, model_graph_plan):
    _, graph, plan = model_graph_plan
    rows = evaluate.level_rows(
        graph, plan, test_accuracy=[0.81, 0.85, 0.88, 0.9], test_accuracy_per_level_bn=[0.83, 0.86, 0.88, 0.9]
    )
    results = {
        "recipe": "unit",
        "model": "ds_cnn_fmnist",
        "dataset": "fashion_mnist",
        "schedule": "short",
        "seed": 3,
        "levels": rows,
        "pretrained": {"test_accuracy": np.float32(0.91)},
        "baselines": {"scratch": {"levels": [{**r, "test_accuracy": 0.7} for r in rows]}},
        "notes": ["a note"],
    }
    j, m = evaluate.write_results(tmp_path, results)
    back = evaluate.load_results(tmp_path)
    assert back["seed"] == 3 and back["pretrained"]["test_accuracy"] == pytest.approx(0.91)
    assert json.loads(j.read_text())["levels"][0]["macs"] == rows[0]["macs"]
    md = m.read_text()
    assert "| 0 | " in md and "81.00" in md and "83.00" in md and "## Baselines" in md and "a note" in md
    p1 = plots.accuracy_vs_macs(back, tmp_path / "acc.png")
    p2 = plots.widths(plan, tmp_path / "w.png")
    for p in (p1, p2):
        assert p.read_bytes()[:4] == b"\x89PNG" and p.stat().st_size > 5000
    with pytest.raises(NotARedsModelError, match="No results.json"):
        evaluate.load_results(tmp_path / "nothing")


def test_results_on_synthetic_data_say_so_in_markdown():
    from reds_tf.evaluate import to_markdown

    rows = [{"level": 0, "macs": 10, "macs_pct": 100.0, "test_accuracy": 0.5}]
    real = to_markdown({"recipe": "r", "levels": rows})
    fake = to_markdown({"recipe": "r", "levels": rows, "synthetic_data": True})
    assert "SYNTHETIC" not in real
    assert fake.startswith("# SYNTHETIC DATA -- r: results") and "never accuracy on the real dataset" in fake
