"""`make train-kws` / `make train-vww`: the user's entry points, run end to end on fixture trees.

The fixture trees have exactly the real on-disk layouts (tests/data/fixtures.py); the recipes run
with their `tiny` schedule so the whole pipeline (pretrain -> importance -> permute -> solve ->
fine-tune -> evaluate -> convert) finishes in CI time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reds_tf.data.speech_commands_index import SYNTHETIC_MARKER
from tests.data.fixtures import make_speech_commands, make_vww_folder

REPO = Path(__file__).resolve().parents[1]


def make(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a top-level make target with this interpreter's venv."""
    venv = Path(sys.prefix)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        ["make", "-s", "-C", str(REPO), f"VENV={venv}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_run_complete(run_dir: Path, num_levels: int) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    assert len(results["levels"]) == num_levels
    assert (run_dir / "results.md").exists()
    assert (run_dir / "plots" / "accuracy_vs_macs.png").stat().st_size > 1000
    tflites = sorted((run_dir / "converted").glob("submodel_*.tflite"))
    assert len(tflites) == num_levels


@pytest.mark.parametrize(
    "target, name",
    [("train-kws", "speech_commands"), ("train-vww", "vww")],
)
def test_missing_data_dir_names_the_expected_layout(target: str, name: str) -> None:
    r = make(target, timeout=120)
    assert r.returncode != 0
    assert f"No data directory given for '{name}'" in r.stderr
    assert "Expected layout" in r.stderr and "Where it comes from" in r.stderr


def test_wrong_layout_stops_at_once(tmp_path: Path) -> None:
    (tmp_path / "some_folder").mkdir()
    r = make("train-kws", f"DATA_DIR={tmp_path}", timeout=120)
    assert r.returncode != 0
    assert "Expected layout for 'speech_commands'" in r.stderr
    assert "yes/" in r.stderr and "_nohash_" in r.stderr
    r = make("train-vww", f"DATA_DIR={tmp_path}", timeout=120)
    assert r.returncode != 0 and "vw_coco2014_96" in r.stderr


def test_unknown_kws_model_is_refused() -> None:
    r = make("train-kws", "MODEL=resnet50", "DATA_DIR=/nonexistent", timeout=60)
    assert r.returncode != 0
    assert "MODEL is one of" in r.stderr


def test_train_kws_end_to_end_on_fixture_tree(tmp_path: Path) -> None:
    data = make_speech_commands(tmp_path / "sc", speakers=6)
    (data / SYNTHETIC_MARKER).write_text("test fixture\n")  # as synth_kws (make demo-kws) marks its trees
    run_dir = tmp_path / "run-kws"
    r = make("train-kws", f"DATA_DIR={data}", "SCHEDULE=tiny", f"RUN_DIR_KWS={run_dir}", "QUIET=1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert_run_complete(run_dir, num_levels=2)
    # synthetic data never passes for the real corpus: every output says so
    results = json.loads((run_dir / "results.json").read_text())
    assert results["synthetic_data"] is True and "SYNTHETIC" in results["data"]["info"]["split_rule"]
    assert "official" not in results["data"]["info"]["split_rule"]
    assert (run_dir / "results.md").read_text().startswith("# SYNTHETIC DATA")
    assert "SYNTHETIC data" in r.stdout


def test_train_vww_end_to_end_on_fixture_tree(tmp_path: Path) -> None:
    data = make_vww_folder(tmp_path / "vww", per_class=16)
    run_dir = tmp_path / "run-vww"
    r = make("train-vww", f"DATA_DIR={data}", "SCHEDULE=tiny", f"RUN_DIR_VWW={run_dir}", "QUIET=1")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert_run_complete(run_dir, num_levels=2)
