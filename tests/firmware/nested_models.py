"""Small nested tf_keras models converted to per-level int8 .tflite files, for the firmware tests.

Each level is the full model cut to a width prefix. The full model's weights are arranged so that every
output channel's largest |weight| sits at input index 0 (and the global largest at element 0): the
per-channel (and per-tensor) int8 scales are then identical in every level, so the TFLite converter's
int8 weights of a level are exactly the widest level's prefix sub-block, as the REDS converter produces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from reds_tf._keras import keras, tf

DSCNN_LEVELS = [(4, 4), (8, 8), (12, 16), (16, 16)]  # (conv/dw width, pointwise width)
FC2_LEVELS = [8, 16, 24, 32]  # hidden width
DSCNN_INPUT = (20, 10, 1)
FC2_INPUT = 24


def dscnn(widths: tuple[int, int], n_cls: int = 6, softmax: bool = False) -> keras.Model:
    """Conv(10x4, s2)+BN+ReLU -> DW3x3+BN+ReLU -> PW+BN+ReLU -> GAP -> Dense (logits, or a softmax head)."""
    c1, c2 = widths
    x = inp = keras.Input(DSCNN_INPUT)
    x = keras.layers.Conv2D(c1, (10, 4), strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.Conv2D(c2, 1, use_bias=False)(x)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(n_cls, activation="softmax" if softmax else None)(x))


def dscnn_softmax(widths: tuple[int, int]) -> keras.Model:
    """``dscnn`` ending in Dense(..., activation='softmax'), as users' classifiers do."""
    return dscnn(widths, softmax=True)


def fc2(hidden: int, n_cls: int = 10) -> keras.Model:
    """Dense(hidden, ReLU) -> Dense(n_cls)."""
    inp = keras.Input((FC2_INPUT,))
    x = keras.layers.Dense(hidden, activation="relu")(inp)
    return keras.Model(inp, keras.layers.Dense(n_cls)(x))


def _arrange(w: np.ndarray) -> np.ndarray:
    """Put each output channel's max |w| at input index 0 (Keras kernels: [..., in, out])."""
    w = w.copy()
    flat = w.reshape(-1, w.shape[-1])  # view: rows = (kh, kw, in), cols = out
    peak = np.abs(flat).max(axis=0) * 1.5 + 0.05
    flat[0, :] = peak * np.sign(flat[0, :] + 1e-9)
    flat[0, 0] = np.abs(flat).max() * 1.2  # the global max too (per-tensor quantisation)
    return w


def _randomise(model: keras.Model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.2, n),
                    rng.normal(0, 0.3, n),
                    rng.uniform(0.5, 2.0, n),
                ]
            )
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            k = rng.normal(0, 0.5, layer.depthwise_kernel.shape).astype(np.float32)
            k[0, 0] = (np.abs(k).max(axis=(0, 1)) * 1.5 + 0.05)[None] if k.ndim == 4 else k[0, 0]
            layer.set_weights([k])
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            ws = layer.get_weights()
            ws[0] = _arrange(rng.normal(0, 0.5, ws[0].shape).astype(np.float32))
            if len(ws) > 1:
                ws[1] = rng.normal(0, 0.2, ws[1].shape).astype(np.float32)
            layer.set_weights(ws)


def _slice_into(full: keras.Model, small: keras.Model) -> None:
    """Copy the width prefix of every weight of ``full`` into ``small`` (same topology)."""
    for fl, sl in zip(full.layers, small.layers, strict=True):
        for fw, sw in zip(fl.weights, sl.weights, strict=True):
            sw.assign(fw.numpy()[tuple(slice(0, d) for d in sw.shape)])


def convert(model: keras.Model, rep: np.ndarray) -> bytes:
    """Full-integer int8 TFLite (int8 input and output, per-channel weights)."""
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rep[i : i + 1]] for i in range(len(rep)))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


ZOO_PLANS = {  # level 0 smallest; every group of a level may have its own width
    "ds_cnn_s": [[16, 24, 16, 32, 24], [32, 40, 32, 48, 40], [48, 56, 48, 56, 56], [64, 64, 64, 64, 64]],
    "fc2": [[32], [64], [96], [128]],
}


def write_zoo_levels(name: str, out_dir: Path, seed: int = 0) -> list[Path]:
    """``zoo.build(name)`` nested with ``ZOO_PLANS[name]`` via reds_tf.nested, one int8 .tflite per level."""
    from reds_tf import nested, topology, zoo
    from reds_tf.plan import WidthPlan

    keras.utils.set_random_seed(seed)
    full = zoo.build(name)
    _randomise(full, seed)
    graph = topology.graph_of(full)
    model = nested.make_nested(full, WidthPlan(graph.group_names, graph.full_widths, ZOO_PLANS[name]))
    rep = np.random.default_rng(seed + 1).normal(0, 1, (24, *full.input_shape[1:])).astype(np.float32)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(len(ZOO_PLANS[name])):
        p = Path(out_dir) / f"submodel_{k}.tflite"
        p.write_bytes(convert(nested.extract_level(model, k), rep))
        paths.append(p)
    return paths


