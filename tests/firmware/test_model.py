"""Native runtime vs TFLite Micro, bit for bit, for every level, through the host app's serial protocol.

Converts small nested models (a DS-CNN and a 2-layer FC, 4 levels each) to per-level int8 .tflite files,
packs them into one device blob with ``c_arena.write``, builds ``make -C firmware host`` (gcc,
-Wall -Wextra -Werror, ASan/UBSan) and compares the host app's int8 outputs with the tflite-micro
interpreter running each level's standalone .tflite on the same int8 inputs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reds_tf.convert import c_arena, c_prepare
from reds_tf.errors import UnsupportedLayerError
from tests.firmware.nested_models import write_converted_levels, write_zoo_converted_levels, write_zoo_levels

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
N_INPUTS = 24


@pytest.fixture(scope="session")
def host_app() -> Path:
    subprocess.run(["make", "-s", "-C", str(FIRMWARE), "host"], check=True, capture_output=True)
    return FIRMWARE / "build" / "host" / "reds_host"


# By default a small DS-CNN (20x10 input) with a softmax head through the production converter
# (reds_tf.convert.convert),
# and the zoo's FC-2 (Flatten -> 784x128 -> 10) nested by reds_tf.nested; the zoo's DS-CNN-S
# (49x10x1, 64 channels; about a minute of conversion on 2 shared cores) is marked slow.
# The zoo's ResNet-8 (16x16x3 input, 4 levels) through the production converter: residual ADDs whose skip
# tensor stays in its own scratch slot.
# A DS-CNN with LeakyReLU(0.3) (TFLite's LEAKY_RELU op between the convolutions) through the production
# converter; the paper's full-size vision DS-CNN (zoo ds_cnn_fmnist, LeakyReLU 0.3, AvgPool 13x5) is slow.
MODELS = ["convert:dscnn_softmax", "zoo:fc2", "zoo_converted:resnet8", "convert:residual",
          "convert:dscnn_leaky", pytest.param("zoo:ds_cnn_s", marks=pytest.mark.slow),
          pytest.param("zoo_converted:ds_cnn_fmnist", marks=pytest.mark.slow)]  # fmt: skip


@pytest.fixture(scope="session", params=MODELS)
def converted(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp(request.param.replace(":", "_"))
    source, name = request.param.split(":")
    write = {"zoo": write_zoo_levels, "zoo_converted": write_zoo_converted_levels}.get(
        source, write_converted_levels
    )
    paths = write(name, out)
    if source == "convert":  # the production converter wrote the blob (with its predicted cycles)
        summary = json.loads((out / "report.json").read_text())["firmware"]
    else:
        summary = c_arena.write(paths, out, "model")
    return {"kind": request.param, "paths": paths, "summary": summary, "blob": out / "model.blob"}


def _tflm_outputs(path: Path, xs: np.ndarray) -> np.ndarray:
    from tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(path.read_bytes(), arena_size=64 * 1024)
    shape = it.get_input_details(0)["shape"]
    outs = []
    for x in xs:
        it.set_input(x.reshape(shape), 0)
        it.invoke()
        outs.append(np.asarray(it.get_output(0)).reshape(-1))
    return np.stack(outs)


def _session(app: Path, blob: Path, script: str) -> list[str]:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0")
    cmd = [str(app), str(blob)]
    r = subprocess.run(cmd, input=script, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr[-2000:]
    return r.stdout.splitlines()


def _feed(x: np.ndarray) -> str:
    vals = [str(int(v)) for v in x.reshape(-1)]
    return "".join("in " + " ".join(vals[i : i + 40]) + "\n" for i in range(0, len(vals), 40))


def test_every_level_bit_exact_with_tflm(converted: dict, host_app: Path) -> None:
    rng = np.random.default_rng(7)
    n_in = converted["summary"]["levels"][0]["input_bytes"]
    xs = rng.integers(-128, 128, size=(N_INPUTS, n_in), dtype=np.int8)
    xs[0] = -128  # extremes reach the clamps and saturating paths
    xs[1] = 127
    script = []
    for k in range(len(converted["paths"])):
        script.append(f"level {k}\n")
        for x in xs:
            script.append(_feed(x) + "run\nout\n")
    lines = _session(host_app, converted["blob"], "".join(script))
    runs = [ln for ln in lines if ln.startswith("ok class=")]
    outs = [ln for ln in lines if ln.startswith("ok out")]
    assert not [ln for ln in lines if ln.startswith("err")]
    assert len(outs) == len(converted["paths"]) * N_INPUTS
    for k, path in enumerate(converted["paths"]):
        want = _tflm_outputs(path, xs)
        got = np.array([[int(v) for v in ln.split()[2:]] for ln in outs[k * N_INPUTS : (k + 1) * N_INPUTS]])
        np.testing.assert_array_equal(got, want, err_msg=f"{converted['kind']} level {k} differs from TFLM")
        classes = [int(ln.split()[1].split("=")[1]) for ln in runs[k * N_INPUTS : (k + 1) * N_INPUTS]]
        assert classes == list(np.argmax(want, axis=1))
        assert all(f"level={k}" in ln for ln in runs[k * N_INPUTS : (k + 1) * N_INPUTS])


def test_levels_share_one_weight_arena(converted: dict) -> None:
    s = converted["summary"]
    if converted["kind"].endswith("ds_cnn_fmnist"):
        # Dense after Flatten of the 2x10 pooled map: a narrower level's FC inputs are a strided (not a
        # prefix) sub-block of the full kernel, stored as a copy per level (quantize.py's "gather").
        assert {t["type"] for t in s["separate_tensors"]} == {"FULLY_CONNECTED"}
        assert sorted(t["level"] for t in s["separate_tensors"]) == list(range(len(s["levels"]) - 1))
        copies = sum(t["bytes"] for t in s["separate_tensors"])
        pad = s["arena_bytes"] - s["levels"][-1]["weight_bytes_standalone"] - copies
        assert 0 <= pad < 16 * len(s["separate_tensors"])  # the rest stored once; copies 16-byte aligned
    else:
        assert s["separate_tensors"] == []
        assert s["arena_bytes"] == s["levels"][-1]["weight_bytes_standalone"]  # stored once: ratio 1.0
        assert sum(lv["weight_bytes_standalone"] for lv in s["levels"]) > 2 * s["arena_bytes"]
    macs = [lv["macs"] for lv in s["levels"]]
    assert macs == sorted(macs) and macs[0] < macs[-1]


def test_protocol_errors_and_budget_policy(converted: dict, host_app: Path) -> None:
    n_levels = len(converted["paths"])
    x = _feed(np.zeros(converted["summary"]["levels"][0]["input_bytes"], np.int8))
    script = (
        f"info\nlevel {n_levels}\nlevel -1\nin 1 2 300\nrun\nbogus\n"
        + "".join(f"level {k}\n{x}run\n" for k in range(n_levels))  # measure every level once
        + f"budget 1000000000\n{x}run\nbudget 1\n{x}run\nebudget 5 2\nlevels\n"
    )
    lines = _session(host_app, converted["blob"], script)
    assert lines[0].startswith(f"ok backend=native levels={n_levels} level={n_levels - 1}")
    assert lines[1] == f"err bad level; valid 0..{n_levels - 1}" and lines[2] == lines[1]
    assert lines[3].startswith("err input value outside int8")
    assert lines[4].startswith("err need in=") and lines[5].startswith("err unknown command")
    runs = [ln for ln in lines if ln.startswith("ok class=")]
    assert len(runs) == n_levels + 2
    assert f"level={n_levels - 1}" in runs[-2]  # a generous budget picks the widest level
    assert "level=0" in runs[-1]  # an impossible budget falls back to the cheapest level
    assert "ok budget_us=2500" in lines  # 5 uJ at 2 mW = 2500 us
    assert sum(ln.startswith("level ") for ln in lines) == n_levels


def test_blob_cycles_drive_the_budget_policy(converted: dict, host_app: Path) -> None:
    """The converter stores each level's predicted cycles in the blob; the app scales the widest measured
    level's latency by their ratio, not the MAC ratio (the choice itself: test_reds_model.c)."""
    if not converted["kind"].startswith("convert:"):
        pytest.skip("only the production converter predicts cycles")
    levels = converted["summary"]["levels"]
    blob = c_arena.read_blob(converted["blob"].read_bytes())
    stored = [lv["cycles"] for lv in blob["levels"]]
    assert stored == [lv["cycles_pred"] or 0 for lv in levels]
    if converted["kind"] == "convert:residual":
        assert stored == [0] * len(stored)  # ADD has no fitted kernel: unknown, the policy uses MACs
        return
    assert all(c > 0 for c in stored) and stored == sorted(stored)
    n, widest = len(stored), len(stored) - 1
    x = _feed(np.zeros(levels[0]["input_bytes"], np.int8))
    lines = _session(host_app, converted["blob"], f"level {widest}\n{x}run\n" * 3 + "levels\n")
    rows = [dict(kv.split("=") for kv in ln.split()[2:]) for ln in lines if ln.startswith("level ")]
    assert [int(r["cycles"]) for r in rows] == stored
    us = int(rows[widest]["us"])
    assert us > 0, lines
    want = [round(us * c / stored[widest]) for c in stored]
    assert [int(r["est_us"]) for r in rows[:n]] == want[:widest] + [us]


