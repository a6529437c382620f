"""DRESS conversion: row-sparse levels in the firmware, bit-exact with their zero-expanded .tflite
under TFLM; the blob's storage, nesting, validation and the converter's argument checks."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reds_tf._keras import keras
from reds_tf.convert import c_arena, c_prepare
from reds_tf.convert.c_prepare import SPARSE_FIELDS
from reds_tf.convert.dress import convert_dress
from reds_tf.convert.flatbuffer import op_name, read_tflite, tensor_array
from reds_tf.errors import RunExistsError
from tests.firmware.test_model import _feed, _tflm_outputs, host_app  # noqa: F401 - fixture

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
FRACTIONS = (0.2, 0.45, 0.7, 0.9)  # per level; the top level is sparse too (n_max < fan_in)
FRACTIONS_FULL_TOP = (0.2, 0.45, 1.0)  # the top level keeps every weight: dense_top by default


def _dscnn() -> keras.Model:
    """conv 3x3 s2 (SAME, padded) -> depthwise -> pointwise -> GAP -> dense, BN after each conv."""
    inp = keras.Input((11, 9, 1))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(12, 1, use_bias=False, name="pw")(x)
    x = keras.layers.BatchNormalization(name="bn3")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(5, name="fc")(x)
    return keras.Model(inp, out, name="dscnn_dress")


def _fc2() -> keras.Model:
    """Flatten 300 -> Dense 16 (fan_in 300: uint16 indices) -> ReLU -> Dense 4."""
    inp = keras.Input((20, 15))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(16, activation="relu", name="fc1")(x)
    out = keras.layers.Dense(4, name="fc2")(x)
    return keras.Model(inp, out, name="fc2_dress")


def _randomise_bn(model: keras.Model, rng: np.random.Generator) -> None:
    """Non-trivial BN statistics, so folding changes the kernels (and may flip a row's sign)."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(-1.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.3, 2.0, n)])  # fmt: skip


def _orders(model: keras.Model, names: list[str]) -> dict[str, np.ndarray]:
    """Row r: flat (kh, kw, c_in) / input indices by descending |w| (the magnitude importance)."""
    out = {}
    for n in names:
        k = model.get_layer(n).kernel.numpy()
        rows = np.abs(k.reshape(-1, k.shape[-1]).T)
        out[n] = np.argsort(-rows, axis=1, kind="stable").astype(np.int32)
    return out


@pytest.fixture(scope="module", params=["dscnn", "fc2", "dscnn_dense_top"])
def dress(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(3)
    kind = request.param.removesuffix("_dense_top")
    model, names = {"dscnn": (_dscnn(), ["conv1", "pw", "fc"]), "fc2": (_fc2(), ["fc1", "fc2"])}[kind]
    _randomise_bn(model, rng)
    x = rng.normal(0, 1, (64, *model.input_shape[1:])).astype(np.float32)
    fans = [int(np.prod(model.get_layer(n).kernel.shape[:-1])) for n in names]
    fractions = FRACTIONS_FULL_TOP if request.param.endswith("_dense_top") else FRACTIONS
    counts = [[max(1, int(np.ceil(f * fan))) for fan in fans] for f in fractions]
    out = tmp_path_factory.mktemp(request.param)
    report = convert_dress(model, _orders(model, names), counts, names, x, out, overwrite=True)
    return {"kind": kind, "model": model, "names": names, "counts": counts, "out": out, "report": report,
            "x": x, "orders": _orders(model, names),
            "dense_top": request.param.endswith("_dense_top")}  # fmt: skip


def _host(app: Path, blob: Path, script: str) -> tuple[int, list[str], str]:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    r = subprocess.run(
        [str(app), str(blob)], input=script, capture_output=True, text=True, env=env, timeout=300
    )
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr[-2000:]
    return r.returncode, r.stdout.splitlines(), r.stderr


def _sparse_ops(info: dict, k: int) -> list[dict]:
    return [op for op in info["levels"][k]["ops"] if op["type"] in c_arena.SPARSE_TYPES]


def _layer_weights(path: Path, names_count: int) -> list[np.ndarray]:
    """int8 weights [R, fan_in] of the CONV_2D / FULLY_CONNECTED ops of a level file, in op order."""
    m = read_tflite(path.read_bytes())
    g = m.subgraphs[0]
    ws = [
        tensor_array(m, op.inputs[1])
        for op in g.operators
        if op_name(m, op) in ("CONV_2D", "FULLY_CONNECTED")
    ]
    assert len(ws) == names_count
    return [w.reshape(w.shape[0], -1) for w in ws]


def _expand(blob: bytes, info: dict, k: int) -> list[np.ndarray]:
    """Level k's int8 weights of its CONV_2D / FULLY_CONNECTED ops (every one a DRESS layer in these
    models), rebuilt from the blob alone: a sparse op's values, indices and count, a dense op's weights."""
    arena_off = info["header"]["arena_off"]
    out = []
    for op in info["levels"][k]["ops"]:
        rows, fan = op["out_c"], op["k_h"] * op["k_w"] * op["in_c"]
        if op["type"] in (c_prepare.OP_CONV_2D, c_prepare.OP_FULLY_CONNECTED):
            assert op["w_stride_o"] == fan  # the top level: full strides
            out.append(np.frombuffer(blob, np.int8, rows * fan, arena_off + op["w_off"]).reshape(rows, fan))
            continue
        if op["type"] not in c_arena.SPARSE_TYPES:
            continue
        n_max, ib = op["w_stride_o"], op[SPARSE_FIELDS[1]]
        vals = np.frombuffer(blob, np.int8, rows * n_max, arena_off + op["w_off"]).reshape(rows, n_max)
        idx = np.frombuffer(blob, {1: "<u1", 2: "<u2"}[ib], rows * n_max, arena_off + op[SPARSE_FIELDS[0]])
        idx = idx.reshape(rows, n_max)
        dense = np.zeros((rows, fan), np.int8)
        np.put_along_axis(dense, idx[:, : op["count"]].astype(np.int64), vals[:, : op["count"]], axis=1)
        out.append(dense)
    return out


def test_every_level_bit_exact_with_its_zero_expanded_tflite(dress: dict, host_app: Path) -> None:  # noqa: F811
    """(a) The firmware's sparse kernels give byte-equal outputs with TFLM on level_k.tflite, every level."""
    out, k_levels = dress["out"], len(dress["counts"])
    rng = np.random.default_rng(11)
    n_in = int(np.prod(dress["model"].input_shape[1:]))
    xs = rng.integers(-128, 128, size=(16, n_in), dtype=np.int8)
    xs[0], xs[1] = -128, 127
    script = "".join(f"level {k}\n" + "".join(_feed(x) + "run\nout\n" for x in xs) for k in range(k_levels))
    rc, lines, err = _host(host_app, out / "reds_model.bin", script)
    assert rc == 0 and not [ln for ln in lines if ln.startswith("err")], (err[-2000:], lines[:5])
    outs = [ln for ln in lines if ln.startswith("ok out")]
    assert len(outs) == k_levels * len(xs)
    prev = None
    for k in range(k_levels):
        want = _tflm_outputs(out / f"level_{k}.tflite", xs)
        got = np.array([[int(v) for v in ln.split()[2:]] for ln in outs[k * len(xs) : (k + 1) * len(xs)]])
        np.testing.assert_array_equal(got, want, err_msg=f"{dress['kind']} level {k} differs from TFLM")
        assert prev is None or not np.array_equal(want, prev), (
            "levels should differ (a vacuous test otherwise)"
        )
        prev = want
    info = c_arena.read_blob((out / "reds_model.bin").read_bytes())
    assert info["header"]["version"] == c_arena.VERSION_SPARSE == dress["report"]["blob_version"]
    assert dress["report"]["dense_top"] == dress["dense_top"]
    want = dress["counts"][:-1] + [[] if dress["dense_top"] else dress["counts"][-1]]
    assert [[op["count"] for op in _sparse_ops(info, k)] for k in range(k_levels)] == want


def test_blob_expands_to_each_levels_dense_int8_weights(dress: dict) -> None:
    """(b) values + indices + counts of the blob expand back to level_k.tflite's zero-expanded weights."""
    blob = (dress["out"] / "reds_model.bin").read_bytes()
    info = c_arena.read_blob(blob)
    names = dress["names"]
    for k in range(len(dress["counts"])):
        ref = _layer_weights(dress["out"] / f"level_{k}.tflite", len(names))  # every CONV_2D / FC is sparse
        got = _expand(blob, info, k)
        assert len(got) == len(names)
        for layer, (g, w) in enumerate(zip(got, ref, strict=True)):
            np.testing.assert_array_equal(g, w, err_msg=f"level {k} layer {names[layer]}")
            rows = w.shape[0]
            assert (w != 0).sum() <= rows * dress["counts"][k][layer]


def test_levels_are_nested_with_the_same_int8_values(dress: dict) -> None:
    """(c) Every weight kept at level k is kept at level k + 1 with the same int8 value; the kept set is the
    order's prefix; the values are the full model's (quantised once) int8 weights."""
    names, counts, orders = dress["names"], dress["counts"], dress["orders"]
    levels = [_layer_weights(dress["out"] / f"level_{k}.tflite", len(names)) for k in range(len(counts))]
    blob = (dress["out"] / "reds_model.bin").read_bytes()
    full = _expand(blob, c_arena.read_blob(blob), len(counts) - 1)
    for layer, name in enumerate(names):
        for k in range(len(counts)):
            w = levels[k][layer]
            kept = np.zeros(w.shape, bool)
            np.put_along_axis(kept, orders[name][:, : counts[k][layer]].astype(np.int64), True, axis=1)
            assert not w[~kept].any(), f"{name} level {k}: a weight outside the kept set is not 0"
            np.testing.assert_array_equal(w[kept], full[layer][kept])
            if k + 1 < len(counts):
                nxt = levels[k + 1][layer]
                np.testing.assert_array_equal(nxt[kept], w[kept], err_msg=f"{name}: level {k} -> {k + 1}")


def test_report_and_flash_ledger(dress: dict) -> None:
    r = json.loads((dress["out"] / "report.json").read_text())
    assert r["levels"] == dress["report"]["levels"] and len(r["levels"]) == len(dress["counts"])
    macs = [lv["macs"] for lv in r["levels"]]
    assert macs == sorted(macs) and macs[0] < macs[-1]
    for lv in r["levels"]:
        assert lv["int8_vs_float_top1_agreement"] >= 0.8, lv
    fl = r["flash"]
    counted = dress["counts"][:-1] if dress["dense_top"] else dress["counts"]
    want = sum(d["rows"] * d["n_max"] * (1 + d["index_bytes"]) for d in r["sparse_layers"]) + 4 * np.size(
        counted
    )
    assert fl["sparse_values_indices_counts_bytes"] == want
    assert fl["blob_bytes"] == (dress["out"] / "reds_model.bin").stat().st_size
    chosen = "blob_bytes_dense_top" if dress["dense_top"] else "blob_bytes_sparse_top"
    assert fl["blob_bytes"] == fl[chosen]
    # n_max: the top level's count, or with a dense top level the largest lower count; the dense top
    # level's natural-order weights are counted once
    n_max = [max(c[j] for c in counted) for j in range(len(dress["names"]))]
    assert [d["n_max"] for d in r["sparse_layers"]] == n_max
    assert fl["dense_top_weight_bytes"] == (
        fl["dense_weight_bytes_of_sparse_layers"] if dress["dense_top"] else 0
    )
    assert sorted(p.name for p in dress["out"].iterdir()) == sorted(r["files"])
    if dress["kind"] == "fc2":
        assert [d["index_bytes"] for d in r["sparse_layers"]] == [2, 1]


def _patch(blob: bytes, info: dict, what: str) -> bytes:
    """Corrupt the first sparse op: an index out of range, or level 0's count above n_max."""
    b = bytearray(blob)
    op = _sparse_ops(info, 0)[0]
    if what == "index":
        fan = op["k_h"] * op["k_w"] * op["in_c"]
        off = (
            info["header"]["arena_off"] + op[SPARSE_FIELDS[0]] + op[SPARSE_FIELDS[1]] * (op["w_stride_o"] - 1)
        )
        struct.pack_into("<B" if op[SPARSE_FIELDS[1]] == 1 else "<H", b, off, fan)
    elif what == "count":
        lv = info["levels"][0]
        struct.pack_into("<I", b, lv["ops_off"] + 4 * (c_arena.ENTRY_WORDS * lv["n_ops"] + lv["n_slots"]),
                         op["w_stride_o"] + 1)  # fmt: skip
    elif what == "nesting":  # level 1's count below level 0's
        lv = info["levels"][1]
        struct.pack_into("<I", b, lv["ops_off"] + 4 * (c_arena.ENTRY_WORDS * lv["n_ops"] + lv["n_slots"]), 0)
    elif what == "version":  # sparse ops in a version-3 blob
        struct.pack_into("<I", b, 4, c_arena.VERSION)
    return bytes(b)


@pytest.mark.parametrize("what", ["index", "count", "nesting", "version"])
def test_init_rejects_a_corrupted_sparse_op(
    dress: dict,
    host_app: Path,  # noqa: F811
    tmp_path: Path,
    what: str,
) -> None:
    """(d) reds_model_init refuses the blob (REDS_BAD_BLOB = 2) before any level runs."""
    blob = (dress["out"] / "reds_model.bin").read_bytes()
    path = tmp_path / f"{what}.bin"
    path.write_bytes(_patch(blob, c_arena.read_blob(blob), what))
    rc, _, err = _host(host_app, path, "info\n")
    assert rc == 1 and "not a valid reds blob (status 2)" in err, (what, rc, err[-500:])
    rc, lines, err = _host(host_app, dress["out"] / "reds_model.bin", "info\n")
    assert rc == 0 and lines[0].startswith("ok backend=native"), err[-500:]


def test_refuses_a_non_empty_out_dir(dress: dict) -> None:
    with pytest.raises(RunExistsError, match="overwrite=True"):
        convert_dress(
            dress["model"], dress["orders"], dress["counts"], dress["names"], dress["x"], dress["out"]
        )


def test_bad_arguments_are_named(dress: dict, tmp_path: Path) -> None:
    names, orders = dress["names"], dress["orders"]
    with pytest.raises(ValueError, match="nested"):
        convert_dress(dress["model"], orders, dress["counts"][::-1], names, dress["x"], tmp_path / "a")
    dup = {**orders, names[0]: np.zeros_like(orders[names[0]])}
    with pytest.raises(ValueError, match="permutation"):
        convert_dress(dress["model"], dup, dress["counts"], names, dress["x"], tmp_path / "b")
    with pytest.raises(ValueError, match="dense_top=True needs at least two levels"):
        convert_dress(dress["model"], orders, dress["counts"][-1:], names, dress["x"], tmp_path / "d",
                      dense_top=True)  # fmt: skip
    if dress["kind"] == "dscnn":
        with pytest.raises(Exception, match="depthwise layers stay dense"):
            convert_dress(
                dress["model"], orders, dress["counts"], ["conv1", "dw", "fc"], dress["x"], tmp_path / "c"
            )


@pytest.fixture(scope="module")
def m4(tmp_path_factory: pytest.TempPathFactory):
    """The -O2 Cortex-M4 bench image (DSP kernels) in unicorn."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi toolchain not installed")
    pytest.importorskip("unicorn")
    sys.path.insert(0, str(FIRMWARE.parent / "benchmarks"))
    import mcu_cycles

    return mcu_cycles.M4(mcu_cycles.build(tmp_path_factory.mktemp("m4"), "-O2", False))


def test_cortex_m4_runs_the_sparse_levels_bit_exact(dress: dict, m4) -> None:
    """(e) benchmarks/dress_device.py on the emulated Cortex-M4: every level of the sparse blob (and the same
    level packed densely) byte-equal with TFLM on level_k.tflite, switching <= 16 instructions, and the
    sparse kernels' instructions growing with the count while the dense kernels' stay put; a dense top
    level costs what the dense model costs."""
    import dress_device

    levels = dress_device.level_rows(m4, dress["out"])
    assert [r["bit_exact_vs_tflm"] for r in levels] == [True] * len(dress["counts"])
    assert all(r["dense_bit_exact_vs_tflm"] for r in levels)
    assert max(r["switch_instructions"] for r in levels) <= dress_device.SWITCH_TARGET
    instr = [r["instructions"] for r in levels[: -1 if dress["dense_top"] else None]]  # the sparse levels
    assert instr == sorted(instr) and instr[0] < instr[-1]
    layers = dress_device.layer_rows(m4, dress["out"])
    assert len(layers) == len(dress["counts"]) * len(dress["names"])
    for j in range(len(dress["names"])):
        per = [r for r in layers if r["op"] == layers[j]["op"]]
        sparse = [r["sparse_instructions"] for r in per if r["kernel"] == "sparse"]
        assert sparse == sorted(sparse) and sparse[0] < sparse[-1], per
        assert len({r["dense_instructions"] for r in per}) == 1, per
        # a dense top level runs the dense kernel, the lower levels the sparse one
        want = ["sparse"] * (len(per) - 1) + ["dense" if dress["dense_top"] else "sparse"]
        assert [r["kernel"] for r in per] == want
    if dress["dense_top"]:
        assert levels[-1]["instructions"] <= levels[-1]["dense_instructions"] * 1.01


def test_sparse_op_numbers_and_fields_match_the_c_header() -> None:
    """The op types and the template words the converter writes are the ones reds_model.h reads."""
    from reds_tf.convert import c_prepare

    h = (FIRMWARE / "src" / "runtime" / "reds_model.h").read_text()
    assert f"REDS_OP_SPARSE_CONV_2D = {c_prepare.OP_SPARSE_CONV_2D}," in h
    assert f"REDS_OP_SPARSE_FULLY_CONNECTED = {c_prepare.OP_SPARSE_FULLY_CONNECTED}," in h
    idx_off, idx_bytes = (f.upper() for f in SPARSE_FIELDS)
    assert f"enum {{ REDS_F_IDX_OFF = REDS_F_{idx_off}, REDS_F_IDX_BYTES = REDS_F_{idx_bytes} }};" in h
