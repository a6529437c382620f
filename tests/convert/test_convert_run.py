"""A real REDS run (pipeline, fine-tuned nested fc2) converted by the pipeline and by the CLI."""

from __future__ import annotations

import json

import pytest


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
