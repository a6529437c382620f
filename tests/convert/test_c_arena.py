"""c_arena / c_prepare: per-level int8 .tflite -> one device blob with one shared int8 weight arena."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reds_tf.convert import c_arena, c_prepare
from reds_tf.errors import CorruptFlatbufferError, UnsupportedLayerError
from tests.firmware.nested_models import dscnn, write_levels


@pytest.fixture(scope="module")
def dscnn_levels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_levels("dscnn", tmp_path_factory.mktemp("dscnn"), keep=(1, 3))  # 2 levels: faster


@pytest.fixture(scope="module")
def written(dscnn_levels: list[Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("blob")
    return out, c_arena.write(dscnn_levels, out, "kws")


def test_quantize_multiplier_follows_tflite() -> None:
    assert c_prepare.quantize_multiplier(0.5) == (1 << 30, 0)
    assert c_prepare.quantize_multiplier(1.0) == (1 << 30, 1)
    assert c_prepare.quantize_multiplier(0.75) == (1610612736, 0)
    assert c_prepare.quantize_multiplier(0.0) == (0, 0)
    assert c_prepare.quantize_multiplier(1 - 2**-40) == (1 << 30, 1)  # rounds up to 2^31: halved, shift+1
    assert c_prepare.quantize_multiplier(2.0**-40) == (0, 0)  # shift < -31 flushes to zero
    m, s = c_prepare.quantize_multiplier(0.0123)
    assert abs(m * 2.0 ** (s - 31) - 0.0123) < 1e-11 and (1 << 30) <= m < (1 << 31)


def test_mean_multiplier_folds_one_over_n() -> None:
    m, s = c_prepare.mean_multiplier(1 << 30, 0, 50)  # floor(log2 50) = 5
    assert (m, s) == (((1 << 30) << 5) // 50, -5)
    assert abs(m * 2.0 ** (s - 31) - 0.5 / 50) < 1e-9
    assert c_prepare.mean_multiplier(1 << 30, -30, 1 << 10) == (1 << 21, -31)  # shift_n capped at 31 + shift


def test_files_and_blob_layout(written: tuple[Path, dict]) -> None:
    out, summary = written
    blob = (out / "kws.blob").read_bytes()
    assert summary["blob_bytes"] == len(blob) and summary["paths"]["c"].endswith("kws_blob.c")
    c_text = (out / "kws_blob.c").read_text()
    arr = bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})", c_text.split("= {", 1)[1]))
    assert arr == blob
    h_text = (out / "kws_blob.h").read_text()
    assert f"#define KWS_BLOB_LEN {len(blob)}u" in h_text
    hdr = c_arena.read_blob(blob)["header"]
    for key in ("max_scratch", "max_in", "max_out"):  # what the sketch sizes its static buffers by
        assert f"#define KWS_BLOB_{key.upper()} {hdr[key]}u" in h_text
    assert (
        blob[:4] == b"REDS"
        and hdr["version"] == c_arena.VERSION
        and hdr["n_levels"] == 2
        and hdr["total_bytes"] == len(blob)
    )
    assert hdr["arena_off"] % 16 == 0 and hdr["params_off"] % 16 == 0
    assert hdr["max_scratch"] == max(lv["scratch_bytes"] for lv in summary["levels"])
    assert summary["separate_tensors"] == [] and summary["weights_ratio_vs_full"] == 1.0


def test_levels_read_their_weights_from_the_shared_arena(
    dscnn_levels: list[Path], written: tuple[Path, dict]
) -> None:
    out, _ = written
    blob = (out / "kws.blob").read_bytes()
    parsed = c_arena.read_blob(blob)
    arena = np.frombuffer(blob, np.int8, parsed["header"]["arena_bytes"], parsed["header"]["arena_off"])
    full_ops = parsed["levels"][-1]["ops"]
    for k, path in enumerate(dscnn_levels):
        level = c_prepare.read_level(path)
        ops = parsed["levels"][k]["ops"]
        assert [o["type"] for o in ops] == [e["rec"]["type"] for e in level["ops"]]
        for i, (op, entry) in enumerate(zip(ops, level["ops"], strict=True)):
            w = entry["weights"]
            if w is None:
                continue
            assert op["w_off"] == full_ops[i]["w_off"]  # one copy, shared by every level
            o, kh, kw, ci = w.shape
            idx = (np.arange(o)[:, None, None, None] * op["w_stride_o"]
                   + (np.arange(kh)[:, None, None] * kw + np.arange(kw)[:, None]) * op["w_stride_p"]
                   + np.arange(ci))  # fmt: skip
            np.testing.assert_array_equal(arena[op["w_off"] + idx], w, err_msg=f"level {k} op {i}")
    macs = [lv["macs_lo"] for lv in parsed["levels"]]
    assert macs == sorted(macs) and macs[0] < macs[-1]


def test_generated_c_compiles(written: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = written
    cmd = [
        "gcc",
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-c",
        str(out / "kws_blob.c"),
        "-o",
        str(tmp_path / "b.o"),
    ]
    subprocess.run(cmd, check=True)


def test_non_prefix_weights_are_stored_separately_and_reported(dscnn_levels: list[Path]) -> None:
    levels = [c_prepare.read_level(p) for p in dscnn_levels]
    shared_blob, shared = c_arena.build_blob(levels)
    w = levels[0]["ops"][2]["weights"].copy()  # level 0's pointwise conv: no longer the full sub-block
    w[0, 0, 0, 0] = 5 if w[0, 0, 0, 0] != 5 else 6
    levels[0]["ops"][2]["weights"] = w
    with pytest.warns(
        UserWarning, match="level 0 op 2 .CONV_2D. int8 weights are NOT the widest level's prefix"
    ):
        blob, summary = c_arena.build_blob(levels)
    assert summary["separate_tensors"] == [{"level": 0, "op": 2, "type": "CONV_2D", "bytes": int(w.size)}]
    assert summary["arena_bytes"] >= shared["arena_bytes"] + w.size
    op = c_arena.read_blob(blob)["levels"][0]["ops"][2]
    hdr = c_arena.read_blob(blob)["header"]
    arena = np.frombuffer(blob, np.int8, hdr["arena_bytes"], hdr["arena_off"])
    assert op["w_stride_p"] == w.shape[3]  # compact copy
    np.testing.assert_array_equal(arena[op["w_off"] : op["w_off"] + w.size], w.reshape(-1))


def test_errors_name_the_problem(dscnn_levels: list[Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(CorruptFlatbufferError, match="not a TFLite flatbuffer"):
        c_arena.write([junk], tmp_path)
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(dscnn_levels[0].read_bytes()[:600])
    with pytest.raises(CorruptFlatbufferError):
        c_arena.write([cut], tmp_path)
    with pytest.raises(ValueError, match="name must be a C identifier"):
        c_arena.write(dscnn_levels, tmp_path, "my-model")
    levels = [c_prepare.read_level(p) for p in dscnn_levels]
    levels[0]["ops"] = levels[0]["ops"][:-1]
    with pytest.raises(UnsupportedLayerError, match="All levels must share one topology"):
        c_arena.build_blob(levels)
    with pytest.raises(UnsupportedLayerError, match="17 levels .* at most 16 levels of 256 ops"):
        c_arena.build_blob([levels[1]] * 17)
    with pytest.raises(CorruptFlatbufferError, match="Not a reds device blob"):
        c_arena.read_blob(b"TFL3" + bytes(100))


def test_float_io_model_is_rejected(tmp_path: Path) -> None:
    from reds_tf._keras import tf

    model = dscnn((4, 4))
    conv = tf.lite.TFLiteConverter.from_keras_model(model)  # float input/output: a QUANTIZE op first
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rep = np.random.default_rng(0).normal(0, 1, (8, *model.input_shape[1:])).astype(np.float32)
    conv.representative_dataset = lambda: ([rep[i : i + 1]] for i in range(len(rep)))
    path = tmp_path / "float_io.tflite"
    path.write_bytes(conv.convert())
    with pytest.raises(UnsupportedLayerError, match="is not int8 .* inference_input_type"):
        c_arena.write([path], tmp_path)


def test_values_the_runtime_refuses_are_refused_at_conversion(dscnn_levels: list[Path]) -> None:
    """A blob that reds_model_init would reject (REDS_BAD_BLOB) is never written: the error names the
    level, the op, the channel and the value."""
    levels = [c_prepare.read_level(p) for p in dscnn_levels]
    bias = levels[0]["ops"][0]["bias"].copy()
    bias[1] = 2**30 + 1
    levels[0]["ops"][0]["bias"] = bias
    with pytest.raises(UnsupportedLayerError, match=r"Level 0 op 0 \(CONV_2D, output tensor .*channel 1 is "
                       r"1,073,741,825, beyond the runtime's \+-2\^30.*Fix: retrain"):  # fmt: skip
        c_arena.build_blob(levels)
    levels = [c_prepare.read_level(p) for p in dscnn_levels]
    levels[1]["ops"][2]["shift"] = levels[1]["ops"][2]["shift"] - 40
    with pytest.raises(UnsupportedLayerError, match=r"Level 1 op 2 \(CONV_2D.*shift is outside \[-31, 30\]"):
        c_arena.build_blob(levels)


def test_runtime_limits_match_the_c_validator() -> None:
    src = (Path(__file__).resolve().parents[2] / "firmware/src/runtime/reds_model.c").read_text()
    found = dict(re.findall(r"^#define (\w+_MAX)\s+(.*?)\s*(?:/\*.*)?$", src, re.M))
    evaluated = {k: eval(re.sub(r"(\d)u\b", r"\1", v)) for k, v in found.items()}  # noqa: S307
    assert evaluated == c_arena.RUNTIME_LIMITS
    kernels = (Path(__file__).resolve().parents[2] / "firmware/src/runtime/reds_kernels.h").read_text()
    assert (
        "#define REDS_MEAN_HW_MAX (INT32_MAX / 256)" in kernels and c_arena.MEAN_HW_MAX == (2**31 - 1) // 256
    )
    assert f"#define REDS_SOFTMAX_DEPTH_MAX {c_prepare.SOFTMAX_DEPTH_MAX}\n" in kernels


def test_prefix_params_are_views_of_the_full_levels(dscnn_levels: list[Path]) -> None:
    """A narrower level whose bias / multiplier / shift arrays are prefixes of the widest level's (shared
    calibration) stores none of its own: its records point into the widest level's arrays."""
    levels = [c_prepare.read_level(p) for p in dscnn_levels]
    per_level_blob, per_level = c_arena.build_blob(levels)
    for e, f in zip(levels[0]["ops"], levels[1]["ops"], strict=True):
        for key in ("bias", "mult", "shift"):
            if e[key] is not None:
                e[key] = f[key][: len(e[key])].copy()
    blob, summary = c_arena.build_blob(levels)
    assert summary["levels"][0]["params_bytes_added"] == 0 < per_level["levels"][0]["params_bytes_added"]
    assert summary["levels"][1]["params_bytes_added"] == summary["params_bytes"]
    assert sum(summary["sections"].values()) == len(blob) < len(per_level_blob)
    ops = [lv["ops"] for lv in c_arena.read_blob(blob)["levels"]]
    for small, wide in zip(*ops, strict=True):
        assert all(small[k] == wide[k] for k in ("bias_off", "mult_off", "shift_off"))


