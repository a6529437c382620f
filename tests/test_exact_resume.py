"""Exact resume: a run stopped between epochs and resumed ends where an uninterrupted run ends.

Real Fashion-MNIST, the tiny DS-CNN with dropout and augmentation (so data order, augmentation draws,
dropout masks and BN statistics all have to come back exactly), stopped once in pretraining and once in
joint fine-tuning. Both runs share this process, so nothing the first run left behind (Python, NumPy or
TensorFlow random states, traced functions, dataset iterators) may leak into what the second computes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reds_tf import nested, pipeline
from reds_tf.recipe import Recipe
from reds_tf.train import TrainingInterrupted

RECIPE = {
    "name": "tiny-resume",
    "model": "ds_cnn_fmnist",
    "model_options": {"filters": 16, "blocks": 2},
    "dataset": "fashion_mnist",
    "seed": 3,
    "data": {"limit": 600, "batch_size": 50, "augment": True},
    "importance": {"method": "taylor", "num_batches": 4},
    "solve": {"budgets": [0.25, 0.5, 0.75], "time_limit": 20, "gap": 0.01},
    "pretrain": {"epochs": 2, "learning_rate": 0.005},
    "finetune": {"epochs": 2, "learning_rate": 0.002, "bn_epochs": 1},
    "bn": {"recalibrate": True, "recalibration_batches": 4},
    "baselines": [],
    "convert": {"enabled": False},
}

TIMING_KEYS = {"wall_seconds_this_call", "wall_seconds_run", "wall_s", "seconds", "reds_tf"}


def _numbers(x):
    """results.json without what legitimately differs between calls (timings, the code revision)."""
    if isinstance(x, dict):
        return {k: _numbers(v) for k, v in x.items() if k not in TIMING_KEYS}
    if isinstance(x, list):
        return [_numbers(v) for v in x]
    return x


def _quiet(*_):
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    recipe = Recipe.from_dict(RECIPE)
    whole = tmp_path_factory.mktemp("whole")
    pipeline.run(recipe, whole, progress=False, log=_quiet)
    parts = tmp_path_factory.mktemp("parts")
    stops = []
    for resume in (
        False,
        True,
        True,
    ):  # stop after pretrain epoch 1, then after finetune epoch 1, then finish
        try:
            pipeline.run(recipe, parts, resume=resume, progress=False, log=_quiet, max_epochs_this_call=1)
        except TrainingInterrupted as e:
            stops.append(str(e))
    return whole, parts, stops


def test_run_was_really_interrupted_in_both_training_stages(runs):
    _, parts, stops = runs
    assert len(stops) == 2
    assert "Stage 'pretrain' stopped after epoch 1 of 2" in stops[0]
    assert "Stage 'finetune' stopped after epoch 1 of 2" in stops[1]
    state = json.loads((parts / "state.json").read_text())
    assert state["done"]["finetune"]["history"]["resumed_from"] == 1


def test_wall_time_of_the_run_counts_every_call(runs):
    """A run stopped twice records each call's time up to its last epoch; the run's wall time is their
    sum, not only the last call's."""
    whole, parts, _ = runs
    calls = json.loads((parts / "state.json").read_text())["calls"]
    assert len(calls) == 3 and all(c["seconds"] > 0 for c in calls)
    res = json.loads((parts / "results.json").read_text())
    assert res["wall_seconds_this_call"] == pytest.approx(calls[2]["seconds"], abs=2.0)
    assert res["wall_seconds_run"] == pytest.approx(res["wall_seconds_this_call"] + calls[0]["seconds"]
                                                   + calls[1]["seconds"], abs=0.15)  # fmt: skip
    one = json.loads((whole / "results.json").read_text())
    assert len(json.loads((whole / "state.json").read_text())["calls"]) == 1
    assert one["wall_seconds_run"] == one["wall_seconds_this_call"]


def test_resumed_results_equal_uninterrupted(runs):
    whole, parts, _ = runs
    a = json.loads((whole / "results.json").read_text())
    b = json.loads((parts / "results.json").read_text())
    assert _numbers(a) == _numbers(b)
    assert (whole / "plan.json").read_text() == (parts / "plan.json").read_text()


def test_resumed_weights_and_scores_equal_uninterrupted(runs):
    whole, parts, _ = runs
    for name in ("scores.npz", "sorted_scores.npz"):
        with np.load(Path(whole) / name) as za, np.load(Path(parts) / name) as zb:
            assert za.files == zb.files
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k], err_msg=f"{name}: {k}")
    ma, mb = nested.load_model(whole / "model.keras"), nested.load_model(parts / "model.keras")
    for va, vb in zip(ma.weights, mb.weights, strict=True):
        np.testing.assert_array_equal(va.numpy(), vb.numpy(), err_msg=va.name)  # BN statistics included


@pytest.mark.slow
def test_killed_at_random_moments_and_resumed_equals_uninterrupted(tmp_path, runs):
    """`reds run` in a child process, SIGKILLed at 5 seeded random moments, resumed each time."""
    import os
    import signal
    import subprocess
    import sys

    import yaml

    whole, _, _ = runs
    recipe = tmp_path / "tiny-resume.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    run_dir = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(pipeline.__file__).resolve().parents[1])}
    cmd = [
        sys.executable,
        "-c",
        "from reds_tf.cli import main; main()",
        "run",
        "--recipe",
        str(recipe),
        "--run-dir",
        str(run_dir),
    ]
    rng = np.random.default_rng(7)
    kills = 0
    for attempt in range(12):
        args = cmd + (["--resume"] if attempt else []) + ["--quiet"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kills < 5:
            try:
                proc.wait(timeout=float(rng.uniform(8, 40)))  # TF import alone takes several seconds
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                continue
        else:
            proc.wait(timeout=900)
        err = proc.stderr.read().decode()
        assert proc.returncode == 0, err
        break
    assert kills >= 3, f"only {kills} kills landed before the run finished"
    a = json.loads((whole / "results.json").read_text())
    b = json.loads((run_dir / "results.json").read_text())
    assert _numbers(a) == _numbers(b)
    assert not list(run_dir.rglob("*.tmp*")), "a killed write left a temp file"
