"""Shared fixtures for the core tests: seeded RNG, non-trivial weights, random nested plans."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Zoo architectures cheap enough for forward passes in the default tests.
CHEAP_ARCHS = (
    "dnn_s",
    "dnn_m",
    "dnn_l",
    "cnn_s",
    "cnn_l",
    "ds_cnn_s",
    "ds_cnn_m",
    "ds_cnn_l",
    "ds_cnn_fmnist",
    "ds_cnn_cifar10",
    "mobilenet_v1",
    "fc2",
    "resnet8",
)


def randomize(model, seed: int = 0):
    """Give every layer non-trivial weights: random biases and BatchNorm gamma/beta/statistics.

    Fresh Keras BN layers are identities (gamma 1, beta 0, mean 0, var 1), which would let
    a wrong permutation of BN parameters go unnoticed; random values make such bugs visible.
    """
    from reds_tf._keras import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            new = []
            for v in layer.weights:
                name = v.name.split("/")[-1]
                shape = tuple(v.shape)
                if name.startswith("gamma"):
                    new.append(rng.uniform(0.5, 1.5, shape))
                elif name.startswith("beta"):
                    new.append(rng.normal(0, 0.3, shape))
                elif name.startswith("moving_mean"):
                    new.append(rng.normal(0, 0.3, shape))
                else:
                    new.append(rng.uniform(0.5, 2.0, shape))
            layer.set_weights(new)
        elif layer.weights:
            ws = layer.get_weights()
            ws = [w if i == 0 else rng.normal(0, 0.1, w.shape) for i, w in enumerate(ws)]
            layer.set_weights(ws)
    return model


def random_plan(graph, levels: int = 3, seed: int = 0):
    """A random nested WidthPlan over the graph's groups (last level = full width)."""
    from reds_tf.plan import WidthPlan

    rng = np.random.default_rng(seed)
    full = np.array(graph.full_widths)
    rows = [full.copy()]
    for _ in range(levels - 1):
        rows.insert(0, np.array([int(rng.integers(1, f + 1)) for f in rows[0]]))
    return WidthPlan(graph.group_names, graph.full_widths, tuple(tuple(int(w) for w in r) for r in rows))


def random_input(model, batch: int = 2, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch,) + tuple(model.input_shape[1:])).astype("float32")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
