"""`reds run` with a `mode: dress` recipe end to end (tiny schedule, small fixture), `reds eval` of the
run, the converter guard, and recipe validation for DRESS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reds_tf.cli import main
from reds_tf.recipe import Recipe, RecipeError

MODELS = Path(__file__).resolve().parents[2] / "models"
DRESS = MODELS / "ds_cnn_s-fashion_mnist-dress.yaml"


def _fixture_recipe(tmp_path: Path) -> Path:
    """The shipped DRESS recipe on a narrow DS-CNN (its depthwise layers take 30 % of the MACs, so the
    budgets start above that), conversion off (tested on its own below)."""
    r = yaml.safe_load(DRESS.read_text())
    r["model_options"] = {"filters": 16, "blocks": 2}
    r["solve"]["budgets"] = [0.4, 0.6, 0.8]
    r["convert"]["enabled"] = False
    path = tmp_path / "dress_tiny.yaml"
    path.write_text(yaml.safe_dump(r))
    return path


def test_dress_run_end_to_end_through_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    args = ["run", "--recipe", str(_fixture_recipe(tmp_path)), "--run-dir", str(run_dir), "--quiet"]
    out = CliRunner().invoke(main, args + ["--schedule", "tiny", "--limit", "120"])
    assert out.exit_code == 0, out.output
    for name in ["pretrained.keras", "weight_scores.npz", "row_orders.npz", "row_plan.json",
                 "solve_report.json", "model.keras", "results.json", "results.md",
                 "plots/accuracy_vs_macs.png"]:  # fmt: skip
        assert (run_dir / name).is_file(), name
    res = json.loads((run_dir / "results.json").read_text())
    assert res["mode"] == "dress" and res["schedule"] == "tiny" and len(res["levels"]) == 4
    rows = res["levels"]
    for k, (row, budget) in enumerate(zip(rows, [0.4, 0.6, 0.8, 1.0], strict=True)):
        assert row["macs"] <= budget * rows[-1]["macs"] and row["level"] == k
        assert 0.0 <= row["test_accuracy"] <= 1.0 and row["weight_bytes_int8"] > 0
    assert rows[-1]["macs_pct"] == 100.0 and rows[-1]["counts"] == res["row_plan"]["fan_in"]
    assert max(res["expanded_level_max_abs_diff"]) < 1e-4
    assert "test acc% (shared BN)" in out.output
    again = CliRunner().invoke(main, args + ["--schedule", "tiny", "--limit", "120", "--resume"])
    assert again.exit_code == 0 and "already complete" in again.output
    shown = CliRunner().invoke(main, ["eval", str(run_dir)])
    assert shown.exit_code == 0 and "MACs%" in shown.output
    val = CliRunner().invoke(main, ["eval", str(run_dir), "--split", "val"])
    assert val.exit_code == 0, val.output
    assert [f"{r['val_accuracy'] * 100:.2f}" in val.output for r in rows] == [True] * 4


def test_convert_step_says_why_it_skips_without_the_converter(tmp_path, monkeypatch):
    from reds_tf.dress import steps
    from reds_tf.runstore import RunDir
    from reds_tf.steps import StepContext

    lines = []
    monkeypatch.setattr(steps, "CONVERTER", "reds_tf.convert.no_such_module")
    ctx = StepContext(RunDir(tmp_path), log=lines.append)
    out = steps.convert(Recipe.load(DRESS), None, {}, ctx)
    assert "reds_tf.convert.no_such_module is not in this checkout" in out["skipped"]
    assert "skipped" in lines[0] and not ctx.rd.is_done("dress_convert")


def test_dress_recipe_and_reds_fingerprints():
    r = Recipe.load(DRESS)
    assert r.mode == "dress" and r.solve.budgets == (0.25, 0.5, 0.75) and r.levels == 4
    assert r.to_dict()["mode"] == "dress" and Recipe.from_dict(r.to_dict()) == r
    reds = Recipe.load(MODELS / "ds_cnn_s-fashion_mnist.yaml")
    assert reds.mode == "reds"
    # REDS recipes' dicts (the run fingerprint) do not gain the DRESS keys: old runs still resume.
    assert "mode" not in reds.to_dict() and "dress" not in reds.to_dict()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"mode": "sparse"}, "mode must be one of"),
        ({"bn": {"recalibrate": True}}, "runs no baselines and no per-level BN"),
        ({"solve": {"latency_ms": [1.0, 2.0, 3.0]}}, "no latency or peak-memory budget"),
        ({"dress": {"weight_bytes": [1000]}}, "one cap per solve.budgets entry"),
        ({"dress": {"min_count": 0}}, "min_count >= 1"),
        ({"solve": {"min_width": 0.25}}, "set dress.min_count instead"),
    ],
)
def test_bad_dress_recipes_name_the_problem(change, match):
    d = {"name": "t", **yaml.safe_load(DRESS.read_text())}
    for k, v in change.items():
        d[k] = {**d[k], **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    with pytest.raises(RecipeError, match=match):
        Recipe.from_dict(d)
    reds = yaml.safe_load((MODELS / "ds_cnn_s-fashion_mnist.yaml").read_text())
    with pytest.raises(RecipeError, match="applies to mode: dress only"):
        Recipe.from_dict({"name": "t", **reds, "dress": {"min_count": 2}})


def test_int8_accuracy_of_converted_levels_under_tflm(tmp_path):
    import numpy as np

    from reds_tf import zoo
    from reds_tf._keras import keras, tf
    from reds_tf.convert.tflite import convert_int8
    from reds_tf.dress.steps import int8_accuracies

    keras.utils.set_random_seed(0)
    model = zoo.build("ds_cnn_fmnist", num_classes=10, input_shape=(28, 28, 1), filters=8, blocks=1)
    x = np.random.default_rng(0).random((48, 28, 28, 1)).astype("float32")
    y = model.predict(x, verbose=0).argmax(axis=1)  # labels = the float model's answers
    tfl = convert_int8(model, x, samples=48)
    test = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    assert int8_accuracies(tmp_path, test, 1) is None  # nothing converted yet
    for k in range(2):
        (tmp_path / f"level_{k}.tflite").write_bytes(tfl)
    acc = int8_accuracies(tmp_path, test, 2)
    assert len(acc) == 2 and acc[0] == acc[1] and acc[0] >= 0.8
    wrong = tf.data.Dataset.from_tensor_slices((x, (y + 1) % 10)).batch(16)
    assert int8_accuracies(tmp_path, wrong, 1)[0] <= 0.2
