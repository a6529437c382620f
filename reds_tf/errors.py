"""Errors reds_tf raises for bad input. Each message names the problem, the value and the fix."""

from __future__ import annotations


class RedsError(Exception):
    """Base class of every error reds_tf raises on purpose."""


class UnsupportedLayerError(RedsError, ValueError):
    """A model contains a layer that nested widths cannot handle."""


class InfeasibleBudgetError(RedsError, ValueError):
    """No width plan satisfies the requested budgets."""


class DatasetLayoutError(RedsError, FileNotFoundError):
    """A dataset directory is missing or does not have the expected layout."""


class NotARedsModelError(RedsError, ValueError):
    """A file or directory is not a reds model, plan or run directory."""


class CorruptFlatbufferError(RedsError, ValueError):
    """A .tflite file or device blob is truncated or malformed."""


class PlanError(RedsError, ValueError):
    """A width plan is malformed (wrong shape, out of range, not nested)."""


class ModelFileError(RedsError, ValueError):
    """A named model is neither a zoo architecture nor a readable Keras model file that fits the data."""


class RunMismatchError(RedsError, ValueError):
    """``--resume`` was asked for a run directory that was started with different settings."""


class RunExistsError(RedsError, FileExistsError):
    """The run directory already holds a run and resume was not requested."""
