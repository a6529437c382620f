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
    # The last column: the worst seed's int8 - float (seed 1 at level 1: 91 - 92).
    assert "| 0 | 100 | 50.0 | 81.00 +- 1.41 | 80.00 +- 1.41 | -1.00 |" in text
    assert "| 1 | 200 | 100.0 | 91.00 +- 1.41 | 90.50 +- 0.71 | -1.00 |" in text


def test_wall_time_of_a_run_converted_again_counts_both_calls(tmp_path):
    reg = tmp_path / "results"
    results.add(_run(tmp_path, 0, [0.8]), reg)
    d = _run(tmp_path, 1, [0.8])
    res = json.loads((d / "results.json").read_text())
    res |= {"wall_seconds_run": 300.0, "reconverted": ["recipe.convert.activation_ranges: ..."]}
    (d / "results.json").write_text(json.dumps(res))
    results.add(d, reg)
    assert "wall time per seed 2 min, 5 min (incl. a second conversion)." in results.tables(reg)
    res["reconverted"] = ["recipe.qat: '<absent>' -> {'epochs': 3}"]
    (d / "results.json").write_text(json.dumps(res))
    results.add(d, reg)
    assert "5 min (incl. quantisation-aware fine-tuning and a second conversion)." in results.tables(reg)
    res["reds_tf"]["git_revision"] = "0123456789abcdef0123+dirty"  # run from uncommitted changes: said so
    (d / "results.json").write_text(json.dumps(res))
    results.add(d, reg)
    assert "Revision 0123456789ab+dirty, abcdef123456;" in results.tables(reg)


def test_unfinished_run_and_empty_registry_are_refused(tmp_path):
    with pytest.raises(NotARedsModelError, match="did not finish"):
        results.add(_run(tmp_path, 0, [0.5], finished=False), tmp_path / "results")
    with pytest.raises(NotARedsModelError, match="No result files"):
        results.tables(tmp_path / "results")
    assert results.main(["table", "--dir", str(tmp_path / "nothing")]) == 1


def _paper_recipe_run(tmp_path, seed, accs):
    d = tmp_path / f"paper{seed}"
    d.mkdir()
    pcts = [18.2, 40.0, 70.0, 100.0]  # 70 % is 7 pp from the paper's 63 %: no paper number there
    levels = [{"level": k, "macs": int(10 * p), "macs_pct": p, "test_accuracy": a}
              for k, (p, a) in enumerate(zip(pcts, accs, strict=True))]  # fmt: skip
    res = {"recipe": "ds_cnn_s-fashion_mnist", "schedule": "paper_macs", "seed": seed, "levels": levels,
           "wall_seconds_this_call": 3600.0, "reds_tf": {"git_revision": "0123456789abcdef"}}  # fmt: skip
    (d / "results.json").write_text(json.dumps(res))
    return d


def test_table_has_the_paper_column_at_matching_true_macs(tmp_path):
    reg = tmp_path / "results"
    results.add(_paper_recipe_run(tmp_path, 0, [0.890, 0.905, 0.915, 0.920]), reg)
    results.add(_paper_recipe_run(tmp_path, 1, [0.900, 0.915, 0.925, 0.922]), reg)
    results.add(_run(tmp_path, 0, [0.8, 0.9]), reg)  # a recipe without published numbers
    text = results.tables(reg)
    assert "| level | MACs | MACs % | test % float | test % int8 (TFLM) | paper % |" in text
    assert "| 0 | 182 | 18.2 | 89.50 +- 0.71 | - | 89.2 |" in text
    assert "| 1 | 400 | 40.0 | 91.00 +- 0.71 | - | 90.8 |" in text
    assert "| 2 | 700 | 70.0 | 92.00 +- 0.71 | - | - |" in text
    assert "| 3 | 1,000 | 100.0 | 92.10 +- 0.14 | - | 91.6 |" in text
    assert "verification FAILED" not in text
    other = text.split("### r, short schedule")[1]
    assert "paper" not in other and "| 0 | 100 | 50.0 | 80.00 | - |" in other
    assert results.paper_accuracy("ds_cnn_s-fashion_mnist", 21.0) == 0.892
    assert results.paper_accuracy("ds_cnn_s-fashion_mnist", 21.1) is None
    assert results.paper_accuracy("r", 100.0) is None


