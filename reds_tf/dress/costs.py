"""Exact costs of a row-sparse level: true MACs and int8 weight bytes including column indices.

A row-sparse layer keeping n weights per row costs ``Ho*Wo*C_out*n`` MACs (Conv2D) or ``out*n``
(Dense); every other op (depthwise, dense layers DRESS does not thin) costs what the project's cost
model (``reds_tf.costs`` on the full-width graph) says, so fractions are of the full model's TRUE
MACs. Storage of a row-sparse layer at level k (dress-method.md section 8.5): int8 values plus one
column index per kept weight (uint8 when fan_in <= 256, else uint16), ``rows*n*(1 + b_idx)``; a level
that keeps whole rows needs no indices (``rows*fan_in``). Biases (int32, BatchNorm folded) and the
dense layers are the cost model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import costs, topology
from .._keras import keras
from .plan import RowPlan


def index_bytes(fan_in: int) -> int:
    """Bytes of one column index: uint8 if it fits, else uint16."""
    return 1 if fan_in <= 256 else 2


@dataclass(frozen=True)
class SparseLayerCost:
    """One row-sparse layer: ``macs_per_count`` MACs per weight kept in every row."""

    name: str
    rows: int
    fan_in: int
    macs_per_count: int

    def macs(self, n: int) -> int:
        return self.macs_per_count * int(n)

    def weight_bytes(self, n: int) -> int:
        """int8 values + indices of ``n`` weights per row; whole rows are stored densely."""
        n = int(n)
        return self.rows * self.fan_in if n >= self.fan_in else self.rows * n * (1 + index_bytes(self.fan_in))


@dataclass(frozen=True)
class ModelCosts:
    """The row-sparse layers' costs plus what the rest of the model costs (never shrinks)."""

    layers: tuple[SparseLayerCost, ...]
    fixed_macs: int
    fixed_weight_bytes: int
    full_macs: int
    full_weight_bytes: int
    peak_memory: int  # int8 activation bytes: the full model's, as row sparsity keeps every activation

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.layers)

    def macs(self, counts: Any) -> int:
        return self.fixed_macs + sum(c.macs(n) for c, n in zip(self.layers, counts, strict=True))

    def weight_bytes(self, counts: Any) -> int:
        return self.fixed_weight_bytes + sum(
            c.weight_bytes(n) for c, n in zip(self.layers, counts, strict=True)
        )

    def shared_weight_bytes(self, plan: RowPlan) -> int:
        """Flash of ONE weight set serving every level (dress-method.md 8.5): per layer, values and
        indices of the largest level's ``n_max`` entries per row; when ``n_max`` is the whole row, the
        dense row plus the indices of the next level's entries (through which the sparse levels gather)."""
        total = self.fixed_weight_bytes
        for i, c in enumerate(self.layers):
            col = plan.column(i)
            n_max = col[-1]
            if n_max < c.fan_in:
                total += c.rows * n_max * (1 + index_bytes(c.fan_in))
            else:
                below = max([n for n in col if n < c.fan_in], default=0)
                total += c.rows * c.fan_in + c.rows * below * index_bytes(c.fan_in)
        return total

    def kept_weights(self, counts: Any) -> int:
        """Kernel weights a level uses in its row-sparse layers."""
        return sum(c.rows * int(n) for c, n in zip(self.layers, counts, strict=True))


def _positions(layer: Any) -> int:
    shape = layer.output_shape
    return int(np.prod(shape[1:-1])) if len(shape) > 2 else 1


def model_costs(model: keras.Model, layers: tuple[str, ...] | list[str]) -> ModelCosts:
    """Costs of plain (or row-sparse) ``model`` with ``layers`` row-sparse (the rest dense)."""
    graph = topology.graph_of(model)
    full = graph.full_widths
    op_macs = costs.op_macs(graph, full)
    full_macs = sum(op_macs.values())
    full_bytes = costs.weight_bytes(graph, full)
    out = []
    for name in layers:
        layer = model.get_layer(name)
        rows = int(layer.kernel.shape[-1])
        fan_in = int(np.prod(layer.kernel.shape[:-1]))
        out.append(SparseLayerCost(name, rows, fan_in, _positions(layer) * rows))
    fixed_macs = full_macs - sum(c.macs(c.fan_in) for c in out)
    fixed_bytes = full_bytes - sum(c.rows * c.fan_in for c in out)
    peak = costs.peak_memory(graph, full)
    return ModelCosts(tuple(out), fixed_macs, fixed_bytes, full_macs, full_bytes, peak)
