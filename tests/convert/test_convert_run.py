"""A real REDS run (pipeline, fine-tuned nested fc2) converted by the pipeline and by the CLI."""

from __future__ import annotations

import json

import pytest

# The tiny recipe with the paper's head and LeakyReLU, two levels, conversion on: a run in seconds.
TINY_PAPER_ARCH = {
    "model_options": {"filters": 8, "blocks": 1, "pool": [13, 5], "leaky_relu": 0.3},
    "data.limit": 300,
    "solve.budgets": [0.5],
    "bn.recalibrate": False,
    "convert": {"enabled": True, "calibration_samples": 32},
}


@pytest.mark.slow
def test_pipeline_run_dir_converts(tmp_path):
    from click.testing import CliRunner

    from reds_tf import pipeline
    from reds_tf.cli import main
    from reds_tf.recipe import Recipe
    from tests.test_pipeline import FC_RECIPE

    # The pipeline test's fc2 recipe, without baselines and with conversion on.
    recipe = {
        **FC_RECIPE,
        "name": "fc2-convert-test",
        "baselines": [],
        "convert": {"enabled": True, "calibration_samples": 100},
    }
    run_dir = tmp_path / "run"
    pipeline.run(Recipe.from_dict(recipe), run_dir, progress=False, log=lambda *_: None)
    rep = json.loads((run_dir / "converted" / "report.json").read_text())
    assert len(rep["levels"]) == 4
    assert rep["bundle_ratio"] <= 1.10, rep["bundle_ratio"]
    assert rep["naive_ratio"] > 2.0
    for r in rep["levels"]:
        assert (
            abs(r["accuracy_diff_pp"]) <= 1.0
            and r["bundle_bit_exact"]
            and r["tflite_ref_vs_tflm_max_lsb"] <= 1
        )
        assert r["float_accuracy"] > 0.5
    assert rep["firmware"]["weights_ratio_vs_full"] <= 1.0 + 1e-9
    res = CliRunner().invoke(main, ["convert", str(run_dir), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "bundle.tflite").is_file() and "| level |" in res.output
    # The CLI reproduces the run's own conversion: same calibration sample and count, same files.
    made = sorted(p.name for p in (run_dir / "converted").iterdir())
    assert made == sorted(p.name for p in (tmp_path / "cli").iterdir())
    for name in made:
        if name.endswith((".tflite", ".blob", ".c", ".h", "bundle.json")):
            assert (run_dir / "converted" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name


def test_failed_verification_keeps_the_runs_numbers(tmp_path, monkeypatch):
    """A conversion whose verification fails still leaves results.json with the float and int8 numbers
    and the failure (``converted.verification_failed``) before the error is raised, and a model the
    firmware runtime cannot take (here: more levels than a blob holds) gets its TFLite files and
    ``firmware_blob_error``. The paper architecture (LeakyReLU) itself gets a blob: test_ds_cnn_paper_arch."""
    from reds_tf import convert, pipeline
    from reds_tf.convert import c_arena
    from reds_tf.recipe import Recipe

    # Every level "fails" the int8-vs-float accuracy check: the policy threshold set below any drop.
    monkeypatch.setattr(convert, "ACCURACY_DROP_MAX_PP", -1e9)
    monkeypatch.setattr(c_arena, "MAX_LEVELS", 1)  # a runtime built for one level: this run has two
    recipe = Recipe.load("models/tiny-fashion_mnist.yaml", **TINY_PAPER_ARCH)
    run_dir = tmp_path / "run"
    with pytest.raises(convert.VerificationError, match="Conversion verification failed"):
        pipeline.run(recipe, run_dir, progress=False, log=lambda *_: None)
    res = json.loads((run_dir / "results.json").read_text())
    conv = res["converted"]
    assert "int8 accuracy is" in conv["verification_failed"]
    assert "2 levels of" in conv["firmware_blob_error"] and "at most 1 levels" in conv["firmware_blob_error"]
    assert len(conv["int8_accuracy"]) == 2 and all(0 <= a <= 1 for a in conv["int8_accuracy"])
    assert [row["int8_test_accuracy"] for row in res["levels"]] == conv["int8_accuracy"]
    assert res["wall_seconds_this_call"] > 0
    assert sorted(p.name for p in (run_dir / "converted").glob("submodel_*.tflite")) == [
        "submodel_0.tflite",
        "submodel_1.tflite",
    ]
    state = json.loads((run_dir / "state.json").read_text())
    assert "convert" not in state["done"] and "results" not in state["done"]


def test_resume_with_other_conversion_settings_converts_again(tmp_path):
    """Conversion settings do not touch training: ``--resume`` with only ``convert`` changed keeps every
    trained file, converts again and rewrites the results; any other change is still refused."""
    from reds_tf import pipeline
    from reds_tf.errors import RunMismatchError
    from reds_tf.recipe import Recipe

    settings = TINY_PAPER_ARCH
    run_dir = tmp_path / "run"
    first = pipeline.run(Recipe.load("models/tiny-fashion_mnist.yaml", **settings), run_dir, progress=False)
    trained = (run_dir / "model.keras").read_bytes()
    lines: list[str] = []
    mse = {**settings, "convert": {**settings["convert"], "activation_ranges": "mse"}}
    again = pipeline.run(
        Recipe.load("models/tiny-fashion_mnist.yaml", **mse),
        run_dir,
        resume=True,
        progress=False,
        log=lines.append,
    )
    assert any(
        "convert.activation_ranges: '<absent>' -> 'mse'" in s and "converting again" in s for s in lines
    )
    assert (run_dir / "model.keras").read_bytes() == trained
    assert json.loads((run_dir / "converted" / "report.json").read_text())["activation_ranges"] == "mse"
    assert again["reconverted"] and again["wall_seconds_run"] > first["wall_seconds_this_call"]
    assert [r["test_accuracy"] for r in again["levels"]] == [r["test_accuracy"] for r in first["levels"]]
    assert json.loads((run_dir / "results.json").read_text())["converted"] == again["converted"]
    with pytest.raises(RunMismatchError, match="recipe.seed: 0 -> 1"):
        pipeline.run(Recipe.load("models/tiny-fashion_mnist.yaml", seed=1, **mse), run_dir, resume=True)


def test_resume_with_quantisation_aware_finetuning(tmp_path):
    """``qat`` settings, like ``convert``'s, come after fine-tuning: ``--resume`` with two epochs of
    quantisation-aware fine-tuning (interrupted after one, then resumed) keeps the float model and its
    results, trains ``model_qat.keras`` through the simulated int8 levels and converts that; turning qat
    off again converts ``model.keras``."""
    from reds_tf import pipeline
    from reds_tf.recipe import Recipe
    from reds_tf.train import TrainingInterrupted

    run_dir = tmp_path / "run"
    first = pipeline.run(
        Recipe.load("models/tiny-fashion_mnist.yaml", **TINY_PAPER_ARCH), run_dir, progress=False
    )
    trained = (run_dir / "model.keras").read_bytes()
    lines: list[str] = []
    with_qat = {**TINY_PAPER_ARCH, "qat": {"epochs": 2}}
    with pytest.raises(TrainingInterrupted):  # stopped after the first qat epoch
        pipeline.run(
            Recipe.load("models/tiny-fashion_mnist.yaml", **with_qat),
            run_dir,
            resume=True,
            progress=False,
            log=lines.append,
            max_epochs_this_call=1,
        )
    assert any("recipe.qat: '<absent>' ->" in s for s in lines) and any(s.startswith("[qat]") for s in lines)
    again = pipeline.run(
        Recipe.load("models/tiny-fashion_mnist.yaml", **with_qat), run_dir, resume=True, progress=False
    )
    # The interrupted call's takeover is kept: the changed settings and the first call's wall time.
    assert any(line.startswith("recipe.qat:") for line in again["reconverted"])
    assert again["wall_seconds_run"] > first["wall_seconds_this_call"]
    assert (run_dir / "model.keras").read_bytes() == trained and (run_dir / "model_qat.keras").is_file()
    q = again["qat"]
    assert len(q["simulated_int8_val_before"]) == len(q["simulated_int8_val_after"]) == 2
    assert all(0.0 <= a <= 1.0 for a in q["float_test_accuracy"])
    assert list(q["ranges"]) == ["all"] and all(lo <= 0.0 <= hi for lo, hi in q["ranges"]["all"].values())
    assert [r["test_accuracy"] for r in again["levels"]] == [r["test_accuracy"] for r in first["levels"]]
    assert len(again["converted"]["int8_accuracy"]) == 2
    off = pipeline.run(
        Recipe.load("models/tiny-fashion_mnist.yaml", **TINY_PAPER_ARCH), run_dir, resume=True, progress=False
    )
    assert not (run_dir / "model_qat.keras").exists() and "qat" not in off
    assert off["converted"]["int8_accuracy"] == first["converted"]["int8_accuracy"]
