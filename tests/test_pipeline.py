"""End-to-end pipeline on real Fashion-MNIST: accuracy per level, ordering, nested vs extracted, baselines."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from reds_tf import nested, pipeline
from reds_tf.errors import NotARedsModelError, RunMismatchError
from reds_tf.recipe import Recipe
from reds_tf.runstore import RunDir

# A 2-layer FC net trains in seconds on a few thousand real images, so held-out accuracy is meaningful.
FC_RECIPE = {
    "name": "fc2-fashion_mnist-test",
    "model": "fc2",
    "model_options": {"hidden": 64},
    "dataset": "fashion_mnist",
    "seed": 0,
    "data": {"limit": 1500, "batch_size": 50, "augment": False},
    "importance": {"method": "taylor", "num_batches": 10},
    "solve": {"budgets": [0.25, 0.5, 0.75], "time_limit": 20},
    "pretrain": {"epochs": 4, "learning_rate": 0.003},
    "finetune": {"epochs": 2, "learning_rate": 0.001, "bn_epochs": 1},
    "baselines": ["random", "scratch"],
    "convert": {"enabled": False},
}


@pytest.fixture(scope="module")
def fc_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fc_run")
    recipe = Recipe.from_dict(FC_RECIPE)
    results = pipeline.run(recipe, run_dir, progress=False, log=lambda *_: None)
    return run_dir, results


def test_every_level_far_above_chance_and_ordered(fc_run):
    _, res = fc_run
    acc = [r["test_accuracy"] for r in res["levels"]]
    assert len(acc) == 4
    assert min(acc) > 0.5, acc  # 10 classes: chance is 0.1
    for small, big in zip(acc, acc[1:], strict=False):
        assert small <= big + 0.03, acc  # larger levels are not worse (small tolerance)
    assert res["pretrained"]["test_accuracy"] > 0.6


def test_levels_meet_their_true_mac_budgets(fc_run):
    _, res = fc_run
    pct = [r["macs_pct"] for r in res["levels"]]
    assert pct[-1] == 100.0
    for got, budget in zip(pct, [25, 50, 75], strict=False):
        assert got <= budget + 1e-6
    macs = [r["macs"] for r in res["levels"]]
    assert macs == sorted(macs) and len(set(macs)) == 4


def test_nested_and_extracted_models_agree(fc_run):
    run_dir, res = fc_run
    assert max(res["extract_level_max_abs_diff"]) < 1e-4
    assert res["permute_max_abs_diff"] < 1e-4
    model = nested.load_model(run_dir / "model.keras")
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    for k in range(4):
        with nested.level_scope(model, k):
            a = model(x, training=False).numpy()
        b = nested.extract_level(model, k)(x, training=False).numpy()
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_results_record_seed_split_and_baselines(fc_run):
    run_dir, res = fc_run
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk["seed"] == 0 and on_disk["recipe"] == "fc2-fashion_mnist-test"
    assert on_disk["data"]["sizes"]["test"] > 0
    assert set(on_disk["baselines"]) == {"random", "scratch"}
    for name in ("random", "scratch"):
        lv = on_disk["baselines"][name]["levels"]
        assert len(lv) == 4 and all(0.0 <= r["test_accuracy"] <= 1.0 for r in lv)
    assert abs(sum(on_disk["loss_weights"]) - 1.0) < 1e-9
    md = (run_dir / "results.md").read_text()
    assert "| Level | MACs |" in md and "## Baselines" in md
    assert (run_dir / "plots" / "accuracy_vs_macs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "plots" / "widths.png").stat().st_size > 1000


def test_finished_run_refuses_to_restart_without_resume(fc_run):
    run_dir, _ = fc_run
    with pytest.raises(pipeline.RunExistsError, match="already holds a run.*--resume"):
        pipeline.run(Recipe.from_dict(FC_RECIPE), run_dir, progress=False, log=lambda *_: None)


def _hashes(root):
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_resume_of_a_finished_run_changes_no_file(fc_run):
    run_dir, res = fc_run
    before = _hashes(run_dir)
    again = pipeline.run(
        Recipe.from_dict(FC_RECIPE), run_dir, resume=True, progress=False, log=lambda *_: None
    )
    assert [r["test_accuracy"] for r in again["levels"]] == [r["test_accuracy"] for r in res["levels"]]
    assert _hashes(run_dir) == before


@pytest.mark.parametrize(
    "change, shown",
    [
        ({"seed": 7}, "recipe.seed: 0 -> 7"),
        ({"data": {**FC_RECIPE["data"], "limit": 900}}, "recipe.data.limit: 1500 -> 900"),
        (
            {"schedules": {"tiny": {"pretrain": {"epochs": 1}}}, "schedule": "tiny"},
            "recipe.schedule: 'short' -> 'tiny'",
        ),
    ],
)
def test_resume_with_other_settings_is_refused_before_any_work(tmp_path, change, shown):
    rd = RunDir(tmp_path)
    rd.claim(pipeline.fingerprint(Recipe.from_dict(FC_RECIPE), None), resume=False)
    rd.record_epoch("pretrain", 1, {})
    before = _hashes(tmp_path)
    other = Recipe.from_dict({**FC_RECIPE, **change})
    with pytest.raises(
        RunMismatchError, match=re.escape(shown) + ".*Fix: resume with the run's own settings"
    ):
        pipeline.run(other, tmp_path, resume=True, progress=False, log=lambda *_: None)
    assert _hashes(tmp_path) == before
    with pytest.raises(RunMismatchError, match="data_dir: None -> "):
        pipeline.run(Recipe.from_dict(FC_RECIPE), tmp_path, data_dir=tmp_path, resume=True, progress=False)


def test_unknown_strategy_is_rejected():
    with pytest.raises(ValueError, match="Unknown strategy.*'mirrored'"):
        pipeline.make_strategy("tpu")


@pytest.mark.parametrize(
    "recipe, what",
    [
        ("tiny-fashion_mnist.yaml", "fine-tuned model"),
        ("ds_cnn_s-fashion_mnist-dress.yaml", "fine-tuned DRESS model"),
    ],
)
def test_evaluate_dir_names_what_an_unfinished_run_lacks(tmp_path, recipe, what):
    shutil.copy(Path(__file__).parents[1] / "models" / recipe, tmp_path / "recipe.yaml")
    lacks = rf"no complete {what} \(missing: [^)]*model\.keras\)\. Fix: "
    with pytest.raises(NotARedsModelError, match=lacks):
        pipeline.evaluate_dir(tmp_path)
