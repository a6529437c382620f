"""Host tests of the int8 kernels: bit-exact with the tflite-micro interpreter, requant twin parity.

The C tests are built by `make -C firmware test` with gcc -Wall -Wextra -Werror and ASan/UBSan.
Besides the committed golden headers, every run regenerates goldens with a fresh seed from TFLM, so
a kernel (or twin) regression cannot hide behind stale headers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
sys.path.insert(0, str(FIRMWARE / "tests"))
import gen_goldens  # noqa: E402
import requant_ref as rq  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is required for the C tests")


def _make(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    return subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fw_build")


def test_committed_goldens_bit_exact(build_dir):
    r = _make("test", f"BUILD={build_dir / 'committed'}")
    assert r.returncode == 0, r.stdout + r.stderr
    for k in gen_goldens.HEADER_FOR.values():
        assert f"OK: {k} " in r.stdout


def test_fresh_tflm_goldens_bit_exact(tmp_path):
    """New random shapes, quantisation and prefix views, run through TFLM now, then through the C kernels."""
    gen_goldens.generate(tmp_path / "golden", seed=int.from_bytes(os.urandom(2), "little"), n_cases=10)
    r = _make("test", f"GOLDEN_DIR={tmp_path / 'golden'}", f"BUILD={tmp_path / 'build'}")
    assert r.returncode == 0, r.stdout + r.stderr
    # every TFLM-golden kernel test ran (other kernel tests, e.g. the sparse ones, print OK lines too)
    assert len(gen_goldens.CASES) == 8
    for k in gen_goldens.HEADER_FOR.values():
        assert f"OK: {k} " in r.stdout


def test_corrupted_golden_is_detected(tmp_path):
    """The C harness really compares: one flipped expected value makes `make test` fail."""
    gen_goldens.generate(tmp_path / "golden", seed=3, n_cases=2, kinds=["fc"])
    header = tmp_path / "golden" / "golden_fully_connected_s8.h"
    text = header.read_text()
    start = text.index("fc_0_expected[")
    brace = text.index("{", start) + 1
    end = text.index(",", brace) if "," in text[brace : text.index("}", brace)] else text.index("}", brace)
    first = int(text[brace:end])
    header.write_text(text[:brace] + str(first + 1 if first < 127 else first - 1) + text[end:])
    exe = tmp_path / "build" / "host" / "test_reds_fully_connected_s8"
    r = _make(f"GOLDEN_DIR={tmp_path / 'golden'}", f"BUILD={tmp_path / 'build'}", str(exe))
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "FAIL fc case 0: element 0" in run.stdout


def _requant_cli(build_dir: Path, lines: list[str]) -> list[str]:
    r = _make(f"BUILD={build_dir}", f"{build_dir}/host/requant_cli")
    assert r.returncode == 0, r.stderr
    out = subprocess.run(
        [str(build_dir / "host" / "requant_cli")],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[:-1]


def test_requantize_parity_c_vs_python_twin(build_dir):
    rng = np.random.default_rng(0)
    n = 20000
    x = rng.integers(rq.INT32_MIN, rq.INT32_MAX, size=n, endpoint=True)
    x[: n // 2] = rng.integers(-(2**20), 2**20, size=n // 2)  # accumulator-sized values
    m = rng.integers(2**30, 2**31 - 1, size=n, endpoint=True)
    s = rng.integers(-31, 31, size=n)
    s[: n // 4] = rng.integers(-12, 2, size=n // 4)
    edges = [(rq.INT32_MIN, rq.INT32_MIN + 0, 0), (rq.INT32_MIN, 2**31 - 1, 0), (rq.INT32_MAX, 2**31 - 1, 30)]
    edges += [(v, 2**30, sh) for v in (-3, -2, -1, 0, 1, 2, 3, 5, -5) for sh in (-31, -2, -1, 0, 1)]
    x = np.concatenate([x, [e[0] for e in edges]])
    m = np.concatenate([m, [e[1] for e in edges]])
    s = np.concatenate([s, [e[2] for e in edges]])
    got = np.array(
        [int(v) for v in _requant_cli(build_dir, [f"R {a} {b} {c}" for a, b, c in zip(x, m, s, strict=True)])]
    )
    want = rq.requantize(x, m, s)
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, (
        f"first mismatch x={x[bad[0]]} m={m[bad[0]]} s={s[bad[0]]}: C {got[bad[0]]} py {want[bad[0]]}"
    )


def test_mean_multiplier_parity_c_vs_python_twin(build_dir):
    rng = np.random.default_rng(1)
    cases = [
        (int(rng.integers(2**30, 2**31)), int(rng.integers(-31, 8)), int(rng.integers(1, 5000)))
        for _ in range(500)
    ]
    cases += [(2**30, -31, 4096), (2**31 - 1, 0, 1), (2**30, 1, 2**20)]
    got = _requant_cli(build_dir, [f"M {a} {b} {c}" for a, b, c in cases])
    assert got == [" ".join(map(str, rq.mean_multiplier(*c))) for c in cases]


def test_quantize_multiplier_reference_values():
    assert rq.quantize_multiplier(0.5) == (2**30, 0)
    assert rq.quantize_multiplier(1.0) == (2**30, 1)
    assert rq.quantize_multiplier(0.0) == (0, 0)
    assert rq.quantize_multiplier(2.0**-40) == (0, 0)  # below 2^-31 TFLite flushes to zero
    mult, shift = rq.quantize_multiplier(0.3)
    assert abs(mult * 2.0 ** (shift - 31) - 0.3) < 1e-9


def test_activation_range_relu6_and_unknown():
    assert rq.activation_range(rq.ACT_RELU6, 0.05, -10) == (-10, 110)
    assert rq.activation_range(rq.ACT_RELU, 0.05, -128) == (-128, 127)
    with pytest.raises(ValueError, match="unsupported fused activation: Received: activation=2"):
        rq.activation_range(2, 0.05, 0)


def test_kernel_objects_have_no_writable_globals(build_dir):
    """No .data/.bss symbols in the Cortex-M4 kernel objects (state lives in the caller)."""
    if shutil.which("arm-none-eabi-nm") is None:
        pytest.skip("arm-none-eabi toolchain not installed")
    objs = [f"{build_dir}/m4k/m4/{p.stem}.o" for p in (FIRMWARE / "src" / "runtime").glob("reds_*_s8.c")]
    r = _make(f"BUILD={build_dir}/m4k", *objs)
    assert r.returncode == 0, r.stderr
    nm = subprocess.run(["arm-none-eabi-nm", *objs], capture_output=True, text=True, check=True).stdout
    writable = [ln for ln in nm.splitlines() if ln.split()[-2:-1] and ln.split()[-2] in "DdBbCS"]
    assert writable == []


# ---------------------------------------------------------------- the Cortex-M4 build, in unicorn
def _m4(build_dir: Path, portable: bool = False):
    """The Cortex-M4 bench image in unicorn: DSP (SIMD) kernels, or with portable=True the portable C ones."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi toolchain not installed")
    pytest.importorskip("unicorn")
    sys.path.insert(0, str(FIRMWARE.parent / "benchmarks"))
    import mcu_cycles

    img = build_dir / ("m4port" if portable else "m4img")
    r = _make("m4", f"BUILD={img}", *(["M4_DEFS=-DREDS_PORTABLE"] if portable else []))
    assert r.returncode == 0, r.stderr
    return mcu_cycles.M4(img / "m4" / "bench.elf")