def _c_enum(text: str, first: str) -> list[str]:
    """The names of the C enum in reds_model.h whose first member is ``first``, in order."""
    body = re.search(r"enum\s*\{\s*(" + first + r"\b[^}]*)\}", text).group(1)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return [n.strip() for n in body.split(",") if n.strip()]


def test_blob_layout_matches_the_c_header() -> None:
    """The word indices of reds_model.h name the same fields, in the same order, as c_arena's layout."""
    h = (Path(__file__).resolve().parents[2] / "firmware/src/runtime/reds_model.h").read_text()
    for prefix, fields in (("REDS_H_", c_arena.HEADER_FIELDS), ("REDS_L_", c_arena.LEVEL_FIELDS),
                           ("REDS_F_", c_prepare.OP_FIELDS), ("REDS_E_", c_arena.ENTRY_FIELDS)):  # fmt: skip
        names = _c_enum(h, prefix + ("MAGIC" if prefix == "REDS_H_" else "OPS_OFF" if prefix == "REDS_L_"
                                     else "TYPE" if prefix == "REDS_F_" else "TEMPLATE"))  # fmt: skip
        got = [n.removeprefix(prefix) for n in names if n.removeprefix(prefix) != "USED"]
        want = [f.upper() for f in fields]
        aliases = {"TOTAL_BYTES": "TOTAL", "ARENA_BYTES": "ARENA_BYTES", "PARAMS_BYTES": "PARAMS_BYTES"}
        assert got == [aliases.get(w, w) for w in want], prefix
    for name, value in (("REDS_BLOB_VERSION", c_arena.VERSION), ("REDS_HEADER_WORDS", c_arena.HEADER_WORDS),
                        ("REDS_BLOB_VERSION_SPARSE", c_arena.VERSION_SPARSE),
                        ("REDS_LEVEL_WORDS", c_arena.LEVEL_WORDS), ("REDS_OP_WORDS", c_arena.OP_WORDS),
                        ("REDS_ENTRY_WORDS", c_arena.ENTRY_WORDS), ("REDS_MAX_SLOTS", c_arena.MAX_SLOTS),
                        ("REDS_MAX_LEVELS", c_arena.MAX_LEVELS), ("REDS_MAX_OPS", c_arena.MAX_OPS),
                        ("REDS_SLOT_INPUT", c_arena.SLOT_INPUT), ("REDS_SLOT_OUTPUT", c_arena.SLOT_OUTPUT),
                        ("REDS_SLOT_SCRATCH", c_arena.SLOT_SCRATCH),
                        ("REDS_SLOT_NONE", c_arena.SLOT_NONE)):  # fmt: skip
        m = re.search(rf"#define {name} (0x[0-9A-Fa-f]+|\d+)u?\b", h)
        assert m and int(m.group(1), 0) == value, name


