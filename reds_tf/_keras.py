"""The one place reds_tf imports Keras.

reds_tf uses the tf_keras (Keras 2) API explicitly: tensorflow-model-optimization
refuses Keras 3 models, and tf_keras keeps TFLiteConverter and tfmot working on
the same model objects. A later move to Keras 3 touches only this module.
"""

from __future__ import annotations

import os

# Quieten TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines);
# setdefault keeps a user's explicit choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

_REQUIRED_MAJOR = 2
if int(keras.__version__.split(".")[0]) != _REQUIRED_MAJOR:  # pragma: no cover - install guard
    raise ImportError(
        f"reds_tf needs tf_keras 2.x, found {keras.__version__}. Fix: pip install 'tf-keras==2.21.*'."
    )

__all__ = ["keras", "tf"]
