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
RESIDUAL_LEVELS = [4, 8, 12, 16]  # width of the second residual block
RESIDUAL_INPUT = (6, 6, 4)
DSCNN_INPUT = (20, 10, 1)
FC2_INPUT = 24


def dscnn(
    widths: tuple[int, int], n_cls: int = 6, softmax: bool = False, leaky: float | None = None
) -> keras.Model:
    """Conv(10x4, s2)+BN+ReLU -> DW3x3+BN+ReLU -> PW+BN+ReLU -> GAP -> Dense (logits, or a softmax head);
    ``leaky=alpha`` puts LeakyReLU(alpha) after the first two BNs (TFLite's LEAKY_RELU op)."""
    c1, c2 = widths
    act = keras.layers.ReLU if leaky is None else (lambda: keras.layers.LeakyReLU(alpha=leaky))
    x = inp = keras.Input(DSCNN_INPUT)
    x = keras.layers.Conv2D(c1, (10, 4), strides=2, padding="same", use_bias=False)(x)
    x = act()(keras.layers.BatchNormalization()(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = act()(keras.layers.BatchNormalization()(x))
    x = keras.layers.Conv2D(c2, 1, use_bias=False)(x)
    x = keras.layers.ReLU(6.0)(keras.layers.BatchNormalization()(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(n_cls, activation="softmax" if softmax else None)(x))


def dscnn_softmax(widths: tuple[int, int]) -> keras.Model:
    """``dscnn`` ending in Dense(..., activation='softmax'), as users' classifiers do."""
    return dscnn(widths, softmax=True)


def dscnn_leaky(widths: tuple[int, int]) -> keras.Model:
    """``dscnn`` with LeakyReLU(0.3) (the paper's vision DS-CNN slope) after the conv and the depthwise."""
    return dscnn(widths, leaky=0.3)


def residual(width: int, n_cls: int = 5) -> keras.Model:
    """Two residual blocks: x + Conv3x3(x) (the skip is the model input), then b + BN(Conv3x3(b)) with
    b = Conv1x1(width, ReLU); each Add followed by ReLU (fused into TFLite's ADD); GAP -> Dense."""
    x = inp = keras.Input(RESIDUAL_INPUT)
    a = keras.layers.Conv2D(RESIDUAL_INPUT[-1], 3, padding="same")(x)
    s = keras.layers.ReLU()(keras.layers.Add()([x, a]))
    b = keras.layers.Conv2D(width, 1, activation="relu")(s)
    d = keras.layers.BatchNormalization()(keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(b))
    e = keras.layers.ReLU()(keras.layers.Add()([b, d]))
    x = keras.layers.GlobalAveragePooling2D()(e)
    return keras.Model(inp, keras.layers.Dense(n_cls)(x))


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
    # the paper's vision DS-CNN (LeakyReLU 0.3, AvgPool 13x5 + Flatten): groups conv1, pw1..pw4
    "ds_cnn_fmnist": [[16, 24, 16, 32, 24], [32, 40, 32, 48, 40], [48, 56, 48, 56, 56], [64, 64, 64, 64, 64]],
    # groups conv1 (+ stack 1's Add), s1_conv1, s2_conv1, s2_conv2 (+ shortcut, Add), s3_conv1, s3_conv2
    "resnet8": [
        [4, 6, 8, 12, 16, 20],
        [8, 8, 16, 20, 32, 36],
        [12, 12, 24, 28, 48, 52],
        [16, 16, 32, 32, 64, 64],
    ],
}
ZOO_OPTIONS = {  # resnet8: a small input, quick to convert and run; ds_cnn_fmnist: the paper's options
    "resnet8": {"input_shape": (16, 16, 3)},
    "ds_cnn_fmnist": {"leaky_relu": 0.3, "pool": [13, 5]},
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


def write_zoo_converted_levels(name: str, out_dir: Path, seed: int = 0) -> list[Path]:
    """``zoo.build(name)`` with random weights, nested with ``ZOO_PLANS[name]`` via reds_tf.nested, through
    the production converter (``reds_tf.convert.convert``: weights quantised once, shared calibration)."""
    from reds_tf import nested, topology, zoo
    from reds_tf.convert import convert as reds_convert
    from reds_tf.plan import WidthPlan

    keras.utils.set_random_seed(seed)
    full = zoo.build(name, **ZOO_OPTIONS.get(name, {}))
    _randomise(full, seed)
    graph = topology.graph_of(full)
    model = nested.make_nested(full, WidthPlan(graph.group_names, graph.full_widths, ZOO_PLANS[name]))
    models = [nested.extract_level(model, k) for k in range(len(ZOO_PLANS[name]))]
    x = np.random.default_rng(seed + 1).normal(0, 1, (64, *full.input_shape[1:])).astype(np.float32)
    reds_convert(models, out_dir, calibration=x, verify=False)
    return [Path(out_dir) / f"submodel_{k}.tflite" for k in range(len(models))]


def _family(kind: str) -> tuple[Callable[..., keras.Model], list, tuple[int, ...]]:
    """(builder, level widths, input shape) of a test family: "dscnn", "dscnn_softmax", "dscnn_leaky",
    "fc2" or "residual"."""
    return {
        "dscnn": (dscnn, DSCNN_LEVELS, DSCNN_INPUT),
        "dscnn_softmax": (dscnn_softmax, DSCNN_LEVELS, DSCNN_INPUT),
        "dscnn_leaky": (dscnn_leaky, DSCNN_LEVELS, DSCNN_INPUT),
        "fc2": (fc2, FC2_LEVELS, (FC2_INPUT,)),
        "residual": (residual, RESIDUAL_LEVELS, RESIDUAL_INPUT),
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


def upgrade_v2_blob(blob: bytes) -> bytes:
    """A version-2 device blob as version 3: each op record becomes a template (channel counts moved to
    its level's op list entry), the ops run as a chain with ping-pong scratch slots as version 2 did.

    Keeps crafted fuzz regressions on the parser path they were recorded for: every field of the old
    records is carried over as it was (a crafted value included). A blob that is not a structurally
    readable version-2 blob is returned unchanged.
    """
    word = lambda off: int.from_bytes(blob[off : off + 4], "little")  # noqa: E731
    if len(blob) < 64 or word(0) != 0x53444552 or word(4) != 2:
        return blob
    hdr = [word(4 * i) for i in range(16)]
    n_levels, levels_off = hdr[3], hdr[4]
    arena_off, arena_bytes, params_off, params_bytes = hdr[5], hdr[6], hdr[7], hdr[8]
    if not (1 <= n_levels <= 16 and levels_off + 64 * n_levels <= len(blob)
            and arena_off + arena_bytes <= len(blob) and params_off + params_bytes <= len(blob)):  # fmt: skip
        return blob
    levels = []
    for k in range(n_levels):
        lv = [word(levels_off + 64 * k + 4 * i) for i in range(16)]
        if not 1 <= lv[1] <= 256 or lv[0] + 128 * lv[1] > len(blob):
            return blob
        ops = [[word(lv[0] + 128 * j + 4 * i) for i in range(32)] for j in range(lv[1])]
        levels.append((lv, ops))
    align = lambda n: -(-n // 16) * 16  # noqa: E731
    templates_off = 64 + 64 * n_levels
    n_templates = sum(len(ops) for _, ops in levels)
    off = templates_off + 128 * n_templates
    lists = []
    for _, ops in levels:
        n = len(ops)
        n_slots = min(n - 1, 2)
        grown = [0, 0]
        for j, r in enumerate(ops[:-1]):
            grown[j % 2] = max(grown[j % 2], (r[4] * r[5] * r[6]) & 0xFFFFFFFF)
        lists.append((off, n_slots, [0, align(grown[0])][:n_slots], sum(align(g) for g in grown[:n_slots])))
        off += 4 * (4 * n + n_slots)
    new_arena = align(off)
    new_params = align(new_arena + arena_bytes)
    out = bytearray(new_params + params_bytes)
    put = lambda o, vals: out.__setitem__(
        slice(o, o + 4 * len(vals)),
        b"".join(  # noqa: E731
            (v & 0xFFFFFFFF).to_bytes(4, "little") for v in vals
        ),
    )
    out[new_arena : new_arena + arena_bytes] = blob[arena_off : arena_off + arena_bytes]
    out[new_params:] = blob[params_off : params_off + params_bytes]
    t = 0
    for k, ((lv, ops), (list_off, n_slots, slots, scratch)) in enumerate(zip(levels, lists, strict=True)):
        put(levels_off + 64 * k, [list_off, *lv[1:4], scratch, *lv[5:14], n_slots, 0])
        for j, r in enumerate(ops):
            put(templates_off + 128 * t, [0 if i in (3, 6) else v for i, v in enumerate(r)])
            b_in = 0 if j == 0 else 2 + (j - 1) % 2
            b_out = 1 if j == len(ops) - 1 else 2 + j % 2
            put(list_off + 16 * j, [t, r[3], r[6], b_in | (0xFF << 8) | (b_out << 16)])
            t += 1
        put(list_off + 16 * len(ops), slots)
    max_scratch = max(s for *_, s in lists)
    put(0, [hdr[0], 3, len(out), n_levels, 64, new_arena, arena_bytes, new_params, params_bytes, max_scratch,
            hdr[10], hdr[11], templates_off, n_templates, 0, 0])  # fmt: skip
    return bytes(out)


if __name__ == "__main__":
    # Regenerates firmware/tests/golden/fc2_blob.{c,h}, firmware/fuzz/seeds/*.blob (fc2, dscnn, residual,
    # dscnn_leaky),
    # the sketch's demo
    # blob firmware/nano33_reds/model_blob.{c,h} (the dscnn blob), and upgrades the crafted fuzz
    # regressions (firmware/fuzz/regressions/*.blob) to the current blob version.
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
    for kind in ("residual", "dscnn_leaky"):  # ADD with skip tensors, LEAKY_RELU: more seeds for the fuzzer
        with tempfile.TemporaryDirectory() as tmp:
            write_converted_levels(kind, Path(tmp))
            (root / "fuzz" / "seeds" / f"{kind}.blob").write_bytes((Path(tmp) / "model.blob").read_bytes())
    for p in sorted((root / "fuzz" / "regressions").glob("*.blob")):
        p.write_bytes(upgrade_v2_blob(p.read_bytes()))