def _op(inputs: list, output: Any, elems: int) -> dict:
    return {"inputs": inputs, "output": output, "out_elems": elems}


def test_plan_buffers_reuses_slots_by_liveness() -> None:
    # A chain ping-pongs between two slots, each as large as its largest tensor.
    bufs, sizes = c_arena.plan_buffers(
        [_op(["x"], 1, 100), _op([1], 2, 40), _op([2], 3, 90), _op([3], 4, 10)]
    )
    assert bufs == [(0, 255, 2), (2, 255, 3), (3, 255, 2), (2, 255, 1)] and sizes == [112, 48]
    # A residual block: the skip tensor stays alive across the branch, so three slots; the ADD reads two.
    ops = [_op(["x"], "a", 64), _op(["a"], "b", 64), _op(["b"], "c", 64), _op(["a", "c"], "d", 64),
           _op(["d"], "e", 10)]  # fmt: skip
    bufs, sizes = c_arena.plan_buffers(ops)
    assert bufs == [(0, 255, 2), (2, 255, 3), (3, 255, 4), (2, 4, 3), (3, 255, 1)] and sizes == [64] * 3
    assert c_arena.plan_buffers([_op(["x"], "y", 5)]) == ([(0, 255, 1)], [])  # one op: no scratch
    with pytest.raises(UnsupportedLayerError, match="the firmware takes 1 or 2"):
        c_arena.plan_buffers([_op(["x", "x", "x"], "y", 5)])


