"""Where a model comes from: a zoo name or a user's Keras model file, resolved in one place.

Everywhere reds_tf names a model (a recipe's ``model:``, ``reds solve --model``) it accepts either a
zoo architecture (``reds_tf.zoo.names()``, built fresh with ``model_options``) or a file a user trained
and saved with tf_keras: ``.keras``, ``.h5``/``.hdf5``, or a SavedModel directory written by
``model.save(dir)``. A file keeps its weights, so a recipe with ``pretrain: {epochs: 0}`` starts REDS
from the user's pretrained model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import zoo
from .errors import ModelFileError

if TYPE_CHECKING:
    from ._keras import keras

FILE_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_file_name(name: str) -> bool:
    """True when ``name`` names a model file or SavedModel directory rather than a zoo architecture."""
    p = Path(name)
    return p.suffix in FILE_SUFFIXES or "/" in name or "\\" in name or p.exists()


def check(name: str, options: dict[str, Any] | None = None) -> None:
    """Raise now (before data loading or training) if ``name`` cannot be resolved; loads nothing."""
    if not is_file_name(name):
        if name not in zoo.names():
            raise ModelFileError(
                f"Unknown model. Received: model={name!r}. Fix: use a zoo name ({zoo.names()}) or the path "
                f"of a Keras model file ({', '.join(FILE_SUFFIXES)} or a SavedModel directory)."
            )
        zoo.check_options(name, options or {})
        return
    p = Path(name)
    if not p.exists():
        raise ModelFileError(
            f"Model file not found. Received: model={name!r} (looked in {Path.cwd()}). Fix: give the path "
            f"of a Keras model file ({', '.join(FILE_SUFFIXES)}) or a SavedModel directory, relative to the "
            "working directory or absolute."
        )
    if p.is_dir() and not (p / "saved_model.pb").is_file():
        raise ModelFileError(
            f"{name!r} is a directory without saved_model.pb, so not a SavedModel. Fix: save the model with "
            "model.save(path) (tf_keras) or pass its .keras/.h5 file."
        )
    if p.is_file() and p.suffix not in FILE_SUFFIXES:
        raise ModelFileError(
            f"Unknown model file type. Received: model={name!r}. Fix: save it with tf_keras as .keras or .h5 "
            "(model.save('model.keras')), or as a SavedModel directory."
        )
    if options:
        raise ModelFileError(
            f"model_options apply to zoo architectures only; model={name!r} is a file. Received: "
            f"model_options={options!r}. Fix: remove model_options (the file fixes the architecture)."
        )


def digest(name: str) -> str | None:
    """sha256 of a model file's bytes (of a SavedModel directory's files and their paths); None for a zoo
    name. A run records it, so resuming after the file changed is refused."""
    if not is_file_name(name):
        return None
    p = Path(name)
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def load_file(path: str | Path) -> keras.Model:
    """A user's Keras model (plain or nested) from a .keras/.h5 file or SavedModel directory, uncompiled."""
    from ._keras import keras  # here, so that check() runs before TensorFlow is imported
    from .layers import custom_objects

    name = str(path)
    check(name)
    try:
        model = keras.models.load_model(name, custom_objects=custom_objects(), compile=False)
    except Exception as e:  # keras raises many types for foreign or damaged files
        raise ModelFileError(
            f"Cannot read a Keras model from {name!r} ({type(e).__name__}: {e}). Fix: save the model from "
            "tf_keras with model.save(path) (.keras, .h5 or a SavedModel directory); custom layers are not "
            "supported."
        ) from e
    if not isinstance(model, keras.Model) or not model.inputs:
        raise ModelFileError(
            f"{name!r} holds {type(model).__name__}, not a built Keras model. Fix: save a functional or "
            "Sequential tf_keras model with model.save(path); a SavedModel written by tf.saved_model.save "
            "carries no Keras layers."
        )
    return model


def build(
    name: str,
    options: dict[str, Any] | None = None,
    num_classes: int | None = None,
    input_shape: tuple | None = None,
) -> keras.Model:
    """The model ``name`` names: a zoo architecture built for the data, or a file checked against it.

    Args:
        name: zoo name or model file / SavedModel directory (see the module docstring).
        options: builder options of a zoo architecture (must be empty for a file).
        num_classes, input_shape: what the data needs; a zoo model is built for them, a file's model
            must already have them (raises ``ModelFileError`` naming both shapes otherwise).
    """
    if not is_file_name(name):
        check(name)
        return zoo.build(name, num_classes=num_classes, input_shape=input_shape, **(options or {}))
    check(name, options)
    model = load_file(name)
    have_in, have_out = tuple(model.input_shape[1:]), model.output_shape[-1]
    if input_shape is not None and have_in != tuple(input_shape):
        raise ModelFileError(
            f"Model {name!r} takes inputs of shape {have_in}; the dataset gives {tuple(input_shape)}. Fix: "
            "train the model on this dataset's input shape, or pick the dataset it was trained on."
        )
    if num_classes is not None and have_out != num_classes:
        raise ModelFileError(
            f"Model {name!r} outputs {have_out} values; the dataset has {num_classes} classes. Fix: end the "
            "model in a classifier with one output per class of this dataset."
        )
    return model