def _i32(*v: int) -> bytes:
    return np.array(v, np.int64).astype(np.int32).tobytes()


def _run_case_on_m4(m4, case: dict) -> np.ndarray:
    """Pack the kernel's structs (all 4-byte fields, ARM EABI) into emulator RAM and call the kernel."""
    m4.reset_heap()
    g = case["ints"]
    x = m4.alloc(np.ascontiguousarray(case["input"]).tobytes())
    out_n = int(np.asarray(case["expected"]).size)
    out = m4.alloc(out_n + 8)
    kind = case["kind"]
    if kind == "add":
        keys = (
            "input1_offset",
            "input1_multiplier",
            "input1_shift",
            "input2_offset",
            "input2_multiplier",
            "input2_shift",
            "output_offset",
            "output_multiplier",
            "output_shift",
            "act_min",
            "act_max",
        )
        p = m4.alloc(_i32(*(g[k] for k in keys)))
        x2 = m4.alloc(np.ascontiguousarray(case["input2"]).tobytes())
        status, _ = m4.call("reds_add_s8", p, g["size"], x, x2, out)
    elif kind == "leaky":
        keys = ("input_offset", "output_offset", "identity_multiplier", "identity_shift", "alpha_multiplier",
                "alpha_shift")  # fmt: skip
        status, _ = m4.call("reds_leaky_relu_s8", m4.alloc(_i32(*(g[k] for k in keys))), g["size"], x, out)
    elif kind == "mean":
        p = m4.alloc(_i32(g["input_offset"], g["output_offset"], g["multiplier"], g["shift"], 1))
        status, _ = m4.call("reds_mean_s8", p, m4.alloc(_i32(g["n"], g["h"], g["w"], g["c"])), x, out)
    else:
        w = m4.alloc(case["filter"].tobytes())
        bias = m4.alloc(case["bias"].astype(np.int32).tobytes())
        quant = m4.alloc(
            _i32(
                m4.alloc(case["mult"].astype(np.int32).tobytes()),
                m4.alloc(case["shift"].astype(np.int32).tobytes()),
            )
            + _i32(g.get("per_channel", 1))
        )
        act = (g["act_min"], g["act_max"])
        if kind == "fc":
            p = m4.alloc(_i32(g["input_offset"], g["output_offset"], *act))
            filt = m4.alloc(_i32(w, g["out_w"], 1, 1, g["in_w"], g["in_stride"]))
            status, _ = m4.call("reds_fully_connected_s8", p, quant, g["batches"], x, filt, bias, out)
        else:
            geo = (g["stride_h"], g["stride_w"], g["pad_h"], g["pad_w"], g["dilation"], g["dilation"], *act)
            in_dims = m4.alloc(_i32(g["n"], g["in_h"], g["in_w"], g["in_c"]))
            out_dims = m4.alloc(_i32(g["n"], g["out_h"], g["out_w"], g["out_c"]))
            if kind == "conv":
                p = m4.alloc(_i32(g["input_offset"], g["output_offset"], *geo))
                filt = m4.alloc(_i32(w, g["out_c"], g["k_h"], g["k_w"], g["in_c"], g["c_stride"]))
                fn = "reds_conv_s8"
            else:
                p = m4.alloc(_i32(g["input_offset"], g["output_offset"], g["ch_mult"], *geo))
                filt = m4.alloc(_i32(w, 1, g["k_h"], g["k_w"], g["out_c"], g["c_stride"]))
                fn = "reds_depthwise_conv_s8"
            status, _ = m4.call(fn, p, quant, in_dims, x, filt, bias, out_dims, out)
    assert status == 0
    return np.frombuffer(m4.read(out, out_n), np.int8)


