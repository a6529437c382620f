"""reds_tf: Resource-Efficient Deep Subnetworks (REDS) for TensorFlow/Keras and TFLite Micro.

The pipeline, one module per step: importance -> permute -> solve -> train -> convert
-> firmware. The pure modules (plan, graph, costs, solve) import no TensorFlow, so
importing ``reds_tf`` itself stays light; Keras-facing helpers live in their modules.
"""

import os

# Quieten TensorFlow's C++ start-up chatter (CUDA probing, oneDNN notes) before any submodule
# imports it; setdefault keeps a user's explicit choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .errors import (  # noqa: E402
    CorruptFlatbufferError,
    DatasetLayoutError,
    InfeasibleBudgetError,
    ModelFileError,
    NotARedsModelError,
    PlanError,
    RedsError,
    UnsupportedLayerError,
)
from .graph import Graph, Group, Op  # noqa: E402
from .plan import WidthPlan  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CorruptFlatbufferError",
    "DatasetLayoutError",
    "Graph",
    "Group",
    "InfeasibleBudgetError",
    "ModelFileError",
    "NotARedsModelError",
    "Op",
    "PlanError",
    "RedsError",
    "UnsupportedLayerError",
    "WidthPlan",
]
