"""RowPlan: validation with clear errors, columns, JSON round trip."""

from __future__ import annotations

import pytest

from reds_tf.dress import RowPlan
from reds_tf.errors import PlanError


def _plan():
    return RowPlan(("a", "b"), (9, 64), ((2, 10), (5, 30), (9, 64)))


def test_columns_levels_density():
    p = _plan()
    assert p.num_levels == 3 and p.column("b") == (10, 30, 64) and p.level(-1) == (9, 64)
    assert p.density(0) == (2 / 9, 10 / 64)
    assert RowPlan.dense(["a"], [4]).counts == ((4,),)
    assert "fan_in" in p.describe() and "64" in p.describe()


def test_json_round_trip(tmp_path):
    p = _plan()
    p.save(tmp_path / "p.json")
    assert RowPlan.load(tmp_path / "p.json") == p
    assert RowPlan.from_dict({"plan": None, **p.to_dict()}) == p


@pytest.mark.parametrize(
    "args, match",
    [
        ((("a",), (9, 4), ((1, 1),)), "one fan_in per layer"),
        ((("a", "a"), (9, 4), ((1, 1),)), "unique"),
        ((("a",), (9,), ()), "at least one level"),
        ((("a",), (9,), ((1, 2),)), "one count per layer"),
        ((("a",), (9,), ((10,),)), r"layer 'a' at level 0 must be in \[1, 9\].*Received: 10"),
        ((("a",), (9,), ((0,),)), r"must be in \[1, 9\]"),
        ((("a", "b"), (9, 4), ((3, 2), (2, 4))), "not nested: layer 'a' keeps 3 weights per row at level 0"),
    ],
)
def test_bad_plans_name_the_problem(args, match):
    with pytest.raises(PlanError, match=match):
        RowPlan(*args)


def test_bad_json_and_unknown_column(tmp_path):
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(PlanError, match="not a JSON row plan"):
        RowPlan.load(tmp_path / "x.json")
    with pytest.raises(PlanError, match="expected keys 'layers', 'fan_in', 'counts'"):
        RowPlan.from_dict({"groups": []})
    with pytest.raises(PlanError, match="has no layer 'z'"):
        _plan().column("z")