def test_cortex_m4_build_bit_exact_with_tflm(build_dir):
    """The arm-none-eabi-gcc -O2 Thumb-2 kernels (not only the host build) reproduce TFLM exactly."""
    m4 = _m4(build_dir)
    rng = np.random.default_rng(int.from_bytes(os.urandom(2), "little"))
    for kind in ("fc", "conv", "dw", "mean", "add", "leaky"):
        for i in range(6):
            case = gen_goldens.CASES[kind](rng)
            got = _run_case_on_m4(m4, case)
            np.testing.assert_array_equal(
                got, np.asarray(case["expected"]).reshape(-1), err_msg=f"{kind} {i}"
            )


def test_cortex_m4_simd_paths_bit_exact_with_tflm_and_portable(build_dir):
    """The SIMD kernels the Cortex-M4 build takes (SXTB16 + SMLAD) on shapes that exercise their blocking:
    pointwise and general convolutions (whole input width: the gathered-window path), 3x3 depthwise
    interiors, fully connected rows, with channel counts that are not multiples of 4 or 8, odd pixel and
    channel counts, prefix views of wider weight tensors. Bit-exact with TFLM, and with the portable C path
    built for the same core (-DREDS_PORTABLE) also where requantisation leaves the fast path (huge biases,
    left shifts)."""
    dsp, port = _m4(build_dir), _m4(build_dir, portable=True)
    rng = np.random.default_rng(int.from_bytes(os.urandom(2), "little"))
    cases = [gen_goldens._conv_like(rng, False, kernel=(1, 1), max_c=40) for _ in range(10)]
    cases += [gen_goldens._conv_like(rng, False, max_c=24) for _ in range(4)]
    cases += [gen_goldens._conv_like(rng, False, max_c=8, full_in=True) for _ in range(6)]
    cases += [gen_goldens._conv_like(rng, True, max_c=24) for _ in range(4)]
    cases += [  # the 3x3 stride-1 interior pairs (activation clamp [-128, 127])
        gen_goldens._conv_like(rng, True, kernel=(3, 3), max_c=24, stride=1, act=gen_goldens.rq.ACT_NONE)
        for _ in range(4)
    ]
    cases += [  # one input channel, stride 1: the four-pixels-per-word pointwise path
        gen_goldens._conv_like(rng, False, kernel=(1, 1), max_c=1, stride=1, act=gen_goldens.rq.ACT_NONE)
        for _ in range(4)
    ]
    while sum(c["ints"]["in_c"] % 4 == 3 and c["ints"]["in_c"] > 4 for c in cases) < 4:  # the word tail
        cases.append(gen_goldens._conv_like(rng, False, kernel=(1, 1), max_c=40, act=gen_goldens.rq.ACT_NONE))
    cases += [gen_goldens.case_fc(rng) for _ in range(4)]
    for i, case in enumerate(cases):
        want = np.asarray(case["expected"]).reshape(-1)
        np.testing.assert_array_equal(_run_case_on_m4(dsp, case), want, err_msg=f"{case['kind']} {i} (DSP)")
        np.testing.assert_array_equal(
            _run_case_on_m4(port, case), want, err_msg=f"{case['kind']} {i} (portable)"
        )
        # Outside TFLM's usual ranges: biases near 2^30 and left shifts take the exact (slow) requantisation.
        case["bias"] = rng.integers(-(2**30), 2**30, size=case["bias"].size).astype(np.int32)
        case["shift"] = rng.integers(-3, 4, size=case["shift"].size).astype(np.int32)
        np.testing.assert_array_equal(
            _run_case_on_m4(dsp, case), _run_case_on_m4(port, case), err_msg=f"{case['kind']} {i} extreme"
        )


