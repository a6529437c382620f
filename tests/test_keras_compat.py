"""reds_tf._keras: the one TensorFlow/Keras import, without start-up chatter on stderr."""

from __future__ import annotations

import os
import subprocess
import sys


def _import_stderr(level: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    code = "import reds_tf._keras as k, sys; k.tf.constant(1) + 1; print('x', file=sys.stderr)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stderr


def test_import_is_silent_at_level_3_and_keeps_later_stderr():
    # The wheel writes absl pre-init notes (CUDA probing, oneDNN) to fd 2 that the level cannot hide.
    assert _import_stderr("3") == "x\n"


def test_level_0_keeps_tensorflows_own_output():
    assert _import_stderr("0").endswith("x\n")