def _family(kind: str) -> tuple[Callable[..., keras.Model], list, tuple[int, ...]]:
    """(builder, level widths, input shape) of a test family: "dscnn", "dscnn_softmax" or "fc2"."""
    return {
        "dscnn": (dscnn, DSCNN_LEVELS, DSCNN_INPUT),
        "dscnn_softmax": (dscnn_softmax, DSCNN_LEVELS, DSCNN_INPUT),
        "fc2": (fc2, FC2_LEVELS, (FC2_INPUT,)),
    }[kind]


def _sliced_levels(
    full: keras.Model, build: Callable[..., keras.Model], widths: list
) -> Iterator[keras.Model]:
    """One model per width, built by ``build`` and holding the prefix slice of ``full``'s weights.

    A generator: each level is built only when the caller asks for it (after converting the last).
    """
    for w in widths:
        m = build(w)
        _slice_into(full, m)
        yield m


def write_converted_levels(kind: str, out_dir: Path, seed: int = 0) -> list[Path]:
    """Plain random weights (no arrangement) through ``reds_tf.convert.convert``: the production path,
    which quantises once from the full level and writes the blob itself."""
    from reds_tf.convert import convert as reds_convert

    build, levels, shape = _family(kind)
    keras.utils.set_random_seed(seed)
    full = build(levels[-1])
    models = list(_sliced_levels(full, build, levels))
    x = np.random.default_rng(seed + 1).normal(0, 1, (64, *shape)).astype(np.float32)
    reds_convert(models, out_dir, calibration=x, verify=False)
    return [Path(out_dir) / f"submodel_{k}.tflite" for k in range(len(levels))]


def write_levels(kind: str, out_dir: Path, seed: int = 0, keep: tuple[int, ...] | None = None) -> list[Path]:
    """Build, nest and convert ``kind`` ("dscnn" or "fc2"); return the level paths, level 0 first.

    ``keep`` selects a subset of the levels (the widest must be among them) to save conversion time.
    """
    build, levels, shape = _family(kind)
    keras.utils.set_random_seed(seed)
    full = build(levels[-1])
    _randomise(full, seed)
    rep = np.random.default_rng(seed + 1).normal(0, 1, (24, *shape)).astype(np.float32)
    paths = []
    for k, m in enumerate(_sliced_levels(full, build, levels if keep is None else [levels[i] for i in keep])):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        p = Path(out_dir) / f"submodel_{k}.tflite"
        p.write_bytes(convert(m, rep))
        paths.append(p)
    return paths


def upgrade_v1_blob(blob: bytes) -> bytes:
    """A version-1 device blob as version 2: MEAN's requantise flag (op word 28) cleared, version 2.

    Keeps crafted fuzz regressions on the parser path they were recorded for. Offsets are checked,
    since a crafted blob may point anywhere; records out of bounds are left as they are.
    """
    b = bytearray(blob)
    word = lambda off: int.from_bytes(b[off : off + 4], "little")  # noqa: E731
    if len(b) < 64 or word(4) != 1:
        return bytes(b)
    b[4:8] = (2).to_bytes(4, "little")
    n_levels, levels_off = word(12), word(16)
    for k in range(min(n_levels, 16)):
        lv = levels_off + 64 * k
        if lv + 8 > len(b):
            break
        ops_off, n_ops = word(lv), word(lv + 4)
        for j in range(min(n_ops, 256)):
            w28 = ops_off + 128 * j + 4 * 28
            if w28 + 4 <= len(b):
                b[w28 : w28 + 4] = bytes(4)
    return bytes(b)


if __name__ == "__main__":
    # Regenerates firmware/tests/golden/fc2_blob.{c,h}, firmware/fuzz/seeds/*.blob, the sketch's demo
    # blob firmware/nano33_reds/model_blob.{c,h} (the dscnn blob), and the version word of the crafted
    # fuzz regressions (firmware/fuzz/regressions/*.blob).
    import sys
    import tempfile

    from reds_tf.convert import c_arena

    root = Path(__file__).resolve().parents[2] / "firmware"
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("fc2", "dscnn"):
            paths = write_levels(kind, Path(tmp) / kind)
            summary = c_arena.write(paths, Path(tmp) / kind, kind)
            blob = (Path(tmp) / kind / f"{kind}.blob").read_bytes()
            (root / "fuzz" / "seeds").mkdir(parents=True, exist_ok=True)
            (root / "fuzz" / "seeds" / f"{kind}.blob").write_bytes(blob)
            copies = {"fc2": ("fc2", root / "tests" / "golden"), "dscnn": ("model", root / "nano33_reds")}
            name, dest = copies[kind]
            if name != kind:
                c_arena.write(paths, Path(tmp) / kind, name)
            for ext in ("_blob.c", "_blob.h"):
                (dest / f"{name}{ext}").write_text((Path(tmp) / kind / f"{name}{ext}").read_text())
            print(kind, summary["blob_bytes"], "bytes", file=sys.stderr)
    for p in sorted((root / "fuzz" / "regressions").glob("*.blob")):
        p.write_bytes(upgrade_v1_blob(p.read_bytes()))