def _blob_bytes(blob_c: Path = FIRMWARE / "tests" / "golden" / "fc2_blob.c") -> bytes:
    """The blob a generated model_blob.c holds (by default the committed fc2 blob) as bytes."""
    src = blob_c.read_text()
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})\b", src.split("{", 1)[1]))


def test_host_app_rejects_bad_blobs_without_leaks(host_app: Path, tmp_path: Path) -> None:
    """Every error path of the host runner names the problem and frees what it allocated (LeakSanitizer)."""
    good = _blob_bytes()
    cases = {"truncated": (good[:-1], 1), "bad_magic": (b"XXXX" + good[4:], 1), "empty": (b"", 2)}
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    for name, (data, rc) in cases.items():
        path = tmp_path / f"{name}.blob"
        path.write_bytes(data)
        cmd = [str(host_app), str(path)]
        r = subprocess.run(cmd, input="info\n", capture_output=True, text=True, env=env)
        assert r.returncode == rc and r.stderr.startswith("error:"), (name, r.returncode, r.stderr[-2000:])
        assert "LeakSanitizer" not in r.stderr, (name, r.stderr[-2000:])
    path = tmp_path / "good.blob"
    path.write_bytes(good)
    r = subprocess.run([str(host_app), str(path)], input="info\n", capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("ok backend=native levels=4"), r.stderr[-2000:]


def _blob_object_text(stdout: str) -> int:
    line = next(ln for ln in stdout.splitlines() if ln.rstrip().endswith("model_blob.o"))
    return int(line.split()[0])


def test_m4_size_takes_absolute_and_relative_blob_paths(tmp_path: Path) -> None:
    """`m4-size` measures exactly the BLOB_C it is given: absolute (also through '..'), relative to
    firmware/, or relative to the repository through the top-level Makefile; same-named blobs of two
    models never reuse each other's object."""
    sources = {
        "fc2": FIRMWARE / "tests" / "golden" / "fc2_blob",
        "nano": FIRMWARE / "nano33_reds" / "model_blob",
    }
    blob_c = {}
    for name, src in sources.items():
        (tmp_path / name).mkdir()
        header = src.with_suffix(".h").read_text().replace(f"{src.name}.h", "model_blob.h")
        (tmp_path / name / "model_blob.h").write_text(header)
        text = src.with_suffix(".c").read_text().replace(f'"{src.name}.h"', '"model_blob.h"')
        (tmp_path / name / "model_blob.c").write_text(text)
        blob_c[name] = tmp_path / name / "model_blob.c"
    blob_len = {name: len(_blob_bytes(src.with_suffix(".c"))) for name, src in sources.items()}
    runs = [
        (["-C", str(FIRMWARE)], str(blob_c["fc2"]), "fc2"),
        (["-C", str(FIRMWARE)], str(tmp_path / "fc2" / ".." / "nano" / "model_blob.c"), "nano"),
        (["-C", str(FIRMWARE)], "tests/golden/fc2_blob.c", "fc2"),
        (["-C", str(FIRMWARE.parent)], "firmware/nano33_reds/model_blob.c", "nano"),
    ]
    sizes = {}
    for where, path, name in runs:
        cmd = ["make", "-s", *where, "m4-size", f"BLOB_C={path}"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, (path, r.stdout[-2000:] + r.stderr[-2000:])
        assert "no writable globals" in r.stdout
        sizes.setdefault(name, set()).add(_blob_object_text(r.stdout))
    for name, got in sizes.items():
        assert len(got) == 1 and blob_len[name] <= got.pop() < blob_len[name] + 256, (name, sizes)
    r = subprocess.run(["make", "-s", "-C", str(FIRMWARE), "m4-size", "BLOB_C=no/such_blob.c"],
                       capture_output=True, text=True)  # fmt: skip
    assert r.returncode != 0 and "no file BLOB_C=no/such_blob.c" in r.stderr


def test_fuzz_target_links_and_runs(tmp_path: Path) -> None:
    """`make -C firmware fuzz` (libFuzzer + ASan/UBSan on reds_model_init; every accepted blob's levels
    must run with REDS_OK) links with what `make install` installs; a short run from the seeds finds
    nothing."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (make install)")
    cmd = ["make", "-s", "-C", str(FIRMWARE), "fuzz", "FUZZ_RUNS=3000", f"BUILD={tmp_path}"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 and "libclang_rt.fuzzer" in r.stderr:
        pytest.skip("no libFuzzer runtime: apt-get install libclang-rt-14-dev (make install does it)")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "Done 3000 runs" in r.stderr


def test_blob_parser_and_level_switch_c_tests() -> None:
    """firmware/tests/test_reds_model.c: bad blobs (every truncation, field and byte flip), bad levels."""
    r = subprocess.run(["make", "-s", "-C", str(FIRMWARE), "model-test"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "test_reds_model: all passed" in r.stdout


def test_cortex_m4_build_sizes(converted: dict) -> None:
    """Runtime + app + this model's blob cross-compile for Cortex-M4 with no writable globals."""
    blob_c = Path(converted["summary"]["paths"]["c"])
    r = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), "m4-size", f"BLOB_C={blob_c}"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "no writable globals" in r.stdout
    text, data, bss = (int(v) for v in r.stdout.split("(TOTALS)")[0].splitlines()[-1].split()[:3])
    assert data == 0 and bss == 0
    assert text > converted["summary"]["blob_bytes"]  # flash = code + the const blob
    ram = converted["summary"]["max_scratch_bytes"] + max(
        lv["input_bytes"] + lv["output_bytes"] for lv in converted["summary"]["levels"]
    )
    print(f"\n{converted['kind']}: M4 flash {text} B (blob {converted['summary']['blob_bytes']} B), "
          f"RAM for scratch + I/O {ram} B")  # fmt: skip


def test_softmax_head_is_in_the_blob(converted: dict) -> None:
    """Models ending in softmax get a firmware blob whose last op is SOFTMAX (not a blob cut before it)."""
    levels = c_arena.read_blob(converted["blob"].read_bytes())["levels"]
    want = c_prepare.OP_SOFTMAX if "softmax" in converted["kind"] else c_prepare.OP_FULLY_CONNECTED
    assert all(lv["ops"][-1]["type"] == want for lv in levels)


@pytest.mark.parametrize(
    "head, scale", [("dense10", 0.01), ("dense10", 1.0), ("dense40", 30.0), ("conv", 1.0)]
)
def test_softmax_bit_exact_across_logit_ranges(
    head: str, scale: float, host_app: Path, tmp_path: Path
) -> None:
    """TFLM's fixed-point softmax reproduced for narrow, ordinary and saturating logit ranges (which move
    the input multiplier, left shift and diff_min), after a dense layer and per pixel after a conv."""
    from reds_tf._keras import keras
    from reds_tf.convert.tflite import convert_int8

    keras.utils.set_random_seed(7)
    if head == "conv":
        inp = keras.Input((2, 2, 4))
        logits = keras.layers.Conv2D(5, 1)(inp)
    else:
        inp = keras.Input((16,))
        logits = keras.layers.Dense(int(head[5:]))(inp)
    model = keras.Model(inp, keras.layers.Softmax()(logits))
    w, b = model.layers[1].get_weights()
    model.layers[1].set_weights([w * scale, b])
    x = np.random.default_rng(1).normal(0, 1, (64, *model.input_shape[1:])).astype(np.float32)
    path = tmp_path / "m.tflite"
    path.write_bytes(convert_int8(model, x, 64))
    c_arena.write([path], tmp_path, "model")
    xs = np.random.default_rng(2).integers(-128, 128, (N_INPUTS, 16), dtype=np.int8)
    lines = _session(host_app, tmp_path / "model.blob", "".join(_feed(v) + "run\nout\n" for v in xs))
    got = np.array([[int(v) for v in ln.split()[2:]] for ln in lines if ln.startswith("ok out")])
    want = _tflm_outputs(path, xs)
    assert len(np.unique(want)) > 1
    np.testing.assert_array_equal(got, want)


def test_residual_adds_keep_the_skip_tensor_in_scratch(converted: dict) -> None:
    """ResNet-8 and the small residual model: every level runs its ADDs with two inputs from buffer slots,
    one of them written more than one op earlier (the skip tensor; the level input in the small model)."""
    if not converted["kind"].endswith(("resnet8", "residual")):
        pytest.skip("no residual ADD in this model")
    for lv in c_arena.read_blob(converted["blob"].read_bytes())["levels"]:
        adds = [j for j, op in enumerate(lv["ops"]) if op["type"] == c_prepare.OP_ADD]
        assert len(adds) == (3 if "resnet8" in converted["kind"] else 2) and lv["n_slots"] >= 2
        writer = {c_arena.SLOT_INPUT: -1}
        for j, op in enumerate(lv["ops"]):
            if j in adds:
                assert op["in2_slot"] != c_arena.SLOT_NONE
                assert max(j - writer.get(s, -1) for s in (op["in_slot"], op["in2_slot"])) > 1
            writer[op["out_slot"]] = j
        assert lv["slots"][0] == 0 and lv["slots"] == sorted(lv["slots"]) and lv["scratch"] > lv["slots"][-1]


def test_shared_calibration_stores_each_int32_array_once(converted: dict) -> None:
    """Through the production converter (shared calibration), a narrower level's biases, multipliers and
    shifts are views of the widest level's: only the widest level adds int32 parameter bytes."""
    if not converted["kind"].startswith(("convert:", "zoo_converted:")):
        pytest.skip("levels converted one by one, each with its own calibration")
    added = [lv["params_bytes_added"] for lv in converted["summary"]["levels"]]
    assert added[:-1] == [0] * (len(added) - 1) and added[-1] == converted["summary"]["params_bytes"]


@pytest.mark.parametrize("field, value", [("shift", 1), ("in_rshifts", 32), ("in_rshifts", 32 << 8)])
def test_add_limits_refused_alike_by_converter_and_runtime(
    field: str, value: int, host_app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ADD requantisation shift outside [-31, 0]: check_runtime_limits refuses it at conversion, and
    the same blob written without that check is refused by reds_model_init (the host app says so)."""
    paths = write_converted_levels("residual", tmp_path / "levels")
    levels = [c_prepare.read_level(p) for p in paths]
    add = next(e for e in levels[0]["ops"] if e["rec"]["type"] == c_prepare.OP_ADD)
    add["rec"][field] = value
    with pytest.raises(UnsupportedLayerError, match=r"Level 0 op \d+ \(ADD.*shift is .*outside \[-31, 0\]"):
        c_arena.build_blob(levels)
    monkeypatch.setattr(c_arena, "check_runtime_limits", lambda *a: None)
    blob, _ = c_arena.build_blob(levels)
    path = tmp_path / "bad.blob"
    path.write_bytes(blob)
    r = subprocess.run([str(host_app), str(path)], input="info\n", capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.startswith("error:"), (r.returncode, r.stderr[-2000:])


def test_leaky_relu_limits_refused_alike_by_converter_and_runtime(
    host_app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LEAKY_RELU requantisation shift outside [-31, 30] (identity or alpha branch): check_runtime_limits
    refuses it at conversion, and the same blob written without that check is refused by reds_model_init."""
    paths = write_converted_levels("dscnn_leaky", tmp_path / "levels")
    for field in ("shift", c_prepare.ALPHA_FIELDS[1]):
        levels = [c_prepare.read_level(p) for p in paths]
        leaky = next(e for e in levels[0]["ops"] if e["rec"]["type"] == c_prepare.OP_LEAKY_RELU)
        assert leaky["rec"][c_prepare.ALPHA_FIELDS[0]] > 0  # the alpha branch's multiplier is in the record
        leaky["rec"][field] = 31
        with pytest.raises(UnsupportedLayerError, match=r"Level 0 op \d+ \(LEAKY_RELU.*shift is 31, outside"):
            c_arena.build_blob(levels)
        with monkeypatch.context() as mp:
            mp.setattr(c_arena, "check_runtime_limits", lambda *a: None)
            blob, _ = c_arena.build_blob(levels)
        path = tmp_path / f"bad_{field}.blob"
        path.write_bytes(blob)
        r = subprocess.run([str(host_app), str(path)], input="info\n", capture_output=True, text=True)
        assert r.returncode != 0 and r.stderr.startswith("error:"), (field, r.returncode, r.stderr[-2000:])