def test_plot_draws_every_series_with_error_bars(tmp_path):
    reg = tmp_path / "results"
    results.add(_paper_recipe_run(tmp_path, 0, [0.890, 0.905, 0.915, 0.920]), reg)
    results.add(_paper_recipe_run(tmp_path, 1, [0.900, 0.915, 0.925, 0.922]), reg)
    (s,) = results.series(reg)
    assert s["macs_pct"] == pytest.approx([18.2, 40.0, 70.0, 100.0])
    assert s["mean"] == pytest.approx([89.5, 91.0, 92.0, 92.1])
    assert s["std"] == pytest.approx([0.7071, 0.7071, 0.7071, 0.1414], abs=1e-4)
    assert s["paper"][0] == pytest.approx((18.0, 89.2))
    out = tmp_path / "fig" / "acc.png"
    assert results.main(["plot", "--out", str(out), "--dir", str(reg)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


def test_table_says_when_int8_verification_failed(tmp_path):
    run = _paper_recipe_run(tmp_path, 4, [0.890, 0.905, 0.915, 0.920])
    res = json.loads((run / "results.json").read_text())
    res["converted"] = {"verification_failed": "Conversion verification failed: level 0: ..."}
    (run / "results.json").write_text(json.dumps(res))
    text = results.tables(results.add(run, tmp_path / "results").parent)
    assert "Int8 verification FAILED for seed(s) [4]" in text


def _schedule_run(tmp_path, schedule, pcts, accs, int8=None, seed=0):
    d = tmp_path / f"{schedule}{seed}"
    d.mkdir()
    levels = [{"level": k, "macs": int(10 * p), "macs_pct": p, "test_accuracy": a}
              | ({"int8_test_accuracy": int8[k]} if int8 else {})
              for k, (p, a) in enumerate(zip(pcts, accs, strict=True))]  # fmt: skip
    res = {"recipe": "r", "schedule": schedule, "seed": seed, "levels": levels,
           "wall_seconds_this_call": 60.0, "reds_tf": {"git_revision": "0123456789abcdef"}}  # fmt: skip
    (d / "results.json").write_text(json.dumps(res))
    return d


def test_ablation_compares_schedules_of_one_seed_at_the_same_true_macs(tmp_path):
    reg = tmp_path / "results"
    results.add(_schedule_run(tmp_path, "base", [18.0, 100.0], [0.80, 0.90], [0.79, 0.90]), reg)
    results.add(_schedule_run(tmp_path, "distill", [18.4, 100.0], [0.83, 0.895]), reg)
    results.add(_schedule_run(tmp_path, "short", [25.0, 100.0], [0.70, 0.85]), reg)  # other MACs
    results.add(_schedule_run(tmp_path, "distill", [18.4, 100.0], [0.10, 0.10], seed=1), reg)  # other seed
    text = results.ablation("r", 0, "base", reg)
    assert "| base | 80.00 / 79.00 | 90.00 / 90.00 |" in text
    assert "| distill | 83.00 (+3.00) / - | 89.50 (-0.50) / - |" in text
    assert "Not comparable (other true MACs per level): short." in text
    with pytest.raises(NotARedsModelError, match=r"schedule 'nope', seed 0.*\['base', 'distill', 'short'\]"):
        results.ablation("r", 0, "nope", reg)
    assert results.main(["ablation", "--recipe", "r", "--base", "nope", "--dir", str(reg)]) == 1


def _with_scratch(run, rows):
    """Add ``baselines.scratch.levels`` rows (level, test accuracy, epochs) to a run's results.json."""
    res = json.loads((run / "results.json").read_text())
    levels = [{"level": k, "macs": 1, "macs_pct": 1.0, "test_accuracy": a, "epochs": e, "seed": res["seed"],
               "wall_seconds": 60.0} for k, a, e in rows]  # fmt: skip
    res["baselines"] = {"scratch": {"levels": levels}}
    (run / "results.json").write_text(json.dumps(res))
    return run


def test_add_carries_scratch_rows_and_table_shows_them_per_level(tmp_path):
    reg = tmp_path / "results"
    path = results.add(_with_scratch(_run(tmp_path, 0, [0.80, 0.90]), [(0, 0.70, 12)]), reg)
    assert json.loads(path.read_text())["baselines"]["scratch"]["levels"][0]["epochs"] == 12
    results.add(_with_scratch(_run(tmp_path, 1, [0.82, 0.92]), [(0, 0.74, 12), (1, 0.88, 12)]), reg)
    text = results.tables(reg)
    assert "| level | MACs | MACs % | test % float | test % int8 (TFLM) | scratch % |" in text
    assert "| 0 | 100 | 50.0 | 81.00 +- 1.41 | - | 72.00 +- 2.83 |" in text
    assert "| 1 | 200 | 100.0 | 91.00 +- 1.41 | - | 88.00 (n=1) |" in text  # one seed has level 1
    assert "(12 epochs;" in text


def test_table_without_scratch_rows_has_no_scratch_column(tmp_path):
    reg = tmp_path / "results"
    results.add(_paper_recipe_run(tmp_path, 0, [0.890, 0.905, 0.915, 0.920]), reg)
    results.add(_with_scratch(_run(tmp_path, 0, [0.8, 0.9]), [(1, 0.85, 3)]), reg)
    paper_part, other = results.tables(reg).split("### r, short schedule")
    assert "scratch" not in paper_part
    assert "| level | MACs | MACs % | test % float | test % int8 (TFLM) | paper % |" in paper_part
    assert "| 0 | 100 | 50.0 | 80.00 | - | - |" in other
    assert "| 1 | 200 | 100.0 | 90.00 | - | 85.00 |" in other
