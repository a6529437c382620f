"""Saving and loading reds_tf's own ``.keras`` files: one atomic writer and one guarded reader.

``reds_tf.nested`` and ``reds_tf.dress`` both store models with custom layers; the checks that make
a file theirs differ, the file handling does not.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._keras import keras
from .errors import NotARedsModelError
from .runstore import atomic_path


def save_keras(model: keras.Model, path: str | Path, check: Callable[[keras.Model], Any]) -> None:
    """Save ``model`` as ``.keras`` at ``path`` atomically, after ``check(model)`` has passed.

    ``check`` is the loader's own test, so nothing is written that the loader would reject.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(
            f"save_model writes the .keras format. Received: path={str(path)!r}. Fix: end it in '.keras'."
        )
    check(model)
    with atomic_path(path, suffix=".tmp.keras") as tmp:
        model.save(str(tmp), save_format="keras")


def load_keras(
    path: str | Path, custom_objects: dict[str, type], kind: str, writer: str, compile: bool = False
) -> keras.Model:
    """Load the ``.keras`` file at ``path`` with ``custom_objects``; NotARedsModelError if it is not one.

    ``kind`` names what was expected ("row-sparse model") and ``writer`` the function that writes it,
    for the error messages.
    """
    path = Path(path)
    if not path.exists():
        raise NotARedsModelError(f"No {kind} at {str(path)!r}: the path does not exist.")
    try:
        return keras.models.load_model(path, custom_objects=custom_objects, compile=compile)
    except Exception as e:  # keras raises many types for foreign files
        raise NotARedsModelError(
            f"{str(path)!r} is not a Keras model reds_tf can read ({type(e).__name__}: {e}). "
            f"Fix: pass a .keras file written by {writer}."
        ) from e
