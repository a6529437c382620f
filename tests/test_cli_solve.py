"""`reds solve`: budgets and sizes parsed, plan JSON written atomically, table printed, clear errors."""

from __future__ import annotations

import json

import click
import numpy as np
import pytest
from click.testing import CliRunner

from reds_tf.cli import main, parse_size
from reds_tf.costs import macs, peak_memory
from reds_tf.plan import WidthPlan
from tests.test_solve import ds_net, random_scores


@pytest.fixture
def files(tmp_path):
    graph = ds_net()
    gpath, spath = tmp_path / "g.json", tmp_path / "s.json"
    gpath.write_text(graph.to_json())
    spath.write_text(json.dumps({k: v.tolist() for k, v in random_scores(graph, 1).items()}))
    return graph, str(gpath), str(spath)


def test_sizes_decimal_and_binary():
    assert parse_size("200KB") == 200_000
    assert parse_size("200kb") == 200_000
    assert parse_size("200KiB") == 204_800
    assert parse_size("1.5MB") == 1_500_000
    assert parse_size("1MiB") == 1_048_576
    assert parse_size("4096") == 4096
    with pytest.raises(click.BadParameter, match="Not a size. Received: '200 parsecs'"):
        parse_size("200 parsecs")


def test_solve_graph_json_writes_plan_and_prints_table(files, tmp_path):
    graph, gpath, spath = files
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(
        main,
        ["solve", "--model", gpath, "--scores", spath, "--macs", "0.25,0.5,0.75", "--peak-mem", "0.2KB"]
        + ["--strategy", "joint", "--gap", "0", "--out", str(out), "--no-full"],
    )
    assert res.exit_code == 0, res.output
    assert "MACs%" in res.output and "kept imp.%" in res.output and "joint / cbc: optimal" in res.output
    plan = WidthPlan.load(out)
    assert plan.num_levels == 3 and plan.groups == graph.group_names
    doc = json.loads(out.read_text())
    assert doc["scores_source"].startswith("scores from") and doc["status"] == "optimal"
    full = macs(graph, graph.full_widths)
    for row, budget in zip(plan.widths, (0.25, 0.5, 0.75), strict=True):
        assert macs(graph, row) <= budget * full
        assert peak_memory(graph, row) <= 200
    # The printed table shows the plan's true MACs.
    assert f"{macs(graph, plan.level(0)):,}" in res.output


def test_solve_adds_full_level_by_default(files):
    graph, gpath, spath = files
    res = CliRunner().invoke(main, ["solve", "--model", gpath, "--scores", spath, "--macs", "0.5"])
    assert res.exit_code == 0, res.output
    assert "100.00" in res.output
    assert " ".join(str(w) for w in graph.full_widths) in " ".join(res.output.split())


def test_infeasible_cap_is_a_clear_error(files):
    _, gpath, spath = files
    res = CliRunner().invoke(
        main, ["solve", "--model", gpath, "--scores", spath, "--macs", "0.5", "--peak-mem", "50"]
    )
    assert res.exit_code == 1
    assert "peak memory cap 50 B is below the 100 B the minimum widths need at op 'conv0'" in res.output


def test_graph_json_needs_scores(files):
    _, gpath, _ = files
    res = CliRunner().invoke(main, ["solve", "--model", gpath, "--macs", "0.5"])
    assert res.exit_code == 2 and "carries no weights" in res.output


def test_bad_macs_list(files):
    _, gpath, spath = files
    res = CliRunner().invoke(main, ["solve", "--model", gpath, "--scores", spath, "--macs", "0.5,x"])
    assert res.exit_code == 2 and "comma-separated numbers" in res.output


