"""`reds scratch` after a finished tiny run: chosen levels only, recorded rows, rerun, resume, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from reds_tf.cli import main

TINY = Path(__file__).resolve().parents[1] / "models" / "tiny-fashion_mnist.yaml"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    out = CliRunner().invoke(main, ["run", "--recipe", str(TINY), "--run-dir", str(run_dir), "--quiet"])
    assert out.exit_code == 0, out.output
    return run_dir


@pytest.fixture
def run(finished_run, tmp_path):
    """A copy of the finished run for one test to change."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _scratch_rows(run_dir):
    return json.loads((run_dir / "results.json").read_text())["baselines"]["scratch"]["levels"]


def test_scratch_trains_the_chosen_level_only_and_a_rerun_skips_it(run):
    before = json.loads((run / "results.json").read_text())
    assert "baselines" not in before  # the tiny recipe runs no baselines
    args = ["scratch", str(run), "--levels", "0", "--epochs", "1", "--quiet"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    (row,) = _scratch_rows(run)
    assert row["level"] == 0 and row["epochs"] == 1 and row["seed"] == 0 and row["wall_seconds"] > 0
    assert 0.0 <= row["test_accuracy"] <= 1.0
    assert row["macs"] == before["levels"][0]["macs"] and row["macs_pct"] == before["levels"][0]["macs_pct"]
    after = json.loads((run / "results.json").read_text())
    assert {k: v for k, v in after.items() if k != "baselines"} == before  # nothing else changed
    assert (run / "baselines" / "scratch" / "state.json").is_file()
    assert "| scratch | " in (run / "results.md").read_text()

    text = (run / "results.json").read_bytes()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "level 0: already recorded (1 epochs), skipped" in again.output
    assert (run / "results.json").read_bytes() == text

    more = CliRunner().invoke(main, ["scratch", str(run), "--levels", "0,1", "--epochs", "1", "--quiet"])
    assert more.exit_code == 0, more.output
    rows = _scratch_rows(run)
    assert [r["level"] for r in rows] == [0, 1] and rows[0] == row  # level 0's row kept as it was


def test_an_interrupted_level_resumes_at_its_next_epoch(run):
    args = ["scratch", str(run), "--levels", "1", "--epochs", "2", "--quiet"]
    first = CliRunner().invoke(main, args + ["--stop-after-epochs", "1"])
    assert first.exit_code == 3 and "stopped after epoch 1 of 2" in first.output
    assert "baselines" not in json.loads((run / "results.json").read_text())
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "interrupted after epoch 1. Fix: pass --resume" in refused.output
    resumed = CliRunner().invoke(main, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    (row,) = _scratch_rows(run)
    assert row["level"] == 1 and row["epochs"] == 2 and row["resumed_from_epoch"] == 1


@pytest.mark.parametrize("levels", ["4", "0,4", "-1", "x", "all,0"])
def test_a_level_outside_the_plan_is_a_usage_error_naming_the_fix(finished_run, levels):
    out = CliRunner().invoke(main, ["scratch", str(finished_run), "--levels", levels])
    assert out.exit_code == 2, out.output
    assert "Invalid value for '--levels'" in out.output and "Fix: pass" in out.output
    assert not (finished_run / "baselines").exists()


def test_a_directory_that_is_not_a_finished_run_is_refused(run, tmp_path):
    out = CliRunner().invoke(main, ["scratch", str(tmp_path / "run" / "plots"), "--levels", "0"])
    assert out.exit_code == 1 and "is not a reds run directory (no recipe.yaml). Fix:" in out.output
    (run / "model.keras").unlink()
    out = CliRunner().invoke(main, ["scratch", str(run), "--levels", "0"])
    assert out.exit_code == 1
    assert "no complete REDS run (missing: model.keras). Fix: finish the run with reds run" in out.output
