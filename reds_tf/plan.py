"""WidthPlan: the one width concept of reds_tf.

A plan is K levels x G unit groups of integers. Level 0 is the smallest submodel,
level K-1 the largest; ``widths[k][g]`` is how many leading (most important) units
of group g submodel k keeps. Plans are nested: ``widths[k][g] <= widths[k+1][g]``.
Layers store only their group's column, the solver returns a plan, the converter
reads it, and the firmware sees only the level index.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PlanError
from .runstore import atomic_write_text


@dataclass(frozen=True)
class WidthPlan:
    """Nested per-group widths for K submodels.

    Args:
        groups: unit-group names (the producing layer's name), length G.
        full: full width of every group, length G.
        widths: K rows of G ints, level 0 smallest.
    """

    groups: tuple[str, ...]
    full: tuple[int, ...]
    widths: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(str(g) for g in self.groups))
        object.__setattr__(self, "full", tuple(int(f) for f in self.full))
        object.__setattr__(self, "widths", tuple(tuple(int(w) for w in row) for row in self.widths))
        if len(self.groups) != len(self.full):
            raise PlanError(
                f"WidthPlan needs one full width per group. Received: {len(self.groups)} groups, "
                f"{len(self.full)} full widths."
            )
        if len(set(self.groups)) != len(self.groups):
            raise PlanError(f"WidthPlan group names must be unique. Received: groups={list(self.groups)}")
        if not self.widths:
            raise PlanError("WidthPlan needs at least one level. Received: widths=[]")
        for k, row in enumerate(self.widths):
            if len(row) != len(self.groups):
                raise PlanError(
                    f"Level {k} has {len(row)} widths but the plan has {len(self.groups)} groups. "
                    "Fix: give one width per group."
                )
            for g, (w, f) in enumerate(zip(row, self.full, strict=True)):
                if not 1 <= w <= f:
                    raise PlanError(
                        f"Width of group '{self.groups[g]}' at level {k} must be in [1, {f}]. Received: {w}"
                    )
        for k in range(len(self.widths) - 1):
            for g, (a, b) in enumerate(zip(self.widths[k], self.widths[k + 1], strict=True)):
                if a > b:
                    raise PlanError(
                        f"Plan is not nested: group '{self.groups[g]}' has width {a} at level {k} but "
                        f"{b} at level {k + 1}. Fix: order levels from smallest to largest."
                    )

    @classmethod
    def full_width(cls, groups: Sequence[str], full: Sequence[int]) -> WidthPlan:
        """A one-level plan that keeps every unit."""
        return cls(tuple(groups), tuple(full), (tuple(full),))

    @property
    def num_levels(self) -> int:
        return len(self.widths)

    @property
    def num_groups(self) -> int:
        return len(self.groups)

    def level(self, k: int) -> tuple[int, ...]:
        """Widths of level k (negative k counts from the largest level)."""
        if not -self.num_levels <= k < self.num_levels:
            raise PlanError(f"Level index out of range [0, {self.num_levels - 1}]. Received: level={k}")
        return self.widths[k]

    def column(self, group: str | int) -> tuple[int, ...]:
        """Widths of one group across levels (what a layer stores)."""
        g = self.groups.index(group) if isinstance(group, str) else int(group)
        return tuple(row[g] for row in self.widths)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": list(self.groups),
            "full": list(self.full),
            "widths": [list(r) for r in self.widths],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WidthPlan:
        try:
            return cls(tuple(d["groups"]), tuple(d["full"]), tuple(tuple(r) for r in d["widths"]))
        except (KeyError, TypeError) as e:
            raise PlanError(
                f"Not a WidthPlan: expected keys 'groups', 'full', 'widths'. Received keys: "
                f"{sorted(d) if isinstance(d, dict) else type(d).__name__}"
            ) from e

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> WidthPlan:
        try:
            d = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise PlanError(f"{path} is not a JSON width plan: {e}") from e
        return cls.from_dict(d.get("plan", d) if isinstance(d, dict) else d)

    def describe(self) -> str:
        """A plain-text table: one row per level, one column per group."""
        head = ["level"] + list(self.groups)
        rows = [[str(k)] + [str(w) for w in row] for k, row in enumerate(self.widths)]
        rows.append(["full"] + [str(f) for f in self.full])
        cols = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        fmt = "  ".join(f"{{:>{c}}}" for c in cols)
        return "\n".join(fmt.format(*r) for r in [head] + rows)


def parse_levels(levels: str | Sequence[int], num_levels: int) -> list[int]:
    """Level indices from ``"all"``, ``"0,2"`` or ints: sorted, once each, in [0, num_levels)."""
    given = levels
    if isinstance(levels, str):
        if levels.strip() == "all":
            return list(range(num_levels))
        try:
            levels = [int(s) for s in levels.split(",") if s.strip()]
        except ValueError:
            raise PlanError(
                f"Levels must be 'all' or comma-separated indices such as '0,2'. Received: levels={given!r}. "
                "Fix: pass all or level indices such as 0,2."
            ) from None
    out = sorted({int(i) for i in levels})
    if not out or out[0] < 0 or out[-1] >= num_levels:
        raise PlanError(
            f"Levels must be in [0, {num_levels - 1}] (the plan has {num_levels} levels). Received: "
            f"levels={given if isinstance(given, str) else list(given)!r}. Fix: pass indices from 0 to "
            f"{num_levels - 1} (0 is the smallest level), or all."
        )
    return out
