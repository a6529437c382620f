"""Shared fixtures: small trained zoo models, sliced into nested levels, and their conversion.

Training and conversion are session-scoped: every test in tests/convert shares them.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from reds_tf import zoo
from reds_tf._keras import keras

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _idx(name: str) -> np.ndarray:
    with gzip.open(FMNIST / name, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="session")
def fmnist() -> dict[str, np.ndarray]:
    """600 training and 1000 test Fashion-MNIST images (real data, from the Debian package)."""
    if not FMNIST.is_dir():
        pytest.skip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")

    def images(name: str, n: int) -> np.ndarray:
        return _idx(name)[:n].astype(np.float32)[..., None] / 255.0

    return {
        "x_train": images("train-images-idx3-ubyte.gz", 600),
        "y_train": _idx("train-labels-idx1-ubyte.gz")[:600].astype(np.int64),
        "x_test": images("t10k-images-idx3-ubyte.gz", 1000),
        "y_test": _idx("t10k-labels-idx1-ubyte.gz")[:1000].astype(np.int64),
    }


def slice_model(full: keras.Model, widths: dict[str, int]) -> keras.Model:
    """A plain level model: the first ``widths[layer]`` units of the named layers, weights copied.

    This is what nested.extract_level does for a REDS model; tests use it so that the
    converter is checked against an independent slicer.
    """
    cfg = full.get_config()
    for layer in cfg["layers"]:
        name = layer["config"]["name"]
        if name in widths:
            key = "filters" if "filters" in layer["config"] else "units"
            layer["config"][key] = widths[name]
    level = keras.Model.from_config(cfg)
    for lf, ll in zip(full.layers, level.layers, strict=True):
        ll.set_weights(
            [
                w[tuple(slice(0, n) for n in v.shape)]
                for w, v in zip(lf.get_weights(), ll.weights, strict=True)
            ]
        )
    return level


def _train(model: keras.Model, data: dict, epochs: int) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(data["x_train"], data["y_train"], batch_size=32, epochs=epochs, verbose=0)
    # A few hundred steps leave BatchNorm's moving statistics far from the data; set them to
    # the training set's own statistics (one full-batch pass, momentum 0, dropout off).
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    drops = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    saved = [(b.momentum, d.rate) for b, d in zip(bns, drops + [None] * len(bns), strict=False) if d]
    for b in bns:
        b.momentum = 0.0
    for d in drops:
        d.rate = 0.0
    model(data["x_train"], training=True)
    for b in bns:
        b.momentum = 0.99
    for d, (_, rate) in zip(drops, saved, strict=False):
        d.rate = rate
    return model


@pytest.fixture(scope="session")
def fc2_levels(fmnist) -> list[keras.Model]:
    """fc2 (hidden 64) trained briefly; 3 nested levels of 16 / 32 / 64 hidden units."""
    keras.utils.set_random_seed(0)
    full = _train(zoo.build("fc2", hidden=64), fmnist, epochs=4)
    return [slice_model(full, {"fc1": w}) for w in (16, 32)] + [full]


@pytest.fixture(scope="session")
def ds_cnn_levels(fmnist) -> list[keras.Model]:
    """DS-CNN-S (64 filters) on 28x28 Fashion-MNIST trained briefly; 3 nested levels with uneven widths."""
    keras.utils.set_random_seed(0)
    full = zoo.build("ds_cnn_s", input_shape=(28, 28, 1), num_classes=10)
    full = _train(full, fmnist, epochs=3)
    groups = ["conv1", "pw1", "pw2", "pw3", "pw4"]
    plan = [(16, 24, 16, 32, 16), (32, 40, 48, 48, 32)]
    return [slice_model(full, dict(zip(groups, row, strict=True))) for row in plan] + [full]
