"""Recipes: every shipped recipe loads, schedules apply, bad input fails with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from reds_tf.recipe import Recipe, RecipeError

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = sorted(MODELS.glob("*.yaml"))


def _base(**kw):
    return {"name": "t", "model": "ds_cnn_fmnist", "dataset": "fashion_mnist", **kw}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_recipes_load_and_round_trip(path):
    r = Recipe.load(path)
    assert r.name == path.stem
    assert r.levels >= 2
    assert Recipe.from_dict(r.to_dict()) == r
    if r.schedules:
        full = Recipe.load(path, schedule="full")
        assert full.schedule == "full"
        assert full.pretrain.epochs > r.pretrain.epochs


def test_default_recipe_is_four_levels_at_quarter_steps():
    r = Recipe.load(MODELS / "ds_cnn_s-fashion_mnist.yaml")
    assert r.solve.budgets == (0.25, 0.5, 0.75) and r.solve.include_full and r.levels == 4
    assert r.dataset == "fashion_mnist" and r.schedule == "short"
    full = Recipe.load(MODELS / "ds_cnn_s-fashion_mnist.yaml", schedule="full")
    assert full.pretrain.epochs == 30 and full.baselines == ()
    paper = Recipe.load(MODELS / "ds_cnn_s-fashion_mnist.yaml", schedule="paper")
    assert set(paper.baselines) == {"magnitude", "random", "scratch"} and paper.bn.per_level_finetune
    # Overrides merge into the schedule: untouched keys keep the short values.
    assert full.finetune.learning_rate == r.finetune.learning_rate
    assert r.finetune.distill_weight == 0.0  # distillation is opt-in


@pytest.mark.parametrize("schedule", ["paper_macs", "paper_macs_distill"])
def test_paper_mac_schedules_are_the_full_schedule_at_the_papers_budgets(schedule):
    path = MODELS / "ds_cnn_s-fashion_mnist.yaml"
    full, r = Recipe.load(path, schedule="full"), Recipe.load(path, schedule=schedule)
    assert r.solve.budgets == (0.18, 0.41, 0.63) and r.levels == 4
    assert (r.pretrain, r.finetune.epochs, r.finetune.bn_epochs) == (full.pretrain, 15, 2)
    assert r.finetune.distill_weight == (0.5 if schedule.endswith("distill") else 0.0)
    assert Recipe.from_dict(r.to_dict()) == r


def test_vww_recipe_enforces_the_nano_memory_budget():
    r = Recipe.load(MODELS / "mobilenet_v1-vww.yaml")
    assert r.model == "mobilenet_v1" and r.model_options["alpha"] <= 0.25
    assert r.solve.peak_memory_bytes == 200000


def test_dotted_overrides_apply():
    r = Recipe.from_dict(_base(), **{"data.limit": 300, "seed": 7})
    assert r.data.limit == 300 and r.seed == 7


def test_unknown_key_names_the_key():
    with pytest.raises(RecipeError, match=r"Unknown key\(s\) in pretrain: \['epochz'\]"):
        Recipe.from_dict(_base(pretrain={"epochz": 3}))


def test_wrong_type_names_key_and_value():
    with pytest.raises(RecipeError, match=r"'pretrain.epochs' must be a int. Received: epochs='3'"):
        Recipe.from_dict(_base(pretrain={"epochs": "3"}))


def test_bad_values_are_rejected():
    with pytest.raises(RecipeError, match="budgets must be increasing"):
        Recipe.from_dict(_base(solve={"budgets": [0.5, 0.25]}))
    with pytest.raises(RecipeError, match="method must be one of"):
        Recipe.from_dict(_base(importance={"method": "hessian"}))
    with pytest.raises(RecipeError, match="baselines must be chosen from"):
        Recipe.from_dict(_base(baselines=["oracle"]))
    for mw in (0, -0.5, 1.5):
        with pytest.raises(RecipeError, match=r"min_width must be a unit count >= 1 or a fraction"):
            Recipe.from_dict(_base(solve={"min_width": mw}))
    with pytest.raises(RecipeError, match="Missing required key 'model'"):
        Recipe.from_dict({"name": "t", "dataset": "fashion_mnist"})


def test_unknown_schedule_lists_the_known_ones():
    with pytest.raises(RecipeError, match=r"schedule='huge'.*\['full', 'short'\]"):
        Recipe.from_dict(_base(schedules={"full": {"pretrain": {"epochs": 9}}}), schedule="huge")


def test_missing_file_lists_available_recipes(tmp_path):
    (tmp_path / "a.yaml").write_text("model: x\ndataset: y\n")
    with pytest.raises(RecipeError, match=r"not found.*a.yaml"):
        Recipe.load(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        Recipe.load(tmp_path / "bad.yaml")


def test_latency_budgets_set_the_levels():
    r = Recipe.from_dict(_base(solve={"budgets": [], "latency_ms": [40, 80, 120], "clock_mhz": 64}))
    assert r.solve.latency_ms == (40.0, 80.0, 120.0) and r.levels == 4
    assert Recipe.from_dict(r.to_dict()) == r
    with pytest.raises(RecipeError, match="latency_ms must be increasing"):
        Recipe.from_dict(_base(solve={"budgets": [], "latency_ms": [80, 40]}))
    with pytest.raises(RecipeError, match="one value per level"):
        Recipe.from_dict(_base(solve={"budgets": [0.5], "latency_ms": [40, 80]}))
    with pytest.raises(RecipeError, match="clock_mhz must be > 0"):
        Recipe.from_dict(_base(solve={"latency_ms": [40, 80, 120], "clock_mhz": 0}))


def test_activation_ranges_are_checked_and_the_default_stays_out_of_the_fingerprint():
    with pytest.raises(RecipeError, match="activation_ranges must be 'minmax', 'mse' or 'percentile'"):
        Recipe.from_dict(_base(convert={"activation_ranges": "kl"}))
    # Runs started before the key existed resume: the default is not written into the recipe's dict.
    assert "activation_ranges" not in Recipe.from_dict(_base()).to_dict()["convert"]
    mse = Recipe.from_dict(_base(convert={"activation_ranges": "mse"}))
    assert mse.to_dict()["convert"]["activation_ranges"] == "mse"
    assert Recipe.from_dict(mse.to_dict()) == mse


def test_qat_section_is_checked_and_off_by_default():
    assert "qat" not in Recipe.from_dict(_base()).to_dict()  # fingerprints of earlier runs still match
    q = Recipe.from_dict(_base(qat={"epochs": 2, "learning_rate": 5e-5}))
    assert q.qat.epochs == 2 and Recipe.from_dict(q.to_dict()) == q
    with pytest.raises(RecipeError, match="convert.equalize: false"):
        Recipe.from_dict(_base(qat={"epochs": 1}, convert={"equalize": True}))
    with pytest.raises(RecipeError, match="need epochs >= 0"):
        Recipe.from_dict(_base(qat={"epochs": -1}))
