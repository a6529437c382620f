"""The one place reds_tf imports Keras.

reds_tf uses the tf_keras (Keras 2) API explicitly: tensorflow-model-optimization
refuses Keras 3 models, and tf_keras keeps TFLiteConverter and tfmot working on
the same model objects. A later move to Keras 3 touches only this module.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

# Quieten TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines);
# setdefault keeps a user's explicit choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Lines the TensorFlow wheel writes to fd 2 while it is imported, before absl logging is set up, so
# TF_CPP_MIN_LOG_LEVEL cannot hide them (toolchain-notes.md). Anything else is passed through.
_STARTUP_NOISE = re.compile(
    r"cudart_stub\.cc|cuda_executor\.cc|failed call to cuInit|absl::InitializeLog|oneDNN custom operations"
    r"|port\.cc:\d+\] oneDNN|Could not find cuda drivers|computation placer|cuda_dnn|cuda_fft|cuda_blas"
)


@contextlib.contextmanager
def _quiet_startup() -> Iterator[None]:
    """Filter TensorFlow's import-time C++ notes out of stderr (only when TF_CPP_MIN_LOG_LEVEL >= 1)."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("", "0"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as cap:
        os.dup2(cap.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            cap.seek(0)
            kept = [
                ln
                for ln in cap.read().decode(errors="replace").splitlines(True)
                if not _STARTUP_NOISE.search(ln)
            ]
            if kept:
                sys.stderr.write("".join(kept))


with _quiet_startup():
    import tensorflow as tf
    import tf_keras as keras

if os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") not in ("", "0"):
    # The same wish for TensorFlow's Python logger: no INFO lines (each TFLite conversion logs
    # "Assets written to: /tmp/..." twice); warnings and errors still show.
    tf.get_logger().setLevel("WARNING")

# Layers draw their random numbers (dropout masks) from tf.random.Generator objects, whose state is a
# variable a training checkpoint can hold: a resumed run then draws the masks an uninterrupted one
# would (train.fit checkpoints them). Keras' default, stateful ops kept inside traced functions, has no
# state to save. Must be set before any layer is built.
keras.backend.experimental.enable_tf_random_generator()

_REQUIRED_MAJOR = 2
if int(keras.__version__.split(".")[0]) != _REQUIRED_MAJOR:  # pragma: no cover - install guard
    raise ImportError(
        f"reds_tf needs tf_keras 2.x, found {keras.__version__}. Fix: pip install 'tf-keras==2.21.*'."
    )

__all__ = ["keras", "tf"]
