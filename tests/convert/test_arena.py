"""Arena measurement survives models on which tflite-micro segfaults below the size they need."""

from __future__ import annotations

import numpy as np

from reds_tf._keras import keras
from reds_tf.convert.tflite import convert_int8
from reds_tf.convert.verify import measure_arenas, run_tflm


def _dense_autoencoder() -> keras.Model:
    """640-32-32-32-32-8-32-32-32-32-640 with BatchNorm: TFLM crashes on some arenas just below its need."""
    x = inp = keras.Input((640,))
    for units in (32, 32, 32, 32, 8, 32, 32, 32, 32):
        x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Dense(units)(x)))
    return keras.Model(inp, keras.layers.Dense(640)(x))


def test_measure_arena_survives_a_model_that_crashes_tflm_on_small_arenas() -> None:
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(0, 1, (32, 640)).astype(np.float32)
    model = convert_int8(_dense_autoencoder(), x, 32)
    # Probing in this process would die with SIGSEGV at ~12,986 B (it needs ~13,000 B).
    n, again = measure_arenas([model, model])  # several models share one probe child
    assert n == again
    assert 8 * 1024 < n < 64 * 1024
    xq = np.zeros((2, 640), np.int8)
    assert run_tflm(model, xq, arena_size=n).shape == (2, 640)  # the minimum found really runs
