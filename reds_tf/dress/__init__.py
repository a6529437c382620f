"""DRESS: nested row-sparse subnetworks (Qu et al. 2022) beside REDS's nested widths.

Every output unit (row) of a Dense / Conv2D layer orders its incoming weights by importance; level k
keeps the first ``counts[k][l]`` entries of every row of layer l (row-balanced, nested). Depthwise
layers stay dense. Steps: ``scores`` (per-weight importance, row orders) -> ``counts`` (MILP under
MAC / byte budgets) -> ``model`` (row-sparse layers; the REDS trainer fine-tunes all levels through
``nested.set_level``) -> ``export.to_plain`` (what the converter reads). See
docs/dress-method.md in the shared docs.
"""

from __future__ import annotations

from .costs import ModelCosts, model_costs
from .counts import solve_counts
from .export import expand_level, to_plain
from .model import (
    candidate_layers,
    custom_objects,
    load_model,
    make_row_sparse,
    orders_of,
    plan_of,
    save_model,
    sparse_layers,
)
from .plan import RowPlan
from .row_sparse_conv2d import RowSparseConv2D
from .row_sparse_dense import RowSparseDense
from .scores import kept_importance, magnitude_scores, random_scores, row_orders, taylor_scores

__all__ = [
    "ModelCosts",
    "RowPlan",
    "RowSparseConv2D",
    "RowSparseDense",
    "candidate_layers",
    "custom_objects",
    "expand_level",
    "kept_importance",
    "load_model",
    "magnitude_scores",
    "make_row_sparse",
    "model_costs",
    "orders_of",
    "plan_of",
    "random_scores",
    "row_orders",
    "save_model",
    "solve_counts",
    "sparse_layers",
    "taylor_scores",
    "to_plain",
]
