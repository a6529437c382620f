"""reds_tf: Resource-Efficient Deep Subnetworks (REDS) for TensorFlow/Keras and TFLite Micro.

The pipeline, one module per step: importance -> permute -> solve -> train -> convert
-> firmware. The pure modules (plan, graph, costs, solve) import no TensorFlow, so
importing ``reds_tf`` itself stays light; Keras-facing helpers live in their modules.
"""

from .errors import (
    CorruptFlatbufferError,
    DatasetLayoutError,
    InfeasibleBudgetError,
    NotARedsModelError,
    PlanError,
    RedsError,
    UnsupportedLayerError,
)
from .graph import Graph, Group, Op
from .plan import WidthPlan

__version__ = "0.1.0"

__all__ = [
    "CorruptFlatbufferError",
    "DatasetLayoutError",
    "Graph",
    "Group",
    "InfeasibleBudgetError",
    "NotARedsModelError",
    "Op",
    "PlanError",
    "RedsError",
    "UnsupportedLayerError",
    "WidthPlan",
]
