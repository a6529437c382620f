"""Real datasets for reds_tf: one ``load(name, data_dir)`` for every recipe, and layout checks.

>>> splits = load("fashion_mnist")                       # Debian's files or keras' cache
>>> splits = load("speech_commands", "/data/sc_v002", feature="mfcc_49x10")
>>> check_layout("vww", "/data")                          # raises DatasetLayoutError with the expected tree

Every loader returns :class:`Splits`: unbatched ``tf.data`` datasets of ``(x float32 [H,W,C], y int32)``,
the validation split carved from the training data (never the test set), the sizes, and an ``info``
dict (source, split rule, seed, feature settings) for results files. ``limit`` keeps at most that many
examples per split, balanced over classes, for tiny CI recipes. Everything is deterministic given
``seed``. Nothing is ever downloaded.

Options beyond the common ones (``**options``):

* all: ``shuffle`` (default True; train is reshuffled every pass).
* speech_commands: ``feature`` ("mfcc_49x10" | "mfcc_25x10"), ``silence_percentage``,
  ``unknown_percentage`` (10 each), ``background_volume`` (0.1), ``background_frequency`` (0.8),
  ``time_shift_ms`` (100), ``cache`` ("memory" | a directory | None).
* vww: ``test_percentage`` (10, folder layout only), ``cache``.
* npz (a user's own arrays: ``train.npz`` / ``test.npz`` / optional ``val.npz`` with ``x``, ``y``):
  no augmentation.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from reds_tf.data.layout import FINDERS
from reds_tf.data.splits import Splits

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

_MODULES = {
    "fashion_mnist": "reds_tf.data.fashion_mnist",
    "speech_commands": "reds_tf.data.speech_commands",
    "vww": "reds_tf.data.vww",
    "cifar10": "reds_tf.data.cifar10",
    "npz": "reds_tf.data.npz",
}


def names() -> list[str]:
    """The dataset names ``load`` accepts."""
    return sorted(_MODULES)


def _check_name(name: str) -> None:
    if name not in _MODULES:
        raise ValueError(f"Unknown dataset. Received: name={name!r}. Fix: use one of {names()}.")


def check_layout(name: str, data_dir: str | os.PathLike | None) -> Path:
    """The dataset's root folder, or :class:`DatasetLayoutError` naming the expected layout and its source.

    Imports no TensorFlow, so it is cheap enough to run before a long job starts.
    """
    _check_name(name)
    return FINDERS[name](data_dir)


def load(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    limit: int | None = None,
    augment: bool = True,
    **options: Any,
) -> Splits:
    """Load dataset ``name`` from ``data_dir`` (see the module docstring for the options)."""
    _check_name(name)
    module = importlib.import_module(_MODULES[name])
    return module.load(
        data_dir,
        validation_fraction=validation_fraction,
        seed=seed,
        limit=limit,
        augment=augment,
        **options,
    )


__all__ = ["Splits", "check_layout", "load", "names"]