def test_cortex_m4_level_switch_within_64_instructions(build_dir):
    """reds_set_level on the M4 build: O(1), <= 64 instructions, bad level rejected."""
    blob_path = FIRMWARE / "fuzz" / "seeds" / "fc2.blob"
    if not blob_path.exists():
        pytest.skip("firmware/fuzz/seeds/fc2.blob (engineer M's sample blob) not present")
    m4 = _m4(build_dir)
    blob = blob_path.read_bytes()
    m4.reset_heap()
    addr = 0x00800000
    m4.uc.mem_write(addr, blob)
    model = m4.alloc(4096)
    status, _ = m4.call("reds_model_init", model, addr, len(blob))
    assert status == 0
    n_levels = int.from_bytes(blob[12:16], "little")
    counts = []
    for k in range(n_levels):
        status, n = m4.call("reds_set_level", model, k)
        assert status == 0
        counts.append(n)
    assert max(counts) <= 64 and len(set(counts)) == 1  # the same few instructions for every level
    status, _ = m4.call("reds_set_level", model, n_levels)
    assert status == 3  # REDS_BAD_LEVEL


@pytest.mark.slow
def test_mcu_cycles_fc2_levels(build_dir, tmp_path):
    """benchmarks/mcu_cycles.py end to end on the 2-layer FC with REDS levels (the knapsack solver's plan
    for MAC budgets 25/50/75 % + full): every level bit-exact with TFLM on the M4 build, switching <= 64
    instructions, inference instructions proportional to MACs within 15 %."""
    m4 = _m4(build_dir)
    import mcu_cycles

    model, plan = mcu_cycles.reds_plan("fc2")
    rows = mcu_cycles.model_rows({mcu_cycles.PRIMARY: m4}, "fc2", "reds", model, plan, tmp_path)
    assert [round(r["mac_fraction"], 2) for r in rows] == [0.25, 0.5, 0.75, 1.0]  # the budgets, met exactly
    assert [r["bit_exact_vs_tflm"] for r in rows] == [True] * 4
    assert max(r["switch_instructions"] for r in rows) <= mcu_cycles.SWITCH_TARGET
    assert all(abs(r["ratio"] - 1) <= mcu_cycles.PROPORTIONAL_TOL for r in rows)
    assert [r["macs"] for r in rows] == sorted(r["macs"] for r in rows)
