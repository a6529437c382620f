"""The results registry: README's tables are generated from committed result files."""

from __future__ import annotations

import json

import pytest

from reds_tf import results
from reds_tf.errors import NotARedsModelError


def _run(tmp_path, seed, accs, int8=None, finished=True):
    d = tmp_path / f"run{seed}"
    d.mkdir()
    levels = [
        {"level": k, "macs": 100 * (k + 1), "macs_pct": 50.0 * (k + 1), "test_accuracy": a}
        | ({"int8_test_accuracy": int8[k]} if int8 else {})
        for k, a in enumerate(accs)
    ]
    res = {"recipe": "r", "schedule": "short", "seed": seed, "levels": levels,
           "reds_tf": {"git_revision": "abcdef1234567890"}}  # fmt: skip
    if finished:
        res["wall_seconds_this_call"] = 120.0
    (d / "results.json").write_text(json.dumps(res))
    return d


def test_table_gives_mean_and_std_over_seeds(tmp_path):
    reg = tmp_path / "results"
    for seed, accs, int8 in [(0, [0.80, 0.90], [0.79, 0.90]), (1, [0.82, 0.92], [0.81, 0.91])]:
        path = results.add(_run(tmp_path, seed, accs, int8), reg)
        assert path.name == f"r-short-seed{seed}.json"
    text = results.tables(reg)
    assert "### r, short schedule (seeds 0, 1)" in text and "abcdef123456" in text
    assert "| 0 | 100 | 50.0 | 81.00 +- 1.41 | 80.00 +- 1.41 |" in text
    assert "| 1 | 200 | 100.0 | 91.00 +- 1.41 | 90.50 +- 0.71 |" in text


def test_unfinished_run_and_empty_registry_are_refused(tmp_path):
    with pytest.raises(NotARedsModelError, match="did not finish"):
        results.add(_run(tmp_path, 0, [0.5], finished=False), tmp_path / "results")
    with pytest.raises(NotARedsModelError, match="No result files"):
        results.tables(tmp_path / "results")
    assert results.main(["table", "--dir", str(tmp_path / "nothing")]) == 1
