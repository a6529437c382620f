"""Models users actually have, with random weights, through ``convert`` and the device runtime.

A KWS DS-CNN with ``Activation`` layers, Dropout, AveragePooling2D and a softmax Dense head; a dense
autoencoder 640-128-128-128-128-8-128-128-128-128-640 with BatchNorm (on which tflite-micro segfaults
below its arena need); MobileNetV1-0.25 96x96 with a softmax head. Each is converted as two nested levels
(half and full width): no crash, no VerificationError, a firmware blob the host runtime accepts, and
every level bit-exact host runtime vs TFLM. Slow: about three minutes on 2 shared cores.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from reds_tf._keras import keras
from reds_tf.convert import c_arena, convert
from reds_tf.convert.verify import run_tflm
from tests.firmware.nested_models import _randomise, _slice_into
from tests.firmware.test_model import _feed, _session, host_app  # noqa: F401 - fixture

L = keras.layers
pytestmark = pytest.mark.slow


def kws_ds_cnn(w: int) -> keras.Model:
    x = inp = keras.Input((49, 10, 1))
    x = L.Conv2D(w, (10, 4), strides=2, padding="same")(x)
    x = L.Dropout(0.2)(L.Activation("relu")(L.BatchNormalization()(x)))
    for _ in range(2):
        x = L.Activation("relu")(
            L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(x))
        )
        x = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(w, 1)(x)))
    x = L.Flatten()(L.AveragePooling2D((25, 5))(L.Dropout(0.4)(x)))
    return keras.Model(inp, L.Dense(12, activation="softmax")(x))


def dense_autoencoder(w: int) -> keras.Model:
    x = inp = keras.Input((640,))
    for units in (w, w, w, w, 8 * w // 128, w, w, w, w):
        x = L.ReLU()(L.BatchNormalization()(L.Dense(units)(x)))
    return keras.Model(inp, L.Dense(640)(x))


def mobilenet_v1_025(w: int) -> keras.Model:
    from reds_tf import zoo

    full = zoo.build("mobilenet_v1", alpha=0.25, num_classes=2, softmax=True)
    if w == 2:
        return full
    cfg = full.get_config()  # half width: every conv / dense except the classifier
    for layer in cfg["layers"]:
        c = layer["config"]
        if "filters" in c:
            c["filters"] = max(1, c["filters"] // 2)
    return keras.Model.from_config(cfg)


FAMILIES: dict[str, tuple[Callable[[int], keras.Model], tuple[int, int]]] = {
    "kws_ds_cnn": (kws_ds_cnn, (32, 64)),
    "dense_autoencoder": (dense_autoencoder, (64, 128)),
    "mobilenet_v1_0.25": (mobilenet_v1_025, (1, 2)),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_user_model_converts_and_runs_bit_exact(family: str, host_app: Path, tmp_path: Path) -> None:  # noqa: F811
    build, widths = FAMILIES[family]
    keras.utils.set_random_seed(0)
    full = build(widths[-1])
    _randomise(full, 0)
    levels = []
    for w in widths[:-1]:
        m = build(w)
        _slice_into(full, m)
        levels.append(m)
    levels.append(full)
    shape = full.input_shape[1:]
    x = np.random.default_rng(1).normal(0, 1, (32, *shape)).astype(np.float32)
    rep = convert(levels, tmp_path, calibration=x, calibration_samples=32, verify_samples=16)
    assert "error" not in rep.firmware, rep.firmware
    assert all(r.bundle_bit_exact for r in rep.levels)
    xs = np.random.default_rng(2).integers(-128, 128, (6, int(np.prod(shape))), dtype=np.int8)
    script = "".join(
        f"level {k}\n" + "".join(_feed(v) + "run\nout\n" for v in xs) for k in range(len(levels))
    )
    lines = _session(host_app, tmp_path / "model.blob", script)
    assert not [ln for ln in lines if ln.startswith("err")], lines[:5]
    outs = [ln for ln in lines if ln.startswith("ok out")]
    for k in range(len(levels)):
        got = np.array([[int(v) for v in ln.split()[2:]] for ln in outs[k * len(xs) : (k + 1) * len(xs)]])
        want = run_tflm((tmp_path / f"submodel_{k}.tflite").read_bytes(), xs.reshape(len(xs), *shape))
        np.testing.assert_array_equal(got, want, err_msg=f"{family} level {k}")
    ops = c_arena.read_blob((tmp_path / "model.blob").read_bytes())["levels"][-1]["ops"]
    if family != "dense_autoencoder":
        assert ops[-1]["type"] == 7  # SOFTMAX runs on the device, not cut off
