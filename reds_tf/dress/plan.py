"""RowPlan: DRESS's per-row weight counts, K levels x L row-sparse layers.

``counts[k][l]`` is how many weights EVERY row (output unit) of layer l keeps at level k: the first
``counts[k][l]`` entries of the row's importance order. Level 0 is the smallest; plans are nested
(``counts[k][l] <= counts[k+1][l]``), so a smaller level's kept weights are a subset of a larger
one's. The last level may keep the full ``fan_in`` (the dense model). Pure: no TensorFlow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PlanError
from ..runstore import atomic_write_text


@dataclass(frozen=True)
class RowPlan:
    """Nested per-row counts for K row-sparse submodels.

    Args:
        layers: names of the row-sparse layers (Dense / Conv2D), length L.
        fan_in: weights per row of every layer (Dense: inputs; Conv2D: kh*kw*c_in), length L.
        counts: K rows of L ints, level 0 smallest.
    """

    layers: tuple[str, ...]
    fan_in: tuple[int, ...]
    counts: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(str(name) for name in self.layers))
        object.__setattr__(self, "fan_in", tuple(int(f) for f in self.fan_in))
        object.__setattr__(self, "counts", tuple(tuple(int(n) for n in row) for row in self.counts))
        if len(self.layers) != len(self.fan_in):
            raise PlanError(
                f"RowPlan needs one fan_in per layer. Received: {len(self.layers)} layers, "
                f"{len(self.fan_in)} fan_in values."
            )
        if len(set(self.layers)) != len(self.layers):
            raise PlanError(f"RowPlan layer names must be unique. Received: layers={list(self.layers)}")
        if not self.counts:
            raise PlanError("RowPlan needs at least one level. Received: counts=[]")
        for k, row in enumerate(self.counts):
            if len(row) != len(self.layers):
                raise PlanError(
                    f"Level {k} has {len(row)} counts but the plan has {len(self.layers)} layers. "
                    "Fix: give one count per layer."
                )
            for name, n, f in zip(self.layers, row, self.fan_in, strict=True):
                if not 1 <= n <= f:
                    raise PlanError(
                        f"Count of layer '{name}' at level {k} must be in [1, {f}] (its fan_in). "
                        f"Received: {n}"
                    )
        for k in range(len(self.counts) - 1):
            for name, a, b in zip(self.layers, self.counts[k], self.counts[k + 1], strict=True):
                if a > b:
                    raise PlanError(
                        f"RowPlan is not nested: layer '{name}' keeps {a} weights per row at level {k} but "
                        f"{b} at level {k + 1}. Fix: order levels from smallest to largest."
                    )

    @classmethod
    def dense(cls, layers: Sequence[str], fan_in: Sequence[int]) -> RowPlan:
        """A one-level plan that keeps every weight."""
        return cls(tuple(layers), tuple(fan_in), (tuple(fan_in),))

    @property
    def num_levels(self) -> int:
        return len(self.counts)

    def level(self, k: int) -> tuple[int, ...]:
        """Counts of level k (negative k counts from the largest level)."""
        if not -self.num_levels <= k < self.num_levels:
            raise PlanError(f"Level index out of range [0, {self.num_levels - 1}]. Received: level={k}")
        return self.counts[k]

    def column(self, layer: str | int) -> tuple[int, ...]:
        """Counts of one layer across levels (what the layer stores)."""
        if isinstance(layer, str) and layer not in self.layers:
            raise PlanError(f"RowPlan has no layer '{layer}'. Its layers: {list(self.layers)}")
        i = self.layers.index(layer) if isinstance(layer, str) else int(layer)
        return tuple(row[i] for row in self.counts)

    def density(self, k: int) -> tuple[float, ...]:
        """Kept fraction of every layer's weights at level k."""
        return tuple(n / f for n, f in zip(self.level(k), self.fan_in, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "fan_in": list(self.fan_in),
            "counts": [list(r) for r in self.counts],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowPlan:
        try:
            return cls(tuple(d["layers"]), tuple(d["fan_in"]), tuple(tuple(r) for r in d["counts"]))
        except (KeyError, TypeError) as e:
            raise PlanError(
                "Not a RowPlan: expected keys 'layers', 'fan_in', 'counts'. Received keys: "
                f"{sorted(d) if isinstance(d, dict) else type(d).__name__}"
            ) from e

    def save(self, path: str | Path) -> None:
        """Write the plan as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> RowPlan:
        try:
            d = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise PlanError(f"{path} is not a JSON row plan: {e}") from e
        return cls.from_dict(d.get("plan", d) if isinstance(d, dict) else d)

    def describe(self) -> str:
        """A plain-text table: one row per level (weights kept per row), one column per layer."""
        head = ["level"] + list(self.layers)
        rows = [[str(k)] + [str(n) for n in row] for k, row in enumerate(self.counts)]
        rows.append(["fan_in"] + [str(f) for f in self.fan_in])
        cols = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        fmt = "  ".join(f"{{:>{c}}}" for c in cols)
        return "\n".join(fmt.format(*r) for r in [head] + rows)