def test_shared_calibration_shares_op_templates(dscnn_levels: list[Path]) -> None:
    """With every narrower level's arrays prefix views (shared calibration), the levels differ only in
    channel counts: one template per op of the widest level, and a narrower level costs its 16-byte op
    list entries, not 128-byte records."""
    levels = [c_prepare.read_level(p) for p in dscnn_levels]
    _, per_level = c_arena.build_blob(levels)
    for e, f in zip(levels[0]["ops"], levels[1]["ops"], strict=True):
        for key in ("bias", "mult", "shift"):
            if e[key] is not None:
                e[key] = f[key][: len(e[key])].copy()
        for key in ("in_zp", "out_zp", "act_min", "act_max", "mult", "shift"):
            e["rec"][key] = f["rec"][key]
    blob, summary = c_arena.build_blob(levels)
    n_ops = len(levels[-1]["ops"])
    assert summary["n_templates"] == n_ops < per_level["n_templates"]
    assert summary["sections"]["op templates (shared by the levels)"] == 128 * n_ops
    assert sum(summary["sections"].values()) == len(blob)
    parsed = c_arena.read_blob(blob)
    small, wide = (lv["ops"] for lv in parsed["levels"])
    assert [o["template"] for o in small] == [o["template"] for o in wide]
    assert [o["in_c"] for o in small] != [o["in_c"] for o in wide]
    assert summary["levels"][0]["table_bytes"] == 64 + 16 * n_ops + 4 * parsed["levels"][0]["n_slots"]
