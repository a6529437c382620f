"""WidthPlan: validation, columns, JSON round trip, errors users see."""

from __future__ import annotations

import json

import pytest

from reds_tf.errors import PlanError
from reds_tf.plan import WidthPlan


def _plan() -> WidthPlan:
    return WidthPlan(("a", "b"), (8, 4), ((2, 1), (5, 3), (8, 4)))


def test_columns_levels_and_describe():
    p = _plan()
    assert p.num_levels == 3 and p.num_groups == 2
    assert p.column("b") == (1, 3, 4) and p.column(0) == (2, 5, 8)
    assert p.level(-1) == (8, 4) and p.level(0) == (2, 1)
    text = p.describe()
    assert "full" in text.splitlines()[-1] and "a" in text.splitlines()[0]


def test_full_width_plan():
    p = WidthPlan.full_width(["x"], [7])
    assert p.widths == ((7,),) and p.num_levels == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groups=("a",), full=(4, 5), widths=((1, 1),)), "one full width per group"),
        (dict(groups=("a", "a"), full=(4, 4), widths=((1, 1),)), "unique"),
        (dict(groups=("a",), full=(4,), widths=()), "at least one level"),
        (dict(groups=("a",), full=(4,), widths=((5,),)), r"must be in \[1, 4\]. Received: 5"),
        (dict(groups=("a",), full=(4,), widths=((0,),)), r"must be in \[1, 4\]"),
        (dict(groups=("a",), full=(4,), widths=((3,), (2,))), "not nested"),
        (dict(groups=("a", "b"), full=(4, 4), widths=((3,),)), "has 1 widths but the plan has 2"),
    ],
)
def test_invalid_plans_raise(kwargs, match):
    with pytest.raises(PlanError, match=match):
        WidthPlan(**kwargs)


def test_level_out_of_range():
    with pytest.raises(PlanError, match="out of range"):
        _plan().level(3)


def test_json_round_trip(tmp_path):
    p = _plan()
    p.save(tmp_path / "plan.json")
    assert WidthPlan.load(tmp_path / "plan.json") == p
    # A run file that wraps the plan under "plan" loads too.
    (tmp_path / "run.json").write_text(json.dumps({"plan": p.to_dict(), "other": 1}))
    assert WidthPlan.load(tmp_path / "run.json") == p


def test_load_errors(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PlanError, match="not a JSON width plan"):
        WidthPlan.load(tmp_path / "bad.json")
    with pytest.raises(PlanError, match="expected keys"):
        WidthPlan.from_dict({"groups": ["a"]})