def test_zoo_model_with_magnitude_scores(tmp_path):
    """The README example: DS-CNN-S from the zoo, fresh seeded weights, L1 scores (TF: ~5 s)."""
    out = tmp_path / "ds.json"
    res = CliRunner().invoke(
        main, ["solve", "--model", "ds_cnn_s", "--macs", "0.25,0.5,0.75", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert "L1-magnitude" in doc["scores_source"]
    pct = [lvl["macs_pct"] for lvl in doc["per_level"]]
    assert pct[-1] == 100.0
    assert all(p <= b for p, b in zip(pct, (25, 50, 75), strict=False))
    assert np.all(np.diff(np.array(doc["plan"]["widths"]), axis=0) >= 0)


def test_top_budget_of_one_returns_full_widths(files):
    graph, gpath, spath = files
    res = CliRunner().invoke(
        main, ["solve", "--model", gpath, "--scores", spath, "--macs", "0.25,0.5,1.0", "--no-full"]
    )
    assert res.exit_code == 0, res.output
    assert "100.00" in res.output
    last = [line.split() for line in res.output.splitlines() if line.strip().startswith("2 ")][-1]
    assert [int(w) for w in last[1:]] == list(graph.full_widths)


BAD_INPUTS = [
    (["--macs", "0.5,inf"], "--macs", "'inf' is not a budget. Fix: a fraction in (0, 1]"),
    (["--macs", "nan"], "--macs", "'nan' is not a budget"),
    (["--macs", "0"], "--macs", "'0' is not a budget"),
    (["--macs", "-0.5"], "--macs", "'-0.5' is not a budget"),
    (["--macs", "0.25,,0.5"], "--macs", "Empty item in '0.25,,0.5'"),
    (["--macs", "0.5,0.25"], "--macs", "distinct and ascending (one per level, smallest first). Received: "),
    (["--macs", "0.5,0.5"], "--macs", "Fix: --macs 0.5"),
    (["--macs", "0.5,0.25,0.75"], "--macs", "Fix: --macs 0.25,0.5,0.75"),
    (["--macs", "0.5,1000"], "--macs", "distinct and ascending once fractions are turned into MACs"),
    (["--macs", "1.5"], "--macs", "'1.5': a budget above 1 means absolute MACs"),
    (["--macs", "500"], "--macs", "must be an integer >= 1000"),
    (["--macs", "0.5", "--time-limit", "0"], "--time-limit", "seconds > 0, e.g. 60. Received: '0'"),
    (["--macs", "0.5", "--time-limit", "-5"], "--time-limit", "Received: '-5'"),
    (["--macs", "0.5", "--time-limit", "inf"], "--time-limit", "Received: 'inf'"),
    (["--macs", "0.5", "--gap", "-1"], "--gap", "-1.0 is not in the range 0<=x<1"),
    (["--macs", "0.5", "--gap", "1"], "--gap", "not in the range 0<=x<1"),
    (["--macs", "0.5", "--min-width", "100"], "--min-width", "above the width of unit group 'pw1' (5). "
     "Fix: --min-width 5 or less"),
    (["--macs", "0.5", "--min-width", "0"], "--min-width", "0 is not in the range x>=1"),
    (["--macs", "0.5", "--granularity", "0"], "--granularity", "0 is not in the range x>=1"),
    (["--macs", "0.5", "--node-limit", "0"], "--node-limit", "0 is not in the range x>=1"),
    (["--macs", "0.5", "--peak-mem", "200parsecs"], "--peak-mem", "Not a size. Received: '200parsecs'"),
    (["--macs", "0.5", "--weight-bytes", "0"], "--weight-bytes", "Fix: bytes >= 1"),
]  # fmt: skip


@pytest.mark.parametrize("args,option,message", BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_solve_input_is_a_usage_error_naming_the_option(files, args, option, message):
    _, gpath, spath = files
    res = CliRunner().invoke(main, ["solve", "--model", gpath, "--scores", spath, *args])
    assert res.exit_code == 2, res.output
    assert f"Error: Invalid value for '{option}'" in res.output
    assert message in " ".join(res.output.split())
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
