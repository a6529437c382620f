"""`reds run` / `reds eval` end to end with the tiny recipe: artifacts, forced stop, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from reds_tf.cli import main

TINY = Path(__file__).resolve().parents[1] / "models" / "tiny-fashion_mnist.yaml"


def test_run_stops_resumes_at_next_epoch_and_writes_report(tmp_path):
    # Two pretraining epochs so a forced stop after epoch 1 leaves work to resume.
    recipe = yaml.safe_load(TINY.read_text())
    recipe["pretrain"]["epochs"] = 2
    path = tmp_path / "tiny2.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_dir = tmp_path / "run"
    runner = CliRunner()
    # --seed overrides the recipe's seed (0), and results record it
    args = ["run", "--recipe", str(path), "--run-dir", str(run_dir), "--quiet", "--seed", "3"]

    first = runner.invoke(main, args + ["--stop-after-epochs", "1"])
    assert first.exit_code == 3, first.output
    assert "stopped after epoch 1 of 2" in first.output
    state = json.loads((run_dir / "state.json").read_text())
    assert state["epochs"]["pretrain"]["epoch"] == 1 and "pretrain" not in state["done"]

    again = runner.invoke(main, args)
    assert again.exit_code != 0 and "already holds a run" in again.output
    partial = runner.invoke(main, ["eval", str(run_dir)])
    assert partial.exit_code == 1 and "incomplete run" in partial.output and "--resume" in partial.output

    resumed = runner.invoke(main, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    hist = json.loads((run_dir / "state.json").read_text())["done"]["pretrain"]["history"]
    assert hist["resumed_from"] == 1  # continued at epoch 2, did not restart
    assert [e["epoch"] for e in hist["epochs"]] == [1, 2]

    # Every artifact under the one run directory.
    for name in [
        "recipe.yaml",
        "plan.json",
        "solve_report.json",
        "pretrained.keras",
        "model.keras",
        "results.json",
        "results.md",
        "plots/accuracy_vs_macs.png",
        "plots/widths.png",
    ]:
        assert (run_dir / name).is_file(), name
    res = json.loads((run_dir / "results.json").read_text())
    assert len(res["levels"]) == 4 and res["seed"] == 3
    for row in res["levels"]:
        for key in ("macs", "macs_pct", "params", "weight_bytes_int8", "peak_memory_int8", "test_accuracy"):
            assert row[key] is not None, key
    assert "test acc% (shared BN)" in resumed.output  # the table is printed
    assert "| Level | MACs | MACs % |" in (run_dir / "results.md").read_text()

    shown = runner.invoke(main, ["eval", str(run_dir)])
    assert shown.exit_code == 0 and "MACs%" in shown.output


def test_bad_recipe_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: ds_cnn_fmnist\ndataset: fashion_mnist\npretrain: {epochz: 1}\n")
    out = CliRunner().invoke(main, ["run", "--recipe", str(bad), "--run-dir", str(tmp_path / "r")])
    assert out.exit_code == 2
    assert "Unknown key(s) in pretrain: ['epochz']" in out.output


def test_eval_of_a_directory_without_results_explains(tmp_path):
    out = CliRunner().invoke(main, ["eval", str(tmp_path)])
    assert out.exit_code == 1
    assert "No results.json" in out.output and "reds run" in out.output


MIRRORED_RUN = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from reds_tf.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_run_under_mirrored_strategy_with_two_logical_cpus(tmp_path):
    script = tmp_path / "mirrored_run.py"
    script.write_text(MIRRORED_RUN)
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        str(script),
        "run",
        "--recipe",
        str(TINY),
        "--run-dir",
        str(run_dir),
        "--quiet",
        "--strategy",
        "mirrored",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    res = json.loads((run_dir / "results.json").read_text())
    assert len(res["levels"]) == 4 and all(r["test_accuracy"] is not None for r in res["levels"])


def test_pretrained_from_adopts_a_matching_pretraining_and_refuses_another(tmp_path):
    """Ablations share one pretraining: a second run copies the first's model; another seed is refused."""
    runner = CliRunner()
    first = tmp_path / "base"
    out = runner.invoke(main, ["run", "--recipe", str(TINY), "--run-dir", str(first), "--quiet"])
    assert out.exit_code == 0, out.output

    recipe = yaml.safe_load(TINY.read_text())
    recipe["solve"]["min_width"] = 0.25  # a different plan, same pretraining
    path = tmp_path / "floor.yaml"
    path.write_text(yaml.safe_dump(recipe))
    second = tmp_path / "floor"
    args = ["run", "--recipe", str(path), "--run-dir", str(second), "--quiet"]
    out = runner.invoke(main, args + ["--pretrained-from", str(first)])
    assert out.exit_code == 0, out.output
    assert "[pretrain] adopted" in out.output
    assert (second / "pretrained.keras").read_bytes() == (first / "pretrained.keras").read_bytes()
    done = json.loads((second / "state.json").read_text())["done"]["pretrain"]
    assert done["adopted_from"] == str(first.resolve()) and done["history"]["epochs"]
    widths = json.loads((second / "plan.json").read_text())["widths"]
    assert min(min(row) for row in widths) >= 4  # 25 % of 16 filters

    recipe["seed"] = 1
    path.write_text(yaml.safe_dump(recipe))
    out = runner.invoke(main, ["run", "--recipe", str(path), "--run-dir", str(tmp_path / "s1"), "--quiet",
                               "--pretrained-from", str(first)])  # fmt: skip
    assert out.exit_code != 0
    assert "its pretraining differs" in out.output and "seed: 0 -> 1" in out.output
    assert not (tmp_path / "s1" / "pretrained.keras").exists()
